"""Fixtures for the fake kubelet: KWOK's controller beside the session cluster.

Kept here, next to the tests of the control plane itself; the fleet
controller's tests will want the same two fixtures.
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


@pytest.fixture(scope="session")
def kwok_bindir(controlplane_bindir: Path) -> Path:
    """The directory with ``kwok``, built from hack/kwok/go.mod if need be.

    The same skip policy as the control plane's: no binary and no Go skips,
    except under CI=true, where it fails.
    """
    if os.environ.get(binaries.KWOK_BIN_ENV):
        try:
            return binaries.kwok_require()
        except binaries.BinariesMissing as exc:
            pytest.fail(str(exc), pytrace=False)
    if not binaries.go_available():
        if not binaries.kwok_missing():
            return binaries.kwok_bindir()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("kwok is not built and there is no `go` to build it (CI=true)", pytrace=False)
        pytest.skip("kwok is not built and there is no `go`: run `make controlplane`")
    try:
        return binaries.kwok_build()
    except (subprocess.CalledProcessError, binaries.BinariesMissing) as exc:
        pytest.fail(f"building kwok failed: {exc} (see the build output above)", pytrace=False)


@pytest.fixture(scope="session")
def kwok_cluster(local_cluster: LocalCluster, kwok_bindir: Path) -> LocalCluster:
    """The session cluster with the fake kubelet running (it stops with the cluster).

    Tests make their own fake nodes (``create_fake_node`` with a unique name)
    and pin their pods to them; nodes made by ``create_node`` stay kubelet-less.
    """
    local_cluster.start_kwok(kwok_bindir)
    return local_cluster


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
