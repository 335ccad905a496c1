"""The benchmarks' shared command line: a --quick run never writes bench/results/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bench import command
from bench.report import QUICK_RESULTS_DIR, RESULTS_DIR, results_dir


SEEN: list[dict[str, Any]] = []


def run(size: int = 100, out_dir: Path | None = None) -> None:
    SEEN.append({"size": size, "out_dir": out_dir})


@pytest.mark.parametrize(("argv", "size", "out"), [
    ([], 100, None),                                  # a measurement: bench/results (run()'s default)
    (["--quick"], 1, QUICK_RESULTS_DIR),              # a smoke run: never the committed results
    (["--quick", "--out", "/tmp/x"], 1, Path("/tmp/x")),
    (["--size", "7", "--out", "/tmp/y"], 7, Path("/tmp/y")),
])
def test_where_results_go(monkeypatch: pytest.MonkeyPatch, argv: list[str], size: int, out: Path | None) -> None:
    SEEN.clear()
    monkeypatch.setattr(sys, "argv", ["bench", *argv])
    command.main(run, {"size": 1}, "doc", {"size": "how many"})
    assert SEEN == [{"size": size, "out_dir": out}]


def test_quick_results_are_outside_the_committed_ones() -> None:
    assert results_dir(None, True) == QUICK_RESULTS_DIR
    assert results_dir(None, False) is None
    assert RESULTS_DIR not in QUICK_RESULTS_DIR.parents and QUICK_RESULTS_DIR != RESULTS_DIR
