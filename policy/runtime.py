"""Runtime parameters of the sidecars: declared types, overrides, degradations, and where each value came from.

The field's contingency plans are switches flipped fleet-wide and at once (log
level, trace logs, control-plane dependency, load-balancer long polling, "stop
pushing the registry" in peak hours), and its outlook asks for per-app
parameters. meshfit owns what goes into every sidecar, so it carries them: the
global policy declares each sidecar's parameters (a type, the allowed values, a
default), rules override them by namespace, app and zone, a namespace's own
policy may set the ones declared ``namespaceOverride``, and a *degradation* (an
emergency value with an expiry, :mod:`policy.degradations`) beats them all.

**One precedence**, most specific first, the first match at a level wins::

    degradation (app > zone > namespace > fleet; the latest set wins a tie)
    > freeze-window degradation > app rule > zone rule > namespace policy
    > namespace rule > default

Unlike versions (where a namespace's pin beats the global app rules), the
namespace's own values sit *below* the app and zone rules: a runtime parameter
set for one app (debug logs for ``checkout``) is more specific than a
namespace's default for all of its apps, and the platform team's app rules are
how an app owner's request is honoured. The only thing above them is an
emergency.

**Delivery**: the values reach running sidecars as files, through a ConfigMap
that the controller keeps (:mod:`controller.runtime_sync`) and every injected
sidecar mounts as a projected volume — the kubelet refreshes such a volume in
place, so a flip needs no restart. There is one ConfigMap per *group*: the
pod's namespace, app and zone (the same labels the version rules read), named
:func:`configmap_name`. A pod's mount is fixed when it is created, so the
object it names must be able to hold whatever its app and zone will ever be
given: one ConfigMap per namespace could not take an app override added later
without recreating the pods, and keys per app inside one object would need the
key to exist before the first pod of a new app starts. A namespace-wide flip
rewrites each group's ConfigMap of that namespace (small objects, one write
each, inside one reconcile).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import orjson

from policy.freeze import FreezeWindow

#: A value of a runtime parameter, as the YAML policy and the files carry it.
Value = str | bool | int
ParamType = Literal["enum", "bool", "int", "string"]
PARAM_TYPES: tuple[str, ...] = ("enum", "bool", "int", "string")
#: Levels, most specific first; a degradation's and a rule's scope is the most specific dimension it names.
Level = Literal["app", "zone", "namespace", "fleet"]
LEVELS: tuple[Level, ...] = ("app", "zone", "namespace", "fleet")

#: Where every sidecar finds its parameters (a projected volume, refreshed in place by the kubelet).
MOUNT_PATH = "/etc/meshfit/runtime"
VOLUME_NAME = "meshfit-runtime"
#: The file a sidecar reads is named in its environment: ``$MESHFIT_RUNTIME_FILE``.
FILE_ENV = "MESHFIT_RUNTIME_FILE"
CONFIGMAP_PREFIX = "meshfit-runtime"
#: On each runtime ConfigMap and pod that mounts one (selectable: the controller watches only these).
LABEL = "meshfit.io/runtime"
LABEL_VALUE = "v1"
#: On the pod, the group its volume names: ``{"configMap": ..., "app": ..., "zone": ...}``.
POD_ANNOTATION = "meshfit.io/runtime"
#: On the ConfigMap: the group it holds, and where each value came from (for ``kubectl describe``).
GROUP_ANNOTATION = "meshfit.io/runtime-group"
SOURCES_ANNOTATION = "meshfit.io/runtime-sources"
MAX_STRING = 256
_NAME_LIMIT = 253
_CLEAN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Parameter:
    """One declared parameter of one sidecar."""

    name: str
    type: ParamType
    default: Value
    #: ``enum``: the allowed values.
    values: tuple[str, ...] = ()
    #: ``int``: inclusive bounds.
    minimum: int | None = None
    maximum: int | None = None
    #: Whether a namespace's own policy may set it (within ``values``/bounds).
    namespace_override: bool = True
    description: str = ""

    def check(self, value: object) -> tuple[Value | None, str | None]:
        """``(value, None)`` normalised, or ``(None, why)``: the one judge of every value, from any source.

        YAML reads an unquoted ``off`` as ``false``; an enum that offers ``on``/``off``
        (or ``true``/``false``) takes a boolean as that word, so ``traceLog: off``
        means what its writer meant.
        """
        if self.type == "bool":
            if isinstance(value, bool):
                return value, None
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true", None
            return None, f"must be true or false, got {value!r}"
        if self.type == "int":
            number: int | None = None
            if isinstance(value, int) and not isinstance(value, bool):
                number = value
            elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
                number = int(value.strip())
            if number is None:
                return None, f"must be an integer, got {value!r}"
            if self.minimum is not None and number < self.minimum or self.maximum is not None and number > self.maximum:
                low = "" if self.minimum is None else self.minimum
                high = "" if self.maximum is None else self.maximum
                return None, f"must be within {low}..{high}, got {number}"
            return number, None
        if self.type == "enum":
            text = value
            if isinstance(value, bool):
                for word in ("on" if value else "off", "true" if value else "false"):
                    if word in self.values:
                        text = word
                        break
            if isinstance(text, int) and not isinstance(text, bool):
                text = str(text)
            if not isinstance(text, str) or text not in self.values:
                return None, f"must be one of {', '.join(self.values)}, got {value!r}"
            return text, None
        if not isinstance(value, str) or isinstance(value, bool):
            return None, f"must be a string, got {value!r}"
        if len(value) > MAX_STRING or any(ch in value for ch in "\n\r\0"):
            return None, f"must be one line of at most {MAX_STRING} characters"
        return value, None


@dataclass(frozen=True, slots=True)
class RuntimeRule:
    """Values for the pods a rule names; its level is the most specific dimension it names."""

    name: str
    values: tuple[tuple[str, Value], ...]
    sidecar: str | None = None
    namespaces: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    expires: datetime | None = None
    reason: str = ""

    @property
    def level(self) -> Level:
        return "app" if self.apps else "zone" if self.zones else "namespace"

    def matches(self, sidecar: str, group: Group, now: datetime) -> str | None:
        """``None`` when the rule applies to this sidecar of this group, else why not (for explain)."""
        if self.sidecar is not None and self.sidecar != sidecar:
            return f"for sidecar {self.sidecar}"
        if self.expires is not None and now >= self.expires:
            return f"expired {self.expires.isoformat()}"
        if self.namespaces and group.namespace not in self.namespaces:
            return f"namespace {group.namespace} not in {list(self.namespaces)}"
        if self.apps and group.app not in self.apps:
            return f"app {group.app or '(no app label)'} not in {list(self.apps)}"
        if self.zones and group.zone not in self.zones:
            return f"zone {group.zone or '(no zone label)'} not in {list(self.zones)}"
        return None


@dataclass(frozen=True, slots=True)
class RuntimePolicy:
    """The ``runtime`` section of the global policy; empty: the feature is off and no pod mounts anything."""

    #: sidecar name → parameter name → declaration, in the order written.
    parameters: Mapping[str, Mapping[str, Parameter]] = field(default_factory=dict)
    rules: tuple[RuntimeRule, ...] = ()
    #: The longest a degradation may be set for (seconds): an emergency value is not a way of life.
    max_degradation_seconds: int = 7 * 24 * 3600

    def declares(self, sidecar: str) -> bool:
        """Whether injected copies of this sidecar mount the runtime volume."""
        return bool(self.parameters.get(sidecar))

    def sidecars_with(self, parameter: str) -> tuple[str, ...]:
        """The sidecars that declare ``parameter``, in policy order."""
        return tuple(name for name, params in self.parameters.items() if parameter in params)


@dataclass(frozen=True, slots=True)
class Group:
    """Pods that read one ConfigMap: same namespace, app and zone label."""

    namespace: str
    app: str = ""
    zone: str = ""

    @property
    def configmap(self) -> str:
        return configmap_name(self.app, self.zone)

    def describe(self) -> str:
        parts = [f"namespace {self.namespace}"]
        if self.app:
            parts.append(f"app {self.app}")
        if self.zone:
            parts.append(f"zone {self.zone}")
        return ", ".join(parts)


def group_of(labels: Mapping[str, str] | None, namespace: str, app_label: str, zone_label: str) -> Group:
    """A pod's group, from the labels the version rules read too."""
    labels = labels or {}
    return Group(namespace, str(labels.get(app_label) or ""), str(labels.get(zone_label) or ""))


