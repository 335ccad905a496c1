"""Parse and validate policy documents (``meshfit.io/v1alpha1``) into :mod:`policy.model`.

Every problem is reported with its path and the parse goes on, so one edit of
a broken ConfigMap fixes all of it. Accepts the policy YAML itself, or a
ConfigMap manifest carrying it under ``data["policy.yaml"]``, so the same file
works for ``kubectl apply`` and ``meshfit inject --policy``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from datetime import time as dt_time
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import yaml

from policy.fields import FieldError, Fields, PolicyError
from policy.freeze import FreezeWindow, FreezeWindowError, parse_clock, parse_day, parse_zone
from policy.model import (
    API_VERSION,
    NAMESPACE_POLICY_KIND,
    POLICY_KEY,
    POLICY_KIND,
    RULE_PRECEDENCE,
    Emergency,
    FleetPolicy,
    InjectionPolicy,
    NamespacePolicy,
    Policy,
    ResourcePolicy,
    Scheduling,
    SidecarOverride,
    SidecarSpec,
    SidecarVersions,
    Sizing,
    UpgradeSpec,
    VersionPolicy,
    VersionRule,
)
from policy.quantity import Quantity
from policy.resources import RESOURCES
from policy.runtime import FILE_ENV, MOUNT_PATH, VOLUME_NAME, RuntimePolicy, sidecar_env, sidecar_mount
from policy.runtime_load import check_window_values, namespace_runtime, runtime_section, window_degrade
from policy.slots import HANDOFF_MOUNT_PATH, RESERVED_ENV, handoff_volume_name, name_too_long, slot_names

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAJOR_MINOR = re.compile(r"^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$")


# -- entry points ----------------------------------------------------------
def load_policy_file(path: str | Path) -> Policy:
    text = Path(path).read_text(encoding="utf-8")
    return parse_policy_text(text, source=str(path))


def parse_policy_text(text: str, source: str = "policy") -> Policy:
    """A policy from YAML text: the document itself or a ConfigMap holding it."""
    document = _yaml(text, source)
    if isinstance(document, Mapping) and document.get("kind") == "ConfigMap":
        return policy_from_configmap(document, source=source)
    return parse_policy(document, source=source)


def policy_from_configmap(configmap: Mapping[str, Any], source: str | None = None) -> Policy:
    _, source, text = _configmap_text(configmap, source)
    return parse_policy(_yaml(text, source), source=source)


def namespace_policy_from_configmap(configmap: Mapping[str, Any], policy: Policy) -> NamespacePolicy:
    namespace, source, text = _configmap_text(configmap)
    return parse_namespace_policy(_yaml(text, source), policy, namespace, source=source)


def _configmap_text(configmap: Mapping[str, Any], source: str | None = None) -> tuple[str, str, str]:
    """The ConfigMap's namespace, its name in messages (``ConfigMap NS/NAME``) and its policy text, which it must hold."""
    meta = configmap.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    source = source or f"ConfigMap {namespace}/{meta.get('name', '')}"
    text = (configmap.get("data") or {}).get(POLICY_KEY)
    if not isinstance(text, str):
        raise PolicyError([FieldError(f"data.{POLICY_KEY}", "is required")], source)
    return namespace, source, text


#: Bounds on one policy document, far above any real one (the shipped policy is ~5 KB,
#: ~400 nodes, 8 deep) and far below what would stall a server reading it: a ConfigMap
#: holds at most 1 MiB; aliases may not expand a document past MAX_NODES (the "billion
#: laughs" of YAML); nesting beyond MAX_DEPTH is no policy.
MAX_BYTES = 1 << 20
MAX_NODES = 250_000
MAX_DEPTH = 64


