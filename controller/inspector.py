"""The inspections of ``meshfit check``, as a loop in the controller's leader, exported as the fleet's gauges.

Every ``interval`` the leader reads the fleet the way ``meshfit check`` does
(:mod:`serving.cluster_facts`: a few LISTs, pods a page at a time) and folds it
twice: into a :class:`policy.fleet.FleetView` by namespace, zone and app (each
sidecar's desired, recorded and running versions) and into a
:class:`policy.fleet_audit.FleetAudit` (versions, accounting, exposure, missed
injections). Both become gauges, swapped in whole at the end of a run, so a
scrape never sees half a run. Cardinality is bounded: ``namespace``, ``app``
and ``zone`` keep the :data:`TOP` largest values and fold the rest into
``other``; node exposure lists the :data:`TOP_NODES` most exposed nodes.

Pods that escaped injection (admitted while the webhook was not answering, under
``failurePolicy: Ignore``) get a Warning Event each, and with
``fleet.missedInjections: repair`` their workloads are restarted so the webhook
meshes the new pods: at most ``fleet.repairsPerRun`` workloads a run, one write
token each, never a bare pod, never inside a freeze window (``fleet.freezeWindows``:
the next run after it repairs), once per workload and day (the template's
``meshfit.io/repaired`` marker).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.workloads import restart_workload
from kube.client import ApiClient, ApiError
from kube.events import EventRecorder
from kube.ratelimit import TokenBucket
from policy.fleet import FleetView
from policy.fleet_audit import POD_CHECKS, FleetAudit, MissedPod
from policy.freeze import active_window
from policy.model import Policy
from serving.cluster_facts import ClusterFacts, read_cluster
from serving.exposition import Registry, Sample
from serving.polling import Periodic

log = logging.getLogger(__name__)

#: Label values kept per dimension (the rest count as ``other``), and nodes listed by exposure.
TOP = 50
TOP_NODES = 20
#: On a repaired workload's pod template: the day it was restarted for missed injections.
REPAIRED = "meshfit.io/repaired"


@dataclass
class InspectionRun:
    """The gauges of one completed run."""

    finished: float = 0.0
    pods: list[Sample] = field(default_factory=list)
    disagreeing: list[Sample] = field(default_factory=list)
    missed: list[Sample] = field(default_factory=list)
    failures: list[Sample] = field(default_factory=list)
    exposure: list[Sample] = field(default_factory=list)
    over_ceiling: list[Sample] = field(default_factory=list)
    missed_pods: list[MissedPod] = field(default_factory=list)
    unmounted: list[Sample] = field(default_factory=list)
    unmounted_pods: list[MissedPod] = field(default_factory=list)
    pods_listed: int = 0
    seconds: float = 0.0


def _top(counts: Counter[str], n: int = TOP) -> set[str]:
    return {k for k, _ in counts.most_common(n)}


def fleet_samples(view: FleetView, audit: FleetAudit) -> InspectionRun:
    """The run's gauges from the two folds (pure: the tests call it on folds of their own)."""
    run = InspectionRun()
    sizes: dict[str, Counter[str]] = {"namespace": Counter(), "zone": Counter(), "app": Counter()}
    for cell in view.cells.values():
        for dim, value in zip(view.by, cell.group):
            sizes[dim][value] += cell.pods
    keep = {dim: _top(c) for dim, c in sizes.items()}

    def group(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v if v in keep[d] else "other" for d, v in zip(view.by, values))

    pods: Counter[tuple[str, ...]] = Counter()
    disagreeing: Counter[tuple[str, ...]] = Counter()
    for cell in view.cells.values():
        g = group(cell.group)
        for kind, counts in (("desired", cell.desired), ("recorded", cell.recorded), ("running", cell.running)):
            for version, n in counts.items():
                pods[(cell.sidecar, version, kind, *g)] += n
        disagreeing[(cell.sidecar, *g)] += cell.disagreeing
    run.pods = sorted(pods.items())
    run.disagreeing = sorted(disagreeing.items())
    run.missed = _by_namespace(audit.missed_by_namespace)
    run.unmounted = _by_namespace(audit.unmounted_by_namespace)
    results = audit.results
    run.failures = [((check,), results.failures(check)) for check in results.checks]
    over: Counter[str] = Counter({"cpu": 0, "memory": 0})
    for f in results.findings:
        if f.code == "over_ceiling":
            for resource in ("cpu", "memory"):
                if f"{resource} exposure" in f.message:
                    over[resource] += 1
    run.over_ceiling = [((r,), n) for r, n in sorted(over.items())]
    ratios: list[tuple[float, str, str]] = []
    for node in audit.node_exposure:
        for resource, exposed, alloc in (("cpu", node.exp_cpu, node.alloc_cpu),
                                         ("memory", node.exp_memory, node.alloc_memory)):
            if alloc > 0:
                ratios.append((exposed / alloc, node.name, resource))
    for resource in ("cpu", "memory"):
        mine = sorted((r for r in ratios if r[2] == resource), key=lambda r: (-r[0], r[1]))[:TOP_NODES]
        run.exposure.extend(((name, res), round(ratio, 6)) for ratio, name, res in mine)
    run.missed_pods = list(audit.missed)
    run.unmounted_pods = list(audit.unmounted)
    return run