def configmap_name(app: str, zone: str) -> str:
    """``meshfit-runtime[-app][-zone]``, readable where the labels allow, and never one name for two groups.

    Label values allow upper case, ``_`` and ``.`` and may be empty; a zone, or
    anything that had to be cleaned up, adds a hash of the pair, so
    ``app=a-b`` and ``app=a, zone=b`` get different names.
    """
    raw = "-".join(p for p in (CONFIGMAP_PREFIX, app, zone) if p)
    if not zone and (not app or _CLEAN.match(app)) and len(raw) <= _NAME_LIMIT:
        return raw
    digest = hashlib.sha256(f"{app}\0{zone}".encode()).hexdigest()[:8]
    # The prefix starts every name, so only the end can be left a "-" by the clean-up.
    clean = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", raw.lower()))[: _NAME_LIMIT - 9].rstrip("-")
    return f"{clean}-{digest}"


@dataclass(frozen=True, slots=True)
class Setting:
    """One parameter's effective value and where it came from."""

    value: Value
    #: ``degradation`` | ``freeze-window`` | ``rule`` | ``namespace-policy`` | ``default``
    source: str
    #: The degradation id, the window, the rule's name, the namespace, or empty.
    origin: str = ""
    detail: str = ""
    #: Candidates that matched too and lost, most specific first (for explain).
    shadowed: tuple[str, ...] = ()

    def describe(self) -> str:
        where = f"{self.source} {self.origin}".strip()
        return f"{where} ({self.detail})" if self.detail else where


