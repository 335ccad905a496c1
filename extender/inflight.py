"""Waiting for the binding of the previous pod before judging the next.

kube-scheduler runs each pod's binding in a goroutine and starts the next
pod's scheduling cycle at once. So the extender's ``bind`` for pod *n* and
its ``filter`` for pod *n+1* race, and when the filter wins it judges nodes
without pod *n* on them: two pods of a burst land on the node that had room
for one, and the exposure ceiling is overshot. Assuming pods at bind time
closes the watch-lag window; this closes the remaining one.

A pod that passed a filter that counts (:mod:`extender.guard`: a live
Pending pod of a scheduler this extender serves) is *in flight* until its bind arrives (or the watch
shows it bound or gone, or the scheduler asks about it again). A filter waits
for every pod that was in flight when it started, bounded by ``timeout``: a
pod that passed this filter and then failed elsewhere in its cycle (another
extender, a Reserve plugin) never binds, and costs the next cycle at most one
``timeout``, once. Filters wait only for pods registered before they started
and nothing waits inside prioritize or bind, so two schedulers sharing the
extender cannot deadlock each other.

Waiting is engaged from the start when the extender can bind (it serves a
cluster), and turns itself off if filters keep timing out while no bind has
ever arrived: an extender deployed without ``bindVerb`` must not make every
cycle wait for binds that never come. It logs why when it does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 0.5
#: Timeouts without a single bind ever seen after which waiting is switched off.
DISENGAGE_AFTER = 3
#: Pods in flight at once; the scheduler itself has one or two (a bind is quick).
MAX_IN_FLIGHT = 64


@dataclass
class InFlightStats:
    """Counters of the waits, for metrics."""

    waits: int = 0
    timeouts: int = 0
    waited_seconds: float = 0.0
    binds: int = 0


class InFlight:
    """The pods filtered but not bound yet, and the filters that wait for their binds."""

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        engaged: bool = True,
        max_entries: int = MAX_IN_FLIGHT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.max_entries = max_entries
        #: Whether filters wait for binds at all.
        self.engaged = engaged and timeout > 0
        self.clock = clock
        #: uid -> deadline after which nobody waits for it any more.
        self.pending: dict[str, float] = {}
        self.stats = InFlightStats()
        self._changed = asyncio.Event()

    def bind_seen(self) -> None:
        """A bind arrived: the scheduler does bind through this extender, so filters wait."""
        self.stats.binds += 1
        if self.timeout > 0:
            self.engaged = True

    def register(self, uid: str) -> None:
        """``uid`` passed filter on some node: its bind is coming."""
        if self.engaged:
            self.pending.pop(uid, None)
            self.pending[uid] = self.clock() + self.timeout
            while len(self.pending) > self.max_entries:
                # The oldest is the likeliest never to bind; filters stop waiting for it.
                del self.pending[next(iter(self.pending))]

    def resolve(self, uid: str) -> None:
        """``uid`` was bound (and assumed), or will not be: stop waiting for it."""
        if self.pending.pop(uid, None) is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_for_others(self, uid: str | None) -> float:
        """Wait until every pod in flight now, except ``uid``, is resolved or timed out.

        Returns the seconds waited. ``uid`` itself being in flight means the
        scheduler is placing it again: its last attempt is over. ``None``: a
        filter that does not count (:mod:`extender.guard`) waits, but ends no
        other pod's flight.
        """
        if uid is not None:
            self.resolve(uid)
        if not self.pending:
            return 0.0
        started = self.clock()
        waiting_for = set(self.pending)
        self.stats.waits += 1
        while True:
            now = self.clock()
            open_deadlines = []
            for u in waiting_for:
                deadline = self.pending.get(u)
                if deadline is None:
                    continue
                if deadline <= now:
                    # Never bound: its cycle failed after our filter. Stop waiting for it, for good.
                    del self.pending[u]
                    self._timed_out()
                else:
                    open_deadlines.append(deadline)
            if not open_deadlines:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), min(open_deadlines) - now)
            except asyncio.TimeoutError:
                pass
        waited = self.clock() - started
        self.stats.waited_seconds += waited
        return waited

    def _timed_out(self) -> None:
        self.stats.timeouts += 1
        if self.engaged and not self.stats.binds and self.stats.timeouts >= DISENGAGE_AFTER:
            self.engaged = False
            self.pending.clear()
            log.warning(
                "%d filters waited %.1fs for binds that never came and no bind was ever received: "
                "is bindVerb configured in the scheduler's extenders entry? Filters no longer wait.",
                self.stats.timeouts, self.timeout,
            )
