"""A token bucket for client-side rate limiting, as client-go's ``flowcontrol`` gives Go clients.

The Python client has none, and a fleet-wide command must not flood the
apiserver (nor trip its priority-and-fairness limits for everyone else):
``qps`` tokens arrive per second, at most ``burst`` wait unused.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``await bucket.take()`` before each request; waits just long enough for the next token."""

    def __init__(self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be > 0 and burst >= 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a token is available (0 if one is), without taking it."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.qps

    async def take(self) -> None:
        async with self._lock:  # first come, first served: waiting callers queue here
            while True:
                wait = self.delay()
                if wait <= 0:
                    self._tokens -= 1
                    return
                await asyncio.sleep(wait)
