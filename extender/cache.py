"""The cluster as the extender knows it: nodes, pods, and the bindings it made itself.

Fed by whatever delivers Node and Pod dicts: a list+watch (``extender.feed``),
a snapshot file (``extender.snapshot``), or a test. Nothing here does I/O or
reads a clock: callers pass ``now`` (monotonic seconds), so the rules below are
plain functions of the events, testable without a server or a sleep.

**Assumed pods.** kube-scheduler starts the next pod's cycle long before the
watch shows the last binding. When the extender binds a pod itself it counts
the pod on that node at once (:meth:`ClusterCache.assume`), keyed by uid like
every other pod. The watch later *confirms* (the pod shows up bound: the
watched entry replaces the assumed one, the sums do not move if they agree)
or *corrects* (bound elsewhere, deleted, finished). An event that still shows
the pod unbound is older than the binding and does not undo it. An assumption
the watch never confirms expires after ``assume_ttl`` seconds, as
kube-scheduler's own assumed pods do, so a lost binding cannot hold capacity
for ever.

**Relists** (first sync, or after a 410 Gone) replace the pod set: pods absent
from the new list are dropped, except assumed ones, whose binding may simply
be newer than the list.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from extender.accounting import Accounting, NodeState
from policy.pod_entry import PodEntry, reduce_pod
from policy.resources import q

log = logging.getLogger(__name__)

JsonObject = Mapping[str, Any]

DEFAULT_ASSUME_TTL = 30.0
#: Pods seen in filter/prioritize, remembered so a bind can count a pod the watch has not shown yet.
RECENT_PODS = 4096


@dataclass
class CacheStats:
    """Monotonic counters, for metrics."""

    assumed: int = 0
    confirmed: int = 0
    corrected: int = 0
    expired: int = 0
    #: Pods whose ``meshfit.io/accounting`` did not parse (accounted from their spec).
    bad_records: int = 0
    #: Objects skipped because accounting could not read them (no name, bad quantities).
    skipped: int = 0


def node_allocatable(node: JsonObject) -> tuple[int, int]:
    """A Node's allocatable cpu and memory in nano-units (zero when absent or unreadable)."""
    alloc = (node.get("status") or {}).get("allocatable") or {}
    out = []
    for name in ("cpu", "memory"):
        value = alloc.get(name)
        try:
            out.append(q(value).nanos if value is not None else 0)
        except ValueError:
            out.append(0)
    return out[0], out[1]


