"""Fixtures for the fake kubelet: KWOK's controller beside the session cluster.

The fixtures themselves (``kwok_bindir``, ``kwok_cluster``) live in
tests/e2e_fixtures.py, shared by every end-to-end test; this adds KWOK's log to
a failed report here.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Generator
from pathlib import Path

import pytest

from controlplane import binaries
from controlplane.cluster import KWOK, LocalCluster

_LOG_LINES = 40


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Attach the kwok controller's log tail to a failed test that used it."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    cluster = getattr(item, "funcargs", {}).get("kwok_cluster")
    if isinstance(cluster, LocalCluster):
        tail = cluster.log_tail(KWOK, _LOG_LINES)
        if tail:
            report.sections.append((f"{KWOK} log, last {_LOG_LINES} lines", tail))
