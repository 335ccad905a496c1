"""Benchmark 5: how many pod watch events the extender's cache absorbs while pods churn.

    python -m bench.watch_throughput [--pods 3000] [--waves 3] [--quick]

``meshfit extender serve`` list+watches a LocalCluster while a pooled client
creates pods bound to nodes (``spec.nodeName`` set, so each one lands in a
node's accounting) and deletes them again, in waves, as fast as the
apiserver takes them. A reference watch of the benchmark's own namespace
timestamps every event the apiserver emits; the extender's
``meshfit_extender_watch_events_total{resource="pods"}`` and its CPU time
are sampled throughout.

Reported: the churn's event rate, the extender's lag behind the apiserver
(when its counter reached the reference total, after the last event was
emitted), and its capacity: events per CPU-second of the extender process,
the rate it could absorb with a core to itself. The target: capacity at least
benchmark 2's pod-create rate (read from ``bench/results/pod_create.json``;
else this run's create rate), and the lag at the end of the churn small
(<= 1 s), so the cache never falls behind.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import command
from bench.apiserver import Api, bench_cluster, connect, create_nodes, create_pods, delete_pods
from bench.cpu import cpu_seconds
from bench.report import RESULTS_DIR, Report, write
from bench.scheduling import meshed_pods
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import MeshfitServer, install_policy, metric_value, start_extender

MAX_LAG_SECONDS = 1.0


def extender_events(extender: MeshfitServer) -> float:
    text = extender.get("/metrics")[1]
    return metric_value(text, "meshfit_extender_watch_events_total", {"resource": "pods"}) or 0.0


async def _reference(api: Api, namespace: str, resource_version: str, times: list[float]) -> None:
    async for event in api.watch(f"/api/v1/namespaces/{namespace}/pods", resource_version):
        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            times.append(time.perf_counter())


async def _sample(extender: MeshfitServer, samples: list[tuple[float, float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        events = await asyncio.to_thread(extender_events, extender)
        samples.append((time.perf_counter(), events))
        await asyncio.sleep(0.05)


def run(pods: int = 3000, waves: int = 3, nodes: int = 100, cluster: LocalCluster | None = None,
        out_dir: Path | None = None, reference_rate: float | None = None,
        log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("watch_throughput", "Benchmark 5: extender watch throughput under pod churn")
    per_wave = max(1, pods // waves)
    report.parameters = {"pods": per_wave * waves, "waves": waves, "nodes": nodes, "client_concurrency": 32,
                         "churn": "create bound pods, then delete them (grace 0), per wave"}
    with bench_cluster(cluster) as c:
        workdir = c.workdir / f"bench-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        run_id = uuid.uuid4().hex[:6]
        namespace = f"bench-watch-{run_id}"
        details: dict[str, Any] = {}

        async def main() -> None:
            async with connect(c, 32) as api:
                node_names = [f"bench-{run_id}-w-{i:04d}" for i in range(nodes)]
                await create_nodes(api, node_names)
                c.create_namespace(namespace)
                install_policy(c)
                extender = await asyncio.to_thread(start_extender, workdir, c.kubeconfig_path,
                                                   name="bench-extender-watch", timeout=300)
                try:
                    await _churn(api, extender, namespace, node_names, per_wave, waves, details, log)
                finally:
                    extender.stop()

        asyncio.run(main())
    _summarise(report, details, reference_rate)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


async def _churn(api: Api, extender: MeshfitServer, namespace: str, node_names: list[str], per_wave: int,
                 waves: int, details: dict[str, Any], log: Callable[[str], None]) -> None:
    assert extender.pid is not None
    template = meshed_pods(namespace, 1, "x")[0]
    listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/pods?limit=1")
    reference: list[float] = []
    watcher = asyncio.create_task(_reference(api, namespace, listed["metadata"]["resourceVersion"], reference))
    samples: list[tuple[float, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(extender, samples, stop))
    base_events = extender_events(extender)
    cpu_before = cpu_seconds(extender.pid)
    t0 = time.perf_counter()
    create_seconds = 0.0
    for w in range(waves):
        names = [f"churn-{w}-{i:05d}" for i in range(per_wave)]
        batch = [{**template, "metadata": {**template["metadata"], "name": n, "namespace": namespace},
                  "spec": {**template["spec"], "nodeName": node_names[i % len(node_names)]}}
                 for i, n in enumerate(names)]
        t = time.perf_counter()
        await create_pods(api, namespace, batch)
        create_seconds += time.perf_counter() - t
        await delete_pods(api, namespace, names)
        log(f"  wave {w + 1}/{waves}: {per_wave} pods created and deleted")
    churn_end = time.perf_counter()
    # Let the reference watch and the extender drain what is in flight: done once the
    # apiserver has been quiet for half a second and the extender has seen as many events.
    expected_min = 2 * per_wave * waves
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        quiet = bool(reference) and time.perf_counter() - reference[-1] > 0.5
        if (quiet and len(reference) >= expected_min and samples
                and samples[-1][1] - base_events >= len(reference)):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await sampler
    watcher.cancel()
    samples.append((time.perf_counter(), await asyncio.to_thread(extender_events, extender)))
    cpu = cpu_seconds(extender.pid) - cpu_before
    total = len(reference)
    caught_up = next((t for t, e in samples if e - base_events >= total), None)
    details.update({
        "events_emitted": total,
        "events_absorbed": samples[-1][1] - base_events if samples else 0,
        "churn_seconds": churn_end - t0,
        "create_seconds": create_seconds,
        "pods_created_per_second": per_wave * waves / create_seconds,
        "events_per_second": total / (reference[-1] - reference[0]) if total > 1 else 0.0,
        "extender_cpu_seconds": cpu,
        "capacity_events_per_cpu_second": total / cpu if cpu > 0 else float("inf"),
        "lag_seconds": (caught_up - reference[-1]) if caught_up is not None and reference else float("inf"),
    })


def _benchmark2_rate() -> float | None:
    """The best create rate benchmark 2 measured (without the webhook), if it has run."""
    path = RESULTS_DIR / "pod_create.json"
    try:
        rows = json.loads(path.read_text())["rows"]
        return float(max(r["pods/s"] for r in rows))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _summarise(report: Report, d: dict[str, Any], reference_rate: float | None) -> None:
    report.rows.append({
        "events emitted": d["events_emitted"], "absorbed": d["events_absorbed"],
        "churn events/s": d["events_per_second"], "pods created/s": d["pods_created_per_second"],
        "extender CPU s": round(d["extender_cpu_seconds"], 2),
        "capacity events/CPU-s": d["capacity_events_per_cpu_second"],
        "lag at end s": round(d["lag_seconds"], 3),
    })
    report.details.update(d)
    rate = reference_rate or _benchmark2_rate()
    source = "benchmark 2's fastest create rate"
    if rate is None:
        rate, source = d["pods_created_per_second"], "this run's create rate"
    capacity = d["capacity_events_per_cpu_second"]
    report.target("extender watch capacity vs pod creation rate", f">= {rate:.0f} events/s ({source})",
                  capacity, "events/CPU-s", capacity >= rate and d["lag_seconds"] <= MAX_LAG_SECONDS,
                  f"lag behind the apiserver at the end: {d['lag_seconds']:.2f} s (<= {MAX_LAG_SECONDS:g} s)")


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(pods=20, waves=1, nodes=5)


def main() -> None:
    command.main(run, QUICK, __doc__, {"pods": "", "waves": ""})


if __name__ == "__main__":
    main()
