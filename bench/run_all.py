"""Run every benchmark, one after another, and print the targets of all of them together.

    python -m bench.run_all [--quick] [--only NAME ...]     (``make bench``)

Order: the webhook against its floor first (no control plane running, so the
machine is at its quietest), its memory over many reviews and the engine's
cost against pod size, then the extender at fleet scale, ``meshfit
fleet`` on the same fleet and a SidecarRollout's controller cost, then the three
that start a control plane. Pod creation runs before watch throughput, which
compares itself with pod creation's rate. A benchmark that fails is reported
and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench import (
    admit_size,
    extender_scale,
    fleet,
    pod_create,
    reaccount,
    rollout,
    scheduling,
    watch_throughput,
    webhook_floor,
    webhook_rss,
)
from bench.report import Report, Target, results_dir, targets_table

#: In run order (see the module docstring).
BENCHMARKS: dict[str, ModuleType] = {
    m.__name__.rpartition(".")[2]: m
    for m in (webhook_floor, webhook_rss, admit_size, extender_scale, fleet, rollout, pod_create, scheduling,
              watch_throughput, reaccount)
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the benchmarks run, measures nothing")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default bench/results; build/bench-quick with --quick)")
    args = parser.parse_args()
    started = time.monotonic()
    targets: list[Target] = []
    failed: list[str] = []
    durations: dict[str, float] = {}
    for name, module in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        t = time.monotonic()
        try:
            report: Report = module.run(**(module.QUICK if args.quick else {}),
                                        out_dir=results_dir(args.out, args.quick))
            targets.extend(report.targets)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        durations[name] = time.monotonic() - t
    print("\n== all targets ==")
    print(targets_table(targets))
    print("\n" + ", ".join(f"{n} {s:.0f} s" for n, s in durations.items())
          + f"; total {time.monotonic() - started:.0f} s")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
