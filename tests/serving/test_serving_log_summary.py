"""LogSummary: every occurrence at DEBUG, one WARNING at once, then at most one summary per interval."""

from __future__ import annotations

import logging

from serving.log_summary import LogSummary


def test_a_flood_is_one_warning_then_summaries(caplog) -> None:
    log = logging.getLogger("test.summary")
    caplog.set_level(logging.DEBUG, logger="test.summary")
    clock = [0.0]
    summary = LogSummary(log, "malformed requests", interval=60, clock=lambda: clock[0])
    for i in range(1000):
        clock[0] = i * 0.1  # 1,000 in 100 s
        summary.note("bad body %d", i)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["1 malformed requests (each at debug level); latest: bad body 0",
                        "600 malformed requests in the last 60s (each at debug level); latest: bad body 600"]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 1000
    assert summary.total == 1000


def test_at_the_interval_a_summary_is_due_and_just_before_it_is_not(caplog) -> None:
    log = logging.getLogger("test.summary.edge")
    caplog.set_level(logging.WARNING, logger="test.summary.edge")
    clock = [0.0]
    summary = LogSummary(log, "x", interval=60, clock=lambda: clock[0])
    summary.note("first")
    clock[0] = 59.999
    summary.note("early")
    clock[0] = 60.0
    summary.note("due")
    assert [r.getMessage().rsplit(": ", 1)[-1] for r in caplog.records] == ["first", "due"]


def test_an_exception_is_in_the_summary_only(caplog) -> None:
    log = logging.getLogger("test.summary.exc")
    caplog.set_level(logging.DEBUG, logger="test.summary.exc")
    summary = LogSummary(log, "errors", interval=60, clock=lambda: 0.0)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        summary.note("failed: %s", exc, exc_info=exc)
        summary.note("failed: %s", exc, exc_info=exc)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is not None
