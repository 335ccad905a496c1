"""Per-request trouble a client can cause logs at DEBUG, and at most one WARNING a minute sums it up.

An aborted upload or a pod the engine cannot handle is the sender's business,
and anyone who can reach a server can send a thousand a second: a WARNING (or
a traceback) per request would let them flood the logs and bury what matters.
So each occurrence logs at DEBUG, and :class:`LogSummary` says, once per
``interval`` at most, how many there were and what the latest one was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two summaries of one kind.
DEFAULT_INTERVAL = 60.0


class LogSummary:
    """Counts one kind of occurrence and logs a WARNING summary at most once per ``interval``."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval = interval
        self.clock = clock
        #: Occurrences since start, summarised or not.
        self.total = 0
        self._pending = 0
        self._last: float | None = None

    def note(self, message: str, *args: object, exc_info: BaseException | None = None) -> None:
        """Log one occurrence at DEBUG; the first of a window (and then one per window) also as the summary.

        ``exc_info`` (an unexpected exception) is logged with its traceback in
        the summary only, so a flood of one bug costs one traceback a minute.
        """
        self.total += 1
        self._pending += 1
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug(message, *args, exc_info=exc_info)
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return
        count, self._pending = self._pending, 0
        window = "" if self._last is None else f" in the last {now - self._last:.0f}s"
        self._last = now
        self.logger.warning(
            "%d %s%s (each at debug level); latest: " + message, count, self.what, window, *args, exc_info=exc_info
        )