def _by_namespace(counts: Counter[str]) -> list[Sample]:
    """Per namespace, the :data:`TOP` largest kept and the rest folded into ``other``."""
    kept = _top(counts)
    folded: Counter[str] = Counter()
    for ns, n in counts.items():
        folded[ns if ns in kept else "other"] += n
    return [((ns,), n) for ns, n in sorted(folded.items())]


class Inspector:
    """The loop, the gauges it exports, and the repairs it makes."""

    def __init__(self, client: ApiClient, policy: Callable[[], Policy], registry: Registry, *,
                 interval: float = 300.0, page_size: int = 500, events: EventRecorder | None = None,
                 bucket: TokenBucket | None = None, leading: Callable[[], bool] = lambda: True,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.client = client
        self.policy = policy
        self.interval = interval
        self.page_size = page_size
        self.events = events if events is not None else EventRecorder(client, "meshfit-controller")
        self.bucket = bucket if bucket is not None else TokenBucket(5.0, 5)
        self.leading = leading
        self.clock = clock
        self.last: InspectionRun | None = None
        self.runs = 0
        self.repairs: Counter[str] = Counter()
        self._loop = Periodic("fleet inspection", interval)
        p = "meshfit_fleet_"
        registry.callback(p + "sidecar_pods", "Meshed pods per sidecar version: desired (the policy now), recorded, "
                          "running.", lambda: self._read("pods"), ("sidecar", "version", "kind", "namespace", "zone", "app"))
        registry.callback(p + "sidecar_disagreeing_pods", "Pods whose readings of a sidecar disagree.",
                          lambda: self._read("disagreeing"), ("sidecar", "namespace", "zone", "app"))
        registry.callback(p + "missed_injections", "Pods the webhook would inject that carry no record.",
                          lambda: self._read("missed"), ("namespace",))
        registry.callback(p + "runtime_unmounted_pods", "Meshed pods whose sidecars have runtime parameters but "
                          "which mount none (created before the policy declared them).",
                          lambda: self._read("unmounted"), ("namespace",))
        registry.callback(p + "inspection_failures", "Failures of the last run of each inspection.",
                          lambda: self._read("failures"), ("check",))
        registry.callback(p + "inspection_last_run_timestamp_seconds", "When the inspections last completed.",
                          lambda: [((), self.last.finished)] if self.last is not None else [])
        registry.callback(p + "node_exposure_ratio", f"Exposure / allocatable of the {TOP_NODES} most exposed nodes.",
                          lambda: self._read("exposure"), ("node", "resource"))
        registry.callback(p + "nodes_over_ceiling", "Nodes whose exposure is over the policy's ceiling.",
                          lambda: self._read("over_ceiling"), ("resource",))
        registry.callback(p + "repairs_total", "Workloads restarted to mesh pods that escaped injection, by result.",
                          lambda: [((k,), v) for k, v in sorted(self.repairs.items())], ("result",), kind="counter")

    def _read(self, name: str) -> Iterable[Sample]:
        run = self.last
        return list(getattr(run, name)) if run is not None else []

    def wake(self) -> None:
        """Run now (a test, or a leader that has just taken over)."""
        self._loop.wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Inspect every ``interval`` while leading, until ``stop``; a failed run is logged and tried next time."""
        self._loop.leading = lambda: self.leading()
        await self._loop.run(self.run_once, stop, (ApiError, OSError, TimeoutError))

    async def run_once(self) -> InspectionRun:
        """One inspection of the whole fleet; its gauges replace the last run's at the end."""
        started = time.monotonic()
        policy = self.policy()
        now = self.clock()
        audit = FleetAudit(policy, POD_CHECKS)
        holder: dict[str, FleetView] = {}

        def before(facts: ClusterFacts) -> None:
            audit.start(namespace_policies=facts.namespace_policies, namespace_labels=facts.namespace_labels,
                        node_allocatable_=facts.node_allocatable, now=now)
            holder["view"] = FleetView(audit.desired, ("namespace", "zone", "app"), facts.node_zones, examples=0)

        def on_pod(pod: dict[str, Any]) -> None:
            holder["view"].add(pod)
            audit.add(pod)

        facts = await read_cluster(self.client, policy, on_pod, page_size=self.page_size, before_pods=before)
        audit.finish()
        run = fleet_samples(holder["view"], audit)
        run.pods_listed = facts.pods_listed
        run.seconds = time.monotonic() - started
        run.finished = time.time()
        self.last = run
        self.runs += 1
        await self._report(policy, now, run)
        log.info("fleet inspected: %d pods in %.1fs, %d findings, %d missed injections, %d without runtime parameters",
                 facts.pods_listed, run.seconds, sum(audit.results.counts.values()), len(run.missed_pods),
                 len(run.unmounted_pods))
        return run

    async def _report(self, policy: Policy, now: dt.datetime, run: InspectionRun) -> None:
        """An Event on each pod found wanting; its workload restarted where the policy says repair.

        Missed injections and pods without the runtime volume share one budget and one
        restart per workload a day: one restart gives the new pods both.
        """
        frozen = active_window(policy.fleet.freeze_windows, now)
        asked: set[tuple[str, str, str]] = set()
        for pods, repair, reason, message, how in (
                (run.missed_pods, policy.fleet.missed_injections == "repair", "MissedInjection",
                 "the webhook would inject this pod, but it carries no meshfit.io/status "
                 "(admitted while the webhook was not answering?)", "fleet.missedInjections: repair"),
                (run.unmounted_pods, policy.fleet.runtime_volumes == "repair", "RuntimeUnmounted",
                 "this pod's sidecars have runtime parameters, but it was created before the policy declared them "
                 "and mounts none", "fleet.runtimeVolumes: repair")):
            if repair and frozen is not None and pods:
                # A workload restart is a change: none inside a freeze window; the next run after it repairs.
                window, until = frozen
                log.info("%s not repaired: freeze window %s until %s", reason, window.describe(), until.isoformat())
                self.repairs["frozen"] += len({(p.namespace, str((p.owner or {}).get("name"))) for p in pods if p.owner})
                repair = False
            await self._repair(pods, repair, reason, message, how, policy.fleet.repairs_per_run, asked, now)

    async def _repair(self, pods: list[MissedPod], repair: bool, reason: str, message: str, how: str, budget: int,
                      asked: set[tuple[str, str, str]], now: dt.datetime) -> None:
        for pod in pods:
            subject = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid}}
            what = "restarting its workload" if repair and pod.owner else (
                "a bare pod: delete and create it again" if pod.owner is None else
                f"roll its workload (kubectl rollout restart), or set {how}")
            await self.events.record(subject, reason=reason, message=f"{message}: {what}")
            if not repair or pod.owner is None:
                continue
            key = (pod.namespace, str(pod.owner.get("kind")), str(pod.owner.get("name")))
            if key in asked:
                continue
            asked.add(key)
            if len(asked) > budget:
                self.repairs["deferred"] += 1
                continue
            await self.bucket.take()
            try:
                done = await restart_workload(self.client, pod.namespace, pod.owner, REPAIRED,
                                              now.strftime("%Y-%m-%d"), {}, now)
            except ApiError as exc:
                log.warning("repairing %s/%s: %s", pod.namespace, pod.name, exc)
                self.repairs["failed"] += 1
                continue
            self.repairs[done.outcome] += 1
            if done.outcome == "restarted":
                log.info("restarted %s in %s (%s)", done.workload, pod.namespace, reason)


def missed_names(run: InspectionRun) -> Mapping[str, list[str]]:
    """Missed pods by namespace (for logs and tests)."""
    out: dict[str, list[str]] = {}
    for pod in run.missed_pods:
        out.setdefault(pod.namespace, []).append(pod.name)
    return out
