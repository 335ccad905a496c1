"""The injection engine: one pure function from (pod, namespace, policy) to the injected pod.

The webhook, ``meshfit inject`` and ``meshfit explain`` all call :func:`inject`;
there is no second code path. Its result carries the new pod, the JSONPatch
that produces it from the original, the decision and its reasons, the chosen
versions and the accounting record written on the pod.

A sidecar with hot-upgrade or dormant slots (``upgrade:``) is placed as its
slots, side by side, its one fitted request split between them
(:mod:`policy.slots`): the budget, the donation and ``R(pod)`` are exactly a
single sidecar's, so the fleet controller never changes them in place.

Edits happen in an order that keeps the patch's list indices true as it is
applied: app containers' environment first, then the sidecars are placed,
then requests are donated (by the indices of the pod *with* sidecars), then
pod-level fields and annotations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from policy.annotations import ACCOUNTING, STATUS
from policy.budget import Fit, fit_requests
from policy.decision import Decision, Namespace, decide
from policy.donation import Donation
from policy.donation import plan as donation_plan
from policy.edits import PodEditor
from policy.model import Policy, ResourcePolicy, SidecarSpec
from policy.qos import exclusive_cpu_candidate, pod_qos
from policy.quantity import ZERO, Quantity, QuantityError
from policy.record import AccountingRecord, Exposure, SidecarRecord, SlotRecord
from policy.resources import (
    RESOURCES,
    Aggregate,
    Limits,
    Resources,
    container_limits,
    container_requests,
    explain_requests,
    family,
    is_best_effort,
    pod_level_limits,
    pod_level_requests,
    pod_limits,
    q,
)
from policy.runtime import LABEL as RUNTIME_LABEL
from policy.runtime import LABEL_VALUE as RUNTIME_LABEL_VALUE
from policy.runtime import POD_ANNOTATION as RUNTIME_ANNOTATION
from policy.runtime import VOLUME_NAME, group_annotation, group_of, pod_volume
from policy.sidecar_build import add_app_env, add_volumes, place_sidecars
from policy.sidecar_status import PodStatus
from policy.sizing import SidecarSize, app_allocation, size_sidecar
from policy.slots import SLOT_MINIMUM, layout, slot_names, slot_versions, status_of
from policy.versions import VersionChoice, resolve_version

__all__ = ["InjectionError", "InjectionResult", "Namespace", "Plan", "Variant", "choose_variants", "inject"]


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

    @property
    def valid_until(self) -> float:
        """Epoch seconds until which the same pod gets this very answer: the first winning rule to expire.

        A rule that did not win for this pod cannot change its answer by expiring (an
        expired rule matches nothing), so only the winners count; a skip never expires.
        """
        return min((c.expires.timestamp() for c in self.versions.values() if c.expires is not None),
                   default=float("inf"))


class Variant(str, Enum):
    """Where the sidecars' resources come from; chosen once per candidate by :func:`choose_variants`."""

    NONE = "none"              # additive or carve: no overcommit
    POD_LEVEL = "pod-level"    # pod-level requests/limits hold the mesh inside the pod's own limit
    SWAP = "swap"              # no pod-level fields: the pod limit grows, the node carries the exposure
    BEST_EFFORT = "besteffort"  # a BestEffort pod: nothing to donate, resources.bestEffort decides


def choose_variants(rp: ResourcePolicy, best_effort: bool, has_pod_level: bool) -> tuple[Variant, ...]:
    """The variants to try for one pod, best first; the first whose result keeps the invariants wins.

    The pod-level variant keeps the mesh inside the pod's own limit and keeps a
    Guaranteed pod Guaranteed (its QoS then comes from the pod-level fields), so
    it is also the way out when the swap variant would change the QoS class —
    wherever the cluster has PodLevelResources. A pod that sets its own
    pod-level fields can only take the pod-level variant.
    """
    if rp.mode != "overcommit":
        return (Variant.NONE,)
    if best_effort:
        return (Variant.BEST_EFFORT,)
    if has_pod_level:
        return (Variant.POD_LEVEL,)
    if rp.effective_variant() == "pod-level":
        return (Variant.POD_LEVEL, Variant.SWAP)
    return (Variant.SWAP, Variant.POD_LEVEL) if rp.pod_level_resources else (Variant.SWAP,)


