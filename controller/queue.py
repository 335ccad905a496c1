"""A work queue of pod keys: each key once, one worker per key, per-key backoff, delayed re-adds.

client-go's ``workqueue`` semantics, on asyncio:

* a key added while it is already queued is queued once (a burst of watch
  events for one pod is one reconcile);
* a key added while a worker holds it is marked **dirty** and queued again when
  that worker is done, never handed to a second worker at the same time (one
  operation per pod at a time);
* :meth:`retry` re-adds a key after a per-key exponential backoff (a conflict,
  an apiserver error), :meth:`forget` resets it once the key succeeds;
* :meth:`add_after` re-adds a key at a time (a timeout to judge, when no watch
  event would come).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """Per-key exponential backoff: ``base * 2**failures``, capped."""

    base: float = 0.05
    cap: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * float(2 ** min(failures, 32))))


@dataclass
class WorkQueue:
    """Keys to reconcile (see the module docstring)."""

    backoff: RetryBackoff = field(default_factory=RetryBackoff)
    clock: Callable[[], float] = time.monotonic
    _queue: list[str] = field(default_factory=list)
    _queued: set[str] = field(default_factory=set)
    _processing: set[str] = field(default_factory=set)
    _dirty: set[str] = field(default_factory=set)
    _failures: dict[str, int] = field(default_factory=dict)
    _later: list[tuple[float, int, str]] = field(default_factory=list)
    _seq: int = 0
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _shut: bool = False

    def __len__(self) -> int:
        """Keys waiting to be handed out (the queue depth metric)."""
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    @property
    def delayed(self) -> int:
        return len(self._later)

    def add(self, key: str) -> None:
        """Queue ``key`` unless it is queued already; a key being processed is queued again after."""
        if self._shut:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` in ``delay`` seconds (at once when ``delay <= 0``)."""
        if delay <= 0:
            self.add(key)
            return
        self._seq += 1
        heapq.heappush(self._later, (self.clock() + delay, self._seq, key))
        self._ready.set()

    def retry(self, key: str) -> float:
        """Queue ``key`` again after its backoff; returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = self.backoff.delay(failures)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """``key`` succeeded: its next failure starts the backoff afresh."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def _promote(self) -> float | None:
        """Move due delayed keys onto the queue; seconds until the next one is due."""
        now = self.clock()
        while self._later and self._later[0][0] <= now:
            _, _, key = heapq.heappop(self._later)
            self.add(key)
        return self._later[0][0] - now if self._later else None

    async def get(self) -> str | None:
        """The next key to work on (``None`` once shut down); call :meth:`done` with it after."""
        while True:
            wait = self._promote()
            if self._shut:
                return None
            if self._queue:
                key = self._queue.pop(0)
                self._queued.discard(key)
                self._processing.add(key)
                return key
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                pass

    def done(self, key: str) -> None:
        """The worker is done with ``key``; it is queued again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shut_down(self) -> None:
        """Hand out no more keys; waiting workers get ``None``."""
        self._shut = True
        self._ready.set()

    async def drain(self, reconcile: Callable[[str], Awaitable[object]],
                    on_error: Callable[[str, Exception], None]) -> None:
        """One worker until shut down: each key to ``reconcile``; a failure to ``on_error``, then a retry.

        Whatever fails (an API error, the network, a bug) must not stop the
        worker: the key is tried again after its backoff.
        """
        while True:
            key = await self.get()
            if key is None:
                return
            try:
                await reconcile(key)
            except Exception as exc:  # noqa: BLE001  - see the docstring
                on_error(key, exc)
                self.retry(key)
            finally:
                self.done(key)

