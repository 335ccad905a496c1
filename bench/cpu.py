"""CPU time of the processes a benchmark drives, read from /proc.

A ratio says that something got slower; which process spent the CPU says
why. On a 2-core machine every component competes for the same cores, so
the benchmarks report CPU-seconds per process next to their rates.
"""

from __future__ import annotations

import os
from pathlib import Path

from controlplane.cluster import COMPONENTS, LocalCluster


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_pids(cluster: LocalCluster) -> dict[str, int]:
    """The pids of the cluster's etcd, kube-apiserver and kube-scheduler, found by their work dir."""
    marker = str(cluster.workdir)
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not any(marker.encode() in a for a in argv):
            continue
        name = Path(argv[0].decode(errors="replace")).name
        if name in COMPONENTS:
            found[name] = int(entry.name)
    return found


class CpuMeter:
    """CPU-seconds each named process spent between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._start["bench client"] = cpu_seconds(os.getpid())

    def stop(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        now["bench client"] = cpu_seconds(os.getpid())
        return {name: round(now[name] - self._start.get(name, 0.0), 2) for name in now}
