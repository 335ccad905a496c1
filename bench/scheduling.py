"""Benchmark 3: scheduling throughput of the real kube-scheduler, with and without the extender.

    python -m bench.scheduling [--nodes 5000] [--pods 5000] [--rounds 2] [--quick]

A LocalCluster whose scheduler's client rate limit is lifted (qps 5000,
burst 10000, as upstream's scheduler_perf does; the default 50 QPS would
cap binding well below what is measured here), ``--nodes`` fake Ready nodes,
and ``meshfit extender serve`` fed by a list+watch of that cluster, in the
scheduler configuration as shipped (``nodeCacheCapable``, filter, prioritize,
bind).

Each round, per configuration: the scheduler is stopped, a batch of pods
injected by the engine (what the webhook would have stored) is created and
waits Pending, then the scheduler starts with or without the extender and a
watch timestamps every binding. Throughput is pods bound per second between
the first and the last binding. Configurations run A B B A ..., so drift in
the machine or in the cluster's growing pod count falls on both; the target
ratio is the extender's total rate over the stock scheduler's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import command
from bench.apiserver import NODE_TOLERATION, Api, bench_cluster, connect, create_nodes, create_pods
from bench.cpu import CpuMeter, cluster_pids, cpu_seconds
from bench.pods import client_pod
from bench.report import REPO, Report, write
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import (
    MeshfitServer,
    shipped_extender_config,
    install_policy,
    metric_value,
    start_extender,
)
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file

TARGET = 0.8
STOCK, EXTENDER = "stock scheduler", "with meshfit extender"
SCHEDULER_QPS, SCHEDULER_BURST = 5000.0, 10000


def meshed_pods(namespace: str, count: int, prefix: str) -> list[dict[str, Any]]:
    """``count`` pods as the webhook would have stored them (shipped policy, swap or pod-level as it picks).

    The typical pod with a smaller app (500m, 1Gi), so every round fits the
    nodes many times over and no pod is unschedulable.
    """
    policy = load_policy_file(REPO / "manifests" / "policy.yaml")
    pod = client_pod("template")
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                 "limits": {"cpu": "1", "memory": "1Gi"}}
    pod["spec"]["tolerations"] = [*pod["spec"]["tolerations"], NODE_TOLERATION]
    template = inject(pod, Namespace(namespace, {"meshfit.io/inject": "enabled"}), policy).pod
    return [{**template, "metadata": {**template["metadata"], "name": f"{prefix}-{i:05d}", "namespace": namespace}}
            for i in range(count)]


async def _bindings(api: Api, namespace: str, resource_version: str, expected: int,
                    times: list[float], done: asyncio.Event) -> None:
    """Record the moment each pod of ``namespace`` is first seen bound."""
    bound: set[str] = set()
    async for event in api.watch(f"/api/v1/namespaces/{namespace}/pods", resource_version):
        obj = event.get("object") or {}
        name = str((obj.get("metadata") or {}).get("name"))
        if (obj.get("spec") or {}).get("nodeName") and name not in bound:
            bound.add(name)
            times.append(time.perf_counter())
            if len(bound) >= expected:
                done.set()
                return


async def _round(cluster: LocalCluster, api: Api, config: str, extender: MeshfitServer, pods: list[dict[str, Any]],
                 namespace: str, timeout: float) -> dict[str, Any]:
    await asyncio.to_thread(cluster.stop_scheduler)
    await create_pods(api, namespace, pods)
    listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/pods?limit=1")
    times: list[float] = []
    done = asyncio.Event()
    watcher = asyncio.create_task(_bindings(api, namespace, listed["metadata"]["resourceVersion"], len(pods),
                                            times, done))
    extenders = [shipped_extender_config(extender.url)] if config == EXTENDER else []
    assert extender.pid is not None
    meter = CpuMeter({**{k: v for k, v in cluster_pids(cluster).items() if k != "kube-scheduler"},
                      "extender": extender.pid})
    meter.start()
    started = time.perf_counter()
    await asyncio.to_thread(cluster.start_scheduler, extenders)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    finally:
        watcher.cancel()
    cpu = meter.stop()
    # A new scheduler process each round: its whole life is this round (informer sync included).
    cpu["kube-scheduler"] = round(cpu_seconds(cluster_pids(cluster).get("kube-scheduler", 0)), 2)
    bound = len(times)
    if bound < len(pods):
        listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        on_nodes = sum(1 for p in listed["items"] if p["spec"].get("nodeName"))
        events = await api.request("GET", f"/api/v1/namespaces/{namespace}/events")
        why = {e.get("message", "") for e in events["items"] if e.get("reason") == "FailedScheduling"}
        raise RuntimeError(f"{config}: {bound} of {len(pods)} pods seen bound by the watch within {timeout:g} s "
                           f"({on_nodes} bound in a LIST); FailedScheduling: {sorted(why)[:3]}")
    span = (times[-1] - times[0]) if bound > 1 else float("nan")
    return {
        "configuration": config, "pods": len(pods), "bound": bound,
        "seconds_first_to_last_binding": span,
        "pods_per_second": (bound - 1) / span if bound > 1 and span > 0 else 0.0,
        "seconds_from_scheduler_start": (times[-1] - started) if times else float("nan"),
        "cpu_seconds": cpu,
    }


def run(nodes: int = 5000, pods: int = 5000, rounds: int = 2, cluster: LocalCluster | None = None,
        out_dir: Path | None = None, timeout: float = 600.0, log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("scheduling", "Benchmark 3: kube-scheduler throughput with and without the extender")
    per_round = max(1, pods // rounds)
    report.parameters = {"nodes": nodes, "pods_per_configuration": per_round * rounds, "rounds": rounds,
                         "pods_per_round": per_round, "scheduler_client_qps": SCHEDULER_QPS,
                         "scheduler_client_burst": SCHEDULER_BURST,
                         "extender": "meshfit extender serve --kubeconfig (list+watch); the extenders: entry of manifests/extender/scheduler-config.yaml"}
    with bench_cluster(cluster, scheduler_qps=SCHEDULER_QPS, scheduler_burst=SCHEDULER_BURST) as c:
        previous = c.extenders
        workdir = c.workdir / f"bench-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        run_id = uuid.uuid4().hex[:6]
        results: list[dict[str, Any]] = []

        async def main() -> None:
            async with connect(c, 32) as api:
                t = time.perf_counter()
                await create_nodes(api, [f"bench-{run_id}-node-{i:05d}" for i in range(nodes)])
                report.details["node_creation_seconds"] = round(time.perf_counter() - t, 1)
                log(f"scheduling: {nodes} nodes created in {time.perf_counter() - t:.0f} s")
                install_policy(c)
                extender = await asyncio.to_thread(start_extender, workdir, c.kubeconfig_path, name="bench-extender",
                                                   timeout=300)
                try:
                    known = metric_value(extender.get("/metrics")[1], "meshfit_extender_cache_nodes") or 0
                    report.details["extender_cache_nodes"] = known
                    namespace = f"bench-sched-{run_id}"
                    c.create_namespace(namespace)
                    order = [STOCK, EXTENDER]
                    for r in range(rounds):
                        for config in order if r % 2 == 0 else list(reversed(order)):
                            batch = meshed_pods(namespace, per_round, f"r{r}-{'ext' if config == EXTENDER else 'std'}")
                            result = await _round(c, api, config, extender, batch, namespace, timeout)
                            result["round"] = r + 1
                            results.append(result)
                            log(f"  round {r + 1}/{rounds} {config:22} {result['pods_per_second']:7.1f} pods/s "
                                f"({result['bound']}/{result['pods']} bound in "
                                f"{result['seconds_first_to_last_binding']:.1f} s)")
                finally:
                    extender.stop()

        try:
            asyncio.run(main())
        finally:
            c.restart_scheduler(previous)
    _summarise(report, results)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def _summarise(report: Report, results: list[dict[str, Any]]) -> None:
    totals: dict[str, float] = {}
    for config in (STOCK, EXTENDER):
        mine = [r for r in results if r["configuration"] == config]
        bound = sum(r["bound"] for r in mine)
        seconds = sum(r["seconds_first_to_last_binding"] for r in mine)
        # As per round: the first binding starts the clock, so each round counts bound - 1 intervals.
        intervals = sum(max(0, r["bound"] - 1) for r in mine)
        totals[config] = intervals / seconds if seconds > 0 else 0.0
        row: dict[str, Any] = {"configuration": config, "pods": sum(r["pods"] for r in mine), "bound": bound,
                               "pods/s": totals[config],
                               "per round": ", ".join(f"{r['pods_per_second']:.0f}" for r in mine)}
        # Where the CPU went, per pod bound: scheduler, apiserver and extender share two cores.
        for process in ("kube-scheduler", "kube-apiserver", "etcd", "extender"):
            spent = sum(r["cpu_seconds"].get(process, 0.0) for r in mine)
            row[f"{process} CPU ms/pod"] = round(1000 * spent / max(bound, 1), 2)
        report.rows.append(row)
    ratio = totals[EXTENDER] / totals[STOCK] if totals[STOCK] else 0.0
    report.rows[1]["x stock"] = round(ratio, 3)
    report.details["rounds"] = results
    all_bound = all(r["bound"] == r["pods"] for r in results)
    report.target("scheduling throughput with the extender", f">= {TARGET}x stock", ratio, "x",
                  ratio >= TARGET and all_bound,
                  f"{totals[EXTENDER]:.0f} vs {totals[STOCK]:.0f} pods/s" + ("" if all_bound else "; NOT all bound"))


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(nodes=20, pods=20, rounds=1, timeout=120.0)


def main() -> None:
    command.main(run, QUICK, __doc__, {"nodes": "", "pods": "pods per configuration", "rounds": ""})


if __name__ == "__main__":
    main()