@dataclass(frozen=True, slots=True)
class WindowValue:
    """A degradation that a freeze window brings for its duration (``fleet.freezeWindows[].degrade``)."""

    window: str
    parameter: str
    value: Value


def window_values(windows: Iterable[FreezeWindow], now: datetime) -> tuple[WindowValue, ...]:
    """The degraded values of the freeze windows ``now`` falls in, in policy order."""
    return tuple(WindowValue(w.describe(), key, value) for w in windows if w.until(now) is not None
                 for key, value in w.degrade)


class Candidate:
    """Something that could set one parameter, with its rank (lower wins)."""

    __slots__ = ("rank", "setting")

    def __init__(self, rank: tuple[float, ...], setting: Setting) -> None:
        self.rank = rank
        self.setting = setting


def resolve(runtime: RuntimePolicy, group: Group, *, now: datetime,
            namespace_values: Mapping[str, Mapping[str, Value]] | None = None,
            degradations: Iterable[DegradationLike] = (),
            windows: Sequence[WindowValue] = ()) -> dict[str, dict[str, Setting]]:
    """Every declared parameter of every sidecar for one group: sidecar → parameter → :class:`Setting`.

    Inputs are taken as valid (the loaders judged them against the declarations);
    a degradation or window value the declarations refuse is skipped here too,
    so a stale record can never put a value the policy does not allow into a file.
    """
    degradations = tuple(degradations)
    out: dict[str, dict[str, Setting]] = {}
    for sidecar, params in runtime.parameters.items():
        settings: dict[str, Setting] = {}
        own = (namespace_values or {}).get(sidecar) or {}
        for name, param in params.items():
            candidates: list[Candidate] = []
            for d in degradations:
                if d.applies(sidecar, name, group, now) is not None:
                    continue
                value, why = param.check(d.value)
                if value is not None and why is None:
                    # Most specific scope first; then the latest set.
                    rank = (0, LEVELS.index(d.level), -d.at.timestamp())
                    candidates.append(Candidate(rank, Setting(value, "degradation", d.id,
                                                              f"{d.scope()}, until {d.until.isoformat()}: {d.reason}")))
            for i, w in enumerate(windows):
                if w.parameter != name:
                    continue
                value, why = param.check(w.value)
                if value is not None and why is None:
                    candidates.append(Candidate((1, i), Setting(value, "freeze-window", w.window)))
            for i, rule in enumerate(runtime.rules):
                values = dict(rule.values)
                if name not in values or rule.matches(sidecar, group, now) is not None:
                    continue
                level_rank = {"app": 2, "zone": 3, "namespace": 5}[rule.level]
                candidates.append(Candidate((level_rank, i), Setting(values[name], "rule", rule.name,
                                                                     f"{rule.level} rule" + (f": {rule.reason}" if rule.reason else ""))))
            if name in own and param.namespace_override:
                candidates.append(Candidate((4,), Setting(own[name], "namespace-policy", group.namespace)))
            candidates.sort(key=lambda c: c.rank)
            if candidates:
                win = candidates[0].setting
                lost = tuple(f"{c.setting.describe()} = {text_of(c.setting.value)}" for c in candidates[1:])
                settings[name] = Setting(win.value, win.source, win.origin, win.detail, lost)
            else:
                settings[name] = Setting(param.default, "default")
        out[sidecar] = settings
    return out


