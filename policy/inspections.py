"""Inspections of a meshed fleet from its objects alone: each finding says what is wrong and what to do.

``meshfit check`` (and, later, the fleet controller) runs these over one LIST of
pods, nodes and namespaces. Each is a pure function of plain dicts and the
policy, so the same verdicts come out of a test, a CLI run and a controller:

* **versions**: record vs spec vs container status vs the policy's current
  choice (:mod:`policy.fleet`);
* **accounting**: the record recomputed from the spec (``R(pod) == A`` unless
  the record's leak says otherwise, the record's own effective requests and
  limits, every sidecar container — each slot of a hot-upgrade sidecar — with
  its recorded share and a CPU request and limit: docs/design.md#lesson-4);
* **exposure**: per node, the extender's accounting recomputed from the pods
  (:func:`policy.pod_entry.reduce_pod`) against the policy's ceiling;
* **missed injections**: pods the webhook would inject now that carry no
  record, as pods admitted while it was down under ``failurePolicy: Ignore`` do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace, decide
from policy.fleet import PROBLEMS, SidecarState
from policy.model import NamespacePolicy, Policy
from policy.pod_accounting import TERMINAL_PHASES, cached_record
from policy.pod_entry import PodEntry
from policy.quantity import Quantity, QuantityError
from policy.record import AccountingRecord
from policy.runtime import LABEL as RUNTIME_LABEL
from policy.sidecar_status import StatusError, parse_status
from policy.resources import RESOURCES, container_limits, container_requests, pod_limits, pod_requests

Pod = Mapping[str, Any]

CHECKS: tuple[str, ...] = ("versions", "accounting", "exposure", "missed-injections", "runtime", "certificates",
                           "configuration")


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed inspection: where, what, and the one line that says what to do."""

    check: str
    code: str
    subject: str
    message: str
    hint: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "code": self.code, "subject": self.subject, "message": self.message,
                "hint": self.hint}


def pod_ref(pod: Pod) -> str:
    meta = pod.get("metadata") or {}
    return f"pod {meta.get('namespace') or 'default'}/{meta.get('name')}"


# -- versions ------------------------------------------------------------------------
def version_findings(pod: Pod, states: Iterable[SidecarState] | None) -> list[Finding]:
    """One finding per disagreeing sidecar of ``pod`` (states from :func:`policy.fleet.sidecar_states`)."""
    subject = pod_ref(pod)
    if states is None:
        return [Finding("versions", "bad_status", subject, f"{STATUS} does not parse", PROBLEMS["bad_status"])]
    out: list[Finding] = []
    for s in states:
        for code in s.problems:
            runs = f"runs {s.running_version or '?'}" if s.active else "is dormant"
            where = s.sidecar if s.live in ("", s.sidecar) else f"{s.sidecar} (live slot {s.live})"
            if code == "stale":
                message = (f"{s.sidecar}: {runs} (recorded {s.recorded_version or '?'}), "
                           f"the policy now chooses {s.desired_version} ({s.desired_rule}) → {s.desired_image}")
            elif code == "spec_differs_from_record":
                recorded = s.recorded_image if s.active else "the empty image while dormant"
                message = f"{where}: spec image {s.spec_image}, recorded {recorded}"
            elif code == "running_differs_from_spec":
                message = f"{where}: running {s.running_image} ({s.running_image_id or 'no imageID'}), spec {s.spec_image}"
            elif code == "sidecar_missing":
                if s.missing and s.missing != (s.sidecar,):
                    message = f"{s.sidecar}: recorded, but the pod has no container {', '.join(s.missing)}"
                else:
                    message = f"{s.sidecar}: recorded, but the pod has no container of that name"
            else:
                message = f"{s.sidecar}: recorded {s.recorded_version or '?'}, not injected by the policy now"
            out.append(Finding("versions", code, subject, message, PROBLEMS[code]))
    return out


# -- accounting ----------------------------------------------------------------------
_TAMPERED = ("the record and the spec disagree: if the spec was resized by hand, run `meshfit reaccount`; if the "
             "record was edited, roll the workload so the webhook records it afresh")


def _fmt(values: Mapping[str, Quantity | None]) -> str:
    return ", ".join(f"{name} {values[name].format() if values.get(name) is not None else '-'}"  # type: ignore[union-attr]
                     for name in RESOURCES)


