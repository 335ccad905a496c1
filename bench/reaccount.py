"""Benchmark 6: ``meshfit reaccount`` over a fleet on the real apiserver.

    python -m bench.reaccount [--pods 20000] [--qps 200] [--quick]

A fleet of bound pods is injected under one policy (sidecars guaranteed half
their CPU) and created; ``meshfit reaccount --apply`` (the real command, a
child process) then re-accounts it to another (sidecars guaranteed their full
CPU), twice: at a quarter of the fleet and at the whole of it, so the
client's memory can be seen to stay flat as the fleet grows.

The floor is the token bucket itself: with ``--qps Q`` a run of R requests
cannot take less than about ``(R - burst) / Q`` seconds, so the rate it allows
is ``Q / (requests per pod)`` pods per second. Reported: pods per second
against that floor (target >= 0.9x), API requests and writes per changed pod
(target <= 2 writes), the client's and kube-apiserver's CPU per pod, the
client's peak memory at both sizes and its extrapolation to 250,000 pods
(target <= 200 MB).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench import command
from bench.apiserver import NODE_TOLERATION, bench_cluster, connect, create_nodes, create_pods
from bench.cpu import cluster_pids, cpu_seconds
from bench.report import REPO, Report, write
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_MANIFEST
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file
from policy.model import Policy

FLEET_TARGET = 250_000
MEMORY_TARGET_MB = 200.0


def _policies(workdir: Path) -> tuple[Policy, Path]:
    """The old policy (the shipped one, CPU half guaranteed) and the new one's file (fully guaranteed)."""
    import yaml

    document = yaml.safe_load(Path(POLICY_MANIFEST).read_text())
    text = yaml.safe_load(document["data"]["policy.yaml"])
    text["resources"]["guaranteed"] = {"cpu": "1", "memory": "1"}
    new_file = workdir / "new-policy.yaml"
    new_file.write_text(yaml.safe_dump(text))
    old = load_policy_file(POLICY_MANIFEST)
    assert old.resources.guaranteed["cpu"] == Fraction(1, 2)
    return old, new_file


def _fleet(namespace: str, count: int, nodes: list[str], policy: Policy) -> list[dict[str, Any]]:
    """``count`` injected pods of a few typical shapes, bound round-robin to ``nodes``."""
    shapes = [({"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "4Gi"}),
              ({"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"}),
              ({"cpu": "1", "memory": "2Gi"}, None)]
    out = []
    cache: dict[int, dict[str, Any]] = {}
    for i in range(count):
        k = i % len(shapes)
        if k not in cache:
            requests, limits = shapes[k]
            resources: dict[str, Any] = {"requests": requests}
            if limits:
                resources["limits"] = limits
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "template", "labels": {"app.kubernetes.io/name": f"app{k}"}},
                   "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1", "resources": resources}],
                            "tolerations": [NODE_TOLERATION]}}
            result = inject(pod, Namespace(namespace, None), policy)
            assert result.injected, result.reason
            cache[k] = result.pod
        pod = json.loads(json.dumps(cache[k]))
        pod["metadata"]["name"] = f"fleet-{i:06d}"
        pod["metadata"]["namespace"] = namespace
        pod["spec"]["nodeName"] = nodes[i % len(nodes)]
        out.append(pod)
    return out


def _run_reaccount(cluster: LocalCluster, namespace: str, policy_file: Path, qps: float, burst: int,
                   concurrency: int) -> dict[str, Any]:
    """One ``meshfit reaccount --apply`` as a child process: its summary, wall time, CPU and peak memory."""
    argv = [sys.executable, "-m", "cli", "reaccount", "--kubeconfig", str(cluster.kubeconfig_path), "-n", namespace,
            "--policy", str(policy_file), "--apply", "--qps", str(qps), "--burst", str(burst),
            "--concurrency", str(concurrency), "-o", "json"]
    apiserver = cluster_pids(cluster).get("kube-apiserver")
    api_cpu = cpu_seconds(apiserver) if apiserver else 0.0
    started = time.perf_counter()
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak_kb = 0
    cpu = 0.0
    out_chunks: list[str] = []
    reader = threading.Thread(target=lambda: out_chunks.append(process.stdout.read() if process.stdout else ""))
    reader.start()
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak_kb = max(peak_kb, int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1]))
            cpu = max(cpu, cpu_seconds(process.pid))
        except (OSError, StopIteration, ValueError):
            pass
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    reader.join()
    if process.returncode != 0:
        raise RuntimeError(f"meshfit reaccount exited {process.returncode}")
    summary = json.loads("".join(out_chunks))["summary"]
    return {"summary": summary, "seconds": seconds, "client_cpu": cpu, "peak_mb": peak_kb / 1024,
            "apiserver_cpu": (cpu_seconds(apiserver) - api_cpu) if apiserver else 0.0}


