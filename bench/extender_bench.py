"""Benchmark of the scheduler extender at fleet scale: cache build, memory, filter/prioritize latency.

    .venv/bin/python bench/extender_bench.py [--nodes 10000] [--pods 250000] [--rounds 300]

Three measurements, each in its own process so none pollutes another:

1. **build**: ``meshfit extender serve --kubeconfig`` (the real command) against
   a loopback server that answers LIST and WATCH for a generated fleet
   (paginated by 500, as the apiserver does); the time from start to
   ``/readyz`` = 200, and the extender's resident and peak memory after it.
   Its floor, just before and just after it: :mod:`bench.list_floor`, a
   fresh process paging through the same node and pod LISTs and decoding
   them, timed from its start to its exit.
2. **latency**: the bench then plays kube-scheduler against that same
   process over HTTP on loopback: ``filter`` and ``prioritize`` with 500
   and 5,000 candidate node names (``nodeCacheCapable``), for a typical
   injected pod and for one that fails (almost) every node, where every
   failure carries its message. Round-trip percentiles, as the scheduler
   waits for them.
3. **memory**: a fresh process builds the cache from the same pods fed one at
   a time (no LIST held in memory) and reports its resident memory, and the
   in-process cost of the verbs without HTTP.

The fleet is deterministic: a few hundred workloads (meshfit swap and
pod-level pods injected by the real engine, Istio pods, plain pods) with
realistic metadata, status and managedFields, spread over nodes of three
sizes in proportion to their capacity. Results are printed and written to
``bench/results/extender.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "extender.json"
POLICY_FILE = ROOT / "manifests" / "policy.yaml"
PAGE = 500
WORKLOADS = 300
NODE_SHAPES = (("32", "128Gi", 1), ("64", "256Gi", 2), ("96", "384Gi", 3))  # cpu, memory, relative capacity


# -- the fleet ---------------------------------------------------------------------
def node_object(i: int) -> dict[str, Any]:
    cpu, memory, _ = NODE_SHAPES[i % len(NODE_SHAPES)]
    name = f"node-{i:05d}"
    resources = {"cpu": cpu, "memory": memory, "pods": "250", "ephemeral-storage": "200Gi", "hugepages-2Mi": "0"}
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {
            "name": name, "uid": str(uuid.UUID(int=i + 1)), "resourceVersion": str(1000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": f"m.{cpu}x", "topology.kubernetes.io/zone": f"zone-{i % 3}",
                "topology.kubernetes.io/region": "region-1",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"podCIDR": f"10.{i // 256 % 256}.{i % 256}.0/24", "providerID": f"cloud://{name}"},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                {"type": t, "status": "False" if t != "Ready" else "True", "reason": f"Kubelet{t}",
                 "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "addresses": [{"type": "InternalIP", "address": f"192.168.{i // 256 % 256}.{i % 256}"},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.36.3", "containerRuntimeVersion": "containerd://2.1.0",
                         "kernelVersion": "6.8.0", "osImage": "Linux", "architecture": "amd64", "operatingSystem": "linux"},
            "images": [{"names": [f"registry.example.com/img-{k}:1.{k}"], "sizeBytes": 100_000_000 + k} for k in range(8)],
        },
    }


def workload_templates() -> list[bytes]:
    """Pod JSON with placeholders, one per workload, injected by the real engine."""
    from policy.decision import Namespace
    from policy.inject import inject
    from policy.load import load_policy_file

    base = load_policy_file(POLICY_FILE)
    import dataclasses

    swap = dataclasses.replace(base, resources=dataclasses.replace(base.resources, variant="swap"))
    pod_level = dataclasses.replace(base, resources=dataclasses.replace(base.resources, variant="pod-level"))
    rnd = random.Random(7)
    templates: list[bytes] = []
    for k in range(WORKLOADS):
        ns, app = f"team-{k % 100:02d}", f"app-{k:03d}"
        cpu = rnd.choice(["250m", "500m", "500m", "1", "2"])
        memory = rnd.choice(["512Mi", "1Gi", "1Gi", "2Gi", "4Gi"])
        lim_cpu = {"250m": "500m", "500m": "1", "1": "2", "2": "4"}[cpu]
        app_container = {
            "name": "app", "image": f"registry.example.com/{ns}/{app}:2.{k % 7}",
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "APP_NAME", "value": app}, {"name": "JAVA_OPTS", "value": "-XX:MaxRAMPercentage=75"}],
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": lim_cpu, "memory": memory}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
            "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}],
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
        }
        pod: dict[str, Any] = {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {
                "name": "__NAME__", "generateName": f"{app}-7d9f8c6b5-", "namespace": ns, "uid": "__UID__",
                "resourceVersion": "__RV__", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app.kubernetes.io/name": app, "pod-template-hash": "7d9f8c6b5", "team": ns},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{app}-7d9f8c6b5",
                                     "uid": str(uuid.UUID(int=10**6 + k)), "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {
                "containers": [app_container], "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "schedulerName": "default-scheduler",
                "securityContext": {}, "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                ],
                "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}],
            },
        }
        kind = k % 10
        if kind <= 7:
            pod = inject(pod, Namespace(ns, None), swap if kind <= 5 else pod_level).pod
        elif kind == 8:
            pod["metadata"]["annotations"] = {"sidecar.istio.io/status": '{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"default"}'}
            pod["spec"]["containers"].append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0",
                                              "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}})
            pod["spec"]["initContainers"] = [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.24.0",
                                              "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}}}]
        pod["spec"]["nodeName"] = "__NODE__"
        pod["metadata"]["managedFields"] = [
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {"f:app.kubernetes.io/name": {}}},
                                                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}, "f:resources": {}}}}}},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:05Z",
             "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {"f:conditions": {}, "f:containerStatuses": {}, "f:phase": {}}}},
        ]
        names = [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
        pod["status"] = {
            "phase": "Running", "hostIP": "__HOSTIP__", "podIP": "__IP__", "podIPs": [{"ip": "__IP__"}],
            "startTime": "2026-01-01T00:00:02Z", "qosClass": "Burstable",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
                           for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": n, "ready": True, "restartCount": 0, "started": True,
                                   "image": "registry.example.com/x:1", "imageID": "registry.example.com/x@sha256:" + "0" * 64,
                                   "containerID": "containerd://" + "a" * 64,
                                   "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}}} for n in names],
        }
        templates.append(orjson.dumps(pod))
    return templates


class Fleet:
    """Pod ``i`` is workload ``i % WORKLOADS`` on a node drawn by capacity; all deterministic."""

    def __init__(self, nodes: int, pods: int) -> None:
        self.node_count = nodes
        self.pod_count = pods
        self.templates = workload_templates()
        rnd = random.Random(11)
        weights = [NODE_SHAPES[i % len(NODE_SHAPES)][2] for i in range(nodes)]
        self.placement = rnd.choices(range(nodes), weights=weights, k=pods)

    def pod_bytes(self, i: int) -> bytes:
        n = self.placement[i]
        return (self.templates[i % WORKLOADS]
                .replace(b"__NAME__", f"app-{i % WORKLOADS:03d}-7d9f8c6b5-{i:06d}".encode())
                .replace(b"__UID__", str(uuid.UUID(int=(1 << 64) + i)).encode())
                .replace(b"__RV__", str(10_000 + i).encode())
                .replace(b"__NODE__", f"node-{n:05d}".encode())
                .replace(b"__HOSTIP__", f"192.168.{n // 256 % 256}.{n % 256}".encode())
                .replace(b"__IP__", f"10.{n // 256 % 256}.{n % 256}.{i % 250 + 2}".encode()))


# -- role: a loopback server answering LIST and WATCH for the fleet ---------------------
def serve_fleet(nodes: int, pods: int, port_file: str) -> None:
    from aiohttp import web

    fleet = Fleet(nodes, pods)
    rv = str(10_000 + pods)
    stop = asyncio.Event()

    def page(items: list[bytes], kind: str, cont: int | None) -> bytes:
        meta = {"resourceVersion": rv, **({"continue": str(cont)} if cont is not None else {})}
        return (b'{"kind":"' + kind.encode() + b'","apiVersion":"v1","metadata":' + orjson.dumps(meta)
                + b',"items":[' + b",".join(items) + b"]}")

    def paginate(count: int, item: Any, kind: str) -> list[bytes]:
        # Rendered up front, as the apiserver's watch cache has them at hand: the bench
        # measures the extender, not how fast Python can make up a fleet.
        out = []
        for start in range(0, count, PAGE):
            end = min(start + PAGE, count)
            out.append(page([item(i) for i in range(start, end)], kind, end if end < count else None))
        return out

    node_pages = paginate(nodes, lambda i: orjson.dumps(node_object(i)), "NodeList")
    pod_pages = paginate(pods, fleet.pod_bytes, "PodList")

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await stop.wait()
            return response
        if int(request.query.get("limit", PAGE)) != PAGE:
            return web.Response(status=400, text=f"this server pages by {PAGE}")
        if request.path not in ("/api/v1/nodes", "/api/v1/pods"):  # namespaces, configmaps: this fleet has none
            return web.Response(body=page([], "List", None), content_type="application/json")
        index = int(request.query.get("continue", "0")) // PAGE
        pages = node_pages if request.path == "/api/v1/nodes" else pod_pages
        return web.Response(body=pages[index], content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        Path(port_file).write_text(str(runner.addresses[0][1]))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# -- role: the cache alone, for its memory and the verbs' in-process cost ------------------
def rss_kib(pid: int | str = "self") -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def measure_memory(nodes: int, pods: int, rounds: int) -> dict[str, Any]:
    fleet = Fleet(nodes, pods)  # generated before the baseline: the templates are not the cache
    from extender.cache import ClusterCache
    from extender.collector import settle
    from extender.inflight import InFlight
    from extender.policy_source import LivePolicy
    from extender.protocol import decode_args, encode_filter, encode_priorities
    from extender.service import ExtenderService
    from policy.load import load_policy_file
    from policy.pod_entry import reduce_pod

    import aiohttp  # noqa: F401  - what a serving process has loaded anyway
    from kube.config import ClusterConfig  # noqa: F401

    gc.collect()
    base_rss, _ = rss_kib()
    cache = ClusterCache()
    started = time.perf_counter()
    cache.sync_nodes([node_object(i) for i in range(nodes)])
    sync = cache.pod_sync()
    for i in range(pods):
        sync.add(reduce_pod(orjson.loads(fleet.pod_bytes(i))))
    sync.finish()
    build_seconds = time.perf_counter() - started
    settle()
    rss, _ = rss_kib()
    service = ExtenderService(cache, LivePolicy(load_policy_file(POLICY_FILE), "bench"), inflight=InFlight(0))
    verbs: dict[str, Any] = {}
    for label, body in request_bodies(fleet).items():
        async def run(body: bytes = body) -> tuple[list[float], list[float]]:
            f, p = [], []
            for _ in range(rounds):
                t = time.perf_counter()
                args = decode_args(body)
                out = await service.filter(args)
                encode_filter(args, out.passed, out.failed, out.unresolvable)
                f.append(time.perf_counter() - t)
                t = time.perf_counter()
                args = decode_args(body)
                encode_priorities(args.names, service.prioritize(args))
                p.append(time.perf_counter() - t)
            return f, p

        f, p = asyncio.run(run())
        verbs[label] = {"filter": percentiles(f), "prioritize": percentiles(p)}
    return {
        "nodes": nodes, "pods": pods,
        "cache_build_seconds_from_dicts": round(build_seconds, 2),
        "process_rss_mib": round(rss / 1024, 1),
        "baseline_rss_mib": round(base_rss / 1024, 1),
        "cache_rss_mib": round((rss - base_rss) / 1024, 1),
        "in_process_ms": verbs,
    }


# -- the scheduler's requests --------------------------------------------------------------
def candidate_pods() -> dict[str, dict[str, Any]]:
    from policy.decision import Namespace
    from policy.inject import inject
    from policy.load import load_policy_file
    import dataclasses

    base = load_policy_file(POLICY_FILE)
    swap = dataclasses.replace(base, resources=dataclasses.replace(base.resources, variant="swap"))

    def pod(name: str, cpu: str, memory: str, lim_cpu: str, lim_memory: str) -> dict[str, Any]:
        p = {"kind": "Pod", "apiVersion": "v1",
             "metadata": {"name": name, "namespace": "team-00", "uid": str(uuid.uuid4()), "labels": {"app.kubernetes.io/name": name}},
             "spec": {"schedulerName": "default-scheduler", "containers": [{
                 "name": "app", "image": "registry.example.com/team-00/app:1",
                 "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": lim_cpu, "memory": lim_memory}}}]}}
        return inject(p, Namespace("team-00", None), swap).pod

    return {
        # A typical injected pod: most candidate nodes pass.
        "typical": pod("web", "1", "2Gi", "2", "2Gi"),
        # Too big for all but the emptiest large nodes: most candidates fail, each with its message.
        "fails-most": pod("huge", "60", "200Gi", "64", "200Gi"),
    }


def request_bodies(fleet: Fleet) -> dict[str, bytes]:
    rnd = random.Random(3)
    bodies = {}
    for candidates in (500, 5000):
        names = [f"node-{i:05d}" for i in rnd.sample(range(fleet.node_count), min(candidates, fleet.node_count))]
        for label, pod in candidate_pods().items():
            bodies[f"{candidates} nodes, {label}"] = orjson.dumps({"Pod": pod, "NodeNames": names, "Nodes": None})
    return bodies


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1] * 1000, 2),
            "mean": round(statistics.fmean(ordered) * 1000, 2)}


# -- driver ---------------------------------------------------------------------------
async def drive_http(url: str, bodies: dict[str, bytes], rounds: int) -> dict[str, Any]:
    import aiohttp

    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for label, body in bodies.items():
            stats: dict[str, list[float]] = {"filter": [], "prioritize": []}
            failed = 0
            for r in range(rounds + 20):
                for verb in ("filter", "prioritize"):
                    t = time.perf_counter()
                    async with session.post(f"{url}/{verb}", data=body, headers={"Content-Type": "application/json"}) as resp:
                        raw = await resp.read()
                    elapsed = time.perf_counter() - t
                    assert resp.status == 200, raw[:300]
                    if r >= 20:  # warm-up rounds are not counted
                        stats[verb].append(elapsed)
                    if verb == "filter":
                        answer = orjson.loads(raw)
                        failed = len(answer["FailedNodes"]) + len(answer["FailedAndUnresolvableNodes"])
            out[label] = {"filter": percentiles(stats["filter"]), "prioritize": percentiles(stats["prioritize"]),
                          "nodes_failed_per_filter": failed}
    return out


def list_floor(kubeconfig: Path) -> dict[str, Any]:
    """:mod:`bench.list_floor` over the nodes and the pods, in a fresh process, timed from its start as the build is.

    The collector is off while it lists, as it is during the extender's own initial LIST.
    """
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.list_floor", "--kubeconfig", str(kubeconfig),
                           "--path", "/api/v1/nodes", "--path", "/api/v1/pods", "--no-gc"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--role", choices=("driver", "apiserver", "memory"), default="driver", help=argparse.SUPPRESS)
    parser.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "apiserver":
        serve_fleet(args.nodes, args.pods, args.port_file)
        return
    if args.role == "memory":
        print(json.dumps(measure_memory(args.nodes, args.pods, args.rounds)))
        return

    me = [sys.executable, str(Path(__file__).resolve())]
    sizes = ["--nodes", str(args.nodes), "--pods", str(args.pods)]
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "fleet": {"nodes": args.nodes, "pods": args.pods, "workloads": WORKLOADS, "page_size": PAGE},
    }
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        print(f"generating a fleet of {args.nodes} nodes and {args.pods} pods behind a loopback LIST/WATCH server ...", flush=True)
        apiserver = subprocess.Popen([*me, "--role", "apiserver", *sizes, "--port-file", str(port_file)])
        try:
            while not port_file.exists() or not port_file.read_text():
                if apiserver.poll() is not None:
                    raise SystemExit("the fleet server died")
                time.sleep(0.1)
            api_url = f"http://127.0.0.1:{port_file.read_text()}"
            kubeconfig = Path(tmp) / "kubeconfig"
            kubeconfig.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "bench",
                "clusters": [{"name": "bench", "cluster": {"server": api_url}}],
                "users": [{"name": "bench", "user": {"token": "bench"}}],
                "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
            }))
            from controlplane.ports import free_port

            # The build's floor, measured around it: a bare client paging the same LISTs, from its process's start.
            floors = [list_floor(kubeconfig)]
            port = free_port()
            log = open(Path(tmp) / "extender.log", "w")
            started = time.perf_counter()
            extender = subprocess.Popen(
                [sys.executable, "-m", "cli", "extender", "serve", "--kubeconfig", str(kubeconfig),
                 "--policy", str(POLICY_FILE), "--port", str(port), "--log-level", "warning"],
                stderr=log, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            url = f"http://127.0.0.1:{port}"
            import urllib.request

            while True:
                try:
                    if urllib.request.urlopen(f"{url}/readyz", timeout=5).status == 200:
                        break
                except OSError:
                    pass
                if extender.poll() is not None:
                    raise SystemExit("the extender died; see its log")
                time.sleep(0.05)
            build = time.perf_counter() - started
            time.sleep(1)
            rss, hwm = rss_kib(extender.pid)
            floors.append(list_floor(kubeconfig))  # the extender idles meanwhile: its watches have nothing to say
            floor = statistics.mean(f["wall_seconds"] for f in floors)
            results["build"] = {"seconds_to_ready": round(build, 2), "rss_mib_after": round(rss / 1024, 1),
                                "peak_rss_mib_during_list": round(hwm / 1024, 1),
                                "floor_seconds": [round(f["wall_seconds"], 2) for f in floors],
                                "floor_items": floors[0]["items"], "x_floor": round(build / floor, 3)}
            print(f"build: ready after {build:.1f}s; extender RSS {rss / 1024:.0f} MiB (peak {hwm / 1024:.0f} MiB during the LIST)", flush=True)
            floor_text = ", ".join(f"{f['wall_seconds']:.1f}" for f in floors)
            print(f"build floor (bare paged LIST of nodes and pods, decoded): {floor_text} s;"
                  f" build = {build / floor:.2f}x the floor", flush=True)

            fleet = Fleet(args.nodes, args.pods)
            results["http_round_trip_ms"] = asyncio.run(drive_http(url, request_bodies(fleet), args.rounds))
            rss, hwm = rss_kib(extender.pid)
            results["build"]["rss_mib_after_requests"] = round(rss / 1024, 1)
            extender.send_signal(signal.SIGTERM)
            results["build"]["exit_code_on_sigterm"] = extender.wait(30)
        finally:
            apiserver.send_signal(signal.SIGTERM)
            apiserver.wait(30)

    print("memory: building the cache in a fresh process ...", flush=True)
    out = subprocess.run([*me, "--role", "memory", *sizes, "--rounds", str(args.rounds)], capture_output=True, text=True, check=True)
    results["memory"] = json.loads(out.stdout.strip().splitlines()[-1])
    results["peak_rss_mib_of_memory_process"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)

    print()
    print(f"fleet: {args.nodes} nodes, {args.pods} pods ({WORKLOADS} workloads); {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"cache build (real `meshfit extender serve`, paginated LIST over loopback): {results['build']['seconds_to_ready']} s to /readyz")
    print(f"extender RSS after build: {results['build']['rss_mib_after']} MiB; peak during the LIST: {results['build']['peak_rss_mib_during_list']} MiB")
    m = results["memory"]
    print(f"cache alone (fresh process, pods fed one by one): {m['cache_rss_mib']} MiB over a {m['baseline_rss_mib']} MiB baseline = {m['process_rss_mib']} MiB RSS")
    print()
    print(f"{'request':<28} {'verb':<11} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}   (ms, HTTP round trip)  failed nodes")
    for label, verbs in results["http_round_trip_ms"].items():
        for verb in ("filter", "prioritize"):
            s = verbs[verb]
            extra = str(verbs["nodes_failed_per_filter"]) if verb == "filter" else ""
            print(f"{label:<28} {verb:<11} {s['p50']:>7} {s['p90']:>7} {s['p99']:>7} {s['max']:>7}   {extra}")
    print()
    print(f"{'request':<28} {'verb':<11} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}   (ms, in process: decode + verb + encode)")
    for label, verbs in m["in_process_ms"].items():
        for verb in ("filter", "prioritize"):
            s = verbs[verb]
            print(f"{label:<28} {verb:<11} {s['p50']:>7} {s['p90']:>7} {s['p99']:>7} {s['max']:>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
