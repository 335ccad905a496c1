"""The injection engine: one pure function from (pod, namespace, policy) to the injected pod.

The webhook, ``meshfit inject`` and ``meshfit explain`` all call :func:`inject`;
there is no second code path. Its result carries the new pod, the JSONPatch
that produces it from the original, the decision and its reasons, the chosen
versions and the accounting record written on the pod.

Edits happen in an order that keeps the patch's list indices true as it is
applied: app containers' environment first, then the sidecars are placed,
then requests are donated (by the indices of the pod *with* sidecars), then
pod-level fields and annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Decision, Namespace, decide
from policy.donation import Donation, plan
from policy.edits import PodEditor, json_copy
from policy.model import Policy, SidecarSpec
from policy.quantity import ZERO, Quantity, QuantityError
from policy.record import AccountingRecord, SidecarRecord
from policy.resources import (
    RESOURCES,
    Aggregate,
    Limits,
    Resources,
    container_requests,
    explain_requests,
    is_best_effort,
    pod_level_limits,
    pod_limits,
    q,
)
from policy.sizing import SidecarSize, app_allocation, size_sidecar
from policy.versions import VersionChoice, resolve_version

__all__ = ["InjectionError", "InjectionResult", "Namespace", "inject"]


class InjectionError(ValueError):
    """A pod the engine cannot handle (malformed resources, wrong shapes); the message says where."""


@dataclass(slots=True)
class InjectionResult:
    pod: dict[str, Any]
    injected: bool
    reason: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, VersionChoice] = field(default_factory=dict)
    sizes: dict[str, SidecarSize] = field(default_factory=dict)
    record: AccountingRecord | None = None
    patch: list[dict[str, Any]] = field(default_factory=list)
    before: Aggregate | None = None
    before_limits: Limits | None = None
    after: Aggregate | None = None

    #: For a skip, a short fixed code (``pod_opt_out``, ``best_effort``...) for metrics.
    skip_code: str = ""

    @property
    def skip_reason(self) -> str | None:
        return None if self.injected else self.reason


def inject(pod: dict[str, Any], namespace: Namespace, policy: Policy, *, now: datetime | None = None) -> InjectionResult:
    """Inject ``policy``'s sidecars into ``pod`` (never modified) as the policy says."""
    _check_shape(pod)
    meta = pod.get("metadata") or {}
    where = f"{namespace.name}/{meta.get('name') or meta.get('generateName') or '<unnamed>'}"
    try:
        decision = decide(pod, namespace, policy)
        before = explain_requests(pod)
        before_limits = pod_limits(pod)
    except QuantityError as exc:
        raise InjectionError(f"pod {where}: {exc}") from None
    if not decision.inject:
        return InjectionResult(pod, False, decision.reason, decision.warnings, before=before,
                               before_limits=before_limits, skip_code=decision.code)
    try:
        return _inject(pod, namespace, policy, decision, before, before_limits, now or datetime.now(timezone.utc))
    except QuantityError as exc:
        raise InjectionError(f"pod {where}: {exc}") from None


def _check_shape(pod: Any) -> None:
    if not isinstance(pod, dict):
        raise InjectionError("a pod must be a JSON object")
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        raise InjectionError("pod.spec must be an object")
    for kind in ("containers", "initContainers"):
        items = spec.get(kind)
        if items is None:
            continue
        if not isinstance(items, list):
            raise InjectionError(f"spec.{kind} must be a list")
        for i, c in enumerate(items):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise InjectionError(f"spec.{kind}[{i}] must be an object with a name")
            _check_resources(c.get("resources"), f"spec.{kind}[{i}].resources")
    if not spec.get("containers"):
        raise InjectionError("spec.containers must not be empty")
    _check_resources(spec.get("resources"), "spec.resources")
    _check_quantities(spec.get("overhead"), "spec.overhead")
    meta = pod.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise InjectionError("pod.metadata must be an object")


def _check_resources(res: Any, path: str) -> None:
    if res is None:
        return
    if not isinstance(res, dict):
        raise InjectionError(f"{path} must be an object")
    for part in ("requests", "limits"):
        _check_quantities(res.get(part), f"{path}.{part}")


def _check_quantities(values: Any, path: str) -> None:
    """Name the exact field of a bad quantity: ``spec.containers[0].resources.limits.cpu``."""
    if values is None:
        return
    if not isinstance(values, dict):
        raise InjectionError(f"{path} must be an object")
    for name in RESOURCES:
        if values.get(name) is not None:
            try:
                q(values[name])
            except QuantityError as exc:
                raise InjectionError(f"{path}.{name}: {exc}") from None


