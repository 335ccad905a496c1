"""Reading the ``runtime`` section of a policy (and of a namespace's policy) with every mistake named by its path.

Kept beside :mod:`policy.load` because the declarations are their own small
language (types, allowed values, bounds) that every other source of a value —
rules, a namespace's policy, a freeze window, a degradation — is judged by.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from policy.degradations import DegradationError, parse_duration
from policy.fields import Fields
from policy.runtime import PARAM_TYPES, Parameter, RuntimePolicy, RuntimeRule, Value

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
#: A parameter's value is one scalar; the declaration says which.
_SCALARS = (str, bool, int)


def runtime_section(f: Fields, sidecar_names: tuple[str, ...]) -> RuntimePolicy:
    """``runtime: {maxDegradation, sidecars: {NAME: {PARAM: declaration}}, rules: [...]}``."""
    parameters: dict[str, dict[str, Parameter]] = {}
    sf = f.mapping("sidecars")
    for name in list(sf.data):
        pf = sf.mapping(str(name))
        if str(name) not in sidecar_names:
            sf.error(str(name), f"names no sidecar of this policy (known: {', '.join(sidecar_names)})")
            continue
        declared: dict[str, Parameter] = {}
        for key in list(pf.data):
            if not _NAME.match(str(key)):
                pf.error(str(key), "a parameter name is a letter then letters, digits or '_' (at most 63)")
                pf.raw(str(key))
                continue
            param = _parameter(str(key), pf.mapping(str(key)))
            if param is not None:
                declared[str(key)] = param
        pf.done()
        parameters[str(name)] = declared
    sf.done()
    runtime = RuntimePolicy(parameters=parameters)
    limit = runtime.max_degradation_seconds
    raw_limit = f.raw("maxDegradation")
    if raw_limit is not None:
        try:
            limit = int(parse_duration(str(raw_limit)).total_seconds())
        except DegradationError as exc:
            f.error("maxDegradation", str(exc).replace("--for: ", ""))
    rules: list[RuntimeRule] = []
    names: list[str] = []
    for _, rf in f.each("rules"):
        rule_name = rf.data.get("name")
        if isinstance(rule_name, str) and rule_name in names:
            rf.error("name", f"duplicate rule name {rule_name!r}")
        names.append(str(rule_name))
        rule = _rule(rf, runtime)
        if rule is not None:
            rules.append(rule)
    f.done()
    return RuntimePolicy(parameters=parameters, rules=tuple(rules), max_degradation_seconds=limit)


def _parameter(name: str, f: Fields) -> Parameter | None:
    errors = len(f.errors)
    kind = f.choice("type", "enum", PARAM_TYPES)
    if len(f.errors) > errors:  # the rest means nothing without a type
        f.done(allowed_extra=tuple(str(k) for k in f.data))
        return None
    values: tuple[str, ...] = ()
    if kind == "enum":
        raw = f.raw("values")
        if not isinstance(raw, list) or not raw:
            f.error("values", "is required for an enum: the list of allowed values")
        else:
            words = []
            for i, v in enumerate(raw):
                if isinstance(v, bool):  # YAML's unquoted on/off/yes/no
                    f.error(f"values[{i}]", f"is a boolean ({v!r}); quote it (\"on\", \"off\")")
                elif isinstance(v, (str, int)) and str(v):
                    words.append(str(v))
                else:
                    f.error(f"values[{i}]", f"must be a string, got {v!r}")
            values = tuple(words)
            if len(set(values)) != len(values):
                f.error("values", "has duplicates")
    elif f.has("values"):
        f.raw("values")
        f.error("values", f"is for type enum only, not {kind}")
    minimum = maximum = None
    if kind == "int":
        before = len(f.errors)
        minimum = f.integer("minimum", 0) if f.has("minimum") else None
        maximum = f.integer("maximum", 0) if f.has("maximum") else None
        # bounds that are not integers were refused above: compared, their stand-ins would add a false error
        if len(f.errors) == before and minimum is not None and maximum is not None and minimum > maximum:
            f.error("minimum", f"must not exceed maximum ({maximum}), got {minimum}")
    else:
        for key in ("minimum", "maximum"):
            if f.has(key):
                f.raw(key)
                f.error(key, f"is for type int only, not {kind}")
    override = f.boolean("namespaceOverride", True)
    description = f.string("description")
    declared = Parameter(name, kind, "", values, minimum, maximum, override, description)  # type: ignore[arg-type]
    default_raw = f.raw("default")
    f.done()
    if default_raw is None:
        f.error("default", "is required: the value every pod has until something overrides it")
        return None
    if len(f.errors) > errors:  # a default is judged by a sound declaration only
        return None
    default, why = declared.check(default_raw)
    if default is None:
        f.error("default", str(why))
        return None
    return replace(declared, default=default)


def _rule(f: Fields, runtime: RuntimePolicy) -> RuntimeRule | None:
    errors = len(f.errors)
    name = f.string("name", required=True)
    sidecar = f.string("sidecar") or None
    if sidecar is not None and sidecar not in runtime.parameters:
        f.error("sidecar", f"declares no runtime parameters (declared: {', '.join(runtime.parameters) or 'none'})")
    namespaces, apps, zones = f.strings("namespaces"), f.strings("apps"), f.strings("zones")
    if not (namespaces or apps or zones):
        f.error("", "must name namespaces, apps or zones (for every pod, change the parameter's default)")
    values = values_for(f.mapping("set"), runtime, sidecar, required=True)
    expires = f.timestamp("expires")
    reason = f.string("reason")
    f.done()
    if len(f.errors) > errors:
        return None
    return RuntimeRule(name, tuple(values.items()), sidecar, namespaces, apps, zones, expires, reason)


def values_for(f: Fields, runtime: RuntimePolicy, sidecar: str | None, *, required: bool = False,
               namespace: bool = False) -> dict[str, Value]:
    """``{PARAM: value}`` judged against the declarations of ``sidecar`` (or of every sidecar declaring it)."""
    out: dict[str, Value] = {}
    if required and not f.data:
        f.error("", "must set at least one parameter")
    for key in list(f.data):
        raw = f.raw(str(key))
        owners = (sidecar,) if sidecar else runtime.sidecars_with(str(key))
        params = {o: runtime.parameters[o].get(str(key)) for o in owners if o in runtime.parameters}
        if not params or None in params.values():
            where = f"sidecar {sidecar}" if sidecar else "any sidecar"
            f.error(str(key), f"is not a runtime parameter of {where}")
            continue
        checked: list[Value] = []
        for owner, param in params.items():
            assert param is not None
            if namespace and not param.namespace_override:
                f.error(str(key), f"runtime.sidecars.{owner}.{key} is not namespaceOverride: only the global policy sets it")
                break
            value, why = param.check(raw)
            if value is None:
                f.error(str(key), str(why))
                break
            checked.append(value)
        else:  # every owner took it (they normalise alike: one declaration per sidecar, same type)
            out[str(key)] = checked[0]
    return out


def namespace_runtime(f: Fields, runtime: RuntimePolicy) -> dict[str, dict[str, Value]]:
    """A namespace policy's ``runtime: {SIDECAR: {PARAM: value}}``, within what the global policy allows."""
    out: dict[str, dict[str, Value]] = {}
    for name in list(f.data):
        sf = f.mapping(str(name))
        if str(name) not in runtime.parameters:
            f.error(str(name), f"declares no runtime parameters in the global policy "
                               f"(declared: {', '.join(runtime.parameters) or 'none'})")
            continue
        values = values_for(sf, runtime, str(name), namespace=True)
        sf.done()
        out[str(name)] = values
    f.done()
    return out


