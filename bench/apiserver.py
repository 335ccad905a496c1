"""A concurrent client for the local kube-apiserver, and the bulk operations benchmarks need.

``LocalCluster.request`` opens one TLS connection per call, which is right for
tests and far too slow to create thousands of pods: the benchmark would
measure its own client. This keeps a pool of connections (aiohttp, admin
token, the cluster's CA) and runs a bounded number of requests at once. The
admin is ``system:masters``, which API Priority and Fairness exempts, so the
apiserver's own limits do not throttle the load either.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import orjson

from controlplane.cluster import LocalCluster

JSON = dict[str, Any]


class ApiError(RuntimeError):
    pass


class Api:
    """JSON requests as the cluster admin over a pool of ``connections`` connections."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json", ok: Iterable[int] = (200, 201)) -> JSON:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(method, self.base + path, data=data, headers=headers) as resp:
            raw = await resp.read()
            if resp.status not in ok:
                raise ApiError(f"{method} {path}: HTTP {resp.status}: {raw[:300]!r}")
        decoded: JSON = orjson.loads(raw) if raw else {}
        return decoded

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[JSON]:
        """Events of a watch on ``path`` from ``resource_version``, until the caller stops reading.

        The apiserver closes a watch whose reader falls behind a burst (its
        watch cache drops unresponsive watchers, silently, at the default log
        level); like an informer, this resumes from the last event it
        delivered, so no event is lost or repeated.
        """
        while True:
            url = f"{self.base}{path}?watch=1&allowWatchBookmarks=true&resourceVersion={resource_version}"
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
                if resp.status != 200:
                    raise ApiError(f"watch {path}: HTTP {resp.status}")
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event: JSON = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        raise ApiError(f"watch {path}: {event.get('object')}")
                    resource_version = event["object"]["metadata"]["resourceVersion"]
                    if event.get("type") != "BOOKMARK":
                        yield event


@contextmanager
def bench_cluster(cluster: LocalCluster | None, **kwargs: Any) -> Iterator[LocalCluster]:
    """The given cluster, or a fresh one stopped afterwards."""
    if cluster is not None:
        yield cluster
        return
    own = LocalCluster(**kwargs)
    own.start()
    try:
        yield own
    finally:
        own.stop()


@asynccontextmanager
async def connect(cluster: LocalCluster, connections: int = 32) -> AsyncIterator[Api]:
    context = ssl.create_default_context(cafile=str(cluster.ca_path))
    connector = aiohttp.TCPConnector(ssl=context, limit=connections)
    headers = {"Authorization": f"Bearer {cluster.token}", "Accept": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield Api(session, cluster.api_url)


async def bounded(jobs: Iterable[Callable[[], Awaitable[Any]]], concurrency: int) -> list[float]:
    """Run the jobs with at most ``concurrency`` in flight; returns each one's latency in seconds."""
    queue = iter(jobs)
    latencies: list[float] = []

    async def worker() -> None:
        for job in queue:  # one shared iterator: each job is taken once
            started = time.perf_counter()
            await job()
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


#: Benchmark nodes carry this NoSchedule taint, so that on a shared cluster (the smoke tests run on
#: the test session's) no other pod is ever scheduled onto them; benchmark pods tolerate it.
NODE_TAINT = {"key": "bench.meshfit.io/node", "value": "true", "effect": "NoSchedule"}
NODE_TOLERATION = {"key": "bench.meshfit.io/node", "operator": "Exists", "effect": "NoSchedule"}


def node(name: str, cpu: str = "32", memory: str = "128Gi", pods: str = "110") -> tuple[JSON, JSON]:
    """(the Node, its status): a Ready node as ``LocalCluster.create_node`` makes one, tainted for benchmarks."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    body = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64", "bench.meshfit.io/node": "true"}},
            "spec": {"taints": [NODE_TAINT]}}
    status = {"status": {"capacity": resources, "allocatable": resources,
                         "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                         "message": "benchmark node (no kubelet)", "lastHeartbeatTime": now,
                                         "lastTransitionTime": now}],
                         "addresses": [{"type": "Hostname", "address": name}]}}
    return body, status


async def create_nodes(api: Api, names: list[str], concurrency: int = 32, **size: str) -> None:
    """Create Ready nodes (POST, then their status as a kubelet would); existing ones are kept."""

    def job(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            body, status = node(name, **size)
            await api.request("POST", "/api/v1/nodes", body, ok=(201, 409))
            await api.request("PATCH", f"/api/v1/nodes/{name}/status", status,
                              content_type="application/merge-patch+json")
        return run

    await bounded((job(n) for n in names), concurrency)


async def create_pods(api: Api, namespace: str, pods: Iterable[JSON], concurrency: int = 32) -> list[float]:
    """POST every pod; returns the latencies."""

    def job(pod: JSON) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await api.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
        return run

    return await bounded((job(p) for p in pods), concurrency)


async def delete_pods(api: Api, namespace: str, names: Iterable[str], concurrency: int = 32) -> None:
    """Delete at once (grace 0): with no kubelet, a graceful delete would wait forever."""

    def job(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0",
                              ok=(200, 202, 404))
        return run

    await bounded((job(n) for n in names), concurrency)


def percentiles(samples: list[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p90/p99/max of ``samples`` (seconds), in milliseconds by default."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale, 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1] * scale, 2)}
