"""Session fixtures for end-to-end tests against a real control plane.

Import everything from ``tests/conftest.py``::

    from e2e_fixtures import *  # noqa: F401,F403  (tests/ is on sys.path there)

which brings the fixtures ``controlplane_bindir``, ``local_cluster`` and
``e2e_namespace`` and the hooks that attach component logs to failures.

Why one cluster per session: starting etcd + kube-apiserver + kube-scheduler
takes a few seconds and CI has two cores; tests isolate themselves with their
own namespaces and uniquely named (and labelled) nodes instead.

Skip policy: without the binaries and without Go, e2e tests are skipped with
one line saying how to get Go — except under ``CI=true``, where a missing
control plane is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from controlplane import binaries
from controlplane.cluster import COMPONENTS, ClusterError, LocalCluster

__all__ = [
    "controlplane_bindir",
    "e2e_namespace",
    "kwok_bindir",
    "kwok_cluster",
    "local_cluster",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
]

_NO_GO = (
    "e2e: no control-plane binaries and no `go` on PATH: install Go >= 1.26 "
    "(https://go.dev/dl/) and run `make controlplane` (a few minutes once, then cached); "
    "under CI=true this is a failure"
)
_LOG_LINES = 40
_KEPT_WORKDIR = pytest.StashKey[Path]()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _skip_without_go() -> None:
    pytest.skip(_NO_GO)


@pytest.fixture(scope="session")
def controlplane_bindir() -> Path:
    """The directory with etcd, kube-apiserver and kube-scheduler, built if need be.

    With Go present build.sh always runs: it is a ~20 ms no-op when its stamp
    matches, and rebuilds when go.mod's pins moved since the last build.
    """
    if os.environ.get(binaries.BIN_ENV):
        try:
            return binaries.require()
        except binaries.BinariesMissing as exc:
            pytest.fail(str(exc), pytrace=False)
    if not binaries.go_available():
        if not binaries.missing():
            return binaries.bindir()  # built earlier; cannot check pins without go
        if _in_ci():
            pytest.fail(
                _NO_GO.replace("under CI=true this is a failure", "CI=true: failing"), pytrace=False
            )
        _skip_without_go()
    try:
        return binaries.build()
    except (subprocess.CalledProcessError, binaries.BinariesMissing) as exc:
        pytest.fail(
            f"building the control plane failed: {exc} (see the build output above)", pytrace=False
        )


@pytest.fixture(scope="session")
def local_cluster(
    controlplane_bindir: Path, request: pytest.FixtureRequest
) -> Iterator[LocalCluster]:
    """One etcd + kube-apiserver + kube-scheduler for the whole session.

    Tests that change the scheduler's extenders must restore them (use
    ``local_cluster.scheduler_extenders(...)`` as a context manager). If any
    test using the cluster failed, its work dir (logs, etcd data) is kept and
    named in the terminal summary.
    """
    cluster = LocalCluster(bindir=controlplane_bindir)
    try:
        cluster.start()
    except ClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        failed = request.session.stash.get(_FAILED_E2E, [])
        if failed:
            cluster.keep_workdir = True
            request.config.stash[_KEPT_WORKDIR] = cluster.workdir
        cluster.stop()


@pytest.fixture
def e2e_namespace(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace (with its ``default`` ServiceAccount) for one test.

    Not deleted afterwards: with no controller-manager a deleted namespace
    stays Terminating forever, and the cluster dies with the session anyway.
    """
    base = request.node.name.lower().replace("_", "-")
    name = f"{''.join(c for c in base if c.isalnum() or c == '-')[:40].strip('-')}-{uuid.uuid4().hex[:6]}"
    local_cluster.create_namespace(name, {"meshfit.io/e2e-test": "true"})
    return name


# ----------------------------------------------------------------- reporting

_FAILED_E2E = pytest.StashKey[list[str]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Attach each component's log tail to the report of a failed e2e test.

    The tail is taken at the moment of failure, so it shows what the
    apiserver or scheduler said about *this* test, right under its traceback.
    """
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and _NO_GO in str(report.longrepr[2]):
        # pytest reports a fixture's skip at each test's own line, so `-ra`
        # would repeat the same advice once per e2e test; one place folds
        # them into a single summary line.
        report.longrepr = (__file__, _skip_without_go.__code__.co_firstlineno, report.longrepr[2])
        return
    if not report.failed or "local_cluster" not in getattr(item, "fixturenames", ()):
        return
    item.session.stash.setdefault(_FAILED_E2E, []).append(item.nodeid)
    cluster = getattr(item, "funcargs", {}).get("local_cluster")
    if not isinstance(cluster, LocalCluster):
        return
    for name in COMPONENTS:
        tail = cluster.log_tail(name, _LOG_LINES)
        if tail:
            report.sections.append((f"{name} log, last {_LOG_LINES} lines", tail))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the failed session's cluster logs were kept."""
    workdir = terminalreporter.config.stash.get(_KEPT_WORKDIR, None)
    if workdir is not None:
        terminalreporter.write_line(
            f"e2e: cluster work dir kept for inspection (logs, etcd data): {workdir}", yellow=True
        )


# ------------------------------------------------------------------- KWOK

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
