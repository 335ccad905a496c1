"""Keeping Python's cyclic garbage collector off the scheduling path.

The cache holds a few hundred thousand small objects (one entry per pod).
CPython's full collection walks every tracked object, and with a fleet's
worth in the oldest generation one walk costs 50–100 ms: a scheduling cycle
that happens to trigger it stalls for that long (measured: filter p99 for
5,000 nodes went from 24 ms to 91 ms). The entries hold no reference cycles,
so the collector has nothing to find in them; :func:`settle` moves everything
alive into the permanent generation (``gc.freeze``, constant time), which
full collections skip. Reference counting still frees entries when pods go.
It runs after every (re)list and every :data:`EVERY` watch events after
that, so entries created by the watch do not pile up in the oldest
generation either. The young generations are collected first so that what
gets frozen is what is really alive.
"""

from __future__ import annotations

import gc

#: Watch events between two freezes.
EVERY = 10_000


def settle() -> None:
    """Collect once and freeze what is alive, so the collector stops scanning the cache."""
    gc.collect(1)
    gc.freeze()


class Settler:
    """Counts events and settles every :data:`EVERY` of them."""

    def __init__(self, every: int = EVERY) -> None:
        self.every = every
        self.events = 0

    def tick(self) -> None:
        """One event applied; settle every so many."""
        self.events += 1
        if self.events >= self.every:
            self.events = 0
            settle()
