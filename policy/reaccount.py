"""Re-accounting a running meshed pod under another policy, in place: the plan, as a pure function.

The field's repair (docs/design.md, lesson 7): sidecars sized under an older
model had to be re-sized on ~250,000 running containers without replacing a
pod. meshfit's record makes that computable. From the pod's record — ``A``,
the sidecars meshfit added and every own container's requests before injection
(``ownRequests``) — the owner's pod is rebuilt exactly (sidecars removed,
requests restored, meshfit's pod-level fields dropped, the owner's kept),
injected afresh under the target policy by the one engine, and the result's
container resources become the plan. So a re-accounted pod is, resource for
resource, what a fresh injection under the new policy would give.

Only what ``pods/resize`` can change is changed: container requests and
limits. A plan is refused, with its reason, when the target needs anything
else (another set of sidecars, another variant, another QoS class — a resize
never changes QoS), when the record is missing, unreadable or disagrees with
the spec (someone else changed the pod), or when it would change pod-level
resources on a cluster without ``InPlacePodLevelResourcesVerticalScaling``.

The plan is computed from the record, never from the current requests, so it
is the same before and after it is applied: a second run finds nothing to do,
and a run interrupted between the resize and the record write finishes the
record next time (``record_only``).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from policy.annotations import ACCOUNTING, SLOT_VERSION_PREFIX, STATUS
from policy.decision import Namespace
from policy.inject import InjectionError, inject
from policy.model import Policy
from policy.qos import pod_qos
from policy.quantity import Quantity, QuantityError
from policy.record import AccountingRecord, parse_record
from policy.resources import RESOURCES, pod_requests

Action = Literal["unchanged", "resize", "record_only", "skip"]
ANNOTATION_PATH = "/metadata/annotations/" + ACCOUNTING.replace("~", "~0").replace("/", "~1")
KINDS = ("initContainers", "containers")


@dataclass(frozen=True, slots=True)
class ContainerChange:
    """One container's resources before and after, as ``pods/resize`` takes them."""

    kind: str
    name: str
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ReaccountPlan:
    action: Action
    reason: str
    #: A short fixed code for a skip (tables, metrics): ``no_record``, ``inconsistent``, ...
    code: str = ""
    changes: tuple[ContainerChange, ...] = ()
    #: The accounting record to write after the resize (``None`` for a skip or no change).
    record: AccountingRecord | None = None
    #: Whether the plan changes pod-level ``spec.resources`` (needs the pod-level resize gate).
    pod_level: dict[str, Any] = field(default_factory=dict)

    def resize_body(self) -> dict[str, Any]:
        """The strategic-merge patch for ``pods/NAME/resize``: only the changed containers' resources."""
        spec: dict[str, Any] = {}
        for change in self.changes:
            spec.setdefault(change.kind, []).append({"name": change.name, "resources": change.after})
        if self.pod_level:
            spec["resources"] = self.pod_level
        return {"spec": spec}

    def record_patch(self, pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A JSON patch that writes the new record only if ``pod`` is still as read.

        Compare-and-swap on what re-accounting depends on: the record it planned
        from and every container's resources. Nothing else is compared, so the
        kubelet's status updates (which follow every resize) never make it fail,
        while another writer's change to the record or to any container's
        resources does (422 from the ``test`` operation: re-read and re-plan).
        """
        assert self.record is not None
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        ops: list[dict[str, Any]] = [{"op": "test", "path": ANNOTATION_PATH, "value": annotations.get(ACCOUNTING)}]
        spec = pod.get("spec") or {}
        for kind in KINDS:
            for i, c in enumerate(spec.get(kind) or ()):
                ops.append({"op": "test", "path": f"/spec/{kind}/{i}/resources", "value": c.get("resources") or {}})
        ops.append({"op": "replace", "path": ANNOTATION_PATH, "value": self.record.to_json()})
        return ops


def _skip(code: str, reason: str) -> ReaccountPlan:
    return ReaccountPlan("skip", reason, code)


def _containers(spec: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {c["name"]: (kind, c) for kind in KINDS for c in spec.get(kind) or () if isinstance(c, dict)}


def _resources_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Requests and limits of cpu/memory compared as the apiserver stores them (``1Gi == 1024Mi``)."""
    def norm(res: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
        res = res or {}
        out = {part: {r: Quantity.parse(v).nanos for r, v in (res.get(part) or {}).items() if r in RESOURCES}
               for part in ("requests", "limits")}
        out["requests"] = {**out["limits"], **out["requests"]}  # API defaulting: a missing request is the limit
        return out
    return norm(a) == norm(b)


def own_shape(pod: Mapping[str, Any], record: AccountingRecord) -> dict[str, Any]:
    """The pod as its owner wrote it, rebuilt from the record: what a fresh injection starts from.

    Raises ``ValueError`` when the record cannot rebuild it (a named sidecar or donor is missing).
    """
    spec = pod.get("spec") or {}
    injected = {c for s in record.sidecars for c in s.containers}  # a hot sidecar's -alt slot is the sidecar's
    present = _containers(spec)
    missing = sorted(injected - set(present))
    if missing:
        raise ValueError(f"the record names sidecars the spec lacks: {', '.join(missing)}")
    own_names = set(present) - injected
    if set(record.own_requests) != own_names:
        raise ValueError("the record's own containers ("
                         + (", ".join(sorted(record.own_requests)) or "none recorded") + ") are not the spec's ("
                         + ", ".join(sorted(own_names)) + ")")
    own_spec = copy.deepcopy(dict(spec))
    for kind in KINDS:
        items = [c for c in own_spec.get(kind) or () if c.get("name") not in injected]
        if items:
            own_spec[kind] = items
        else:
            own_spec.pop(kind, None)
        for c in items:
            before = record.own_requests[c["name"]]
            if before:
                requests = (c.setdefault("resources", {})).setdefault("requests", {})
                for r, value in before.items():
                    requests[r] = value.format()
    meta = copy.deepcopy(dict(pod.get("metadata") or {}))
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(STATUS, None)
    annotations.pop(ACCOUNTING, None)
    for key in [k for k in annotations if k.startswith(SLOT_VERSION_PREFIX)]:
        del annotations[key]
    meta["annotations"] = annotations
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation"):
        meta.pop(key, None)
    own_spec.pop("nodeName", None)
    if record.variant == "pod-level":
        # the owner's pod-level fields as written; whatever the variant added is meshfit's
        own_spec.pop("resources", None)
        if record.own_pod_level:
            own_spec["resources"] = {part: {r: v.format() for r, v in values.items()}
                                     for part, values in record.own_pod_level.items()}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": own_spec}


def plan_reaccount(pod: dict[str, Any], namespace: Namespace, policy: Policy, *,
                   pod_level_resize: bool = False) -> ReaccountPlan:
    """What re-accounting ``pod`` under ``policy`` would change, or why it must not be touched."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(ACCOUNTING)
    if not isinstance(text, str):
        return _skip("no_record", f"no {ACCOUNTING} record: not injected by meshfit")
    try:
        record = parse_record(text)
    except ValueError as exc:
        return _skip("bad_record", str(exc))
    if record.mode != "overcommit":
        return _skip("mode", f"recorded under mode {record.mode}; re-accounting keeps overcommit pods in place only")
    try:
        own = own_shape(pod, record)
        if pod_requests(own) != record.original:
            return _skip("inconsistent", "the spec and the record disagree: the pod's own shape rebuilt from the "
                                         f"record has R {_fmt(pod_requests(own))}, the record says A = "
                                         f"{_fmt(record.original)} (changed by someone else)")
        fresh = inject(own, namespace, policy)
    except (ValueError, QuantityError, InjectionError) as exc:
        return _skip("inconsistent", f"the pod cannot be rebuilt from its record: {exc}")
    if not fresh.injected or fresh.record is None:
        return _skip("not_injected", f"the target policy would not inject this pod: {fresh.reason}")
    # Re-accounting resizes; it never changes what runs: the recorded versions stay.
    versions = {s.name: s.version for s in record.sidecars}
    new = dataclasses.replace(fresh.record, sidecars=tuple(
        dataclasses.replace(s, version=versions.get(s.name, s.version)) for s in fresh.record.sidecars))
    if pod_requests(pod) not in (record.requests, new.requests):
        return _skip("inconsistent", f"the pod's R {_fmt(pod_requests(pod))} differs from the recorded "
                                     f"{_fmt(record.requests)}: changed by someone else")
    if [s.name for s in new.sidecars] != [s.name for s in record.sidecars]:
        return _skip("needs_recreate", "the target policy injects other sidecars "
                                       f"({', '.join(s.name for s in new.sidecars)} instead of "
                                       f"{', '.join(s.name for s in record.sidecars)}): recreate the pod")
    if new.variant != record.variant:
        return _skip("needs_recreate", f"the target policy takes the {new.variant} variant, the pod has {record.variant}: "
                                       "the pod-level fields cannot be added or removed in place; recreate the pod")
    qos_now = str((pod.get("status") or {}).get("qosClass") or pod_qos(pod))
    if pod_qos(fresh.pod) != qos_now:
        return _skip("qos_change", f"the result's QoS class {pod_qos(fresh.pod)} differs from the pod's {qos_now}; "
                                   "a resize never changes the QoS class")
    target = _containers(fresh.pod["spec"])
    current = _containers(pod.get("spec") or {})
    if set(target) != set(current):
        return _skip("needs_recreate", "the target adds or removes containers: recreate the pod")
    for s in record.sidecars:
        for name, (requests, limits) in s.container_resources().items():
            now = current[name][1].get("resources")
            as_recorded = {"requests": {r: v.format() for r, v in requests.items()},
                           "limits": {r: v.format() for r, v in limits.items()}}
            if not (_resources_equal(now, as_recorded) or _resources_equal(now, target[name][1].get("resources"))):
                which = s.name if name == s.name else f"{s.name} (its slot {name})"
                return _skip("inconsistent", f"sidecar {which}'s resources differ from the record: "
                                             "changed by someone else")
    changes = []
    for name, (kind, c) in current.items():
        t_kind, t = target[name]
        if t_kind != kind:
            return _skip("needs_recreate", f"container {name} moves between initContainers and containers")
        if not _resources_equal(c.get("resources"), t.get("resources")):
            if kind == "initContainers" and c.get("restartPolicy") != "Always":
                return _skip("needs_recreate", f"the plan changes regular init container {name}, which pods/resize "
                                               "cannot change (only containers and native sidecars): recreate the pod")
            changes.append(ContainerChange(kind, name, dict(c.get("resources") or {}), dict(t.get("resources") or {})))
    pod_level: dict[str, Any] = {}
    now_level = (pod.get("spec") or {}).get("resources")
    new_level = fresh.pod["spec"].get("resources")
    if not _resources_equal(now_level, new_level):
        if not pod_level_resize:
            return _skip("pod_level_resize", "the plan changes pod-level resources, which needs the "
                                             "InPlacePodLevelResourcesVerticalScaling feature (pass --pod-level-resize "
                                             "where the cluster has it)")
        pod_level = dict(new_level or {})
    if _same_record(record, new):
        if changes or pod_level:
            return _skip("inconsistent", "the record is current but the spec differs from it: changed by someone else")
        return ReaccountPlan("unchanged", "already accounted as the target policy would")
    if not changes and not pod_level:
        return ReaccountPlan("record_only", "the resources already match; only the record is written", record=new)
    return ReaccountPlan("resize", f"{len(changes)} container(s) resized", changes=tuple(changes), record=new,
                         pod_level=pod_level)


def _same_record(a: AccountingRecord, b: AccountingRecord) -> bool:
    """Equal by value: quantities compare as numbers (``100M`` is ``100000000``)."""
    return a == b


def _fmt(values: Mapping[str, Quantity]) -> str:
    return "/".join(values[r].format() for r in RESOURCES if r in values)
