"""The extender's metrics: what an operator watches to trust (or distrust) its verdicts.

Counters the verbs bump are plain attributes; everything that already lives
somewhere else (cache sizes, exposure totals, watch counters, the policy in
force) is read at scrape time, so the verbs pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from extender.cache import ClusterCache
from extender.guard import BindGuard
from extender.inflight import InFlight
from extender.policy_source import LivePolicy
from policy.quantity import NANO
from serving.exposition import Registry, Sample

#: Latency buckets (seconds): the scheduler's cycle budget is milliseconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)


def nanos_text(nanos: int) -> str:
    """An exact decimal for a nano-unit integer (``1500000000`` -> ``1.5``): totals never go through a float."""
    return format((Decimal(nanos) / NANO).normalize(), "f")


class WatchStatsSource(Protocol):
    """What :class:`kube.watch.ListWatch` exposes; a protocol so snapshots need no watch."""

    @property
    def stats(self) -> Any:
        """The watch's counters (:class:`kube.watch.WatchStats`)."""
        ...


PREFIX = "meshfit_extender_"


class ExtenderMetrics:
    """The extender's ``/metrics``: counters the verbs bump, and gauges read from the parts at scrape time."""

    def __init__(self, cache: ClusterCache, policy: LivePolicy, inflight: InFlight, guard: BindGuard) -> None:
        self.cache = cache
        self.policy = policy
        self.inflight = inflight
        self.guard = guard
        #: Whether this replica leads (read at scrape time; always true without leader election).
        self.leading: Any = lambda: True
        #: resource ("nodes", "pods", "policy") -> its ListWatch.
        self.watches: dict[str, WatchStatsSource] = {}
        r = self.registry = Registry()
        self.latency = r.histogram(
            PREFIX + "request_duration_seconds",
            "Time to answer one scheduler call, decoding and encoding included.",
            LATENCY_BUCKETS,
            ("verb",),
        )
        self.requests = r.counter(
            PREFIX + "requests_total", "Scheduler calls answered, by verb and HTTP status.", ("verb", "code"),
        )
        self.nodes_failed = r.counter(
            PREFIX + "nodes_failed_total", "Candidate nodes filtered out, by reason (exposure, fit).", ("reason",),
        )
        self.would_fail = r.counter(
            PREFIX + "nodes_would_fail_total",
            "Candidate nodes observe-only mode let through that filter would have failed, by reason.",
            ("reason",),
        )
        self.unknown_nodes = r.counter(
            PREFIX + "unknown_nodes_total",
            "Candidate nodes not in the cache yet (passed, neutral score), by verb.",
            ("verb",),
        )
        self.binds = r.counter(
            PREFIX + "binds_total", "Bind calls, by result (ok, error, unknown-pod, refused).", ("result",),
        )
        self.standby_answers = r.counter(
            PREFIX + "standby_answers_total",
            "Scheduler calls a standby replica answered with an error instead of a verdict, by verb.",
            ("verb",),
        )
        self.malformed = r.counter(
            PREFIX + "malformed_requests_total", "Scheduler calls answered 400 (malformed body), by verb.", ("verb",),
        )
        self.in_flight = 0
        r.callback(PREFIX + "requests_in_flight", "Scheduler calls being answered now (bodies still arriving included).",
                   lambda: [((), self.in_flight)])
        r.callback(PREFIX + "cache_nodes", "Nodes in the cache (known: the Node object was seen).",
                   self._nodes, ("state",))
        r.callback(PREFIX + "cache_pods", "Pods in the cache: placed on a node, or pending.",
                   self._pods, ("state",))
        r.callback(PREFIX + "assumed_pods", "Pods bound by this extender that the watch has not shown bound yet.",
                   lambda: [((), len(self.cache.assumed))])
        r.callback(PREFIX + "assumptions_total",
                   "Assumed bindings, by outcome (assumed, confirmed, corrected, expired).",
                   self._assumptions, ("outcome",), kind="counter")
        r.callback(PREFIX + "bad_records_total",
                   "Pod events whose meshfit.io/accounting record did not parse (accounted from spec).",
                   lambda: [((), self.cache.stats.bad_records)], kind="counter")
        r.callback(PREFIX + "unreadable_pods_total",
                   "Pod events left out of every node's sums: quantities no cluster can hold (logged once per pod).",
                   lambda: [((), self.cache.stats.skipped)], kind="counter")
        r.callback(PREFIX + "exposure", "Node-level exposure over all nodes, in cores or bytes.",
                   self._exposure, ("resource",))
        r.callback(PREFIX + "leak", "Requests sidecars add beyond what the apps asked for, in cores or bytes.",
                   self._leak, ("resource",))
        r.callback(PREFIX + "watch_restarts_total",
                   "Watches resumed from their last resourceVersion, by resource.",
                   lambda: self._watch("restarts"), ("resource",), kind="counter")
        r.callback(PREFIX + "watch_relists_total",
                   "Full relists after the watch's resourceVersion was gone (410), by resource.",
                   lambda: self._watch("relists"), ("resource",), kind="counter")
        r.callback(PREFIX + "watch_errors_total", "Failed list/watch requests, by resource.",
                   lambda: self._watch("errors"), ("resource",), kind="counter")
        r.callback(PREFIX + "watch_events_total", "Watch events applied, by resource.",
                   lambda: self._watch("events"), ("resource",), kind="counter")
        r.callback(PREFIX + "bind_waits_total",
                   "Filters that waited for an earlier pod's bind, and waits that timed out.",
                   self._waits, ("outcome",), kind="counter")
        r.callback(PREFIX + "policy_info", "The policy in force (value 1), by revision and source.",
                   self._policy, ("revision", "source"))
        r.callback(PREFIX + "policy_updates_total", "Policy updates, by result (loaded, rejected).",
                   self._policy_updates, ("result",), kind="counter")
        r.callback(PREFIX + "observe_only", "1 while the policy's emergency.extenderObserveOnly is set.",
                   lambda: [((), int(self.policy.observe_only))])
        r.callback(PREFIX + "binds_refused_total",
                   "Binds refused by the bind checks, by reason (no-uid, not-filtered, not-that-pod, not-pending, "
                   "node-not-filtered, unknown-node).",
                   lambda: sorted(((k,), v) for k, v in self.guard.refused.items()), ("reason",), kind="counter")
        r.callback(PREFIX + "filters_uncounted_total",
                   "Filters answered that did not count (no in-flight entry, not usable by a bind), by reason.",
                   lambda: sorted(((k,), v) for k, v in self.guard.uncounted.items()), ("reason",), kind="counter")
        r.callback(PREFIX + "pods_in_flight", "Pods a counted filter passed whose bind has not arrived yet.",
                   lambda: [((), len(self.inflight.pending))])
        r.callback(PREFIX + "leader", "1 while this replica leads and answers the scheduler's calls.",
                   lambda: [((), int(bool(self.leading())))])
        r.callback(PREFIX + "ready", "1 once the initial lists are in the cache.",
                   lambda: [((), int(self.cache.synced and self.policy.settled))])

    def render(self) -> bytes:
        """The Prometheus text of every metric."""
        return self.registry.render()

    # -- callbacks ------------------------------------------------------------
    def _nodes(self) -> Iterable[Sample]:
        nodes = self.cache.accounting.nodes
        known = sum(1 for s in nodes.values() if s.known)
        return [(("known",), known), (("referenced",), len(nodes) - known)]

    def _pods(self) -> Iterable[Sample]:
        acc = self.cache.accounting
        placed = acc.totals.placed
        return [(("placed",), placed), (("pending",), len(acc.pods) - placed)]

    def _assumptions(self) -> Iterable[Sample]:
        s = self.cache.stats
        return [(("assumed",), s.assumed), (("confirmed",), s.confirmed),
                (("corrected",), s.corrected), (("expired",), s.expired)]

    def _exposure(self) -> Iterable[Sample]:
        t = self.cache.accounting.totals
        return [(("cpu",), nanos_text(t.exp_cpu)), (("memory",), nanos_text(t.exp_memory))]

    def _leak(self) -> Iterable[Sample]:
        t = self.cache.accounting.totals
        return [(("cpu",), nanos_text(t.leak_cpu)), (("memory",), nanos_text(t.leak_memory))]

    def _watch(self, counter: str) -> Iterable[Sample]:
        return [((name,), getattr(w.stats, counter)) for name, w in sorted(self.watches.items())]

    def _waits(self) -> Iterable[Sample]:
        s = self.inflight.stats
        return [(("waited",), s.waits), (("timed-out",), s.timeouts)]

    def _policy(self) -> Iterable[Sample]:
        p = self.policy
        return [((p.policy.revision, p.source), 1)]

    def _policy_updates(self) -> Iterable[Sample]:
        p = self.policy
        return [(("loaded",), p.loads), (("rejected",), p.rejections)]
