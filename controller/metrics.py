"""The controller's ``/metrics``: operations by action and result, their durations, the queue, leadership.

Counters are bumped by the executor as operations end; everything else (queue
depth, pods with a target, watch counters, leadership) is read at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from controller.rollout_plan import PHASES
from serving.exposition import Registry, Sample

log = logging.getLogger(__name__)

PREFIX = "meshfit_controller_"
#: Operation durations (seconds): an image change takes seconds, a recreate minutes.
DURATION_BUCKETS: tuple[float, ...] = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ControllerMetrics:
    """Counters the executor bumps, and gauges over the live parts."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.operations = r.counter(
            PREFIX + "operations_total",
            "Operations ended, by action (in-place, hot, activate, deactivate, restart, resize, recreate) and result "
            "(succeeded, failed, rolled_back, blocked).",
            ("action", "result"),
        )
        self.started = r.counter(PREFIX + "operations_started_total", "Operations started, by action.", ("action",))
        self.duration = r.histogram(
            PREFIX + "operation_duration_seconds", "From an operation's start to its end, by action.",
            DURATION_BUCKETS, ("action",),
        )
        self.conflicts = r.counter(
            PREFIX + "write_conflicts_total",
            "Writes refused because another writer changed the pod first (the pod is read again, never overwritten).",
        )
        self.errors = r.counter(PREFIX + "reconcile_errors_total", "Reconciles that failed on an API error, by status.",
                                ("code",))
        self.rollouts_aborted = r.counter(
            PREFIX + "rollouts_aborted_total",
            "SidecarRollouts whose circuit broke, by the check that broke it (a metric's name, readiness, restarts, "
            "oomKilled, crashLoop, operation, inconclusive, errors) or user (spec.abort).", ("reason",))
        self.rollout_batches = r.counter(PREFIX + "rollout_batches_total",
                                         "SidecarRollout batches ended, by verdict.", ("verdict",))
        self.rollout_batch_duration = r.histogram(
            PREFIX + "rollout_batch_duration_seconds",
            "From a batch's start to its verdict (writes, settling, bake and analysis), by verdict.",
            DURATION_BUCKETS, ("verdict",))
        self.rollout_writes = r.counter(PREFIX + "rollout_target_writes_total",
                                        "Targets written by SidecarRollouts, by kind (upgrade, rollback) and result "
                                        "(written, conflict, error).", ("kind", "result"))
        self.rollout_queries = r.counter(PREFIX + "rollout_queries_total",
                                         "Prometheus queries of rollout analyses, by result (ok, error).", ("result",))
        #: ``(namespace/name, phase)`` of every SidecarRollout known; read at scrape time.
        self.rollout_phases: Callable[[], Iterable[tuple[str, str]]] = lambda: ()
        r.callback(PREFIX + "rollout_phase", "1 for the phase each SidecarRollout is in, 0 for the others.",
                   self._phases, ("rollout", "phase"))
        #: Read at scrape time; set by the process.
        self.queue_depth: Callable[[], int] = lambda: 0
        self.in_flight: Callable[[], int] = lambda: 0
        self.targeted: Callable[[], int] = lambda: 0
        self.leading: Callable[[], bool] = lambda: True
        self.watches: dict[str, Any] = {}
        r.callback(PREFIX + "queue_depth", "Pods waiting for a reconcile.", lambda: [((), self.queue_depth())])
        r.callback(PREFIX + "operations_in_flight", "Reconciles being worked on now.", lambda: [((), self.in_flight())])
        r.callback(PREFIX + "targeted_pods", "Pods that carry a meshfit.io/target.", lambda: [((), self.targeted())])
        r.callback(PREFIX + "leader", "1 while this replica leads and acts, else 0.",
                   lambda: [((), 1 if self.leading() else 0)])
        r.callback(PREFIX + "watch_events_total", "Watch events handled, by resource.", self._watch_events,
                   ("resource",), kind="counter")
        r.callback(PREFIX + "watch_relists_total", "LISTs after the first, by resource.", self._watch_relists,
                   ("resource",), kind="counter")

    def _phases(self) -> Iterable[Sample]:
        return [((name, phase), 1 if phase == current else 0)
                for name, current in self.rollout_phases() for phase in PHASES]

    def failed(self, what: str, key: str, exc: Exception) -> None:
        """Count and log a reconcile that failed; a conflict (another writer first) is counted, not logged."""
        from kube.client import ApiError

        if isinstance(exc, ApiError):
            if exc.status == 409:
                self.conflicts.inc()
                return
            self.errors.inc(str(exc.status))
            log.warning("%s %s: %s", what, key, exc)
        elif isinstance(exc, (OSError, TimeoutError)):
            self.errors.inc("network")
            log.warning("%s %s: %s", what, key, exc)
        else:
            self.errors.inc("internal")
            log.error("%s %s: reconcile failed", what, key, exc_info=exc)

    def _watch_events(self) -> Iterable[Sample]:
        return [((name,), w.stats.events) for name, w in self.watches.items()]

    def _watch_relists(self) -> Iterable[Sample]:
        return [((name,), w.stats.relists) for name, w in self.watches.items()]

    def render(self) -> bytes:
        return self.registry.render()
