"""Benchmark 10: the webhook's memory after 100,000 distinct reviews.

    python -m bench.webhook_rss [--reviews 100000] [--samples 20] [--concurrency 8]

``meshfit webhook serve`` with the shipped policy (as benchmark 1 runs it)
answers 100,000 reviews, every one a distinct pod (own name, uid, label), from
200 namespaces, in a mix of the benchmark shapes: of every 50, 45 typical
pods, 4 of 64 KB and one with 1,500 env vars. A loopback aiohttp client makes
each review as it sends it (a file of 100,000 bodies would be 300 MB) and
keeps ``concurrency`` in flight. The server's RSS is read from
``/proc/PID/status`` before the first review and after every
``reviews / samples`` reviews.

Targets: the RSS after the last review at most 120 MiB, and flat, judged as
the growth over the second half (from the sample at 50,000 reviews to the
last) at most 5% of the RSS at 50,000. Anything kept per distinct pod (a
cache without a bound, a metric label per pod) grows linearly and fails the
second; the answer cache's bounded 512 entries fill in the first thousand
reviews. The webhook's own counters confirm every review was injected and
none was answered from the cache.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import command
from bench.extender_bench import rss_kib
from bench.pods import SHAPES, review
from bench.report import REPO, Report, write
from bench.webhook_floor import cache_lookups, start
from controlplane.meshfit_servers import MeshfitServer, generate_certs, meshfit_argv, metric_value
from controlplane.ports import free_port

POLICY = REPO / "manifests" / "policy.yaml"
RSS_TARGET_MIB = 120.0
GROWTH_TARGET = 0.05
#: Of every 50 reviews, how many of each shape.
MIX = (("typical", 45), ("64KB", 4), ("1500-env", 1))
NAMESPACES = 200


class Reviews:
    """The ``i``-th review of the run, made on demand: a distinct pod of the mix's shape for ``i``."""

    def __init__(self) -> None:
        self.bases = {shape: SHAPES[shape]() for shape, _ in MIX}
        self.cycle = [shape for shape, n in MIX for _ in range(n)]

    def body(self, i: int) -> bytes:
        pod = self.bases[self.cycle[i % len(self.cycle)]]
        meta = pod["metadata"]
        namespace = f"team-{i % NAMESPACES:03d}"
        distinct = {**pod, "metadata": {
            **meta, "name": f"{meta.get('generateName', 'pod-')}{i:07d}", "namespace": namespace,
            "uid": str(uuid.UUID(int=i + 1)), "labels": {**meta.get("labels", {}), "bench.meshfit.io/seq": str(i)}}}
        return orjson.dumps(review(distinct))


def injected(server: MeshfitServer) -> float:
    return metric_value(server.get("/metrics")[1], "meshfit_webhook_requests_total", {"result": "injected"}) or 0.0


