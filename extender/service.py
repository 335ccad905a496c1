"""The three verbs, filter, prioritize and bind, over the cache and the policy.

This is the extender without HTTP: the server hands it decoded arguments and
encodes what it returns, the feeds hand it watch events. It owns the rules
that tie the parts together: a pod being scheduled is remembered (so its bind
can count it before the watch shows it), a filter waits for the binds still
in flight (:mod:`extender.inflight`), a bind counts the pod on its node
before the Binding is even sent, and observe-only mode computes every
verdict but enforces none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from extender.binder import Binder, BindError
from extender.cache import ClusterCache
from extender.guard import BindGuard, PodIdentity
from extender.inflight import InFlight
from extender.metrics import ExtenderMetrics
from extender.policy_source import LivePolicy
from extender.protocol import BindingArgs, ExtenderArgs, ProtocolError
from extender.scoring import percent_text
from policy.pod_entry import PodEntry, reduce_pod
from serving.log_summary import LogSummary

log = logging.getLogger(__name__)

#: Pods applied between yields to the event loop during a relist (a few milliseconds' work).
SYNC_SLICE = 1000


@dataclass
class FilterOutcome:
    """Filter's verdict: the nodes that passed, and why each other one failed."""

    passed: list[str]
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)


def _name(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("name") or meta.get("generateName") or "")