class ClusterCache:
    """Accounting plus the rules for keeping it true to the cluster."""

    def __init__(self, *, assume_ttl: float = DEFAULT_ASSUME_TTL) -> None:
        self.accounting = Accounting()
        self.assume_ttl = assume_ttl
        #: uid -> (node, deadline), oldest first (one TTL for all keeps deadlines in order).
        self.assumed: OrderedDict[str, tuple[str, float]] = OrderedDict()
        #: uid -> (entry, judged by filter): pods the scheduler asked about lately.
        self.recent: OrderedDict[str, tuple[PodEntry, bool]] = OrderedDict()
        self.stats = CacheStats()
        self.nodes_synced = False
        self.pods_synced = False
        #: Pods already logged as unreadable (bounded): one line per bad object, not per event.
        self._warned: set[str] = set()

    @property
    def nodes(self) -> dict[str, NodeState]:
        """Node states by name."""
        return self.accounting.nodes

    @property
    def synced(self) -> bool:
        """Both initial lists have arrived."""
        return self.nodes_synced and self.pods_synced

    # -- nodes ------------------------------------------------------------------
    def apply_node(self, event: str, node: JsonObject) -> None:
        """One Node watch event."""
        name = (node.get("metadata") or {}).get("name")
        if not isinstance(name, str) or not name:
            self.stats.skipped += 1
            return
        if event == "DELETED":
            self.accounting.drop_node(name)
        else:
            self.accounting.set_node(name, *node_allocatable(node))

    def sync_nodes(self, nodes: Iterable[JsonObject]) -> None:
        """A full list of Nodes: those absent from it are dropped."""
        seen: set[str] = set()
        for node in nodes:
            name = (node.get("metadata") or {}).get("name")
            if isinstance(name, str) and name:
                seen.add(name)
            self.apply_node("ADDED", node)
        for name in [n for n, s in self.accounting.nodes.items() if s.known and n not in seen]:
            self.accounting.drop_node(name)
        self.nodes_synced = True

    # -- pods -------------------------------------------------------------------
    def _admitted(self, entry: PodEntry) -> bool:
        """Whether a watched or listed pod can be counted (the one place an unreadable pod is dealt with)."""
        if entry.error is not None:
            # Quantities no cluster can hold (the apiserver stores "1e1000000"), or a hand-built
            # snapshot: the pod is left out of its node's sums, counted, and logged once per pod.
            if entry.uid not in self._warned:
                if len(self._warned) < 10_000:
                    self._warned.add(entry.uid)
                log.warning("skipping pod %s (not counted on its node): %s", entry.uid, entry.error)
            self.stats.skipped += 1
            return False
        if entry.record_error is not None:
            self.stats.bad_records += 1
        return True

    def apply(self, event: str, entry: PodEntry) -> None:
        """One watch event (``ADDED``, ``MODIFIED``, ``DELETED``) of a pod the watch has reduced."""
        if event == "DELETED":
            self._observe(entry.uid, None)
        elif self._admitted(entry):
            self._observe(entry.uid, None if entry.terminal else entry)

    def apply_pod(self, event: str, pod: JsonObject) -> None:
        """:meth:`apply` for a pod dict (snapshots, tests)."""
        self.apply(event, reduce_pod(pod))

    def sync_pods(self, pods: Iterable[JsonObject]) -> None:
        """A full list of pod dicts: the new truth, except for bindings newer than it."""
        sync = self.pod_sync()
        for pod in pods:
            sync.add(reduce_pod(pod))
        sync.finish()

    def pod_sync(self) -> PodSync:
        """A relist applied piece by piece (so a server can keep answering in between)."""
        return PodSync(self)

    def _observe(self, uid: str, entry: PodEntry | None) -> None:
        assumed = self.assumed.get(uid)
        if assumed is not None:
            if entry is not None and entry.node is None:
                # Older than our binding: keep counting the pod where we bound it.
                return
            del self.assumed[uid]
            if entry is not None and entry.node == assumed[0]:
                self.stats.confirmed += 1
            else:
                self.stats.corrected += 1
        self.accounting.put(uid, entry)

    # -- the scheduler's view -----------------------------------------------------
    def remember(self, uid: str, entry: PodEntry, judged: bool) -> None:
        """A pod being scheduled, as filter/prioritize received it."""
        self.recent[uid] = (entry, judged)
        self.recent.move_to_end(uid)
        while len(self.recent) > RECENT_PODS:
            self.recent.popitem(last=False)

    def pending_entry(self, uid: str) -> PodEntry | None:
        """The unplaced entry of a pod about to be bound: from the scheduler's request, else the watch."""
        recent = self.recent.get(uid)
        if recent is not None:
            return recent[0]
        return self.accounting.get(uid)

    def assume(self, uid: str, node: str, now: float, entry: PodEntry | None = None) -> bool:
        """Count the pod on ``node`` from now on; False when nothing is known about the pod."""
        entry = entry or self.pending_entry(uid)
        if entry is None:
            return False
        self.assumed.pop(uid, None)
        self.assumed[uid] = (node, now + self.assume_ttl)
        self.accounting.put(uid, entry.placed(node))
        self.stats.assumed += 1
        return True

    def forget(self, uid: str) -> None:
        """Undo an assumption (the binding failed, or the scheduler is placing the pod again)."""
        if self.assumed.pop(uid, None) is None:
            return
        entry = self.accounting.get(uid)
        if entry is not None:
            self.accounting.put(uid, entry.unplaced())

    def expire(self, now: float) -> int:
        """Drop assumptions past their deadline; the number dropped."""
        dropped = 0
        while self.assumed:
            uid, (_node, deadline) = next(iter(self.assumed.items()))
            if deadline > now:
                break
            self.forget(uid)
            self.stats.expired += 1
            dropped += 1
        if dropped:
            log.warning("%d assumed binding(s) expired before the watch confirmed them", dropped)
        return dropped

    def place(self, uid: str, entry: PodEntry, node: str) -> None:
        """Count a pod on ``node`` for good (``simulate``'s what-if placements)."""
        self.accounting.put(uid, entry.placed(node))


class PodSync:
    """One relist in progress: pods are updated as they come, the vanished dropped at the end.

    Until :meth:`finish` the cache holds the union of old and new, so a verb
    answered mid-relist errs on the side of counting a pod that is gone.
    """

    def __init__(self, cache: ClusterCache) -> None:
        self.cache = cache
        self.seen: set[str] = set()

    def add(self, entry: PodEntry) -> None:
        """One pod of the new list, as the watch reduced it."""
        cache = self.cache
        if cache._admitted(entry):
            self.seen.add(entry.uid)
            cache._observe(entry.uid, None if entry.terminal else entry)

    def finish(self) -> None:
        """The list is complete: drop the pods it did not hold (but the assumed ones)."""
        cache = self.cache
        seen = self.seen
        for uid in [u for u in cache.accounting.pods if u not in seen and u not in cache.assumed]:
            cache.accounting.put(uid, None)
        cache.pods_synced = True
