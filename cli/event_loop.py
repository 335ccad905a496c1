"""Run a server's main coroutine on uvloop when it is installed, else on asyncio's loop.

The webhook answers every pod CREATE in a cluster and spends a large share of
each request in the event loop and TLS: uvloop's loop, written in Cython over
libuv, raised the webhook's throughput on loopback by about 40% for pods the
engine injects and nearly doubled it for answers from the answer cache
(bench/README.md). It stays optional (``pip install 'meshfit[speed]'``) since
it is a compiled dependency; ``MESHFIT_EVENT_LOOP=asyncio`` forces the
standard loop, e.g. to compare the two or to rule uvloop out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: ``auto`` (uvloop if installed), ``uvloop`` (required) or ``asyncio``.
ENV = "MESHFIT_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop constructor to use, or ``None`` for asyncio's default."""
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice == "asyncio":
        return None
    if choice not in ("auto", "uvloop"):
        raise ValueError(f"{ENV} must be auto, uvloop or asyncio, got {choice!r}")
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: what :func:`run` would use now, for logs and benchmark reports."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