def inject(pod: dict[str, Any], namespace: Namespace, policy: Policy, *, now: datetime | None = None) -> InjectionResult:
    """Inject ``policy``'s sidecars into ``pod`` (never modified) as the policy says."""
    if namespace.name in policy.injection.excluded_namespaces:
        # Decided before anything is parsed: a malformed pod in kube-system is not ours to judge.
        return InjectionResult(pod, False, f"namespace {namespace.name} is never injected (injection.excludedNamespaces)",
                               skip_code="excluded_namespace")
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


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything one candidate variant is built from, decided before any edit."""

    mode: str
    variant: Variant
    sidecars: tuple[SidecarSpec, ...]
    versions: Mapping[str, VersionChoice]
    sizes: Mapping[str, SidecarSize]
    #: Nano-units per resource the pod's container aggregate must stay within (its own budget).
    target: Mapping[str, int]
    #: Nano-units per resource the policy chose to let ``R(new)`` exceed ``A`` by.
    leak: Mapping[str, int]
    before_limits: Limits
    overhead: Resources


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: str
    reason: str


def _inject(pod: dict[str, Any], namespace: Namespace, policy: Policy, decision: Decision,
            before: Aggregate, before_limits: Limits, now: datetime) -> InjectionResult:
    spec = pod["spec"]
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    warnings = list(decision.warnings)
    rp = policy.resources
    mode = rp.mode
    best_effort = is_best_effort(pod)

    def skip(code: str, reason: str) -> InjectionResult:
        warnings.append(f"meshfit did not inject this pod: {reason}")
        return InjectionResult(pod, False, reason, warnings, before=before, before_limits=before_limits,
                               skip_code=code)

    if best_effort and rp.best_effort == "skip":
        return skip("best_effort", "the pod is BestEffort and resources.bestEffort is skip")
    notes: list[str] = []
    qos_before = pod_qos(pod)
    if mode != "additive" and qos_before == "Guaranteed" and exclusive_cpu_candidate(pod):
        if rp.exclusive_cpu_pods == "skip":
            return skip("exclusive_cpu", "the pod is Guaranteed with whole-core CPU requests and would lose the "
                                         "static CPU manager's exclusive cores (resources.exclusiveCpuPods: skip)")
        notes.append("a Guaranteed pod with whole-core CPU requests: under the kubelet's static CPU manager policy "
                     "its containers no longer get exclusive cores once meshed")

    has_pod_level = bool((spec.get("resources") or {}).get("requests") or (spec.get("resources") or {}).get("limits"))
    A = before.effective
    target = {r: before.pod_level.get(r, before.aggregate[r]).nanos for r in RESOURCES}
    # Empty unless the pod sets pod-level fields: pod-level requests are the pod's own or defaulted from its limits.
    user_pod_level = frozenset(before.pod_level)
    overrides = namespace.policy.sidecars if namespace.policy else {}
    versions: dict[str, VersionChoice] = {}
    for sidecar in decision.sidecars:
        override = overrides.get(sidecar.name)
        choice = resolve_version(pod, namespace.name, sidecar, policy.versions,
                                 override.version if override else None, now)
        versions[sidecar.name] = choice
        warnings.extend(choice.warnings)

    refusals: list[tuple[Variant, _Refusal]] = []
    accepted = None
    for variant in choose_variants(rp, best_effort, has_pod_level):
        attempt = _attempt(pod, policy, decision.sidecars, overrides, versions, variant, A, target,
                           user_pod_level, before_limits, before.overhead, annotations, qos_before)
        if isinstance(attempt, _Refusal):
            refusals.append((variant, attempt))
            continue
        accepted = attempt
        break
    if accepted is None:
        first = refusals[0][1]
        if len(refusals) == 1:
            return skip(first.code, first.reason)
        return skip(first.code, "; ".join(f"{v.value} variant: {r.reason}" for v, r in refusals))
    for variant, refusal in refusals:
        notes.append(f"{variant.value} variant refused ({refusal.reason}): the {accepted.plan.variant.value} variant applies")
    plan, built, fit = accepted.plan, accepted.built, accepted.fit
    warnings.extend(fit.warnings)
    notes.extend(fit.notes)
    for name, size in plan.sizes.items():
        notes.extend(f"{name}: {n}" for n in size.notes)
    editor, after, after_limits, drift = built.editor, built.after, built.after_limits, built.drift
    leak = {r: after.effective[r] - A[r] for r in RESOURCES if after.effective[r] > A[r]}
    leak_reasons = dict(fit.leak_reasons)
    if plan.variant is Variant.BEST_EFFORT:
        leak_reasons.update({r: "a BestEffort pod has no request to donate (resources.bestEffort: requests)" for r in leak})
    elif mode == "additive":
        leak_reasons.update({r: "additive mode adds the sidecars on top of the app" for r in leak})
    if leak and mode == "overcommit":
        why = list(dict.fromkeys(leak_reasons[r] for r in RESOURCES if r in leak and r in leak_reasons))
        warnings.append("R(pod) grows by " + ", ".join(f"{r} {v}" for r, v in leak.items()) + ": " + "; ".join(why))
    qos_after = accepted.qos_after
    if qos_after != qos_before:
        warnings.append(f"the QoS class changes from {qos_before} to {qos_after}"
                        + (" (resources.bestEffort: requests)" if qos_before == "BestEffort"
                           else " (resources.qosChange: allow)"))
    sidecar_records = tuple(_sidecar_record(s, versions[s.name], plan.sizes[s.name]) for s in plan.sidecars)
    sum_limits = {r: sum((s.limits.get(r, ZERO) for s in sidecar_records), ZERO) for r in RESOURCES}
    overcommit = sum_limits if mode == "overcommit" and plan.variant is not Variant.BEST_EFFORT else {}
    # Only an overcommitting variant (pod-level or swap) has sidecar limits to expose; the others record "none".
    exposure: Exposure = "pod" if plan.variant is Variant.POD_LEVEL else "node"
    record = AccountingRecord(
        mode=mode,
        variant=plan.variant.value,
        original=dict(A),
        sidecars=sidecar_records,
        requests=dict(after.effective),
        limits=dict(after_limits),
        overcommit={r: v for r, v in overcommit.items() if v},
        exposure=exposure if any(overcommit.values()) else "none",
        leak=leak,
        drift=drift,
        qos=(qos_before, qos_after),
        reduced=dict(fit.reduced),
        leak_reasons={r: leak_reasons[r] for r in leak if r in leak_reasons},
        own_requests=_own_requests(spec),
        own_pod_level=_own_pod_level(spec),
    )
    status = PodStatus(policy.revision, tuple(status_of(s, versions[s.name]) for s in plan.sidecars))
    for sidecar in plan.sidecars:
        if sidecar.upgrade.slotted and (sidecar.startup_probe or sidecar.readiness_probe or sidecar.liveness_probe):
            notes.append(f"{sidecar.name}: its slots carry none of the policy's probes (an idle or dormant slot "
                         "serves no port, and two slots share one network namespace)")
        for key, value in slot_versions(sidecar, versions[sidecar.name]).items():
            editor.set(("metadata", "annotations", key), value)
    if any(policy.runtime.declares(s.name) for s in plan.sidecars):
        warnings.extend(_mount_runtime(editor, policy, namespace.name, meta.get("labels")))
    if policy.injection.scheduler_name and spec.get("schedulerName") in (None, "", "default-scheduler"):
        editor.set(("spec", "schedulerName"), policy.injection.scheduler_name)
    editor.set(("metadata", "annotations", STATUS), status.to_json())
    editor.set(("metadata", "annotations", ACCOUNTING), record.to_json())
    return InjectionResult(
        pod=editor.pod,
        injected=True,
        reason=decision.reason,
        warnings=warnings,
        notes=notes,
        versions=versions,
        sizes=dict(plan.sizes),
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


@dataclass(slots=True)
class _Accepted:
    plan: Plan
    built: _Built
    fit: Fit
    qos_after: str


def _attempt(pod: dict[str, Any], policy: Policy, sidecars: tuple[SidecarSpec, ...], overrides: Mapping[str, Any],
             versions: dict[str, VersionChoice], variant: Variant, A: Resources, target: Mapping[str, int],
             user_pod_level: frozenset[str], before_limits: Limits, overhead: Resources,
             annotations: Mapping[str, str], qos_before: str) -> _Accepted | _Refusal:
    """Build one candidate variant and check it keeps the invariants; say why not otherwise."""
    rp = policy.resources
    sizes = _size_all(sidecars, overrides, A, before_limits, overhead, variant, policy, annotations)
    if variant in (Variant.POD_LEVEL, Variant.SWAP):
        fit = fit_requests(sizes, target, rp, user_pod_level, {s.name: s.cpu_request_floor for s in sidecars},
                           {s.name: len(slot_names(s)) for s in sidecars})
        if fit.skip_code:
            return _Refusal(fit.skip_code, fit.skip_reason)
        sizes = fit.sizes
    else:
        fit = Fit(dict(sizes))
    if variant is Variant.POD_LEVEL:
        starved = [s.name for s in sidecars if sizes[s.name].limits.get("cpu", ZERO) < s.cpu_request_floor]
        if starved:
            return _Refusal("pod_too_small", f"the pod's CPU limit cannot hold {', '.join(starved)} at the request floor")
    # A guard: a hot sidecar's floor is at least 2m and the budget keeps it two slots' minimum.
    unsplittable = [f"{s.name} (cpu {sizes[s.name].requests['cpu']})" for s in sidecars
                    if s.upgrade.hot and "cpu" in sizes[s.name].requests
                    and sizes[s.name].requests["cpu"].nanos < 2 * SLOT_MINIMUM["cpu"]]
    if unsplittable:
        return _Refusal("pod_too_small", "too little CPU request to split between the two hot-upgrade slots of "
                                         f"{', '.join(unsplittable)}: each slot needs at least 1m")
    plan = Plan(rp.mode, variant, sidecars, versions, sizes, target,
                {r: v.nanos for r, v in fit.leak.items()}, before_limits, overhead)
    built = _build(pod, plan)
    if built is None:
        if variant is Variant.NONE:
            return _Refusal("pod_level_request", f"{rp.mode} mode would push the containers past the pod's own "
                                                 "pod-level resources, which meshfit never raises")
        return _Refusal("pod_too_small", "the sidecars' requests do not fit under the pod's limit")
    if rp.mode == "overcommit" and variant is not Variant.BEST_EFFORT:
        wrong = [r for r in RESOURCES if built.after.effective[r].nanos != A[r].nanos + plan.leak.get(r, 0)]
        if wrong:  # a guard, not a path: the budget and the donations are built to make this impossible
            return _Refusal("invariant", "the result would change R(pod) for " + ", ".join(wrong)
                            + " beyond what the policy allows; the pod is left as it is")
    qos_after = pod_qos(built.editor.pod)
    if qos_after != qos_before:
        explicit = qos_before == "BestEffort" and rp.best_effort == "requests"
        if not explicit and rp.qos_change != "allow":
            return _Refusal("qos_change", f"the result would change the QoS class from {qos_before} to {qos_after} "
                                          "(resources.qosChange: skip)")
    return _Accepted(plan, built, fit, qos_after)


def _build(pod: dict[str, Any], plan: Plan) -> _Built | None:
    """All container edits for one plan; ``None`` where Kubernetes would refuse the pod-level fields."""
    editor = PodEditor(pod)
    add_app_env(editor, plan.sidecars)
    injected_names = place_sidecars(editor, plan.sidecars, plan.versions, plan.sizes)
    add_volumes(editor, plan.sidecars)
    drift: dict[str, Quantity] = {}
    if plan.mode in ("overcommit", "carve") and plan.variant is not Variant.BEST_EFFORT:
        donations = donation_plan(editor.pod["spec"], plan.target, injected_names,
                                  own_sidecars_donate=plan.mode == "overcommit")
        drift = _apply_donations(editor, donations, carve=plan.mode == "carve")
    if plan.variant is Variant.POD_LEVEL:
        _set_pod_level(editor, plan)
    elif (pod["spec"].get("resources") or {}).get("limits"):
        _pin_pod_level_requests(editor, pod_level_requests(pod["spec"]))
    after = explain_requests(editor.pod)
    if editor.pod["spec"].get("resources"):
        # Validation demands container aggregate <= pod-level request <= pod-level limit,
        # and every container limit <= the pod-level limit. A resource with a pod-level
        # limit always has a pod-level request (pod_level_requests defaults one), so the
        # two steps also hold the aggregate under the limit.
        new_spec = editor.pod["spec"]
        aggregate = after.aggregate
        requests = after.pod_level
        limits = pod_level_limits(new_spec)
        each = [container_limits(c) for kind in ("containers", "initContainers") for c in new_spec.get(kind) or ()]
        for r in RESOURCES:
            if r in requests and aggregate[r] > requests[r]:
                return None
            if r in limits and requests[r] > limits[r]:
                return None
            if r in limits and any((c[r] or ZERO) > limits[r] for c in each):
                return None
    return _Built(editor, after, pod_limits(editor.pod), drift)


def _size_all(sidecars: tuple[SidecarSpec, ...], overrides: Mapping[str, Any], A: Resources, before_limits: Limits,
              overhead: Resources, variant: Variant, policy: Policy, annotations: Mapping[str, str]) -> dict[str, SidecarSize]:
    """Each sidecar's size; in the pod-level variant no sidecar may exceed the pod's own limit."""
    rp = policy.resources
    cap: dict[str, Quantity | None] = {
        r: _minus(before_limits[r], overhead.get(r, ZERO)) if variant is Variant.POD_LEVEL else None
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
        elif variant is Variant.BEST_EFFORT and rp.best_effort == "besteffort":
            size = SidecarSize(limits={}, requests={},
                               notes=size.notes + ("BestEffort pod: the sidecar gets no requests or limits",))
        sizes[sidecar.name] = size
    return sizes


def _own_pod_level(spec: Mapping[str, Any]) -> dict[str, dict[str, Quantity]]:
    """The owner's ``spec.resources`` for cpu/memory, as written (before apiserver defaulting); empty without them."""
    res = spec.get("resources") or {}
    return {part: {r: q(res[part][r]) for r in RESOURCES if (res.get(part) or {}).get(r) is not None}
            for part in ("requests", "limits") if res.get(part)}


