"""Benchmark 1: the webhook against the TLS floor, on one core each, same client.

    python -m bench.webhook_floor [--rounds 3] [--seconds 3] [--quick]

Two servers run side by side, both pinned to the same CPU: the floor
(:mod:`bench.floor_server`, aiohttp answering a constant tiny review) and
``meshfit webhook serve`` with the shipped policy. The Go load generator
(hack/loadgen), pinned to the other CPU, drives them in turn, round after
round, so both sides see the same noise:

* throughput, closed loop at 8 connections, for the typical pod, a 64 KB pod
  and a pod with 1,500 env vars, every request a distinct pod (own name, uid,
  label) so the answer cache cannot answer; and the typical pod repeated, where
  it can (reported apart, never used for a target);
* latency, open loop at 200 requests/s, for the same three shapes.

The throughput ratio is taken per round (meshfit over the floor of that
round) and the median round reported. The webhook's own metrics confirm the
cache missed on every distinct pod.
"""

from __future__ import annotations

import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import command
from bench import loadgen
from bench.pods import SHAPES, distinct, review
from bench.report import REPO, Report, write
from controlplane.meshfit_servers import MeshfitServer, generate_certs, meshfit_argv, metric_value
from controlplane.ports import LOOPBACK, free_port

POLICY = REPO / "manifests" / "policy.yaml"

#: Targets of the issue.
RATIO_TARGET = 0.5
TYPICAL_P99_MS = 5.0
LARGE_P99_MS = 20.0
RATE = 200.0