def _inject(pod: dict[str, Any], namespace: Namespace, policy: Policy, decision: Decision,
            before: Aggregate, before_limits: Limits, now: datetime) -> InjectionResult:
    spec = pod["spec"]
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    warnings = list(decision.warnings)
    notes: list[str] = []
    rp = policy.resources
    mode = rp.mode
    best_effort = is_best_effort(pod)
    if best_effort and rp.best_effort == "skip":
        reason = "the pod is BestEffort and resources.bestEffort is skip"
        warnings.append(f"meshfit did not inject this pod: {reason}")
        return InjectionResult(pod, False, reason, warnings, before=before, before_limits=before_limits,
                               skip_code="best_effort")

    has_pod_level = bool((spec.get("resources") or {}).get("requests") or (spec.get("resources") or {}).get("limits"))
    if mode != "overcommit":
        variant = "none"
    elif best_effort:
        variant = "besteffort"
    elif has_pod_level:
        variant = "pod-level"
        if rp.effective_variant() == "swap":
            notes.append("the pod already sets pod-level resources, so the pod-level variant applies")
    else:
        variant = rp.effective_variant()

    A = before.effective
    overhead = before.overhead
    target = {r: before.pod_level.get(r, before.aggregate[r]).nanos for r in RESOURCES}
    overrides = namespace.policy.sidecars if namespace.policy else {}
    versions: dict[str, VersionChoice] = {}
    for sidecar in decision.sidecars:
        override = overrides.get(sidecar.name)
        choice = resolve_version(pod, namespace.name, sidecar, policy.versions,
                                 override.version if override else None, now)
        versions[sidecar.name] = choice
        warnings.extend(choice.warnings)

    # The pod-level variant keeps the mesh inside the pod's own limit. Where that limit
    # cannot hold the sidecars at the CPU floor (lesson 4: a starved mesh jitters) or
    # their requests, the swap variant puts the exposure on the node, where the
    # extender bounds it; a pod that sets its own pod-level limit cannot move it there.
    while True:
        sizes = _size_all(decision.sidecars, overrides, A, before_limits, overhead, variant, policy, annotations)
        starved = [s.name for s in decision.sidecars
                   if variant == "pod-level" and sizes[s.name].limits.get("cpu", ZERO) < s.cpu_request_floor]
        built = None if starved else _build(pod, decision.sidecars, versions, sizes, mode, variant, target,
                                             before_limits, overhead)
        if built is not None and built.fits:
            break
        problem = (f"the pod's CPU limit cannot hold {', '.join(starved)} at the request floor" if starved
                   else "the sidecars' requests do not fit under the pod's limit")
        if has_pod_level:
            reason = f"{problem}, and the pod sets its own pod-level limit"
            warnings.append(f"meshfit did not inject this pod: {reason}")
            return InjectionResult(pod, False, reason, warnings, before=before, before_limits=before_limits,
                                   skip_code="pod_too_small")
        variant = "swap"
        notes.append(f"{problem}: the swap variant applies to this pod")
    for name, size in sizes.items():
        notes.extend(f"{name}: {n}" for n in size.notes)
    editor, after, after_limits, drift = built.editor, built.after, built.after_limits, built.drift
    leak = {r: after.effective[r] - A[r] for r in RESOURCES if after.effective[r] > A[r]}
    if mode == "overcommit" and leak:
        notes.append(
            "R(new) exceeds A by " + ", ".join(f"{r} {v}" for r, v in leak.items())
            + (": a BestEffort pod has no request to donate" if best_effort
               else ": the app containers' requests are too small to donate the sidecars' requests")
        )
    sum_limits = {r: sum((s.limits.get(r, ZERO) for s in sizes.values()), ZERO) for r in RESOURCES}
    overcommit = sum_limits if mode == "overcommit" and variant != "besteffort" else {}
    exposure = "pod" if variant == "pod-level" else "node" if variant == "swap" else "none"
    record = AccountingRecord(
        mode=mode,
        variant=variant,
        original=dict(A),
        sidecars=tuple(
            SidecarRecord(name, versions[name].version, sizes[name].requests, sizes[name].limits) for name in sizes
        ),
        requests=dict(after.effective),
        limits=dict(after_limits),
        overcommit={r: v for r, v in overcommit.items() if v},
        exposure=exposure if overcommit else "none",
        leak=leak,
        drift=drift,
    )
    status = {
        "v": 1,
        "policy": policy.revision,
        "sidecars": [{"name": c.sidecar, "version": c.version, "image": c.image, "source": c.source}
                     for c in versions.values()],
    }
    if policy.injection.scheduler_name and spec.get("schedulerName") in (None, "", "default-scheduler"):
        editor.set(("spec", "schedulerName"), policy.injection.scheduler_name)
    editor.set(("metadata", "annotations", STATUS), orjson.dumps(status).decode())
    editor.set(("metadata", "annotations", ACCOUNTING), record.to_json())
    return InjectionResult(
        pod=editor.pod,
        injected=True,
        reason=decision.reason,
        warnings=warnings,
        notes=notes,
        versions=versions,
        sizes=sizes,
        record=record,
        patch=editor.ops,
        before=before,
        before_limits=before_limits,
        after=after,
    )