#: libyaml's parser where PyYAML was built with it (the wheels are): ~10x the pure-Python one.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(text: str, source: str) -> Any:
    """YAML text → plain data, refusing what is too big, too deep or expands too far, with the reason."""
    def refuse(message: str) -> PolicyError:
        return PolicyError([FieldError("", message)], source)

    if not isinstance(text, str):
        raise refuse(f"must be text, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise refuse(f"is larger than {MAX_BYTES} bytes")
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node, refuse)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in str(problem):
            raise refuse(f"is nested too deeply (more than {MAX_DEPTH} levels)") from None
        raise refuse(f"not valid YAML: {where}{problem}") from None
    except RecursionError:
        raise refuse(f"is nested too deeply (more than {MAX_DEPTH} levels)") from None
    except PolicyError:
        raise
    except Exception as exc:  # a scalar PyYAML cannot build (an integer of 100,000 digits): refused, not a crash
        raise refuse(f"cannot be read: {type(exc).__name__}: {exc}") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node, refuse: Any) -> None:
    """Count the document as constructed (every alias expanded) and its depth, without constructing it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise refuse(f"is nested too deeply (more than {MAX_DEPTH} levels)")
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key, depth + 1) + size(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
        if total > MAX_NODES:
            raise refuse(f"expands to more than {MAX_NODES} nodes (YAML aliases?)")
        sizes[id(node)] = total
        return total

    size(root, 0)


def revision_of(document: Any) -> str:
    """A stable content hash: two replicas that read the same policy report the same revision."""
    try:
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS, default=str)
    except TypeError:  # integers beyond 64 bits: the slower encoder holds them (validation refuses them after)
        canonical = json.dumps(document, sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).hexdigest()[:12]


# -- the global policy -----------------------------------------------------
def parse_policy(document: Any, source: str = "policy") -> Policy:
    """A validated policy, or :class:`PolicyError` naming every bad field — never any other exception."""
    try:
        return _parse_policy(document, source)
    except PolicyError:
        raise
    except Exception as exc:  # a value no check foresaw must refuse the policy, not crash its reader
        raise PolicyError([FieldError("", f"cannot be read: {type(exc).__name__}: {exc}")], source) from exc


def _parse_policy(document: Any, source: str) -> Policy:
    errors: list[FieldError] = []
    top = Fields(document, "", errors)
    _header(top, POLICY_KIND)
    revision = top.string("revision") or revision_of(document)
    sidecars = tuple(_sidecar(f) for _, f in top.each("sidecars", required=True))
    names = [s.name for s in sidecars]
    for i, name in enumerate(names):
        if name in names[:i]:
            errors.append(FieldError(f"sidecars[{i}].name", f"duplicate sidecar name {name!r}"))
    owners = {slot: i for i, s in enumerate(sidecars) if s.upgrade.hot for slot in slot_names(s)[1:]}
    for i, name in enumerate(names):
        if name in owners:
            errors.append(FieldError(f"sidecars[{i}].name", f"{name!r} is the second slot of hot-upgrade sidecar "
                                                            f"sidecars[{owners[name]}] ({names[owners[name]]!r})"))
    policy = Policy(
        revision=revision,
        sidecars=sidecars,
        injection=_injection(top.mapping("injection")),
        resources=_resources(top.mapping("resources")),
        versions=_versions(top.mapping("versions"), sidecars),
        emergency=_emergency(top.mapping("emergency")),
        scheduling=_scheduling(top.mapping("scheduling")),
        fleet=_fleet(fleet := top.mapping("fleet")),
        runtime=runtime_section(top.mapping("runtime"), tuple(names)),
    )
    if policy.runtime.parameters:
        policy = replace(policy, sidecars=tuple(_with_runtime(top, i, s, policy.runtime)
                                                for i, s in enumerate(policy.sidecars)))
    check_window_values(fleet, policy.runtime)
    top.done()
    if errors:
        raise PolicyError(errors, source)
    return policy


def _with_runtime(top: Fields, i: int, spec: SidecarSpec, runtime: RuntimePolicy) -> SidecarSpec:
    """A sidecar that declares runtime parameters reads them from meshfit's volume: part of its fragment.

    Added here, once per policy, so that every injected copy (each slot of a hot
    sidecar too) carries the same mount and ``$MESHFIT_RUNTIME_FILE`` and the engine
    has nothing per pod to add but the volume that names the pod's group.
    """
    if not runtime.declares(spec.name):
        return spec
    for j, env in enumerate(spec.env):
        if env.get("name") == FILE_ENV:
            top.error(f"sidecars[{i}].env[{j}].name", f"{FILE_ENV} is set by meshfit (runtime parameters)")
    for j, mount in enumerate(spec.volume_mounts):
        if mount.get("name") == VOLUME_NAME or mount.get("mountPath") == MOUNT_PATH:
            top.error(f"sidecars[{i}].volumeMounts[{j}]", f"{VOLUME_NAME} at {MOUNT_PATH} is meshfit's runtime volume")
    for j, volume in enumerate(spec.volumes):
        if volume.get("name") == VOLUME_NAME:
            top.error(f"sidecars[{i}].volumes[{j}].name", f"{VOLUME_NAME} is meshfit's runtime volume")
    return replace(spec, env=(*spec.env, sidecar_env(spec.name)), volume_mounts=(*spec.volume_mounts, sidecar_mount()))


def _header(top: Fields, kind: str) -> None:
    if top.string("apiVersion") != API_VERSION:
        top.error("apiVersion", f"must be {API_VERSION}, got {top.data.get('apiVersion')!r}")
    if top.string("kind") != kind:
        top.error("kind", f"must be {kind}, got {top.data.get('kind')!r}")


def _resource_quantities(f: Fields, *, positive: bool = False) -> dict[str, Quantity]:
    out: dict[str, Quantity] = {}
    for name in RESOURCES:
        value = f.quantity(name, positive=positive)
        if value is not None:
            out[name] = value
    f.done()
    return out


def _sizing(f: Fields, base: Sizing | None = None) -> Sizing:
    base = base or Sizing()
    mode = f.choice("mode", base.mode, ("ratio", "fixed"))
    rf = f.mapping("ratio")
    ratio = {name: rf.ratio(name, base.ratio[name]) for name in RESOURCES}
    rf.done()
    minimum = {**base.min, **_resource_quantities(f.mapping("min"))}
    maximum = {**base.max, **_resource_quantities(f.mapping("max"))}
    fixed = {**base.fixed, **_resource_quantities(f.mapping("fixed"), positive=True)}
    for name in RESOURCES:
        if name in minimum and name in maximum and minimum[name] > maximum[name]:
            f.error(f"min.{name}", f"must not exceed max.{name} ({maximum[name]}), got {minimum[name]}")
    if mode == "fixed":
        for name in RESOURCES:
            if name not in fixed:
                f.error(f"fixed.{name}", "is required when mode is fixed")
    f.done()
    return Sizing(mode=mode, ratio=ratio, min=minimum, max=maximum, fixed=fixed)  # type: ignore[arg-type]


def _sidecar(f: Fields) -> SidecarSpec:
    name = f.string("name", required=True)
    if name and not _DNS_LABEL.match(name):
        f.error("name", f"must be a DNS label (lowercase letters, digits, '-'), got {name!r}")
    image = f.string("image", required=True)
    if ":" in image.rpartition("/")[2] or "@" in image:
        f.error("image", f"is the repository only; versions choose the tag, got {image!r}")
    sizing = _sizing(f.mapping("sizing"))
    floor = f.quantity("cpuRequestFloor", Quantity.parse("50m"), positive=True)
    for i, port in enumerate(f.objects("ports")):
        if not isinstance(port.get("containerPort"), int):
            f.error(f"ports[{i}].containerPort", "is required and must be an integer")
    spec = SidecarSpec(
        name=name,
        image=image,
        placement=f.choice("placement", "native", ("native", "legacy")),  # type: ignore[arg-type]
        position=f.choice("position", "first", ("first", "last")),  # type: ignore[arg-type]
        sizing=sizing,
        cpu_request_floor=floor,
        ports=tuple(f.objects("ports")),
        env=tuple(_env_list(f, "env")),
        volume_mounts=tuple(f.objects("volumeMounts")),
        volumes=tuple(f.objects("volumes")),
        command=f.strings("command"),
        args=f.strings("args"),
        startup_probe=f.object("startupProbe"),
        readiness_probe=f.object("readinessProbe"),
        liveness_probe=f.object("livenessProbe"),
        security_context=f.object("securityContext"),
        lifecycle=f.object("lifecycle"),
        image_pull_policy=f.choice("imagePullPolicy", "IfNotPresent", ("Always", "IfNotPresent", "Never")),
        app_env=tuple(_env_list(f, "appEnv")),
        upgrade=_upgrade(f.mapping("upgrade")),
    )
    if sizing.mode == "fixed" and "cpu" in sizing.fixed and sizing.fixed["cpu"] < floor:
        f.error("sizing.fixed.cpu", f"must be at least cpuRequestFloor ({floor}), got {sizing.fixed['cpu']}")
    _slot_fields(f, spec)
    f.done()
    return spec


#: A hot sidecar's two slots each keep at least 1m of CPU request: its floor is at least 2m.
_HOT_CPU_FLOOR = Quantity.parse("2m")


def _upgrade(f: Fields) -> UpgradeSpec:
    d = UpgradeSpec()
    hot = f.boolean("hot", d.hot)
    dormant = f.boolean("dormant", d.dormant)
    empty = f.string("emptyImage") or None
    if empty is not None and (empty != empty.strip() or any(ch.isspace() for ch in empty)):
        f.error("emptyImage", f"must be an image reference without spaces, got {empty!r}")
        empty = None
    if (hot or dormant) and empty is None and not any(e.path == f.sub("emptyImage") for e in f.errors):
        f.error("emptyImage", "is required when hot or dormant: the image an idle or dormant slot runs")
    f.done()
    return UpgradeSpec(hot=hot, dormant=dormant, empty_image=empty)


def _slot_fields(f: Fields, spec: SidecarSpec) -> None:
    """A slotted sidecar's names must fit the names its slots derive, and leave meshfit's own alone."""
    upgrade = spec.upgrade
    if not upgrade.slotted:
        return
    why = name_too_long(spec) if spec.name else None
    if why:
        f.error("name", why)
    if upgrade.hot and spec.cpu_request_floor < _HOT_CPU_FLOOR:
        f.error("cpuRequestFloor", f"must be at least {_HOT_CPU_FLOOR} for a hot-upgrade sidecar "
                                   f"(each of its two slots keeps 1m), got {spec.cpu_request_floor}")
    reserved = RESERVED_ENV if upgrade.hot else RESERVED_ENV[:2]
    for i, env in enumerate(spec.env):
        if env.get("name") in reserved:
            f.error(f"env[{i}].name", f"{env['name']} is set by meshfit on every slot")
    if upgrade.hot:
        volume = handoff_volume_name(spec.name)
        for i, mount in enumerate(spec.volume_mounts):
            if mount.get("name") == volume or mount.get("mountPath") == HANDOFF_MOUNT_PATH:
                f.error(f"volumeMounts[{i}]", f"{volume} at {HANDOFF_MOUNT_PATH} is meshfit's handoff volume")
        for i, vol in enumerate(spec.volumes):
            if vol.get("name") == volume:
                f.error(f"volumes[{i}].name", f"{volume} is meshfit's handoff volume")


def _env_list(f: Fields, key: str) -> list[dict[str, Any]]:
    items = f.objects(key)
    for i, item in enumerate(items):
        if not isinstance(item.get("name"), str) or not item["name"]:
            f.error(f"{key}[{i}].name", "is required")
    return items


def _injection(f: Fields) -> InjectionPolicy:
    d = InjectionPolicy()
    policy = InjectionPolicy(
        namespace_label=f.string("namespaceLabel", d.namespace_label),
        namespace_label_value=f.string("namespaceLabelValue", d.namespace_label_value),
        pod_override_key=f.string("podOverrideKey", d.pod_override_key),
        excluded_namespaces=f.strings("excludedNamespaces", d.excluded_namespaces),
        host_network=f.choice("hostNetwork", d.host_network, ("skip", "inject")),  # type: ignore[arg-type]
        fail_closed=f.boolean("failClosed", d.fail_closed),
        scheduler_name=f.string("schedulerName", d.scheduler_name),
    )
    f.done()
    return policy


def _resources(f: Fields) -> ResourcePolicy:
    d = ResourcePolicy()
    gf = f.mapping("guaranteed")
    guaranteed = {name: gf.ratio(name, d.guaranteed[name]) for name in RESOURCES}
    gf.done()
    policy = ResourcePolicy(
        mode=f.choice("mode", d.mode, ("overcommit", "additive", "carve")),  # type: ignore[arg-type]
        variant=f.choice("overcommitVariant", d.variant, ("auto", "pod-level", "swap")),  # type: ignore[arg-type]
        pod_level_resources=f.boolean("podLevelResources", d.pod_level_resources),
        guaranteed=guaranteed,
        best_effort=f.choice("bestEffort", d.best_effort, ("requests", "besteffort", "skip")),  # type: ignore[arg-type]
        small_pods=f.choice("smallPods", d.small_pods, ("shrink", "skip", "leak")),  # type: ignore[arg-type]
        qos_change=f.choice("qosChange", d.qos_change, ("skip", "allow")),  # type: ignore[arg-type]
        exclusive_cpu_pods=f.choice("exclusiveCpuPods", d.exclusive_cpu_pods, ("inject", "skip")),  # type: ignore[arg-type]
    )
    if policy.variant == "pod-level" and not policy.pod_level_resources:
        f.error("overcommitVariant", "pod-level needs podLevelResources: true")
    f.done()
    return policy


def _versions(f: Fields, sidecars: tuple[SidecarSpec, ...]) -> VersionPolicy:
    d = VersionPolicy()
    known = {s.name for s in sidecars}

    def read_sidecar(name: str, sf: Fields) -> SidecarVersions:
        if name not in known:
            sf.error("", f"names no sidecar (known: {', '.join(sorted(known)) or 'none'})")
        baseline = sf.string("baseline", required=True)
        allowed = sf.strings("allowed") or (baseline,)
        if baseline and baseline not in allowed:
            sf.error("baseline", f"{baseline!r} is not in allowed {list(allowed)}")
        images = sf.string_map("images")
        for version in images:
            if version not in allowed:
                sf.error(f"images.{version}", f"version {version!r} is not in allowed {list(allowed)}")
        sf.done()
        return SidecarVersions(baseline=baseline, allowed=allowed, images=images)

    per_sidecar = f.map_each("sidecars", read_sidecar)
    for name in sorted(known - set(per_sidecar)):
        f.error(f"sidecars.{name}", "is required: every sidecar needs a baseline version")
    rules: list[VersionRule] = []
    for i, rf in f.each("rules"):
        rule = _rule(rf, per_sidecar)
        if rule is not None:
            rules.append(rule)
    policy = VersionPolicy(
        sidecars=per_sidecar,
        rules=tuple(rules),
        allow_pod_pin=f.boolean("allowPodPin", d.allow_pod_pin),
        app_label=f.string("appLabel", d.app_label),
        zone_label=f.string("zoneLabel", d.zone_label),
    )
    f.done()
    return policy


def _rule(f: Fields, per_sidecar: dict[str, SidecarVersions]) -> VersionRule | None:
    name = f.string("name", required=True)
    kind = f.choice("type", "app", RULE_PRECEDENCE)
    version = f.string("version", required=True)
    sidecar = f.string("sidecar") or None
    targets = [sidecar] if sidecar else list(per_sidecar)
    if sidecar and sidecar not in per_sidecar:
        f.error("sidecar", f"names no sidecar with versions, got {sidecar!r}")
    elif version and not any(version in per_sidecar[t].allowed for t in targets):
        f.error("version", f"{version!r} is not an allowed version of {', '.join(targets)}")
    rule = VersionRule(
        name=name,
        type=kind,  # type: ignore[arg-type]
        version=version,
        sidecar=sidecar,
        apps=f.strings("apps"),
        namespaces=f.strings("namespaces"),
        zones=f.strings("zones"),
        percent=f.ratio("percent", Fraction(0), high=Fraction(100), low_open=False),
        expires=f.timestamp("expires"),
        reason=f.string("reason"),
    )
    if kind == "experiment" and not f.has("percent"):
        f.error("percent", "is required for an experiment")
    if kind == "app" and not rule.apps:
        f.error("apps", "is required for an app rule")
    if kind == "zone" and not rule.zones:
        f.error("zones", "is required for a zone rule")
    f.done()
    return rule


def _emergency(f: Fields) -> Emergency:
    policy = Emergency(
        stop_injection=f.boolean("stopInjection"),
        extender_observe_only=f.boolean("extenderObserveOnly"),
        reason=f.string("reason"),
    )
    f.done()
    return policy


def _scheduling(f: Fields) -> Scheduling:
    d = Scheduling()
    cf = f.mapping("exposureCeiling")
    ceiling = {name: cf.ratio(name, d.exposure_ceiling[name], low_open=False, high=Fraction(10)) for name in RESOURCES}
    cf.done()
    wf = f.mapping("weights")
    weights = {name: wf.integer(name, d.weights[name], low=0, high=100) for name in RESOURCES}
    wf.done()
    if not any(weights.values()):
        f.error("weights", "at least one resource weight must be positive")
    policy = Scheduling(
        exposure_ceiling=ceiling,
        weights=weights,
        exposure_weight=f.ratio("exposureWeight", d.exposure_weight, low_open=False, high=Fraction(100)),
    )
    f.done()
    return policy


def _fleet(f: Fields) -> FleetPolicy:
    d = FleetPolicy()
    kubelet = d.sidecar_image_change_kubelet
    raw = f.raw("sidecarImageChangeKubelet")
    if isinstance(raw, str) and _MAJOR_MINOR.match(raw):
        kubelet = raw
    elif raw is not None:
        number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        hint = " (quote it: YAML reads 1.30 as the number 1.3)" if number else ""
        f.error("sidecarImageChangeKubelet", f"must be a MAJOR.MINOR string such as \"1.32\"{hint}, got {raw!r}")
    policy = FleetPolicy(
        rollback=f.boolean("rollback", d.rollback),
        timeout_seconds=f.integer("timeoutSeconds", d.timeout_seconds, low=1, high=86400),
        crash_restarts=f.integer("crashRestarts", d.crash_restarts, low=0, high=100),
        sidecar_image_change_kubelet=kubelet,
        missed_injections=f.choice("missedInjections", d.missed_injections, ("report", "repair")),  # type: ignore[arg-type]
        runtime_volumes=f.choice("runtimeVolumes", d.runtime_volumes, ("report", "repair")),  # type: ignore[arg-type]
        repairs_per_run=f.integer("repairsPerRun", d.repairs_per_run, low=0, high=1000),
        freeze_windows=freeze_windows(f),
    )
    f.done()
    return policy


def freeze_windows(f: Fields, key: str = "freezeWindows") -> tuple[FreezeWindow, ...]:
    """``fleet.freezeWindows``: every bad field named by its path (``fleet.freezeWindows[0].start``)."""
    windows: list[FreezeWindow] = []
    for _, wf in f.each(key):
        window = _freeze_window(wf)
        if window is not None:
            windows.append(window)
    return tuple(windows)


def _freeze_window(f: Fields) -> FreezeWindow | None:
    errors = len(f.errors)
    days: set[int] = set()
    raw_days = f.raw("days")
    if raw_days is None:
        days = set(range(7))
    elif not isinstance(raw_days, list) or not raw_days:
        f.error("days", "must be a non-empty list of Mon..Sun")
    else:
        for i, day in enumerate(raw_days):
            try:
                days.add(parse_day(day))
            except FreezeWindowError as exc:
                f.error(f"days[{i}]", str(exc))
    clocks: list[dt_time | None] = []
    for name in ("start", "end"):
        if f.raw(name) is None:
            f.error(name, "is required (HH:MM)")
            clocks.append(None)
            continue
        try:
            clocks.append(parse_clock(f.raw(name)))
        except FreezeWindowError as exc:
            f.error(name, str(exc))
            clocks.append(None)
    start, end = clocks
    if start is not None and start == end:
        f.error("end", "must differ from start (a window of no time, or of every hour, is ambiguous)")
    zone = "UTC"
    try:
        zone = parse_zone(f.raw("timezone") if f.has("timezone") else "UTC")
    except FreezeWindowError as exc:
        f.error("timezone", str(exc))
    reason = f.string("reason")
    degrade = window_degrade(f.mapping("degrade"))
    f.done()
    if len(f.errors) > errors:
        return None
    assert start is not None and end is not None  # a missing or bad clock was an error above
    return FreezeWindow(frozenset(days), start, end, zone, reason, degrade)


# -- namespace policy ----------------------------------------------------------
def parse_namespace_policy(document: Any, policy: Policy, namespace: str, source: str = "namespace policy") -> NamespacePolicy:
    """Read a namespace's overrides, accepting only the whitelisted subset.

    A namespace may disable a sidecar, resize it within the global ``min``/``max``,
    and pin a version from the global ``allowed`` list. Anything else (mode,
    emergency switches, images, other namespaces) is an error: those belong to
    the platform team's global policy.
    """
    try:
        return _parse_namespace_policy(document, policy, namespace, source)
    except PolicyError:
        raise
    except Exception as exc:  # as parse_policy: refused, never a crash
        raise PolicyError([FieldError("", f"cannot be read: {type(exc).__name__}: {exc}")], source) from exc


def _parse_namespace_policy(document: Any, policy: Policy, namespace: str, source: str) -> NamespacePolicy:
    errors: list[FieldError] = []
    top = Fields(document, "", errors)
    _header(top, NAMESPACE_POLICY_KIND)

    def read_override(name: str, f: Fields) -> SidecarOverride:
        spec = policy.sidecar(name)
        if spec is None:
            f.error("", f"names no sidecar of the global policy (known: {', '.join(s.name for s in policy.sidecars)})")
            f.done(allowed_extra=tuple(f.data))
            return SidecarOverride()
        enabled = f.boolean("enabled", True)
        sizing = _sizing(f.mapping("sizing"), spec.sizing) if f.has("sizing") else None
        if sizing is not None:
            _within_bounds(f, sizing, spec.sizing)
        version = f.string("version") or None
        versions = policy.versions.sidecars.get(name)
        if version and versions and version not in versions.allowed:
            f.error("version", f"{version!r} is not allowed (allowed: {', '.join(versions.allowed)})")
        f.done()
        return SidecarOverride(enabled=enabled, sizing=sizing, version=version)

    overrides = top.map_each("sidecars", read_override)
    runtime = namespace_runtime(top.mapping("runtime"), policy.runtime)
    top.string("revision")
    top.done()
    if errors:
        raise PolicyError(errors, source)
    return NamespacePolicy(namespace=namespace, revision=revision_of(document), sidecars=overrides, runtime=runtime)


def _within_bounds(f: Fields, sizing: Sizing, bounds: Sizing) -> None:
    for name in RESOURCES:
        low, high = bounds.min.get(name), bounds.max.get(name)
        for key, value in (("min", sizing.min.get(name)), ("max", sizing.max.get(name)), ("fixed", sizing.fixed.get(name))):
            if value is None:
                continue
            if low is not None and value < low:
                f.error(f"sizing.{key}.{name}", f"must be within the global bounds {low}..{high or 'unbounded'}, got {value}")
            if high is not None and value > high:
                f.error(f"sizing.{key}.{name}", f"must be within the global bounds {low or 0}..{high}, got {value}")
