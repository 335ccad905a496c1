"""Complaints: one WARNING at once, then at most one summary per interval; every one at DEBUG."""

from __future__ import annotations

import logging

from serving.complaints import Complaints


def test_a_flood_of_complaints_is_one_warning_then_summaries(caplog) -> None:
    log = logging.getLogger("test.complaints")
    caplog.set_level(logging.DEBUG, logger="test.complaints")
    clock = [0.0]
    complaints = Complaints(log, "malformed requests", interval=60, clock=lambda: clock[0])
    for i in range(1000):
        clock[0] = i * 0.1  # 1,000 in 100 s
        complaints.note(f"bad body {i}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("malformed requests: bad body 0")
    assert warnings[1].startswith("600 malformed requests in the last 60s; the last: bad body 600")
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 1000
    assert complaints.total == 1000
