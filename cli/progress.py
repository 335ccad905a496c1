"""Progress for long-running commands: a bar on a terminal, plain lines elsewhere (CI logs, pipes).

The bar shows done/total, the rate and the ETA and redraws at most ten times a
second; without a terminal a line is printed every ``every`` seconds and at the
end, so a log shows the run advancing without a line per item.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 every: float = 5.0, enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.every = every
        self.started = time.monotonic()
        self._last = 0.0

    def advance(self, n: int = 1, *, total: int | None = None) -> None:
        self.done += n
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not self.enabled or now - self._last < (0.1 if self.tty else self.every):
            return
        self._last = now
        self._draw(now)

    def _text(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = max(self.total - self.done, 0)
            eta = f", ETA {left / rate:.0f}s" if rate > 0 else ""
            return f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s{eta})"
        return f"{self.label}: {self.done} ({rate:.1f}/s)"

    def _draw(self, now: float) -> None:
        text = self._text(now)
        if self.tty:
            width = 30
            filled = int(width * self.done / self.total) if self.total else 0
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if not self.enabled:
            return
        self._draw(time.monotonic())
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()
