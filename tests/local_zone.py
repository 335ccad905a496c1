"""The process's local time zone, changed for one test: code that must write UTC is checked off UTC.

The zone is given in POSIX form (``JST-9``: nine hours east of UTC), which needs
no zone database, so the test means the same on a machine without tzdata.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_zone(zone: str = "JST-9") -> Iterator[None]:
    """Run the block with ``TZ=zone``, then restore the zone the process had."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
