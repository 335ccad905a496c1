"""The extender's metrics: what an operator watches to trust (or distrust) its verdicts.

Counters the verbs bump are plain attributes; everything that already lives
somewhere else (cache sizes, exposure totals, watch counters, the policy in
force) is read at scrape time, so the verbs pay nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from extender.metrics import CallbackCounter, Counter, Gauge, Histogram, Registry, Sample, nanos_text

if TYPE_CHECKING:
    from extender.service import ExtenderService


class WatchStatsSource(Protocol):
    """What :class:`kube.watch.ListWatch` exposes; a protocol so snapshots need no watch."""

    @property
    def stats(self) -> Any: ...


PREFIX = "meshfit_extender_"


class Instruments:
    def __init__(self, service: ExtenderService) -> None:
        self.service = service
        #: resource ("nodes", "pods", "policy") -> its ListWatch.
        self.watches: dict[str, WatchStatsSource] = {}
        r = self.registry = Registry()
        self.latency = r.add(Histogram(
            PREFIX + "request_duration_seconds",
            "Time to answer one scheduler call, decoding and encoding included.",
            ("verb",),
        ))
        self.requests = r.add(Counter(
            PREFIX + "requests_total", "Scheduler calls answered, by verb and HTTP status.", ("verb", "code"),
        ))
        self.nodes_failed = r.add(Counter(
            PREFIX + "nodes_failed_total", "Candidate nodes filtered out, by reason (exposure, fit).", ("reason",),
        ))
        self.would_fail = r.add(Counter(
            PREFIX + "nodes_would_fail_total",
            "Candidate nodes observe-only mode let through that filter would have failed, by reason.",
            ("reason",),
        ))
        self.unknown_nodes = r.add(Counter(
            PREFIX + "unknown_nodes_total",
            "Candidate nodes not in the cache yet (passed, neutral score), by verb.",
            ("verb",),
        ))
        self.binds = r.add(Counter(
            PREFIX + "binds_total", "Bind calls, by result (ok, error, unknown-pod).", ("result",),
        ))
        r.add(Gauge(PREFIX + "cache_nodes", "Nodes in the cache (known: the Node object was seen).",
                    ("state",), callback=self._nodes))
        r.add(Gauge(PREFIX + "cache_pods", "Pods in the cache: placed on a node, or pending.",
                    ("state",), callback=self._pods))
        r.add(Gauge(PREFIX + "assumed_pods", "Pods bound by this extender that the watch has not shown bound yet.",
                    callback=lambda: [((), len(self.service.cache.assumed))]))
        r.add(CallbackCounter(PREFIX + "assumptions_total",
                              "Assumed bindings, by outcome (assumed, confirmed, corrected, expired).",
                              ("outcome",), callback=self._assumptions))
        r.add(CallbackCounter(PREFIX + "bad_records_total",
                              "Pod events whose meshfit.io/accounting record did not parse (accounted from spec).",
                              callback=lambda: [((), self.service.cache.stats.bad_records)]))
        r.add(Gauge(PREFIX + "exposure", "Node-level exposure over all nodes, in cores or bytes.",
                    ("resource",), callback=self._exposure))
        r.add(Gauge(PREFIX + "leak", "Requests sidecars add beyond what the apps asked for, in cores or bytes.",
                    ("resource",), callback=self._leak))
        r.add(CallbackCounter(PREFIX + "watch_restarts_total",
                              "Watches resumed from their last resourceVersion, by resource.",
                              ("resource",), callback=lambda: self._watch("restarts")))
        r.add(CallbackCounter(PREFIX + "watch_relists_total",
                              "Full relists after the watch's resourceVersion was gone (410), by resource.",
                              ("resource",), callback=lambda: self._watch("relists")))
        r.add(CallbackCounter(PREFIX + "watch_errors_total", "Failed list/watch requests, by resource.",
                              ("resource",), callback=lambda: self._watch("errors")))
        r.add(CallbackCounter(PREFIX + "watch_events_total", "Watch events applied, by resource.",
                              ("resource",), callback=lambda: self._watch("events")))
        r.add(CallbackCounter(PREFIX + "bind_waits_total",
                              "Filters that waited for an earlier pod's bind, and waits that timed out.",
                              ("outcome",), callback=self._waits))
        r.add(Gauge(PREFIX + "policy_info", "The policy in force (value 1), by revision and source.",
                    ("revision", "source"), callback=self._policy))
        r.add(CallbackCounter(PREFIX + "policy_updates_total", "Policy updates, by result (loaded, rejected).",
                              ("result",), callback=self._policy_updates))
        r.add(Gauge(PREFIX + "observe_only", "1 while the policy's emergency.extenderObserveOnly is set.",
                    callback=lambda: [((), int(self.service.policy.observe_only))]))
        r.add(Gauge(PREFIX + "ready", "1 once the initial lists are in the cache.",
                    callback=lambda: [((), int(self.service.cache.synced and self.service.policy.settled))]))

    def render(self) -> str:
        return self.registry.render()

    # -- callbacks ------------------------------------------------------------
    def _nodes(self) -> Iterable[Sample]:
        nodes = self.service.cache.accounting.nodes
        known = sum(1 for s in nodes.values() if s.known)
        return [(("known",), known), (("referenced",), len(nodes) - known)]

    def _pods(self) -> Iterable[Sample]:
        acc = self.service.cache.accounting
        placed = acc.totals.placed
        return [(("placed",), placed), (("pending",), len(acc.pods) - placed)]

    def _assumptions(self) -> Iterable[Sample]:
        s = self.service.cache.stats
        return [(("assumed",), s.assumed), (("confirmed",), s.confirmed),
                (("corrected",), s.corrected), (("expired",), s.expired)]

    def _exposure(self) -> Iterable[Sample]:
        t = self.service.cache.accounting.totals
        return [(("cpu",), nanos_text(t.exp_cpu)), (("memory",), nanos_text(t.exp_memory))]

    def _leak(self) -> Iterable[Sample]:
        t = self.service.cache.accounting.totals
        return [(("cpu",), nanos_text(t.leak_cpu)), (("memory",), nanos_text(t.leak_memory))]

    def _watch(self, counter: str) -> Iterable[Sample]:
        return [((name,), getattr(w.stats, counter)) for name, w in sorted(self.watches.items())]

    def _waits(self) -> Iterable[Sample]:
        s = self.service.inflight.stats
        return [(("waited",), s.waits), (("timed-out",), s.timeouts)]

    def _policy(self) -> Iterable[Sample]:
        p = self.service.policy
        return [((p.policy.revision, p.source), 1)]

    def _policy_updates(self) -> Iterable[Sample]:
        s = self.service.policy.stats
        return [(("loaded",), s.loads), (("rejected",), s.rejected)]