def _same(a: Quantity | None, b: Quantity | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.nanos == b.nanos


def accounting_findings(pod: Pod) -> list[Finding]:
    """The pod's ``meshfit.io/accounting`` record recomputed from its spec; ``[]`` without a record."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(ACCOUNTING)
    if text is None:
        return []
    subject = pod_ref(pod)
    parsed: AccountingRecord | str = cached_record(text) if isinstance(text, str) else "accounting record is not a string"
    if isinstance(parsed, str):
        return [Finding("accounting", "bad_record", subject, parsed,
                        "roll the workload so the webhook records it afresh (the extender counts the pod from its spec meanwhile)")]
    record = parsed
    spec_pod: dict[str, Any] = dict(pod)
    try:
        requests = pod_requests(spec_pod)
        limits = pod_limits(spec_pod)
    except QuantityError as exc:
        return [Finding("accounting", "unreadable_resources", subject, str(exc), "fix the pod's resources")]
    out: list[Finding] = []
    expected = {r: record.original.get(r, Quantity(0)) + record.leak.get(r, Quantity(0)) for r in RESOURCES}
    if any(requests[r].nanos != expected[r].nanos for r in RESOURCES):
        leak = f" + leak {_fmt(record.leak)}" if any(record.leak.values()) else ""
        out.append(Finding("accounting", "requests_differ_from_original", subject,
                           f"R(pod) is {_fmt(requests)}; the record says A = {_fmt(record.original)}{leak}", _TAMPERED))
    if any(not _same(requests[r], record.requests.get(r)) for r in RESOURCES):
        out.append(Finding("accounting", "record_requests_differ", subject,
                           f"R(pod) is {_fmt(requests)}; the record says {_fmt(record.requests)}", _TAMPERED))
    if any(not _same(limits[r], record.limits.get(r)) for r in RESOURCES):
        out.append(Finding("accounting", "record_limits_differ", subject,
                           f"L(pod) is {_fmt(limits)}; the record says {_fmt(record.limits)}", _TAMPERED))
    containers = {c.get("name"): c for kind in ("initContainers", "containers")
                  for c in (pod.get("spec") or {}).get(kind) or () if isinstance(c, Mapping)}
    waived = record.variant == "besteffort"
    for sidecar in record.sidecars:
        for name, (want_req, want_lim) in sidecar.container_resources().items():
            out.extend(_sidecar_container_findings(subject, sidecar.name, name, containers.get(name),
                                                   want_req, want_lim, waived))
    return out


def _sidecar_container_findings(subject: str, sidecar: str, name: str, container: Mapping[str, Any] | None,
                                want_req: Mapping[str, Quantity], want_lim: Mapping[str, Quantity],
                                waived: bool) -> list[Finding]:
    """One of a sidecar's containers (a hot sidecar has two slots) against its share in the record."""
    label = sidecar if name == sidecar else f"{sidecar} (slot {name})"
    if container is None:
        return [Finding("accounting", "sidecar_missing", subject, f"{label}: in the record, not in the spec", _TAMPERED)]
    out: list[Finding] = []
    declared = (container.get("resources") or {})
    has_request = "cpu" in (declared.get("requests") or {}) or "cpu" in (declared.get("limits") or {})
    has_limit = "cpu" in (declared.get("limits") or {})
    if not waived and not (has_request and has_limit):
        out.append(Finding("accounting", "sidecar_without_cpu_quota", subject,
                           f"{label}: no CPU {'request' if not has_request else 'limit'}: it would starve "
                           "under CPU shares (docs/design.md#lesson-4)",
                           "re-account with `meshfit reaccount` under a policy with a CPU floor, or roll the workload"))
    got_req, got_lim = container_requests(container), container_limits(container)
    if any(r in want_req and got_req[r].nanos != want_req[r].nanos for r in RESOURCES) or \
            any(r in want_lim and not _same(got_lim[r], want_lim[r]) for r in RESOURCES):
        out.append(Finding("accounting", "sidecar_resources_differ", subject,
                           f"{label}: spec requests {_fmt(got_req)} limits {_fmt(got_lim)}; recorded "
                           f"requests {_fmt(want_req)} limits {_fmt(want_lim)}", _TAMPERED))
    return out


# -- exposure ------------------------------------------------------------------------
@dataclass(slots=True)
class NodeExposure:
    """A node's allocatable and the node-level exposure of the pods bound there."""

    name: str
    alloc_cpu: int = 0
    alloc_memory: int = 0
    known: bool = False
    exp_cpu: int = 0
    exp_memory: int = 0
    pods: int = 0


def node_allocatable(node: Pod) -> tuple[int, int]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return (Quantity.parse(alloc["cpu"]).nanos if "cpu" in alloc else 0,
            Quantity.parse(alloc["memory"]).nanos if "memory" in alloc else 0)


def count_exposure(nodes: dict[str, NodeExposure], entry: PodEntry) -> None:
    """Add one pod (reduced as the extender reduces it) to its node's sums."""
    if entry.error is not None or entry.terminal or entry.node is None:
        return
    node = nodes.get(entry.node)
    if node is None:
        node = nodes[entry.node] = NodeExposure(entry.node)
    node.exp_cpu += entry.exp_cpu
    node.exp_memory += entry.exp_memory
    node.pods += 1


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def exposure_findings(nodes: Iterable[NodeExposure], policy: Policy) -> list[Finding]:
    """Nodes whose node-level exposure is over ``scheduling.exposureCeiling`` (exact: ``exp ≤ floor(alloc × c)`` passes)."""
    ceiling = policy.scheduling.exposure_ceiling
    out: list[Finding] = []
    for node in sorted(nodes, key=lambda n: n.name):
        if not node.known:
            continue
        over: list[str] = []
        for resource, exposed, alloc in (("cpu", node.exp_cpu, node.alloc_cpu), ("memory", node.exp_memory, node.alloc_memory)):
            c = ceiling[resource]
            limit = alloc * c.numerator // c.denominator
            if exposed > limit:
                binary = resource == "memory"
                shown = [Quantity(n, "BinarySI").format() if binary else Quantity(n).format() for n in (exposed, alloc)]
                over.append(f"{resource} exposure {_percent(exposed, alloc)} of allocatable (ceiling {float(c) * 100:g}%): "
                            f"{shown[0]} of {shown[1]}")
        if over:
            pods = f"{node.pods} pod" + ("" if node.pods == 1 else "s")
            out.append(Finding("exposure", "over_ceiling", f"node {node.name}", "; ".join(over) + f" ({pods})",
                               "move exposed pods off the node (evict one; the extender places no more there), "
                               "or raise scheduling.exposureCeiling if the node can take it"))
    return out


# -- missed injections ---------------------------------------------------------------
def missed_injection(pod: Pod, labels: Mapping[str, str] | None, policy: Policy,
                     namespace_policy: NamespacePolicy | None = None) -> Finding | None:
    """A pod the webhook would inject now that carries no record: it was admitted without the webhook.

    ``labels`` are the namespace's (``None``: the namespace is unknown, so nothing is claimed).
    Finished pods and pods that opt out, in excluded namespaces, or that the
    policy would skip (host network, collisions, an emergency stop) are not missed.
    """
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if labels is None or STATUS in annotations or ACCOUNTING in annotations:
        return None
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    namespace = str(meta.get("namespace") or "default")
    decision = decide(pod, Namespace(namespace, labels, namespace_policy), policy)
    if not decision.inject:
        return None
    names = ", ".join(s.name for s in decision.sidecars)
    return Finding("missed-injections", "missed_injection", pod_ref(pod),
                   f"no {STATUS}: the webhook would inject {names} now ({decision.reason})",
                   "the pod was admitted while the webhook was not answering (failurePolicy: Ignore): "
                   "roll its workload (kubectl rollout restart) to mesh it")


# -- runtime parameters -----------------------------------------------------------------
def runtime_unmounted(pod: Pod, policy: Policy) -> Finding | None:
    """A meshed pod whose sidecars have runtime parameters now, but which mounts none (created before).

    Its volumes were fixed at creation: only a new pod (its workload restarted) mounts them.
    """
    if not policy.runtime.parameters:
        return None
    meta = pod.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(STATUS)
    if not isinstance(text, str) or RUNTIME_LABEL in (meta.get("labels") or {}):
        return None
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    try:
        status = parse_status(text)
    except StatusError:
        return None  # the versions check reports an unreadable record
    names = [s.name for s in status.sidecars if policy.runtime.declares(s.name)]
    if not names:
        return None
    return Finding("runtime", "runtime_unmounted", pod_ref(pod),
                   f"{', '.join(names)} read no runtime parameters: the pod was created before the policy declared them",
                   "restart its workload (kubectl rollout restart, or fleet.runtimeVolumes: repair) so that the "
                   "webhook mounts them; nothing in place can add a volume")
