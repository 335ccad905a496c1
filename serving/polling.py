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
from collections.abc import Callable

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