@dataclass(slots=True)
class _Built:
    editor: PodEditor
    after: Aggregate
    after_limits: Limits
    drift: dict[str, Quantity]
    fits: bool


def _build(pod: dict[str, Any], sidecars: tuple[SidecarSpec, ...], versions: dict[str, VersionChoice],
           sizes: dict[str, SidecarSize], mode: str, variant: str, target: Mapping[str, int],
           before_limits: Limits, overhead: Resources) -> _Built:
    """All container edits for one variant; ``fits`` is false where Kubernetes would refuse the pod-level fields."""
    editor = PodEditor(pod)
    _add_app_env(editor, sidecars)
    injected_names = _place_sidecars(editor, sidecars, versions, sizes)
    _add_volumes(editor, sidecars)
    drift: dict[str, Quantity] = {}
    if mode in ("overcommit", "carve") and variant != "besteffort":
        donations = plan(editor.pod["spec"], target, injected_names)
        drift = _apply_donations(editor, donations, carve=mode == "carve")
    fits = True
    after = None
    if variant == "pod-level":
        _set_pod_level(editor, target, before_limits, overhead)
        # Validation demands container aggregate <= pod-level request; where a donor
        # could not give enough, the pod-level request grows and the leak shows it,
        # as long as it stays within the pod-level limit.
        after = explain_requests(editor.pod)
        aggregate = after.aggregate
        limits = pod_level_limits(editor.pod["spec"])
        for r in RESOURCES:
            if aggregate[r].nanos > target[r]:
                editor.set(("spec", "resources", "requests", r), aggregate[r].format())
                after = None  # the pod-level request changed: R(new) is computed again below
            if r in limits and aggregate[r] > limits[r]:
                fits = False
    return _Built(editor, after if after is not None else explain_requests(editor.pod), pod_limits(editor.pod), drift, fits)


def _size_all(sidecars: tuple[SidecarSpec, ...], overrides: Mapping[str, Any], A: Resources, before_limits: Limits,
              overhead: Resources, variant: str, policy: Policy, annotations: Mapping[str, str]) -> dict[str, SidecarSize]:
    """Each sidecar's size; in the pod-level variant no sidecar may exceed the pod's own limit."""
    rp = policy.resources
    cap: dict[str, Quantity | None] = {
        r: (before_limits[r] - overhead.get(r, ZERO)) if variant == "pod-level" and before_limits[r] is not None else None
        for r in RESOURCES
    }
    base = app_allocation(A, before_limits)
    sizes: dict[str, SidecarSize] = {}
    for sidecar in sidecars:
        override = overrides.get(sidecar.name)
        sizing = override.sizing if override and override.sizing else sidecar.sizing
        size = size_sidecar(sidecar, sizing, base, rp.guaranteed, annotations, cap)
        if rp.mode in ("additive", "carve"):
            size = SidecarSize(limits=size.limits, requests=dict(size.limits), notes=size.notes)
        elif variant == "besteffort" and rp.best_effort == "besteffort":
            size = SidecarSize(limits={}, requests={},
                               notes=size.notes + ("BestEffort pod: the sidecar gets no requests or limits",))
        sizes[sidecar.name] = size
    return sizes


def _add_app_env(editor: PodEditor, sidecars: tuple[SidecarSpec, ...]) -> None:
    """Tell app containers where the mesh is; a variable the app already sets wins."""
    wanted = [e for s in sidecars for e in s.app_env]
    if not wanted:
        return
    for i, container in enumerate(editor.pod["spec"]["containers"]):
        present = {e.get("name") for e in container.get("env") or () if isinstance(e, Mapping)}
        for env in wanted:
            if env["name"] not in present:
                editor.insert(("spec", "containers", i, "env"), None, json_copy(env))
                present.add(env["name"])


