"""The fleet controller's decision for one pod: a pure function of the pod, the policy and its node's kubelet.

Reconcile is level-based. Each call reads the pod as it is now (its target,
its status record, its last operation, the kubelet's container statuses) and
returns the one next :class:`Step`; it never remembers anything between calls.
So a controller that restarts, or a new leader that takes over in the middle of
a batch, resumes every pod where it stands instead of repeating what was done:

* an operation ``InProgress`` is **judged**, never started again: the kubelet's
  answer (the new image reported, a new imageID or one more restart, ready) ends
  it ``Succeeded``; a crash loop or the timeout ends it ``Failed`` and, as the
  policy says, rolls the container back in the same write;
* otherwise the first sidecar of the target that differs from the record, and
  has not already failed or been blocked for this generation, gets the cheapest
  action that works, **and the operation record is written in the same patch as
  the spec change** (one write, conditional on the resourceVersion read), so
  there is never a changed container without its record, nor a record of a
  change that was not made.

An action that cannot be done in place is never skipped silently: it ends
``Blocked`` with the reason and the action that would work (``suggest``),
which the executor turns into an Event.

Actions, from the cheapest: ``deactivate``/``activate`` (a dormant slot's image
between the empty image and the version), ``hot`` (the next version started in
the idle slot, then the old slot idled), ``in-place`` (a native sidecar's image
on a kubelet that restarts it alone, or a legacy sidecar's on any),
``restart`` (the image under its other reference form,
:func:`controller.containers.alternate_reference`), ``resize`` (through
``pods/NAME/resize``, refused where it would change ``R(pod)`` or the QoS
class), and ``recreate`` (through the owning workload, the version pinned for
the webhook).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from controller.containers import (
    alternate_reference,
    container_state,
    kubelet_at_least,
    reports_image,
    spec_container,
)
from policy.annotations import OPERATION, SLOT_VERSION_PREFIX, STATUS, TARGET
from policy.model import FleetPolicy, Policy
from policy.qos import pod_qos
from policy.resources import container_limits, explain_requests, pod_level_limits
from policy.sidecar_status import PodStatus, SidecarStatus, StatusError, parse_status
from policy.targets import Operation, SidecarTarget, Target, TargetError, parse_operation, parse_target
from policy.versions import image_of

Pod = Mapping[str, Any]
#: Workloads whose pod template a recreate restarts (``kubectl rollout restart`` knows these three).
RESTARTABLE = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True, slots=True)
class Step:
    """The next thing to do for one pod.

    ``kind``: ``none`` (in sync, or waiting for the kubelet), ``patch`` (one
    strategic merge patch of the pod, conditional on ``resourceVersion``),
    ``resize`` (``patch``, then ``resize`` to ``pods/NAME/resize``) or
    ``recreate`` (``patch``, then a restart of ``owner``'s template with ``pin``).
    """

    kind: str
    reason: str = ""
    patch: dict[str, Any] | None = None
    resize: dict[str, Any] | None = None
    owner: Mapping[str, Any] | None = None
    pin: str = ""
    #: ``(type, reason, message)`` of the Event on the pod.
    event: tuple[str, str, str] | None = None
    #: ``(action, result)`` for ``operations_total`` when an operation ends.
    outcome: tuple[str, str] | None = None
    #: Seconds the operation took, when it ended.
    duration: float | None = None
    #: Look again after this many seconds even without a watch event (a timeout to judge).
    requeue_after: float | None = None
    operation: Operation | None = None


def _now_text(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


class _Patch:
    """One strategic merge patch of a pod: annotations and container images, with the resourceVersion read."""

    def __init__(self, pod: Pod) -> None:
        self.resource_version = str((pod.get("metadata") or {}).get("resourceVersion") or "")
        self.annotations: dict[str, str | None] = {}
        self.containers: dict[str, list[dict[str, Any]]] = {}

    def image(self, pod: Pod, container: str, image: str) -> None:
        place = spec_container(pod, container)
        assert place is not None
        self.containers.setdefault(place.field, []).append({"name": container, "image": image})

    def body(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": self.resource_version}
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        out: dict[str, Any] = {"metadata": meta}
        if self.containers:
            out["spec"] = {k: list(v) for k, v in self.containers.items()}
        return out


@dataclass(slots=True)
class _Context:
    pod: Pod
    policy: Policy
    rules: FleetPolicy
    kubelet_version: str | None
    now: dt.datetime
    target: Target
    status: PodStatus
    operation: Operation | None
    blocked_before: dict[str, str] = field(default_factory=dict)

    @property
    def stamp(self) -> str:
        return _now_text(self.now)

    def image(self, sidecar: str, version: str) -> str | None:
        spec = self.policy.sidecar(sidecar)
        versions = self.policy.versions.sidecars.get(sidecar)
        if spec is None:
            return None
        if versions is None:
            return f"{spec.image}:{version}"
        return image_of(spec, versions, version)

    def allowed(self, sidecar: str, version: str) -> bool:
        versions = self.policy.versions.sidecars.get(sidecar)
        return versions is None or not versions.allowed or version in versions.allowed

    def empty_image(self, record: SidecarStatus) -> str | None:
        if record.empty_image:
            return record.empty_image
        spec = self.policy.sidecar(record.name)
        return spec.upgrade.empty_image if spec is not None else None


def plan(pod: Pod, policy: Policy, kubelet_version: str | None, now: dt.datetime,
         rules: FleetPolicy | None = None) -> Step:
    """The next step for ``pod`` (see the module docstring); never raises on what the pod holds."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if TARGET not in annotations:
        return Step("none", "no target")
    if meta.get("deletionTimestamp"):
        return Step("none", "the pod is being deleted")
    chosen = rules if rules is not None else policy.fleet
    previous = _operation(annotations)
    try:
        target: Target | None = parse_target(annotations[TARGET])
        target_error = ""
    except TargetError as exc:
        target, target_error = None, f"{TARGET} is invalid: {exc}"
    if STATUS not in annotations:
        return _refuse_whole(pod, previous, f"the pod has no {STATUS}: meshfit did not inject it, so it has "
                                            "no sidecars to change; recreate it under the webhook", now, target,
                             suggest="recreate")
    try:
        status = parse_status(str(annotations[STATUS]))
    except StatusError as exc:
        return _refuse_whole(pod, previous, f"{STATUS} does not parse ({exc}): roll the workload so the webhook "
                                            "writes it afresh", now, target, suggest="recreate")
    if previous is not None and previous.in_progress:
        # A change in flight is judged whatever the target says now: its record must not be lost.
        judged = target if target is not None else Target(previous.generation)
        return _judge(_Context(pod, policy, chosen, kubelet_version, now, judged, status, previous), previous)
    if target is None:
        return _refuse_whole(pod, previous, target_error, now)
    ctx = _Context(pod, policy, chosen, kubelet_version, now, target, status, previous)
    if (pod.get("status") or {}).get("phase") != "Running":
        return Step("none", "waiting for the pod to run")
    return _start(ctx)


def _operation(annotations: Mapping[str, Any]) -> Operation | None:
    text = annotations.get(OPERATION)
    if text is None:
        return None
    try:
        return parse_operation(text)
    except TargetError:
        return None  # a garbled record is rewritten by the next operation; the spec itself is level-judged


def _refuse_whole(pod: Pod, previous: Operation | None, reason: str, now: dt.datetime,
                  target: Target | None = None, suggest: str | None = None) -> Step:
    """A target the controller cannot act on at all: recorded once as ``Blocked``, with an Event."""
    generation = target.generation if target is not None else 0
    if previous is not None and previous.phase == "Blocked" and previous.reason == reason \
            and previous.generation == generation:
        return Step("none", reason)
    stamp = _now_text(now)
    op = Operation(generation, "*", "auto", "Blocked", reason=reason, started=stamp, finished=stamp,
                   suggest=suggest, settled={"*": "Blocked"})
    patch = _Patch(pod)
    patch.annotations[OPERATION] = op.to_json()
    return Step("patch", reason, patch=patch.body(), event=("Warning", "SidecarOperationBlocked", reason),
                outcome=("auto", "blocked"), operation=op)


# -- starting an operation ----------------------------------------------------------------------------


def _start(ctx: _Context) -> Step:
    settled = ctx.operation.settled_for(ctx.target.generation) if ctx.operation is not None else {}
    if "*" in settled:
        return Step("none", "the target was blocked for this generation")
    for name in sorted(ctx.target.sidecars):
        if name in settled:
            continue
        step = _start_sidecar(ctx, name, ctx.target.sidecars[name])
        if step is not None:
            return step
    return Step("none", "in sync with the target")


def _begin(ctx: _Context, op: Operation, patch: _Patch, message: str) -> Step:
    """Record ``op`` as started in the same write as the change ``patch`` makes."""
    settled = ctx.operation.settled_for(ctx.target.generation) if ctx.operation is not None else {}
    op = replace(op, settled=dict(settled), started=ctx.stamp)
    patch.annotations[OPERATION] = op.to_json()
    return Step("patch", message, patch=patch.body(), event=("Normal", "SidecarOperationStarted", message),
                requeue_after=float(ctx.rules.timeout_seconds), operation=op)


def _blocked(ctx: _Context, name: str, action: str, reason: str, suggest: str | None,
             from_: str | None = None, to: str | None = None) -> Step:
    settled = dict(ctx.operation.settled_for(ctx.target.generation)) if ctx.operation is not None else {}
    settled[name] = "Blocked"
    op = Operation(ctx.target.generation, name, action, "Blocked", reason=reason, from_=from_, to=to,
                   started=ctx.stamp, finished=ctx.stamp, suggest=suggest, settled=settled)
    patch = _Patch(ctx.pod)
    patch.annotations[OPERATION] = op.to_json()
    message = f"{name}: {reason}" + (f" (what would work: {suggest})" if suggest else "")
    return Step("patch", message, patch=patch.body(), event=("Warning", "SidecarOperationBlocked", message),
                outcome=(action, "blocked"), operation=op)


def _start_sidecar(ctx: _Context, name: str, want: SidecarTarget) -> Step | None:
    record = ctx.status.sidecar(name)
    if record is None:
        return _recreate(ctx, name, want.version, f"the pod has no sidecar {name}: adding a container needs a new pod")
    version = want.version or record.version
    active = want.active if want.active is not None else record.active
    if want.version is not None and not ctx.allowed(name, want.version):
        return _blocked(ctx, name, "auto", f"version {want.version} is not in versions.sidecars.{name}.allowed",
                        None, record.version, want.version)
    if active != record.active:
        return _activation(ctx, record, version, active)
    if version != record.version:
        if not record.active:
            return _record_dormant_version(ctx, record, version)
        return _upgrade(ctx, record, want, version)
    if want.restart is not None and want.restart != record.restart:
        return _restart(ctx, record, want.restart)
    if want.resources is not None:
        return _resize(ctx, record, want)
    return None


def _native_gate(ctx: _Context, container: str) -> str | None:
    """Why an image change of ``container`` would not restart it, or ``None`` when the kubelet does."""
    place = spec_container(ctx.pod, container)
    if place is None:
        return f"the pod has no container {container}"
    if not place.native_sidecar:
        return None  # a regular container is restarted on an image change by every kubelet
    verdict = kubelet_at_least(ctx.kubelet_version, ctx.rules.sidecar_image_change_minor())
    if verdict is None:
        return f"the kubelet version of the pod's node is unknown ({ctx.kubelet_version or 'not reported'})"
    if not verdict:
        return (f"the node's kubelet {ctx.kubelet_version} does not restart a native sidecar whose image changes "
                f"(kubelets from {ctx.rules.sidecar_image_change_kubelet} do)")
    return None


def _image_change(ctx: _Context, record: SidecarStatus, action: str, container: str, image: str,
                  from_: str | None, to: str | None, *, slot_version: str, step: str = "") -> Step:
    """One container's image changed, its baseline noted, the operation recorded, in one write.

    The callers have waited for the kubelet to report ``container`` (:func:`state_missing`): the
    baseline a change is judged against is its restart count and imageID now.
    """
    state = container_state(ctx.pod, container)
    place = spec_container(ctx.pod, container)
    assert place is not None and state is not None
    patch = _Patch(ctx.pod)
    patch.image(ctx.pod, container, image)
    patch.annotations[SLOT_VERSION_PREFIX + container] = slot_version
    op = Operation(ctx.target.generation, record.name, action, "InProgress", from_=from_, to=to, step=step,
                   container=container, image=image, image_before=place.image,
                   restarts_before=state.restarts, image_id_before=state.image_id)
    what = f"{record.name}: {action} {from_ or '-'} -> {to or '-'}" + (f" ({step})" if step else "")
    return _begin(ctx, op, patch, f"{what}: {container} to {image}")


def _activation(ctx: _Context, record: SidecarStatus, version: str | None, active: bool) -> Step:
    action = "activate" if active else "deactivate"
    empty = ctx.empty_image(record)
    if empty is None:
        return _blocked(ctx, record.name, action, f"{record.name} has no emptyImage (sidecars[].upgrade.emptyImage): "
                        "a sidecar is switched on and off in place through its empty image", "recreate")
    image: str | None = empty
    slot_version = ""
    if active:
        if not version:
            # Activating onto the empty image would record the sidecar active while nothing of it runs.
            return _blocked(ctx, record.name, action, f"{record.name} has no version to run: neither the record nor "
                            "the target names one", None)
        image, slot_version = ctx.image(record.name, version), version
    if image is None:
        return _blocked(ctx, record.name, action, f"the policy has no sidecar {record.name} to take an image from",
                        "recreate")
    gate = _native_gate(ctx, record.live)
    if gate is not None:
        return _blocked(ctx, record.name, action, gate, "recreate")
    if state_missing(ctx, record.live):
        return Step("none", f"waiting for the kubelet to report {record.live}")
    return _image_change(ctx, record, action, record.live, image,
                         record.version if not active else None, version if active else None,
                         slot_version=slot_version)


def state_missing(ctx: _Context, container: str) -> bool:
    """Whether the kubelet has not reported ``container`` yet (nothing to judge a change against)."""
    return container_state(ctx.pod, container) is None


def _record_dormant_version(ctx: _Context, record: SidecarStatus, version: str | None) -> Step:
    """A dormant sidecar's version is only a record: it runs when activated, so nothing restarts now."""
    assert version is not None  # it differs from the record's, so the target names it
    image = ctx.image(record.name, version)
    updated = replace(record, version=version, image=image, previous=record.version)
    stamp = ctx.stamp
    op = Operation(ctx.target.generation, record.name, "in-place", "Succeeded",
                   reason="dormant: the version is recorded and runs once the sidecar is activated",
                   from_=record.version, to=version, started=stamp, finished=stamp,
                   settled=dict(ctx.operation.settled_for(ctx.target.generation)) if ctx.operation else {})
    patch = _Patch(ctx.pod)
    patch.annotations[STATUS] = ctx.status.with_sidecar(updated).to_json()
    patch.annotations[OPERATION] = op.to_json()
    message = f"{record.name}: dormant, now recorded at {version}"
    return Step("patch", message, patch=patch.body(), event=("Normal", "SidecarOperationSucceeded", message),
                outcome=("in-place", "succeeded"), duration=0.0, operation=op)


def _upgrade(ctx: _Context, record: SidecarStatus, want: SidecarTarget, version: str | None) -> Step:
    assert version is not None
    image = ctx.image(record.name, version)
    if image is None:
        return _blocked(ctx, record.name, "auto", f"the policy has no sidecar {record.name} to take an image from",
                        "recreate", record.version, version)
    forced = want.action
    if forced == "recreate":
        return _recreate(ctx, record.name, version, "the target asks for a recreate")
    if forced == "hot" and not record.hot:
        return _blocked(ctx, record.name, "hot", f"{record.name} has one slot: a hot upgrade needs "
                        "sidecars[].upgrade.hot when the pod is created", "in-place", record.version, version)
    if record.hot and forced in ("auto", "hot"):
        idle = record.idle
        assert idle is not None
        gate = _native_gate(ctx, idle)
        if gate is not None:
            return _fallback(ctx, record, forced, "hot", version, gate)
        if state_missing(ctx, idle):
            return Step("none", f"waiting for the kubelet to report {idle}")
        return _image_change(ctx, record, "hot", idle, image, record.version, version, step="start",
                             slot_version=version)
    gate = _native_gate(ctx, record.live)
    if gate is not None:
        return _fallback(ctx, record, forced, "in-place", version, gate)
    if state_missing(ctx, record.live):
        return Step("none", f"waiting for the kubelet to report {record.live}")
    return _image_change(ctx, record, "in-place", record.live, image, record.version, version,
                         slot_version=version)


def _fallback(ctx: _Context, record: SidecarStatus, forced: str, action: str, version: str, gate: str) -> Step:
    """No in-place change on this node: recreate when the target lets the controller choose, else say so."""
    if forced == "auto":
        return _recreate(ctx, record.name, version, gate)
    return _blocked(ctx, record.name, action, gate, "recreate", record.version, version)


def _restart(ctx: _Context, record: SidecarStatus, token: str) -> Step:
    container = record.live
    place = spec_container(ctx.pod, container)
    state = container_state(ctx.pod, container)
    if place is None or state is None:
        return Step("none", f"waiting for the kubelet to report {container}")
    gate = _native_gate(ctx, container)
    if gate is not None:
        return _blocked(ctx, record.name, "restart", gate, "recreate")
    other = alternate_reference(place.image, state.image_id)
    if other is None:
        return _blocked(ctx, record.name, "restart", f"{container}'s image {place.image} has no other reference "
                        "form to restart it with (no tag, or no digest reported in its imageID)", "recreate")
    updated = replace(record, restart=token)
    patch = _Patch(ctx.pod)
    patch.image(ctx.pod, container, other)
    op = Operation(ctx.target.generation, record.name, "restart", "InProgress", from_=record.version,
                   to=record.version, container=container, image=other, image_before=place.image,
                   restarts_before=state.restarts, image_id_before=state.image_id, step=token)
    patch.annotations[STATUS] = ctx.status.with_sidecar(updated).to_json()
    return _begin(ctx, op, patch, f"{record.name}: restart {container} (image reference {other})")


def _recreate(ctx: _Context, name: str, version: str | None, why: str) -> Step:
    owners = [o for o in (ctx.pod.get("metadata") or {}).get("ownerReferences") or ()
              if isinstance(o, Mapping) and o.get("controller") is True]
    if not owners:
        return _blocked(ctx, name, "recreate", f"{why}; the pod has no owning workload to recreate it, and meshfit "
                        "never deletes a bare pod: delete and create it again yourself", None, None, version)
    owner = owners[0]
    if owner.get("kind") not in ("ReplicaSet", *RESTARTABLE):
        return _blocked(ctx, name, "recreate", f"{why}; its owner {owner.get('kind')}/{owner.get('name')} is not a "
                        "workload meshfit restarts (Deployment, StatefulSet, DaemonSet)", None, None, version)
    if version is not None and not ctx.policy.versions.allow_pod_pin:
        return _blocked(ctx, name, "recreate", f"{why}; a recreate pins the version for the webhook, and "
                        "versions.allowPodPin is false", None, None, version)
    record = ctx.status.sidecar(name)
    pins = {s.name: s.version for s in ctx.status.sidecars if s.version} | ({name: version} if version else {})
    pin = ",".join(f"{k}={v}" for k, v in sorted(pins.items()))
    op = Operation(ctx.target.generation, name, "recreate", "InProgress", reason=why,
                   from_=record.version if record is not None else None, to=version)
    patch = _Patch(ctx.pod)
    step = _begin(ctx, op, patch, f"{name}: recreate through {owner.get('kind')}/{owner.get('name')} ({why})")
    return replace(step, kind="recreate", owner=owner, pin=pin, requeue_after=None)


def _resize(ctx: _Context, record: SidecarStatus, want: SidecarTarget) -> Step | None:
    assert want.resources is not None
    container = record.live
    place = spec_container(ctx.pod, container)
    if place is None:
        return None
    current = place.container.get("resources") or {}
    wanted: dict[str, dict[str, str]] = {kind: dict(current.get(kind) or {}) for kind in ("requests", "limits")}
    for kind, values in want.resources.items():
        for r, quantity in values.items():
            wanted[kind][r] = quantity.format()
    if _same_resources(current, wanted):
        return None
    if record.hot:
        return _blocked(ctx, record.name, "resize", f"{record.name} has two slots sized alike: resizing one would "
                        "leave the other unlike it", "recreate")
    resized = _with_resources(ctx.pod, place.field, place.index, wanted)
    explained = explain_requests(resized)
    before_r, after_r = explain_requests(dict(ctx.pod)).effective, explained.effective
    changed = [r for r in before_r if before_r[r] != after_r[r]]
    over = [r for r, v in explained.pod_level.items() if explained.aggregate[r] > v]
    if over:
        return _blocked(ctx, record.name, "resize", "the containers' requests would exceed the pod's own request "
                        "(pod-level resources) for " + ", ".join(over) + ", which meshfit never raises", "recreate")
    limit_cap = pod_level_limits(resized.get("spec") or {})
    above = [r for r, q in container_limits(wanted_container(resized, place.field, place.index)).items()
             if q is not None and r in limit_cap and q > limit_cap[r]]
    if above:
        return _blocked(ctx, record.name, "resize", f"{container}'s limit would exceed the pod's own limit for "
                        + ", ".join(above), "recreate")
    if changed:
        return _blocked(ctx, record.name, "resize", "the resize would change R(pod) for " + ", ".join(changed)
                        + ": raise the pod's own budget (a pod-level request) or recreate it", "recreate")
    qos_before, qos_after = pod_qos(ctx.pod), pod_qos(resized)
    if qos_before != qos_after:
        return _blocked(ctx, record.name, "resize", f"the resize would change the QoS class from {qos_before} to "
                        f"{qos_after}", "recreate")
    op = Operation(ctx.target.generation, record.name, "resize", "InProgress", from_=record.version,
                   to=record.version, container=container,
                   resources_before={k: dict(v) for k, v in current.items() if k in ("requests", "limits")},
                   resources=wanted)
    patch = _Patch(ctx.pod)
    step = _begin(ctx, op, patch, f"{record.name}: resize {container} to {wanted}")
    body = {"spec": {place.field: [{"name": container, "resources": wanted}]}}
    return replace(step, kind="resize", resize=body)


def _same_resources(current: Mapping[str, Any], wanted: Mapping[str, Mapping[str, str]]) -> bool:
    from policy.quantity import Quantity

    for kind in ("requests", "limits"):
        have = current.get(kind) or {}
        want = wanted.get(kind) or {}
        if set(have) != set(want):
            return False
        for r in want:
            try:
                if Quantity.parse(have[r]).nanos != Quantity.parse(want[r]).nanos:
                    return False
            except Exception:  # noqa: BLE001  - a value the apiserver accepted but we cannot read differs
                return False
    return True


def wanted_container(pod: Mapping[str, Any], field_name: str, index: int) -> Mapping[str, Any]:
    return dict(((pod.get("spec") or {}).get(field_name) or [])[index])


def _with_resources(pod: Pod, field_name: str, index: int, resources: Mapping[str, Any]) -> dict[str, Any]:
    spec = dict(pod.get("spec") or {})
    containers = list(spec.get(field_name) or ())
    containers[index] = {**containers[index], "resources": resources}
    spec[field_name] = containers
    return {**pod, "spec": spec}


# -- judging an operation in progress --------------------------------------------------------------


def _elapsed(ctx: _Context, op: Operation) -> float:
    started = _parse_time(op.started)
    return (ctx.now - started).total_seconds() if started is not None else 0.0


def _judge(ctx: _Context, op: Operation) -> Step:
    elapsed = _elapsed(ctx, op)
    if op.action == "recreate":
        step = Step("none", f"{op.sidecar}: waiting for the workload to replace the pod")
        owners = [o for o in (ctx.pod.get("metadata") or {}).get("ownerReferences") or ()
                  if isinstance(o, Mapping) and o.get("controller") is True]
        if owners and op.to is not None:
            # Resuming: make sure the workload's template was restarted (idempotent on the pin).
            pins = {s.name: s.version for s in ctx.status.sidecars if s.version} | {op.sidecar: op.to}
            pin = ",".join(f"{k}={v}" for k, v in sorted(pins.items()))
            return replace(step, kind="recreate", owner=owners[0], pin=pin)
        return step
    if op.action == "resize":
        return _judge_resize(ctx, op, elapsed)
    state = container_state(ctx.pod, op.container)
    if state is None:
        return Step("none", f"waiting for the kubelet to report {op.container}")
    timeout = ctx.rules.timeout_seconds
    failure = None
    if state.crash_looping or state.restarts > op.restarts_before + 1 + ctx.rules.crash_restarts:
        failure = (f"{op.container} crash-loops on {op.image} ({state.waiting_reason or 'restarting'}, "
                   f"{state.restarts - op.restarts_before} restarts since the change)")
    elif (reports_image(state, op.image) and state.running and state.ready
          and (not op.image_id_before or state.image_id != op.image_id_before or state.restarts > op.restarts_before)):
        return _succeeded(ctx, op, elapsed)
    elif elapsed >= timeout:
        failure = f"{op.container} not running and ready on {op.image} after {timeout}s"
    if failure is None:
        return Step("none", f"{op.sidecar}: waiting for {op.container} on {op.image}",
                    requeue_after=max(1.0, timeout - elapsed))
    return _failed(ctx, op, failure, elapsed)


def _finish_step(ctx: _Context, op: Operation, phase: str, reason: str, elapsed: float,
                 patch: _Patch, event_type: str, event_reason: str, result: str, **changes: Any) -> Step:
    done = op.finish(phase, reason, ctx.stamp, **changes)
    patch.annotations[OPERATION] = done.to_json()
    message = f"{op.sidecar}: {op.action} {op.from_ or '-'} -> {op.to or '-'}: {reason}"
    return Step("patch", message, patch=patch.body(), event=(event_type, event_reason, message),
                outcome=(op.action, result), duration=elapsed, operation=done)


def _succeeded(ctx: _Context, op: Operation, elapsed: float) -> Step:
    record = ctx.status.sidecar(op.sidecar)
    patch = _Patch(ctx.pod)
    if record is None:
        return _finish_step(ctx, op, "Succeeded", "done", elapsed, patch, "Normal", "SidecarOperationSucceeded",
                            "succeeded")
    if op.action == "hot" and op.step == "start":
        # The new version runs in the idle slot and is ready: it has taken the connections over.
        # Now the old slot goes back to the empty image; the record says the other slot is live.
        old = record.live
        empty = ctx.empty_image(record)
        state = container_state(ctx.pod, old)
        place = spec_container(ctx.pod, old)
        if empty is None or place is None:
            return _finish_step(ctx, op, "Failed", f"cannot idle {old}: no emptyImage", elapsed, patch,
                                "Warning", "SidecarOperationFailed", "failed")
        updated = replace(record, live=op.container, version=op.to, image=op.image, previous=op.from_)
        patch.image(ctx.pod, old, empty)
        patch.annotations[SLOT_VERSION_PREFIX + old] = ""
        patch.annotations[STATUS] = ctx.status.with_sidecar(updated).to_json()
        nxt = replace(op, step="retire", container=old, image=empty, image_before=place.image,
                      restarts_before=state.restarts if state is not None else 0,
                      image_id_before=state.image_id if state is not None else "")
        patch.annotations[OPERATION] = nxt.to_json()
        message = f"{op.sidecar}: {op.to} is live in {op.container}; idling {old}"
        return Step("patch", message, patch=patch.body(), event=("Normal", "SidecarHandedOver", message),
                    requeue_after=float(ctx.rules.timeout_seconds), operation=nxt)
    if op.action == "hot":  # the retire step: the old slot idles on the empty image
        reason = f"{op.to} live in {record.live}; {op.container} idle"
        return _finish_step(ctx, op, "Succeeded", reason, elapsed, patch, "Normal", "SidecarOperationSucceeded",
                            "succeeded")
    if op.action == "in-place":
        updated = replace(record, version=op.to, image=op.image, previous=op.from_)
    elif op.action == "activate":
        # Activated at another version than the dormant record held: that version and its image now run.
        moved = op.to is not None and op.to != record.version
        updated = replace(record, active=True, version=op.to or record.version, image=op.image,
                          previous=record.version if moved else record.previous)
    elif op.action == "deactivate":
        updated = replace(record, active=False)
    else:  # restart: the record already holds the token
        updated = record
    if updated != record:
        patch.annotations[STATUS] = ctx.status.with_sidecar(updated).to_json()
    reason = {"restart": f"{op.container} restarted alone", "activate": f"{op.sidecar} active at {op.to}",
              "deactivate": f"{op.sidecar} dormant"}.get(op.action, f"{op.container} runs {op.image}")
    return _finish_step(ctx, op, "Succeeded", reason, elapsed, patch, "Normal", "SidecarOperationSucceeded",
                        "succeeded")


def _failed(ctx: _Context, op: Operation, failure: str, elapsed: float) -> Step:
    patch = _Patch(ctx.pod)
    record = ctx.status.sidecar(op.sidecar)
    retiring = op.action == "hot" and op.step == "retire"
    if ctx.rules.rollback and op.image_before and not retiring and spec_container(ctx.pod, op.container) is not None:
        patch.image(ctx.pod, op.container, op.image_before)
        if record is not None:
            live_version = record.version if record.active and op.container == record.live else ""
            patch.annotations[SLOT_VERSION_PREFIX + op.container] = live_version or ""
            # A restart keeps its token in the record: it was asked and tried, and is not tried again for it.
        return _finish_step(ctx, op, "Failed", f"{failure}; rolled back to {op.image_before}", elapsed, patch,
                            "Warning", "SidecarRolledBack", "rolled_back", rolled_back=True)
    return _finish_step(ctx, op, "Failed", failure, elapsed, patch, "Warning", "SidecarOperationFailed", "failed")


def _judge_resize(ctx: _Context, op: Operation, elapsed: float) -> Step:
    place = spec_container(ctx.pod, op.container)
    state = container_state(ctx.pod, op.container)
    if place is None:
        return _finish_step(ctx, op, "Failed", f"the pod has no container {op.container}", elapsed, _Patch(ctx.pod),
                            "Warning", "SidecarOperationFailed", "failed")
    wanted = place.container.get("resources") or {}
    pending = _condition(ctx.pod, "PodResizePending")
    if pending is not None and pending.get("reason") == "Infeasible":
        why = f"the kubelet refuses the resize as infeasible: {pending.get('message') or 'no reason given'}"
        return _failed_resize(ctx, op, why, elapsed)
    if state is not None and state.resources is not None and _same_resources(state.resources, {
            k: {r: str(v) for r, v in (wanted.get(k) or {}).items()} for k in ("requests", "limits")}) \
            and _condition(ctx.pod, "PodResizeInProgress") is None:
        return _finish_step(ctx, op, "Succeeded", f"{op.container} runs with {wanted}", elapsed, _Patch(ctx.pod),
                            "Normal", "SidecarOperationSucceeded", "succeeded")
    if elapsed >= ctx.rules.timeout_seconds:
        return _failed_resize(ctx, op, f"the resize was not actuated within {ctx.rules.timeout_seconds}s"
                              + (" (deferred by the kubelet)" if pending is not None else ""), elapsed)
    if op.resources and not _same_resources(wanted, op.resources):
        # Resuming after a leader change between the record and the resize: send the resize again.
        body = {"spec": {place.field: [{"name": op.container, "resources": op.resources}]}}
        return Step("resize", f"{op.sidecar}: resize {op.container} again", resize=body, operation=op,
                    requeue_after=max(1.0, ctx.rules.timeout_seconds - elapsed))
    requeue = max(1.0, ctx.rules.timeout_seconds - elapsed)
    if pending is not None:
        # Deferred (the node has no room now; the kubelet retries): said on the record and in an Event, once.
        why = f"deferred by the kubelet: {pending.get('message') or pending.get('reason') or 'no reason given'}"
        if op.reason != why:
            patch = _Patch(ctx.pod)
            noted = replace(op, reason=why)
            patch.annotations[OPERATION] = noted.to_json()
            return Step("patch", f"{op.sidecar}: resize {why}", patch=patch.body(), operation=noted,
                        event=("Warning", "SidecarResizeDeferred", f"{op.sidecar}: resize {why}"),
                        requeue_after=requeue)
        return Step("none", f"{op.sidecar}: resize {why}", requeue_after=requeue)
    return Step("none", f"{op.sidecar}: resize waiting for the kubelet to actuate it", requeue_after=requeue)


def _failed_resize(ctx: _Context, op: Operation, why: str, elapsed: float) -> Step:
    patch = _Patch(ctx.pod)
    place = spec_container(ctx.pod, op.container)
    if ctx.rules.rollback and op.resources_before and place is not None:
        step = _finish_step(ctx, op, "Failed", f"{why}; resized back", elapsed, patch, "Warning",
                            "SidecarRolledBack", "rolled_back", rolled_back=True)
        body = {"spec": {place.field: [{"name": op.container, "resources": op.resources_before}]}}
        return replace(step, kind="resize", resize=body)
    return _finish_step(ctx, op, "Failed", why, elapsed, patch, "Warning", "SidecarOperationFailed", "failed")


def _condition(pod: Pod, kind: str) -> Mapping[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, Mapping) and c.get("type") == kind and c.get("status") == "True":
            return c
    return None