def pinning() -> tuple[str | None, str | None]:
    """(server CPUs, client CPUs): one core each when there are two, else no pinning."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return "1", "0"
    return None, None


def write_bodies(directory: Path, shape: str, count: int, *, same: bool) -> Path:
    """``count`` reviews of ``shape``, one per line: distinct pods, or one pod repeated."""
    base = SHAPES[shape]()
    path = directory / f"{shape}-{'same' if same else 'distinct'}.jsonl"
    with path.open("wb") as out:
        for i in range(count):
            out.write(orjson.dumps(review(base if same else distinct(base, i))) + b"\n")
    return path


def start(name: str, workdir: Path, argv: list[str], port: int, cert_dir: Path, cpus: str | None) -> MeshfitServer:
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    # The children import bench/ from the checkout, which is not an installed package.
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(REPO) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), *paths]))
    server = MeshfitServer(name, workdir, argv, f"https://{LOOPBACK}:{port}",
                           ssl.create_default_context(cafile=str(cert_dir / "ca.crt")))
    server.start(60)
    return server


def cache_lookups(server: MeshfitServer) -> tuple[float, float]:
    text = server.get("/metrics")[1]
    hits = metric_value(text, "meshfit_webhook_answer_cache_lookups_total", {"result": "hit"}) or 0.0
    misses = metric_value(text, "meshfit_webhook_answer_cache_lookups_total", {"result": "miss"}) or 0.0
    return hits, misses


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(rounds: int = 3, seconds: float = 3.0, distinct_pods: int = 2000, rate_seconds: float = 5.0,
        out_dir: Path | None = None, log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    server_cpus, client_cpus = pinning()
    report = Report("webhook_floor", "Benchmark 1: webhook vs the aiohttp TLS floor")
    report.parameters = {
        "rounds": rounds, "seconds_per_measurement": seconds, "concurrency": 8, "distinct_pods": distinct_pods,
        "open_loop_rate": RATE, "open_loop_seconds": rate_seconds, "server_cpus": server_cpus,
        "client_cpus": client_cpus, "client": "hack/loadgen (Go net/http, HTTP/1.1, GOMAXPROCS=1)",
        "policy": "manifests/policy.yaml",
    }
    with tempfile.TemporaryDirectory(prefix="meshfit-bench-") as tmp:
        work = Path(tmp)
        cert_dir = work / "certs"
        generate_certs(cert_dir)
        log("webhook_floor: writing request bodies ...")
        bodies = {
            ("typical", "distinct"): write_bodies(work, "typical", distinct_pods, same=False),
            ("typical", "same"): write_bodies(work, "typical", 64, same=True),
            # More distinct pods than the cache holds (512), sent in turn: an LRU never hits.
            ("64KB", "distinct"): write_bodies(work, "64KB", min(distinct_pods, 1000), same=False),
            ("1500-env", "distinct"): write_bodies(work, "1500-env", min(distinct_pods, 1000), same=False),
        }
        loadgen.binary()  # build before any timing
        floor_port, meshfit_port = free_port(), free_port()
        floor = start("floor", work, [sys.executable, "-m", "bench.floor_server", "--cert-dir", str(cert_dir),
                                      "--port", str(floor_port)], floor_port, cert_dir, server_cpus)
        meshfit = start("webhook", work, meshfit_argv("webhook", "serve", "--cert-dir", str(cert_dir), "--port",
                                                      str(meshfit_port), "--policy", str(POLICY), "--log-level",
                                                      "warning"), meshfit_port, cert_dir, server_cpus)
        try:
            results = _measure(rounds, seconds, rate_seconds, bodies, floor, meshfit, cert_dir, client_cpus, log)
        finally:
            meshfit.stop()
            floor.stop()
    _summarise(report, results)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


Scenario = tuple[str, str, str, float]  # (server, shape, bodies, rate)

THROUGHPUT: list[Scenario] = [
    ("floor", "typical", "distinct", 0.0),
    ("meshfit", "typical", "distinct", 0.0),
    ("meshfit", "typical", "same", 0.0),
    ("floor", "64KB", "distinct", 0.0),
    ("meshfit", "64KB", "distinct", 0.0),
    ("floor", "1500-env", "distinct", 0.0),
    ("meshfit", "1500-env", "distinct", 0.0),
]
LATENCY: list[Scenario] = [
    ("floor", "typical", "distinct", RATE),
    ("meshfit", "typical", "distinct", RATE),
    ("meshfit", "64KB", "distinct", RATE),
    ("meshfit", "1500-env", "distinct", RATE),
]


def _measure(rounds: int, seconds: float, rate_seconds: float, bodies: dict[tuple[str, str], Path],
             floor: MeshfitServer, meshfit: MeshfitServer, cert_dir: Path, client_cpus: str | None,
             log: Callable[[str], None]) -> dict[Scenario, list[dict[str, Any]]]:
    servers = {"floor": floor, "meshfit": meshfit}
    results: dict[Scenario, list[dict[str, Any]]] = {s: [] for s in THROUGHPUT + LATENCY}
    for r in range(rounds):
        for scenario in THROUGHPUT + LATENCY:
            server, shape, kind, rate = scenario
            before = cache_lookups(meshfit)
            load = loadgen.Load(
                url=servers[server].url + "/mutate", bodies=bodies[(shape, kind)], cacert=cert_dir / "ca.crt",
                seconds=rate_seconds if rate else seconds, rate=rate,
                expect='"patch"' if server == "meshfit" else '"allowed":true',
            )
            out = loadgen.run(load, cpus=client_cpus)
            after = cache_lookups(meshfit)
            out["cache_hits"] = after[0] - before[0]
            out["cache_misses"] = after[1] - before[1]
            if out["errors"]:
                raise RuntimeError(f"{scenario}: {out['errors']} errors, first: {out.get('first_error')}")
            results[scenario].append(out)
            log(f"  round {r + 1}/{rounds} {server:7} {shape:8} {kind:8} "
                f"{'%.0f/s open loop' % rate if rate else 'closed loop':16} {out['rps']:8.0f} req/s  "
                f"p50 {out['latency_ms'].get('p50', 0):6.2f} ms  p99 {out['latency_ms'].get('p99', 0):6.2f} ms"
                + (f"  cache hits {out['cache_hits']:.0f}" if server == "meshfit" else ""))
    return results


def _summarise(report: Report, results: dict[Scenario, list[dict[str, Any]]]) -> None:
    def rps(scenario: Scenario) -> list[float]:
        return [o["rps"] for o in results[scenario]]

    def pct(scenario: Scenario, q: str) -> float:
        return median([o["latency_ms"].get(q, float("nan")) for o in results[scenario]])

    floor_by_shape = {shape: rps(("floor", shape, "distinct", 0.0)) for shape in SHAPES}
    for scenario in THROUGHPUT + LATENCY:
        server, shape, kind, rate = scenario
        row: dict[str, Any] = {
            "server": server, "pod": shape,
            "pods": "one repeated (cache)" if kind == "same" else "distinct",
            "load": f"{rate:.0f}/s" if rate else "closed, c=8",
            "req/s": median(rps(scenario)),
            "p50 ms": pct(scenario, "p50"), "p99 ms": pct(scenario, "p99"),
        }
        if server == "meshfit" and not rate:
            ratios = [m / f for m, f in zip(rps(scenario), floor_by_shape[shape])]
            row["x floor"] = round(median(ratios), 3)
            row["cache hits"] = int(sum(o["cache_hits"] for o in results[scenario]))
        report.rows.append(row)
    report.details["rounds"] = {
        f"{s[0]} {s[1]} {s[2]} {'rate %g' % s[3] if s[3] else 'closed'}": results[s] for s in results
    }

    typical = ("meshfit", "typical", "distinct", 0.0)
    ratio = median([m / f for m, f in zip(rps(typical), floor_by_shape["typical"])])
    hits = sum(o["cache_hits"] for o in results[typical])
    report.target("typical pod throughput, distinct pods", f">= {RATIO_TARGET}x floor", ratio, "x",
                  ratio >= RATIO_TARGET and hits == 0,
                  f"{median(rps(typical)):.0f} vs {median(floor_by_shape['typical']):.0f} req/s; cache hits {hits:.0f}")
    p99 = pct(("meshfit", "typical", "distinct", RATE), "p99")
    report.target(f"typical pod p99 at {RATE:.0f} req/s, one core", f"<= {TYPICAL_P99_MS} ms", p99, "ms",
                  p99 <= TYPICAL_P99_MS)
    for shape in ("64KB", "1500-env"):
        p99 = pct(("meshfit", shape, "distinct", RATE), "p99")
        report.target(f"{shape} pod p99 at {RATE:.0f} req/s", f"<= {LARGE_P99_MS} ms", p99, "ms",
                      p99 <= LARGE_P99_MS)
    cached = ("meshfit", "typical", "same", 0.0)
    report.notes.append(
        f"answer cache (one pod repeated, not a target): {median(rps(cached)):.0f} req/s = "
        f"{median([m / f for m, f in zip(rps(cached), floor_by_shape['typical'])]):.2f}x floor"
    )


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(rounds=1, seconds=0.5, distinct_pods=100, rate_seconds=0.5)


def main() -> None:
    command.main(run, QUICK, __doc__, {"rounds": "", "seconds": "per throughput measurement", "rate_seconds": "per open-loop latency measurement"})


if __name__ == "__main__":
    main()