def _container(sidecar: SidecarSpec, choice: VersionChoice, size: SidecarSize) -> dict[str, Any]:
    c: dict[str, Any] = {"name": sidecar.name, "image": choice.image, "imagePullPolicy": sidecar.image_pull_policy}
    if sidecar.placement == "native":
        c["restartPolicy"] = "Always"
    if sidecar.command:
        c["command"] = list(sidecar.command)
    if sidecar.args:
        c["args"] = list(sidecar.args)
    for key, value in (("ports", sidecar.ports), ("env", sidecar.env), ("volumeMounts", sidecar.volume_mounts)):
        if value:
            c[key] = json_copy(value)
    resources: dict[str, Any] = {}
    if size.requests:
        resources["requests"] = {r: v.format() for r, v in size.requests.items()}
    if size.limits:
        resources["limits"] = {r: v.format() for r, v in size.limits.items()}
    c["resources"] = resources
    for key, probe in (("startupProbe", sidecar.startup_probe), ("readinessProbe", sidecar.readiness_probe),
                       ("livenessProbe", sidecar.liveness_probe), ("securityContext", sidecar.security_context)):
        if probe is not None:
            c[key] = json_copy(probe)
    return c


def _place_sidecars(editor: PodEditor, sidecars: tuple[SidecarSpec, ...], versions: dict[str, VersionChoice],
                    sizes: dict[str, SidecarSize]) -> set[str]:
    """Native sidecars go to initContainers (before the app's init containers when ``first``)."""
    placed = {"initContainers": 0, "containers": 0}
    for sidecar in sidecars:
        kind = "initContainers" if sidecar.placement == "native" else "containers"
        index = placed[kind] if sidecar.position == "first" else None
        editor.insert(("spec", kind), index, _container(sidecar, versions[sidecar.name], sizes[sidecar.name]))
        if sidecar.position == "first":
            placed[kind] += 1
    return {s.name for s in sidecars}


def _add_volumes(editor: PodEditor, sidecars: tuple[SidecarSpec, ...]) -> None:
    present = {v.get("name") for v in editor.get(("spec", "volumes"), ()) if isinstance(v, Mapping)}
    for sidecar in sidecars:
        for volume in sidecar.volumes:
            if volume.get("name") not in present:
                editor.insert(("spec", "volumes"), None, json_copy(volume))
                present.add(volume.get("name"))


def _apply_donations(editor: PodEditor, donations: list[Donation], *, carve: bool) -> dict[str, Quantity]:
    """Lower donors' requests (and, when carving, their limits by the same amount)."""
    drift: dict[str, Quantity] = {}
    for d in donations:
        path = ("spec", d.field, d.index, "resources")
        container = editor.get(("spec", d.field, d.index))
        current = container_requests(container)[d.resource]
        editor.set(path + ("requests", d.resource), Quantity(current.nanos - d.amount, current.fmt).format())
        if carve:
            limit = ((container.get("resources") or {}).get("limits") or {}).get(d.resource)
            if limit is not None:
                lq = q(limit)
                editor.set(path + ("limits", d.resource), Quantity(lq.nanos - d.amount, lq.fmt).format())
            if d.field == "containers":
                drift[d.resource] = drift.get(d.resource, ZERO) + Quantity(d.amount, current.fmt)
    return drift


def _set_pod_level(editor: PodEditor, target: Mapping[str, int], before_limits: Limits,
                   overhead: Resources) -> None:
    """``spec.resources``: requests = the original aggregate, limits = the original limit where bounded."""
    spec_resources = editor.get(("spec", "resources")) or {}
    old_requests = spec_resources.get("requests") or {}
    old_limits = spec_resources.get("limits") or {}
    fmt = {"cpu": "DecimalSI", "memory": "BinarySI"}
    for r in RESOURCES:
        if r not in old_requests:
            editor.set(("spec", "resources", "requests", r), Quantity(target[r], fmt[r]).format())  # type: ignore[arg-type]
        limit = before_limits[r]
        if limit is not None and r not in old_limits:
            value = limit - overhead.get(r, ZERO)
            editor.set(("spec", "resources", "limits", r), value.with_format(fmt[r]).format())  # type: ignore[arg-type]
