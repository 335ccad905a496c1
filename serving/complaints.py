"""Rate-limited warnings for what callers get wrong, so bad input cannot flood the log.

A malformed request or a refused call is the caller's mistake: each one is
logged at DEBUG with its detail, and at WARNING only as a summary, at most
once per ``interval`` (the first at once, so a new problem is seen without
waiting), saying how many there were and what the last one was. Anyone who
can reach a port can send thousands of bad requests a second; the log must
cost the same whether they do or not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds between two WARNING summaries of one kind of complaint.
DEFAULT_INTERVAL = 60.0


class Complaints:
    """One kind of complaint (``what``: "malformed requests"), logged at DEBUG and summarised at WARNING."""

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
        #: Every complaint ever noted.
        self.total = 0
        self._since_summary = 0
        self._last_summary: float | None = None

    def note(self, detail: str) -> None:
        """One complaint: DEBUG now, and a WARNING summary when one is due."""
        self.total += 1
        self._since_summary += 1
        self.logger.debug("%s: %s", self.what, detail)
        now = self.clock()
        if self._last_summary is not None and now - self._last_summary < self.interval:
            return
        if self._last_summary is None:
            self.logger.warning("%s: %s (further ones are summarised at most every %.0fs; details at debug level)",
                                self.what, detail, self.interval)
        else:
            self.logger.warning("%d %s in the last %.0fs; the last: %s",
                                self._since_summary, self.what, now - self._last_summary, detail)
        self._last_summary = now
        self._since_summary = 0
