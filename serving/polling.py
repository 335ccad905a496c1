"""Following a file by polling it, until told to stop.

Mounted ConfigMaps and Secrets change by a symlink swap that inotify-style
watches miss more often than not, so the servers re-read what they follow
(the policy file, the serving certificate) every few seconds instead. A
check that raises is a bug, but a reload loop that dies of it would leave the
server on stale data until the next restart, noticed only when the file it
should have followed changes: the bug is logged and polling goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def poll(check: Callable[[], object], interval: float, stop: asyncio.Event, what: str) -> None:
    """Call ``check`` every ``interval`` seconds until ``stop`` is set; return as soon as it is.

    A ``check`` that returns an awaitable (a coroutine function) is awaited.
    """
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        try:
            result = check()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s failed", what)


class Periodic:
    """A loop that runs ``step`` every ``interval`` seconds while ``leading()``, or at once when woken.

    A leader's background work (inspections, the runtime parameters) is due both on
    a clock and on news (a policy change, a flipped switch, a test): :meth:`wake`
    runs it now instead of waiting out the interval. A step that fails on the
    cluster is logged and tried at the next turn; the loop ends only on ``stop``.
    """

    def __init__(self, what: str, interval: float, leading: Callable[[], bool] = lambda: True) -> None:
        self.what = what
        self.interval = interval
        self.leading = leading
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, step: Callable[[], Awaitable[object]], stop: asyncio.Event,
                  errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)) -> None:
        while not stop.is_set():
            self._wake.clear()
            if self.leading():
                try:
                    await step()
                except errors as exc:
                    log.warning("%s failed: %s; next in %.0fs", self.what, exc, self.interval)
            waiter = asyncio.create_task(self._wake.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=self.interval, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
