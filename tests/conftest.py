"""Shared test configuration: the control-plane fixtures and hypothesis profiles.

tests/ is on sys.path here (pytest's rootdir-relative import mode), so shared
fixture modules import by their plain names.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from e2e_fixtures import *  # noqa: F401,F403
from example_budget import MUTATION_EXAMPLES

# Property tests run a fixed, generous number of examples; deadlines are off
# because CI machines are shared and a slow example is not a wrong one.
settings.register_profile("default", max_examples=200, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
# Under mutation testing every mutant reruns the property tests: fewer examples, the same
# fixed ones each time (so a mutant's verdict does not depend on the draw), no example database.
settings.register_profile("mutation", max_examples=MUTATION_EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck))
if os.environ.get("MUTANT_UNDER_TEST"):
    settings.load_profile("mutation")
else:
    settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "default")


# -- which engine the suite runs: `make speed` compiles policy/ modules with mypyc ---------------------
_REPO = Path(__file__).resolve().parents[1]
_SPEED_STAMP = _REPO / "build" / "mypyc" / "sources.json"


def _compiled_engine() -> list[str]:
    """The policy/ modules imported from a compiled extension (``make speed``), by source path."""
    return sorted(f"policy/{p.name.split('.')[0]}.py" for p in (_REPO / "policy").glob("*.so"))


def _stale_engine(compiled: list[str]) -> list[str]:
    """Compiled modules whose source changed since they were built: the test would run old code."""
    try:
        built = json.loads(_SPEED_STAMP.read_text())
    except (OSError, ValueError):
        return compiled
    return [m for m in compiled if built.get(m) != hashlib.sha256((_REPO / m).read_bytes()).hexdigest()]


def pytest_configure(config: pytest.Config) -> None:
    stale = _stale_engine(_compiled_engine())
    if stale:
        raise pytest.UsageError(f"{', '.join(stale)} changed since `make speed` compiled them: "
                                "run `make speed` again, or `make pure` to test the Python modules")


def pytest_report_header(config: pytest.Config) -> str:
    compiled = _compiled_engine()
    if compiled:
        return f"engine: {len(compiled)} policy/ modules compiled with mypyc (make speed; make pure undoes it)"
    return "engine: pure Python (make speed compiles it with mypyc)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under mutation testing, run the fastest tests first.

    mutmut runs each mutant with ``-x`` on the tests that cover it, in no
    particular order; most mutants are killed by some quick test, so running
    those first (by the durations mutmut measured, ``mutmut-stats.json`` in
    its working directory) stops the run at the first failure instead of after
    the slow property tests. Outside mutation testing the order is pytest's.
    """
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    try:
        durations: dict[str, float] = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