def check_window_values(f: Fields, runtime: RuntimePolicy) -> None:
    """``fleet.freezeWindows[i].degrade`` must name declared parameters and allowed values.

    Read from the document (``f`` is ``fleet``), so each path names the window as written
    even when an earlier window was refused.
    """
    raw = f.data.get("freezeWindows")
    for i, item in enumerate(raw if isinstance(raw, list) else ()):
        degrade = item.get("degrade") if isinstance(item, Mapping) else None
        for key, value in (degrade.items() if isinstance(degrade, Mapping) else ()):
            if not isinstance(value, _SCALARS):
                continue  # reported by window_degrade
            owners = runtime.sidecars_with(str(key))
            if not owners:
                f.error(f"freezeWindows[{i}].degrade.{key}", "is not a runtime parameter of any sidecar")
                continue
            for owner in owners:
                why = runtime.parameters[owner][str(key)].check(value)[1]
                if why is not None:
                    f.error(f"freezeWindows[{i}].degrade.{key}", f"{why} (runtime.sidecars.{owner}.{key})")
                    break


def window_degrade(f: Fields) -> tuple[tuple[str, Value], ...]:
    """A freeze window's ``degrade: {PARAM: value}`` as written (judged once the runtime section is read)."""
    out: list[tuple[str, Value]] = []
    for key in list(f.data):
        raw: Any = f.raw(str(key))
        if not isinstance(raw, _SCALARS):
            f.error(str(key), f"must be a string, boolean or integer, got {raw!r}")
            continue
        out.append((str(key), raw))
    return tuple(out)
