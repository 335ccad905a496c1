"""Benchmark 2: pod creation through the real kube-apiserver, with and without the webhook.

    python -m bench.pod_create [--pods 2000] [--rounds 4] [--concurrency 32] [--quick]

A LocalCluster (etcd, kube-apiserver; the scheduler is stopped so unschedulable
pods cause no retries or events) and ``meshfit webhook serve`` watching it,
registered with the shipped MutatingWebhookConfiguration. Pods are POSTed by
a pooled aiohttp client as the admin, in three configurations interleaved
round by round (the order reversed every other round):

* ``no webhook``: the configuration is deleted: the floor;
* ``webhook, namespace not selected``: registered, but its namespaceSelector
  leaves the namespace out, so the apiserver never calls it (the other
  reading of "a namespace not selected");
* ``webhook, not opted in``: registered, the namespace is not opted in, so
  the apiserver calls the webhook for every pod and it answers "no change":
  the pure cost of being on the path (the target, >= 0.85x);
* ``webhook, injecting``: the namespace is opted in: the full cost, pods grow
  by two sidecars (reported, not a target).

Each switch of registration is waited for with a probe pod, and the webhook's
request counter checks it saw exactly the pods it should have.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import command
from bench.apiserver import Api, bench_cluster, connect, create_pods, delete_pods, percentiles
from bench.cpu import CpuMeter, cluster_pids
from bench.pods import client_pod
from bench.report import Report, write
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import (
    MeshfitServer,
    generate_certs,
    install_policy,
    register_webhook,
    start_webhook,
    unregister_webhook,
    webhook_configuration,
)
from policy.annotations import STATUS

TARGET = 0.85
OFF, UNSELECTED = "no webhook", "webhook, namespace not selected"
SKIP, INJECT = "webhook, not opted in", "webhook, injecting"
CONFIGS = (OFF, UNSELECTED, SKIP, INJECT)
RUN_LABEL = "bench.meshfit.io/run"


def webhook_requests(webhook: MeshfitServer) -> float:
    text = webhook.get("/metrics")[1]
    total = 0.0
    for line in text.splitlines():
        if line.startswith("meshfit_webhook_requests_total{"):
            total += float(line.rpartition(" ")[2])
    return total


def run(pods: int = 2000, rounds: int = 4, concurrency: int = 32, cluster: LocalCluster | None = None,
        out_dir: Path | None = None, log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("pod_create", "Benchmark 2: pod creation through kube-apiserver, with and without the webhook")
    per_round = max(1, pods // rounds)
    report.parameters = {"pods_per_configuration": per_round * rounds, "rounds": rounds,
                         "pods_per_round": per_round, "client_concurrency": concurrency,
                         "client": "aiohttp, admin token (APF-exempt), HTTP/1.1 pool",
                         "webhook": "meshfit webhook serve --policy-configmap, shipped MutatingWebhookConfiguration"}
    with bench_cluster(cluster) as c:
        shared = cluster is not None
        workdir = c.workdir / f"bench-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        ca_bundle = generate_certs(workdir / "certs")
        install_policy(c)
        webhook = start_webhook(workdir, c.kubeconfig_path, workdir / "certs", name="bench-webhook")
        run_id = uuid.uuid4().hex[:8]
        config = webhook_configuration(f"meshfit-bench-{run_id}", webhook.url, ca_bundle, namespace_expressions=[
            {"key": RUN_LABEL, "operator": "In", "values": [run_id]}])
        namespaces = {OFF: f"bench-off-{run_id}", UNSELECTED: f"bench-out-{run_id}", SKIP: f"bench-off-{run_id}",
                      INJECT: f"bench-on-{run_id}"}
        c.create_namespace(namespaces[OFF], {RUN_LABEL: run_id})
        c.create_namespace(namespaces[UNSELECTED], {RUN_LABEL: "none", "meshfit.io/inject": "enabled"})
        c.create_namespace(namespaces[INJECT], {RUN_LABEL: run_id, "meshfit.io/inject": "enabled"})
        webhook.wait_ready()  # namespaces seen by its watch
        if not shared:
            c.stop_scheduler()
        try:
            results = asyncio.run(_rounds(c, webhook, config, namespaces, rounds, per_round, concurrency, log))
        finally:
            unregister_webhook(c, config["metadata"]["name"])
            webhook.stop()
    _summarise(report, results)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


async def _set_registered(api: Api, cluster: LocalCluster, config: dict[str, Any], namespace: str,
                          registered: bool) -> None:
    """Register or delete the configuration, then wait until the apiserver acts on it."""
    if registered:
        await asyncio.to_thread(register_webhook, cluster, config)
    else:
        await asyncio.to_thread(unregister_webhook, cluster, config["metadata"]["name"])
    deadline = time.monotonic() + 30
    while True:
        probe = client_pod(f"probe-{uuid.uuid4().hex[:10]}")
        created = await api.request("POST", f"/api/v1/namespaces/{namespace}/pods", probe)
        await delete_pods(api, namespace, [probe["metadata"]["name"]], concurrency=1)
        injected = STATUS in (created["metadata"].get("annotations") or {})
        if injected == registered:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the apiserver did not {'start' if registered else 'stop'} calling the webhook")
        await asyncio.sleep(0.2)


async def _rounds(cluster: LocalCluster, webhook: MeshfitServer, config: dict[str, Any],
                  namespaces: dict[str, str], rounds: int, per_round: int, concurrency: int,
                  log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    assert webhook.pid is not None
    meter = CpuMeter({**cluster_pids(cluster), "webhook": webhook.pid})
    registered: bool | None = None
    seq = 0
    async with connect(cluster, concurrency) as api:
        for r in range(rounds):
            for name in CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS)):
                want = name != OFF
                if registered != want:
                    await _set_registered(api, cluster, config, namespaces[INJECT], want)
                    registered = want
                namespace = namespaces[name]
                batch = []
                for _ in range(per_round):
                    batch.append(client_pod(f"orders-{seq:06d}"))
                    seq += 1
                calls_before = await asyncio.to_thread(webhook_requests, webhook)
                meter.start()
                t0 = time.perf_counter()
                latencies = await create_pods(api, namespace, batch, concurrency)
                elapsed = time.perf_counter() - t0
                cpu = meter.stop()
                calls = await asyncio.to_thread(webhook_requests, webhook) - calls_before
                # An injected pod is reviewed twice: reinvocationPolicy IfNeeded calls the webhook
                # again after a mutation, and the second call finds meshfit.io/status and passes.
                expected = {OFF: (0, 0), UNSELECTED: (0, 0), SKIP: (per_round, per_round),
                            INJECT: (per_round, 2 * per_round)}[name]
                if not expected[0] <= calls <= expected[1]:
                    raise RuntimeError(f"{name}: the webhook answered {calls:.0f} reviews for {per_round} pods, "
                                       f"expected {expected[0]}..{expected[1]}")
                results[name].append({"pods": per_round, "seconds": elapsed, "pods_per_second": per_round / elapsed,
                                      "latency_ms": percentiles(latencies), "webhook_calls": calls,
                                      "cpu_seconds": cpu})
                log(f"  round {r + 1}/{rounds} {name:22} {per_round / elapsed:7.0f} pods/s  "
                    f"p50 {percentiles(latencies)['p50']:6.1f} ms  p99 {percentiles(latencies)['p99']:6.1f} ms")
    return results


def _summarise(report: Report, results: dict[str, list[dict[str, Any]]]) -> None:
    base = [r["pods_per_second"] for r in results[OFF]]
    for name in CONFIGS:
        rates = [r["pods_per_second"] for r in results[name]]
        total = sum(r["pods"] for r in results[name])
        seconds = sum(r["seconds"] for r in results[name])
        row: dict[str, Any] = {
            "configuration": name, "pods": total, "pods/s": total / seconds,
            "p50 ms": statistics.median(r["latency_ms"]["p50"] for r in results[name]),
            "p99 ms": statistics.median(r["latency_ms"]["p99"] for r in results[name]),
            "x no webhook": round(statistics.median(a / b for a, b in zip(rates, base)), 3),
        }
        # Where the CPU went, per pod: on two cores the components compete, so this says what slows creation.
        spent: dict[str, float] = {}
        for r in results[name]:
            for process, seconds in r["cpu_seconds"].items():
                spent[process] = spent.get(process, 0.0) + seconds
        for process in ("kube-apiserver", "etcd", "webhook", "bench client"):
            row[f"{process} CPU ms/pod"] = round(1000 * spent.get(process, 0.0) / total, 2)
        report.rows.append(row)
    report.details["rounds"] = results
    rows = {r["configuration"]: r for r in report.rows}
    for name, what in ((SKIP, "webhook called, namespace not opted in"),
                       (UNSELECTED, "webhook registered, namespace not selected")):
        ratio = rows[name]["x no webhook"]
        report.target(f"pod creation, {what}", f">= {TARGET}x no webhook", ratio, "x", ratio >= TARGET,
                      f"{rows[name]['pods/s']:.0f} vs {rows[OFF]['pods/s']:.0f} pods/s")
    report.notes.append(f"injecting (not a target): {rows[INJECT]['x no webhook']:.2f}x no webhook, "
                        f"{rows[INJECT]['pods/s']:.0f} pods/s")


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(pods=20, rounds=2, concurrency=4)


def main() -> None:
    command.main(run, QUICK, __doc__, {"pods": "pods per configuration (>= 2000 for the target)", "rounds": "", "concurrency": "requests in flight"})


if __name__ == "__main__":
    main()