class DegradationLike(Protocol):
    """What :func:`resolve` needs of a degradation (:class:`policy.degradations.Degradation`)."""

    @property
    def id(self) -> str: ...
    @property
    def value(self) -> Value: ...
    @property
    def at(self) -> datetime: ...
    @property
    def until(self) -> datetime: ...
    @property
    def reason(self) -> str: ...
    @property
    def level(self) -> Level: ...
    def scope(self) -> str: ...
    def applies(self, sidecar: str, parameter: str, group: Group, now: datetime) -> str | None: ...


def text_of(value: object) -> str:
    """A value as a person (and a file of ``KEY=value`` lines) writes it: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def file_name(sidecar: str) -> str:
    """The key (and file) holding one sidecar's parameters."""
    return f"{sidecar}.json"


def configmap_data(settings: Mapping[str, Mapping[str, Setting]]) -> dict[str, str]:
    """The ConfigMap's ``data``: one JSON object per sidecar, its parameters in declaration order."""
    return {file_name(sidecar): orjson.dumps({k: s.value for k, s in params.items()}).decode()
            for sidecar, params in settings.items()}


def sources_of(settings: Mapping[str, Mapping[str, Setting]]) -> str:
    """``sidecar.parameter`` → where its value came from, compact JSON, for the ConfigMap's annotation."""
    return orjson.dumps({f"{sidecar}.{k}": s.describe() for sidecar, params in settings.items()
                         for k, s in params.items()}).decode()


def configmap(group: Group, settings: Mapping[str, Mapping[str, Setting]]) -> dict[str, object]:
    """The whole ConfigMap the controller keeps for one group."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": group.configmap,
            "namespace": group.namespace,
            "labels": {LABEL: LABEL_VALUE, "app.kubernetes.io/managed-by": "meshfit"},
            "annotations": {GROUP_ANNOTATION: group_annotation(group), SOURCES_ANNOTATION: sources_of(settings)},
        },
        "data": configmap_data(settings),
    }


def group_annotation(group: Group) -> str:
    return orjson.dumps({"configMap": group.configmap, "app": group.app, "zone": group.zone}).decode()


def group_from_annotation(namespace: str, text: object) -> Group | None:
    """The group a pod's (or ConfigMap's) annotation names; ``None`` when it is not one of ours."""
    if not isinstance(text, str):
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    # configMap needs no type check: anything but the group's name is refused below.
    if not isinstance(data, dict) or not all(isinstance(data.get(k, ""), str) for k in ("app", "zone")):
        return None
    group = Group(namespace, data.get("app", ""), data.get("zone", ""))
    return group if data.get("configMap") == group.configmap else None


# -- what the webhook adds to a pod ---------------------------------------------
def pod_volume(group: Group) -> dict[str, object]:
    """The projected volume of the group's ConfigMap.

    ``optional``: the first pod of a new group starts before the controller has
    written its ConfigMap (the sidecar sees no file for up to one reconcile period
    and runs on its own defaults); a pod never waits on meshfit's controller to
    start. Projected, not ``subPath``: the kubelet refreshes it in place.
    """
    return {"name": VOLUME_NAME, "projected": {"defaultMode": 0o444, "sources": [
        {"configMap": {"name": group.configmap, "optional": True}}]}}


def sidecar_mount() -> dict[str, object]:
    return {"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True}


def sidecar_env(sidecar: str) -> dict[str, str]:
    return {"name": FILE_ENV, "value": f"{MOUNT_PATH}/{file_name(sidecar)}"}
