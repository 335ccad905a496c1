"""Retries with exponential backoff for apiserver calls that may succeed on a second try.

429 (throttled, honouring ``Retry-After``), 5xx and transport errors are
retried; everything else — 404, 422, and 409, which means another writer won
and the caller must re-read rather than repeat — is raised at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

from kube.client import ApiError

T = TypeVar("T")

RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def retriable(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status in RETRIABLE_STATUS
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError)


def backoff(attempt: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))


async def with_retries(call: Callable[[], Awaitable[T]], *, attempts: int = 6, base: float = 0.2,
                       cap: float = 10.0, on_retry: Callable[[BaseException], None] | None = None) -> T:
    """``await call()``, again after a backoff while it fails retriably, at most ``attempts`` times."""
    for attempt in range(attempts):
        try:
            return await call()
        except Exception as exc:
            if attempt == attempts - 1 or not retriable(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            wait = backoff(attempt, base=base, cap=cap)
            if isinstance(exc, ApiError) and exc.retry_after is not None:
                wait = max(wait, min(cap, exc.retry_after))
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
