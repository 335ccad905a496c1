"""Benchmark 2: pod creation through the real kube-apiserver, with and without the webhook.

    python -m bench.pod_create [--pods 4000] [--rounds 8] [--concurrency 32] [--quick]

A LocalCluster (etcd, kube-apiserver; the scheduler is stopped so unschedulable
pods cause no retries or events) and ``meshfit webhook serve`` watching it,
registered with the shipped MutatingWebhookConfiguration. Pods are POSTed by
a pooled aiohttp client as the admin, in five configurations interleaved
round by round (the order reversed every other round; 8 rounds, as one
round's ratio moves by 30% on a shared machine and a target's margin is 10%):

* ``no webhook``: the configuration is deleted: the floor;
* ``webhook, namespace not selected``: registered, but its namespaceSelector
  leaves the namespace out, so the apiserver never calls it (the other
  reading of "a namespace not selected");
* ``webhook, not opted in``: registered, the namespace is not opted in, so
  the apiserver calls the webhook for every pod and it answers "no change":
  the pure cost of being on the path (the target, >= 0.85x);
* ``injecting floor``: a bare aiohttp TLS server (:mod:`bench.floor_server`)
  answering every pod with meshfit's own answer for the pod's shape, computed
  once before the rounds by asking the webhook about the pod as the apiserver
  admits it: the same patch, the same bytes, the same TLS certificate and
  event loop, registered by the same shipped configuration (matchConditions,
  reinvocationPolicy, failurePolicy, timeout, caBundle) selecting its own
  namespace only. What injecting would cost if meshfit's engine were free;
* ``webhook, injecting``: the namespace is opted in: the full cost, pods grow
  by two sidecars (target: >= 0.9x the injecting floor).

Each switch of registration is waited for with probe pods, the webhook's
request counter checks it saw exactly the pods it should have, and the last
pod of every injecting round is read back to check it was injected.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import command
from bench.apiserver import Api, bench_cluster, connect, create_pods, delete_pods, percentiles
from bench.cpu import CpuMeter, cluster_pids
from bench.floor_server import ZERO_UID
from bench.pods import client_pod, review
from bench.report import Report, write
from bench.webhook_floor import start as start_server
from controlplane.cluster import LocalCluster
from controlplane.ports import free_port
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
#: meshfit injecting, against the floor injecting the same patch.
INJECT_TARGET = 0.9
OFF, UNSELECTED = "no webhook", "webhook, namespace not selected"
SKIP, INJECT = "webhook, not opted in", "webhook, injecting"
FLOOR = "injecting floor (precomputed patch)"
#: Interleaved in this order, reversed every other round: the floor and meshfit injecting side by side.
CONFIGS = (OFF, UNSELECTED, SKIP, FLOOR, INJECT)
RUN_LABEL = "bench.meshfit.io/run"


def webhook_requests(webhook: MeshfitServer) -> float:
    text = webhook.get("/metrics")[1]
    total = 0.0
    for line in text.splitlines():
        if line.startswith("meshfit_webhook_requests_total{"):
            total += float(line.rpartition(" ")[2])
    return total


def run(pods: int = 4000, rounds: int = 8, concurrency: int = 32, cluster: LocalCluster | None = None,
        out_dir: Path | None = None, log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("pod_create", "Benchmark 2: pod creation through kube-apiserver, with and without the webhook")
    per_round = max(1, pods // rounds)
    report.parameters = {"pods_per_configuration": per_round * rounds, "rounds": rounds,
                         "pods_per_round": per_round, "client_concurrency": concurrency,
                         "client": "aiohttp, admin token (APF-exempt), HTTP/1.1 pool",
                         "webhook": "meshfit webhook serve --policy-configmap, shipped MutatingWebhookConfiguration",
                         "injecting floor": "bench.floor_server --answer: meshfit's answer for the pod's shape, "
                                            "computed once, uid echoed; shipped configuration"}
    with bench_cluster(cluster) as c:
        shared = cluster is not None
        workdir = c.workdir / f"bench-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        certs = workdir / "certs"
        ca_bundle = generate_certs(certs)
        install_policy(c)
        webhook = start_webhook(workdir, c.kubeconfig_path, certs, name="bench-webhook")
        floor: MeshfitServer | None = None
        run_id = uuid.uuid4().hex[:8]
        config = webhook_configuration(f"meshfit-bench-{run_id}", webhook.url, ca_bundle, namespace_expressions=[
            {"key": RUN_LABEL, "operator": "In", "values": [run_id]}])
        namespaces = {OFF: f"bench-off-{run_id}", UNSELECTED: f"bench-out-{run_id}", SKIP: f"bench-off-{run_id}",
                      FLOOR: f"bench-floor-{run_id}", INJECT: f"bench-on-{run_id}"}
        c.create_namespace(namespaces[OFF], {RUN_LABEL: run_id})
        c.create_namespace(namespaces[UNSELECTED], {RUN_LABEL: "none", "meshfit.io/inject": "enabled"})
        c.create_namespace(namespaces[INJECT], {RUN_LABEL: run_id, "meshfit.io/inject": "enabled"})
        # Labelled as the injecting one but for the run label: only the floor's configuration selects it.
        c.create_namespace(namespaces[FLOOR], {RUN_LABEL: f"{run_id}-floor", "meshfit.io/inject": "enabled"})
        webhook.wait_ready()  # namespaces seen by its watch
        configs: list[dict[str, Any]] = [config]
        try:
            answer = meshfit_answer(c, webhook, certs, namespaces[INJECT])
            (workdir / "floor-answer.json").write_bytes(answer)
            report.parameters["answer_bytes"] = len(answer)
            port = free_port()
            floor = start_server("bench-floor", workdir, [
                sys.executable, "-m", "bench.floor_server", "--cert-dir", str(certs), "--port", str(port),
                "--answer", str(workdir / "floor-answer.json")], port, certs, None)
            configs.append(webhook_configuration(
                f"meshfit-bench-floor-{run_id}", floor.url, ca_bundle,
                namespace_expressions=[{"key": RUN_LABEL, "operator": "In", "values": [f"{run_id}-floor"]}]))
            if not shared:
                c.stop_scheduler()
            results = asyncio.run(_rounds(c, webhook, floor, configs, namespaces, rounds, per_round, concurrency,
                                          log))
        finally:
            for registered in configs:
                unregister_webhook(c, registered["metadata"]["name"])
            if floor is not None:
                floor.stop()
            webhook.stop()
    _summarise(report, results)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def meshfit_answer(cluster: LocalCluster, webhook: MeshfitServer, certs: Path, namespace: str) -> bytes:
    """meshfit's answer (uid :data:`ZERO_UID`) for the benchmark's pod as the apiserver admits it.

    The pod is the apiserver's own dry-run creation of it (defaulted, the
    service-account volume added), before any webhook is registered; the
    answer is the running webhook's, so policy and namespace are the ones
    the injecting rounds meet. Pods of the shape differ only in their name,
    which the patch never mentions, so the one answer fits them all.
    """
    status, pod = cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All",
                                  client_pod("orders-shape"))
    if status not in (200, 201):
        raise RuntimeError(f"dry-run create of the benchmark pod: HTTP {status}: {pod}")
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        pod["metadata"].pop(key, None)
    pod.pop("status", None)
    body = orjson.dumps(review(pod, uid=ZERO_UID.decode()))
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    request = urllib.request.Request(webhook.url + "/mutate", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                     urllib.request.HTTPSHandler(context=context)).open(request, timeout=10) as resp:
        answer: bytes = resp.read()
    if b'"patch"' not in answer or ZERO_UID not in answer:
        raise RuntimeError(f"meshfit did not inject the benchmark pod: {answer[:300]!r}")
    return answer


async def _set_registered(api: Api, cluster: LocalCluster, configs: list[dict[str, Any]], namespaces: list[str],
                          registered: bool) -> None:
    """Register or delete the configurations, then wait until the apiserver acts on each.

    ``namespaces``: one per configuration, whose pods it injects.
    """
    for config in configs:
        if registered:
            await asyncio.to_thread(register_webhook, cluster, config)
        else:
            await asyncio.to_thread(unregister_webhook, cluster, config["metadata"]["name"])
    deadline = time.monotonic() + 30
    for namespace in namespaces:
        while True:
            probe = client_pod(f"probe-{uuid.uuid4().hex[:10]}")
            created = await api.request("POST", f"/api/v1/namespaces/{namespace}/pods", probe)
            await delete_pods(api, namespace, [probe["metadata"]["name"]], concurrency=1)
            injected = STATUS in (created["metadata"].get("annotations") or {})
            if injected == registered:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the apiserver did not {'start' if registered else 'stop'} calling the "
                                   f"webhook for {namespace}")
            await asyncio.sleep(0.2)


async def _rounds(cluster: LocalCluster, webhook: MeshfitServer, floor: MeshfitServer,
                  configs: list[dict[str, Any]], namespaces: dict[str, str], rounds: int, per_round: int,
                  concurrency: int, log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONFIGS}
    assert webhook.pid is not None and floor.pid is not None
    meter = CpuMeter({**cluster_pids(cluster), "webhook": webhook.pid, "floor": floor.pid})
    registered: bool | None = None
    seq = 0
    async with connect(cluster, concurrency) as api:
        for r in range(rounds):
            for name in CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS)):
                want = name != OFF
                if registered != want:
                    await _set_registered(api, cluster, configs, [namespaces[INJECT], namespaces[FLOOR]], want)
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
                # The shipped matchConditions keep a pod meshfit already patched from being sent again.
                expected = {OFF: 0, UNSELECTED: 0, SKIP: per_round, FLOOR: 0, INJECT: per_round}[name]
                if calls != expected:
                    raise RuntimeError(f"{name}: the webhook answered {calls:.0f} reviews for {per_round} pods, "
                                       f"expected {expected}")
                if name in (INJECT, FLOOR):
                    last = await api.request("GET", f"/api/v1/namespaces/{namespace}/pods/{batch[-1]['metadata']['name']}")
                    if STATUS not in (last["metadata"].get("annotations") or {}):
                        raise RuntimeError(f"{name}: pod {batch[-1]['metadata']['name']} was not injected")
                results[name].append({"pods": per_round, "seconds": elapsed, "pods_per_second": per_round / elapsed,
                                      "latency_ms": percentiles(latencies), "webhook_calls": calls,
                                      "cpu_seconds": cpu})
                log(f"  round {r + 1}/{rounds} {name:35} {per_round / elapsed:7.0f} pods/s  "
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
        for process in ("kube-apiserver", "etcd", "webhook", "floor", "bench client"):
            row[f"{process} CPU ms/pod"] = round(1000 * spent.get(process, 0.0) / total, 2)
        report.rows.append(row)
    report.details["rounds"] = results
    rows = {r["configuration"]: r for r in report.rows}
    for name, what in ((SKIP, "webhook called, namespace not opted in"),
                       (UNSELECTED, "webhook registered, namespace not selected")):
        ratio = rows[name]["x no webhook"]
        report.target(f"pod creation, {what}", f">= {TARGET}x no webhook", ratio, "x", ratio >= TARGET,
                      f"{rows[name]['pods/s']:.0f} vs {rows[OFF]['pods/s']:.0f} pods/s")
    floor_rates = [r["pods_per_second"] for r in results[FLOOR]]
    inject_rates = [r["pods_per_second"] for r in results[INJECT]]
    ratio = round(statistics.median(a / b for a, b in zip(inject_rates, floor_rates)), 3)
    rows[INJECT]["x injecting floor"] = ratio
    report.target("pod creation, webhook injecting", f">= {INJECT_TARGET}x the injecting floor", ratio, "x",
                  ratio >= INJECT_TARGET,
                  f"{rows[INJECT]['pods/s']:.0f} vs {rows[FLOOR]['pods/s']:.0f} pods/s; "
                  f"no webhook {rows[OFF]['pods/s']:.0f} (meshfit {rows[INJECT]['x no webhook']:.2f}x, "
                  f"floor {rows[FLOOR]['x no webhook']:.2f}x)")


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(pods=20, rounds=2, concurrency=4)


def main() -> None:
    command.main(run, QUICK, __doc__, {"pods": "pods per configuration (>= 2000 for the target)", "rounds": "", "concurrency": "requests in flight"})


if __name__ == "__main__":
    main()
