"""Benchmark 4: the extender at fleet scale, judged against the issue's targets.

    python -m bench.extender_scale [--nodes 10000] [--pods 250000] [--rounds 300] [--quick]

The measuring is done by :mod:`bench.extender_bench`, the extender's own
benchmark (the real ``meshfit extender serve`` building its cache from a
paginated LIST of the fleet served on loopback, then playing kube-scheduler
against it over HTTP with 500 and 5,000 candidate nodes); its full output
stays in ``bench/results/extender.json``. This module runs it and reads the
targets off its figures:

* filter and prioritize p99 (HTTP round trip, the worst of its two pods):
  <= 3 ms at 500 candidate nodes, <= 15 ms at 5,000 (margin under the 5 and
  25 ms that held on one machine and failed on others);
* resident memory of the serving process after the build: <= 256 MB
  (the peak during the LIST is reported beside it);
* initial build, start to ``/readyz``: <= 1.5x its floor measured in the
  same run (:mod:`bench.list_floor`, a bare client paging through the same
  node and pod LISTs and decoding them, from its process's start, just before
  and just after the build): an absolute time says little across machines.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import command
from bench import extender_bench
from bench.report import RESULTS_DIR, Report, write

P99_MS = {500: 3.0, 5000: 15.0}
RSS_MIB = 256 * 1000**2 / 2**20  # 256 MB, in the MiB the extender bench reports
BUILD_X_FLOOR = 1.5


@contextlib.contextmanager
def _raw_results(out_dir: Path) -> Iterator[Path]:
    """Where the extender bench writes its JSON: its own place, unless results go elsewhere."""
    if out_dir.resolve() == RESULTS_DIR.resolve():
        yield extender_bench.RESULTS
        return
    # extender_bench prints its path relative to the checkout, so the file must live inside it.
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RESULTS_DIR, prefix=".extender-") as tmp:
        path = Path(tmp) / "extender.json"
        saved = extender_bench.RESULTS
        extender_bench.RESULTS = path
        try:
            yield path
        finally:
            extender_bench.RESULTS = saved
            if path.exists():
                out_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, out_dir / "extender.json")


def run(nodes: int = 10_000, pods: int = 250_000, rounds: int = 300, out_dir: Path | None = None) -> Report:
    started = time.monotonic()
    out_dir = out_dir or RESULTS_DIR
    report = Report("extender_scale", "Benchmark 4: the extender at fleet scale")
    report.parameters = {"nodes": nodes, "pods": pods, "rounds": rounds, "measured_by": "bench/extender_bench.py"}
    with _raw_results(out_dir) as raw_path:
        argv = sys.argv
        sys.argv = [extender_bench.__file__, "--nodes", str(nodes), "--pods", str(pods), "--rounds", str(rounds)]
        try:
            extender_bench.main()
        finally:
            sys.argv = argv
        raw: dict[str, Any] = json.loads(raw_path.read_text())
    _summarise(report, raw)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def _summarise(report: Report, raw: dict[str, Any]) -> None:
    http = raw["http_round_trip_ms"]
    for label, verbs in http.items():
        for verb in ("filter", "prioritize"):
            s = verbs[verb]
            report.rows.append({"request": label, "verb": verb, "p50 ms": s["p50"], "p90 ms": s["p90"],
                                "p99 ms": s["p99"], "max ms": s["max"]})
    for candidates, limit in P99_MS.items():
        worst = [(v[verb]["p99"], f"{label} {verb}") for label, v in http.items()
                 if label.startswith(f"{candidates} nodes") for verb in ("filter", "prioritize")]
        if not worst:
            continue
        p99, which = max(worst)
        report.target(f"filter/prioritize p99 at {candidates} candidate nodes", f"<= {limit:g} ms", p99, "ms",
                      p99 <= limit, f"worst: {which}")
    build = raw["build"]
    report.target("extender resident memory after the build", "<= 256 MB", build["rss_mib_after"] * 2**20 / 1e6,
                  "MB", build["rss_mib_after"] <= RSS_MIB,
                  f"peak during the LIST {build['peak_rss_mib_during_list'] * 2**20 / 1e6:.0f} MB")
    report.target("initial cache build from a LIST, x a bare paged LIST", f"<= {BUILD_X_FLOOR:g}x floor",
                  build["x_floor"], "x", build["x_floor"] <= BUILD_X_FLOOR,
                  f"{build['seconds_to_ready']:.1f} s to /readyz vs "
                  f"{' / '.join(f'{s:.1f}' for s in build['floor_seconds'])} s for the floor (before / after)")
    report.details["extender_bench"] = raw


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(nodes=200, pods=2000, rounds=10)


def main() -> None:
    command.main(run, QUICK, __doc__, {"nodes": "", "pods": "", "rounds": ""})


if __name__ == "__main__":
    main()