def run(pods: int = 20000, qps: float = 200.0, concurrency: int = 32, nodes: int = 100,
        cluster: LocalCluster | None = None, out_dir: Path | None = None,
        log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    report = Report("reaccount", "Benchmark 6: meshfit reaccount on the real apiserver")
    burst = max(1, int(qps))
    sizes = sorted({max(1, pods // 4), pods})
    report.parameters = {"pods": pods, "sizes": sizes, "qps": qps, "burst": burst, "concurrency": concurrency,
                         "nodes": nodes, "change": "sidecars' guaranteed CPU 1/2 -> 1 (every pod resized)"}
    with bench_cluster(cluster) as c:
        run_id = uuid.uuid4().hex[:6]
        workdir = c.workdir / f"bench-reaccount-{run_id}"
        workdir.mkdir()
        old, new_file = _policies(workdir)
        results = []
        for size in sizes:
            namespace = f"bench-reaccount-{run_id}-{size}"
            c.create_namespace(namespace)

            async def populate(namespace: str = namespace, size: int = size) -> None:
                async with connect(c, 32) as api:
                    names = [f"bench-{run_id}-r-{i:04d}" for i in range(nodes)]
                    if size == sizes[0]:
                        await create_nodes(api, names)
                    await create_pods(api, namespace, _fleet(namespace, size, names, old))

            t = time.perf_counter()
            asyncio.run(populate())
            log(f"  {size} meshed pods created in {time.perf_counter() - t:.1f} s")
            figures = _run_reaccount(c, namespace, new_file, qps, burst, concurrency)
            figures["pods"] = size
            results.append(figures)
            s = figures["summary"]
            log(f"  reaccount {size}: {figures['seconds']:.1f} s, {s['requests']} requests, {s['writes']} writes, "
                f"peak {figures['peak_mb']:.0f} MB")
    _summarise(report, results, qps, burst)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def _summarise(report: Report, results: list[dict[str, Any]], qps: float, burst: int) -> None:
    for r in results:
        s = r["summary"]
        changed = s["outcomes"].get("resized", 0) + s["outcomes"].get("record_only", 0)
        per_pod = s["requests"] / max(1, r["pods"])
        floor_seconds = max(0.0, s["requests"] - burst) / qps
        allowed = r["pods"] / floor_seconds if floor_seconds > 0 else float("inf")
        rate = r["pods"] / r["seconds"]
        r.update({"changed": changed, "requests_per_pod": per_pod, "writes_per_changed": s["writes"] / max(1, changed),
                  "rate": rate, "allowed": allowed, "ratio": rate / allowed if allowed != float("inf") else 1.0})
        report.rows.append({
            "pods": r["pods"], "changed": changed, "seconds": round(r["seconds"], 1), "pods/s": round(rate, 1),
            "bucket allows pods/s": round(allowed, 1), "x floor": round(r["ratio"], 2),
            "requests/pod": round(per_pod, 2), "writes/changed pod": round(r["writes_per_changed"], 2),
            "client CPU ms/pod": round(1000 * r["client_cpu"] / r["pods"], 2),
            "apiserver CPU ms/pod": round(1000 * r["apiserver_cpu"] / r["pods"], 2),
            "client peak MB": round(r["peak_mb"], 1),
        })
    report.details["runs"] = results
    big = results[-1]
    report.target("reaccount rate vs the token bucket's", ">= 0.9x", big["ratio"], "x", big["ratio"] >= 0.9,
                  f"{big['rate']:.1f} pods/s at --qps {qps:g}; the bucket allows {big['allowed']:.1f}")
    report.target("API writes per changed pod", "<= 2", big["writes_per_changed"], "writes",
                  big["writes_per_changed"] <= 2 and big["changed"] == big["pods"],
                  f"{big['changed']} of {big['pods']} pods changed")
    small = results[0]
    slope = (big["peak_mb"] - small["peak_mb"]) / max(1, big["pods"] - small["pods"])
    projected = big["peak_mb"] + max(0.0, slope) * (FLEET_TARGET - big["pods"])
    report.target(f"client peak memory at {FLEET_TARGET:,} pods (extrapolated)", f"<= {MEMORY_TARGET_MB:g} MB",
                  projected, "MB", projected <= MEMORY_TARGET_MB,
                  f"{small['peak_mb']:.0f} MB at {small['pods']} pods, {big['peak_mb']:.0f} MB at {big['pods']}: "
                  f"{1024 * slope:.2f} KB per pod")


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(pods=40, qps=400.0, nodes=4)


def main() -> None:
    command.main(run, QUICK, __doc__, {"pods": "fleet size", "qps": "reaccount --qps",
                                       "concurrency": "reaccount --concurrency"})


if __name__ == "__main__":
    main()