def _own_requests(spec: Mapping[str, Any]) -> dict[str, dict[str, Quantity]]:
    """Each of the pod's own containers' requests before injection (after defaulting), as declared.

    Kept in the record so re-accounting rebuilds the owner's pod exactly, whatever
    any later donation did to the current requests.
    """
    out: dict[str, dict[str, Quantity]] = {}
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or ():
            res = c.get("resources") or {}
            declared = {r for part in ("requests", "limits") for r in RESOURCES if (res.get(part) or {}).get(r) is not None}
            requests = container_requests(c)
            out[c["name"]] = {r: requests[r] for r in RESOURCES if r in declared}
    return out


def _minus(limit: Quantity | None, overhead: Quantity) -> Quantity | None:
    return None if limit is None else limit - overhead


def _mount_runtime(editor: PodEditor, policy: Policy, namespace: str, labels: Mapping[str, str] | None) -> list[str]:
    """The pod's runtime volume (its group's ConfigMap, :mod:`policy.runtime`), and the label and record naming it.

    The sidecars' mounts are in their fragments already (:func:`policy.load`); only the
    ConfigMap's name depends on the pod: its namespace, app and zone labels.
    """
    group = group_of(labels, namespace, policy.versions.app_label, policy.versions.zone_label)
    present = {v.get("name") for v in editor.get(("spec", "volumes"), ()) if isinstance(v, Mapping)}
    if VOLUME_NAME in present:
        return [f"the pod already has a volume named {VOLUME_NAME}: the sidecars mount it, not their runtime "
                "parameters (rename the pod's volume)"]
    editor.insert(("spec", "volumes"), None, pod_volume(group))
    editor.set(("metadata", "labels", RUNTIME_LABEL), RUNTIME_LABEL_VALUE)
    editor.set(("metadata", "annotations", RUNTIME_ANNOTATION), group_annotation(group))
    return []