class ExtenderService:
    """The extender's verbs and watch handlers over one cache and one live policy."""

    def __init__(
        self,
        cache: ClusterCache,
        policy: LivePolicy,
        *,
        binder: Binder | None = None,
        inflight: InFlight | None = None,
        guard: BindGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.policy = policy
        self.binder = binder
        self.clock = clock
        self.inflight = inflight if inflight is not None else InFlight(clock=clock, engaged=binder is not None)
        self.guard = guard if guard is not None else BindGuard(clock=clock)
        #: Whether this replica answers the verbs (leader election makes the others standbys).
        self.leading: Callable[[], bool] = lambda: True
        #: Who leads when this replica does not, for the standby's answer.
        self.leader: Callable[[], str] = lambda: ""
        self.metrics = ExtenderMetrics(cache, policy, self.inflight, self.guard)
        #: Refused binds: the scheduler logs each one; here they are summarised.
        self.refusals = LogSummary(log, "binds refused")
        self.metrics.leading = lambda: self.leading()

    # -- helpers -------------------------------------------------------------
    def _pod(self, pod: Mapping[str, Any]) -> PodEntry:
        entry = reduce_pod(pod)
        if entry.error is not None:
            # The apiserver validated the pod, so only a hand-made request gets here; say what is wrong.
            raise ProtocolError(f"cannot account pod {entry.uid}: {entry.error}")
        # The pod is being scheduled: whatever nodeName a caller put in, it holds no node yet.
        return entry if entry.node is None else entry.unplaced()

    # -- verbs ------------------------------------------------------------------
    async def filter(self, args: ExtenderArgs) -> FilterOutcome:
        """The candidate nodes that pass, and a message for each that fails."""
        entry = self._pod(args.pod)
        uid = entry.uid
        # Only a filter for a live Pending pod of a scheduler served counts (extender.guard): any
        # other may be answered, but must not make real cycles wait or undo what they did.
        identity = await self.guard.admit_filter(uid, args.pod)
        await self.inflight.wait_for_others(uid if identity is not None else None)
        cache = self.cache
        cache.expire(self.clock())
        scorer = self.policy.scorer
        judged = scorer.judged(entry, entry.mesh == "meshfit")
        if identity is not None:
            # Asked again about a pod we bound: that binding failed, it holds no node.
            cache.forget(uid)
            cache.remember(uid, entry, judged)

        passed, failures, unknown = scorer.filter_groups(entry, cache.accounting.nodes, args.names, judged)
        out = FilterOutcome(passed=passed)
        ins = self.metrics
        if unknown:
            ins.unknown_nodes.inc("filter", by=unknown)
        if failures:
            reasons: Counter[str] = Counter()
            for failure, names in failures:
                reasons[failure.reason] += len(names)
            if self.policy.observe_only:
                for reason, count in reasons.items():
                    ins.would_fail.inc(reason, by=count)
                # Observe-only: every node passes, in the order it was asked about.
                out.passed = list(args.names)
            else:
                for reason, count in reasons.items():
                    ins.nodes_failed.inc(reason, by=count)
                for failure, names in failures:
                    # One message object per group: encoding it for the scheduler is once per group too.
                    (out.unresolvable if failure.unresolvable else out.failed).update(
                        dict.fromkeys(names, failure.message))
                if not out.passed:
                    first = failures[0][1][0]
                    detail = scorer.check(entry, cache.accounting.nodes[first])
                    log.info(
                        "pod %s/%s fits no candidate node (%d asked); first: %s: %s",
                        entry.namespace, _name(args.pod), len(args.names), first,
                        detail.message if detail else failures[0][0].message,
                    )
        if out.passed and identity is not None:
            self.inflight.register(uid)
            self.guard.passed(uid, identity, out.passed)
        return out

    def prioritize(self, args: ExtenderArgs) -> list[int]:
        """A 0..10 score per candidate node, in the order asked."""
        entry = self._pod(args.pod)
        scores, unknown = self.policy.scorer.scores(entry, self.cache.accounting.nodes, args.names)
        if unknown:
            self.metrics.unknown_nodes.inc("prioritize", by=unknown)
        return scores

    async def bind(self, args: BindingArgs) -> str:
        """Bind the pod; return the error for the scheduler ('' on success)."""
        self.inflight.bind_seen()
        if self.binder is None:
            self.metrics.binds.inc("error")
            return "this extender serves a snapshot and cannot bind pods"
        refusal = await self.guard.check_bind(args, self._node_known)
        if refusal is not None:
            self.metrics.binds.inc("refused")
            self.refusals.note("%s", refusal)
            return refusal
        uid = args.pod_uid
        now = self.clock()
        self.cache.expire(now)
        counted = self.cache.assume(uid, args.node, now)
        if not counted:
            # Neither the scheduler's request nor the watch showed us this pod: bind it anyway,
            # the watch will count it.
            self.metrics.binds.inc("unknown-pod")
        self.inflight.resolve(uid)
        try:
            await self.binder.bind(args.pod_namespace, args.pod_name, args.pod_uid, args.node)
        except BindError as exc:
            self.cache.forget(uid)
            self.metrics.binds.inc("error")
            log.warning("%s", exc)
            return str(exc)
        self.metrics.binds.inc("ok")
        return ""

    def _node_known(self, name: str) -> bool:
        state = self.cache.nodes.get(name)
        return state is not None and state.known

    # -- watch events -------------------------------------------------------------
    def on_pod_event(self, event: str, pod: PodEntry, pending: PodIdentity | None = None) -> None:
        """One watch event; the feed's watch has reduced the pod already (:func:`~policy.pod_entry.reduce_pod`).

        ``pending`` is who the pod is when the event shows it Pending and unbound (the feed's
        :func:`~extender.guard.pending_identity`); only such pods may have filters that count.
        """
        self.cache.apply(event, pod)
        self.guard.observe(pod.uid, None if event == "DELETED" else pending)
        if event == "DELETED" or pod.settled:
            self.inflight.resolve(pod.uid)

    async def on_pod_sync(
        self,
        pods: Sequence[PodEntry],
        _resource_version: str = "",
        pending: dict[str, PodIdentity] | None = None,
    ) -> None:
        """A (re)list; yields to the event loop now and then so scheduler calls keep being answered."""
        sync = self.cache.pod_sync()
        for i, pod in enumerate(pods):
            sync.add(pod)
            if i % SYNC_SLICE == SYNC_SLICE - 1:
                await asyncio.sleep(0)
        sync.finish()
        self.guard.replace(pending if pending is not None else {})

    def on_node_event(self, event: str, node: dict[str, Any]) -> None:
        """One Node watch event."""
        self.cache.apply_node(event, node)

    def on_node_sync(self, nodes: list[dict[str, Any]], _resource_version: str = "") -> None:
        """A (re)list of Nodes."""
        self.cache.sync_nodes(nodes)

    # -- inspection -------------------------------------------------------------------
    def node_report(self, name: str) -> dict[str, Any] | None:
        """One node's figures for ``/debug/nodes/NAME``, ``None`` when unknown."""
        state = self.cache.nodes.get(name)
        if state is None:
            return None
        report = state.to_dict()
        scheduling = self.policy.policy.scheduling
        if state.known:
            report["exposurePercent"] = {
                "cpu": percent_text(state.exp_cpu, state.alloc_cpu),
                "memory": percent_text(state.exp_memory, state.alloc_memory),
            }
        report["exposureCeiling"] = {r: str(v) for r, v in scheduling.exposure_ceiling.items()}
        report["assumedPods"] = sorted(u for u, (n, _d) in self.cache.assumed.items() if n == name)
        report["policyRevision"] = self.policy.policy.revision
        return report
