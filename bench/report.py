"""The one results format every benchmark writes: a table on stdout, JSON on disk.

A figure without the machine and versions that produced it cannot be
compared with the next one, so every JSON file carries them, and the date.
Targets are recorded with the measured value and whether they are met, so
the README's table and a regression check read the same file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
#: Where smoke runs (``--quick``) write: their figures measure nothing, so they
#: must never replace the committed results.
QUICK_RESULTS_DIR = REPO / "build" / "bench-quick"


def results_dir(out: Path | None, quick: bool) -> Path | None:
    """``--out`` if given; a ``--quick`` run without it goes to build/bench-quick."""
    return out if out is not None else QUICK_RESULTS_DIR if quick else None


@dataclass(frozen=True)
class Target:
    """One target of the performance issue and how this run did against it."""

    name: str
    #: What the issue asks, as people write it: ``>= 0.6x floor``, ``<= 5 ms``.
    goal: str
    measured: float
    unit: str
    met: bool
    note: str = ""


@dataclass
class Report:
    """Everything one benchmark run produced."""

    name: str
    title: str
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Table rows: each a mapping of column to value, in column order.
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    #: Anything else worth keeping (raw samples, per-round figures).
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def target(self, name: str, goal: str, measured: float, unit: str, met: bool, note: str = "") -> Target:
        t = Target(name, goal, round(measured, 3), unit, met, note)
        self.targets.append(t)
        return t

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "title": self.title,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 1),
            "machine": machine(),
            "versions": versions(),
            "parameters": self.parameters,
            "targets": [asdict(t) for t in self.targets],
            "rows": self.rows,
            "notes": self.notes,
            "details": self.details,
        }


def machine() -> dict[str, Any]:
    """CPU, memory and load: what a reader needs to weigh the figures."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return info


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("meshfit", "aiohttp", "orjson", "uvloop"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        out["commit"] = commit + ("+dirty" if dirty else "") if commit else None
    except (OSError, subprocess.SubprocessError):
        out["commit"] = None
    from cli.event_loop import loop_name

    out["event_loop"] = loop_name()
    return out


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain text table; columns are the union of the rows' keys, in first-seen order."""
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: Iterable[str]) -> str:
        return "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return "\n".join([line(columns), line("-" * w for w in widths), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def targets_table(targets: Sequence[Target]) -> str:
    return table([
        {"target": t.name, "goal": t.goal, "measured": f"{_cell(t.measured)} {t.unit}".strip(),
         "met": "yes" if t.met else "NO", "note": t.note}
        for t in targets
    ])


def write(report: Report, out_dir: Path | None = None) -> Path:
    """Print the report and write ``<out_dir>/<name>.json``; returns the path."""
    out_dir = out_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{report.name}.json"
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(f"\n== {report.title} ({report.seconds:.0f} s) ==")
    if report.rows:
        print(table(report.rows))
    if report.targets:
        print()
        print(targets_table(report.targets))
    for note in report.notes:
        print(f"note: {note}")
    print(f"-> {_display(path)}")
    sys.stdout.flush()
    return path


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)