def _sidecar_record(sidecar: SidecarSpec, choice: VersionChoice, size: SidecarSize) -> SidecarRecord:
    """The sidecar's totals over its slots; a hot sidecar's record also keeps each slot's share."""
    slots = layout(sidecar, choice, size)
    if len(slots) == 1:
        return SidecarRecord(sidecar.name, choice.version, size.requests, size.limits)
    totals = {part: {r: sum((getattr(s, part)[r] for s in slots if r in getattr(s, part)), ZERO)
                     for r in RESOURCES if any(r in getattr(s, part) for s in slots)}
              for part in ("requests", "limits")}
    return SidecarRecord(sidecar.name, choice.version, totals["requests"], totals["limits"],
                         tuple(SlotRecord(s.container, s.requests, s.limits) for s in slots))


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


def _pin_pod_level_requests(editor: PodEditor, defaulted: Resources) -> None:
    """Write out pod-level requests the apiserver would default, so the sidecars cannot move them.

    With pod-level limits set, a missing pod-level request defaults to the containers'
    aggregate where some container requests the resource, else to the limit: adding a
    sidecar that requests it would silently change which rule applies, and so ``R``.
    """
    old_requests = (editor.get(("spec", "resources")) or {}).get("requests") or {}
    for r in RESOURCES:
        if r not in old_requests and r in defaulted:
            editor.set(("spec", "resources", "requests", r), defaulted[r].with_format(family(r)).format())


def _set_pod_level(editor: PodEditor, plan: Plan) -> None:
    """``spec.resources``: requests = the original aggregate (plus any chosen leak), limits = the original limit.

    A pod-level value the user wrote is kept as it is: it is ``A``, and meshfit
    never raises it (the budget refuses any plan that would need to).
    """
    spec_resources = editor.get(("spec", "resources")) or {}
    old_requests = spec_resources.get("requests") or {}
    old_limits = spec_resources.get("limits") or {}
    for r in RESOURCES:
        if r not in old_requests:
            value = plan.target[r] + plan.leak.get(r, 0)
            editor.set(("spec", "resources", "requests", r), Quantity(value, family(r)).format())
        limit = plan.before_limits[r]
        if limit is not None and r not in old_limits:
            value_q = limit - plan.overhead.get(r, ZERO)
            editor.set(("spec", "resources", "limits", r), value_q.with_format(family(r)).format())