async def _send(url: str, reviews: Reviews, first: int, count: int, concurrency: int,
                session: aiohttp.ClientSession) -> None:
    """Reviews ``first .. first + count - 1``, ``concurrency`` in flight, each answered with a patch."""
    queue = iter(range(first, first + count))

    async def worker() -> None:
        for i in queue:
            async with session.post(url, data=reviews.body(i), headers={"Content-Type": "application/json"}) as resp:
                answer = await resp.read()
                if resp.status != 200 or b'"patch"' not in answer:
                    raise RuntimeError(f"review {i}: HTTP {resp.status}: {answer[:200]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _drive(server: MeshfitServer, cacert: Path, reviews: int, samples: int, concurrency: int,
                 log: Callable[[str], None]) -> list[dict[str, Any]]:
    assert server.pid is not None
    made = Reviews()
    context = ssl.create_default_context(cafile=str(cacert))
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    step = max(1, reviews // samples)
    rss, hwm = rss_kib(server.pid)
    points = [{"reviews": 0, "rss_mib": round(rss / 1024, 1), "peak_mib": round(hwm / 1024, 1), "seconds": 0.0}]
    log(f"  {0:7d} reviews  RSS {rss / 1024:6.1f} MiB")
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        done = 0
        while done < reviews:
            count = min(step, reviews - done)
            await _send(server.url + "/mutate", made, done, count, concurrency, session)
            done += count
            rss, hwm = rss_kib(server.pid)
            points.append({"reviews": done, "rss_mib": round(rss / 1024, 1), "peak_mib": round(hwm / 1024, 1),
                           "seconds": round(time.perf_counter() - started, 3)})
            log(f"  {done:7d} reviews  RSS {rss / 1024:6.1f} MiB  ({done / (time.perf_counter() - started):.0f}/s)")
    return points


def run(reviews: int = 100_000, samples: int = 20, concurrency: int = 8, out_dir: Path | None = None,
        log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("webhook_rss", "Benchmark 10: webhook RSS as distinct reviews accumulate")
    report.parameters = {"reviews": reviews, "samples": samples, "concurrency": concurrency,
                         "mix_of_50": dict(MIX), "namespaces": NAMESPACES, "policy": "manifests/policy.yaml",
                         "client": "aiohttp on loopback, TLS, one review made per request",
                         "rss": "VmRSS of /proc/PID/status"}
    with tempfile.TemporaryDirectory(prefix="meshfit-bench-") as tmp:
        work = Path(tmp)
        cert_dir = work / "certs"
        generate_certs(cert_dir)
        port = free_port()
        server = start("webhook", work, meshfit_argv("webhook", "serve", "--cert-dir", str(cert_dir), "--port",
                                                     str(port), "--policy", str(POLICY), "--log-level", "warning"),
                       port, cert_dir, None)
        try:
            points = asyncio.run(_drive(server, cert_dir / "ca.crt", reviews, samples, concurrency, log))
            hits, misses = cache_lookups(server)
            answered = injected(server)
        finally:
            status = server.stop()
    if answered != reviews or hits:
        raise RuntimeError(f"the webhook injected {answered:.0f} of {reviews} reviews, {hits:.0f} from its cache")
    if status not in (0, None):
        print(f"webhook_rss: the webhook exited {status} on SIGTERM", file=sys.stderr)
    _summarise(report, points, reviews, hits, misses)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def _summarise(report: Report, points: list[dict[str, Any]], reviews: int, hits: float, misses: float) -> None:
    report.rows = [dict(p) for p in points]
    final = points[-1]["rss_mib"]
    half = min(points, key=lambda p: abs(p["reviews"] - reviews / 2))
    growth = (final - half["rss_mib"]) / half["rss_mib"]
    report.target(f"webhook RSS after {reviews:,} distinct reviews", f"<= {RSS_TARGET_MIB:g} MiB", final, "MiB",
                  final <= RSS_TARGET_MIB,
                  f"{points[0]['rss_mib']:.1f} MiB before the first; peak {points[-1]['peak_mib']:.1f} MiB")
    report.target(f"RSS growth over the last {reviews - half['reviews']:,} reviews",
                  f"<= {GROWTH_TARGET:.0%} of the RSS at {half['reviews']:,}", 100 * max(0.0, growth), "%",
                  growth <= GROWTH_TARGET, f"{half['rss_mib']:.1f} -> {final:.1f} MiB")
    report.details["answer_cache"] = {"hits": hits, "misses": misses}
    seconds = points[-1]["seconds"]
    if seconds > 0:  # a short run on a fast machine can finish inside the clock's rounding
        report.notes.append(f"{reviews / seconds:.0f} reviews/s through the loopback client (not a target)")


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(reviews=200, samples=4, concurrency=4)


def main() -> None:
    command.main(run, QUICK, __doc__, {"reviews": "distinct reviews to send", "samples": "RSS samples after the first",
                                       "concurrency": "requests in flight"})


if __name__ == "__main__":
    main()
