"""The cache fed by list+watch from recorded apiserver bytes: pages, events, a 410 Gone, a relist.

At every stage the per-node sums must equal a recount from the objects the
apiserver had sent so far, computed independently of the cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
from extender_shapes import default_policy
from replay_apiserver import ReplayApiServer, recording

from extender.cache import ClusterCache
from extender.feed import POD_SELECTOR, ClusterFeed
from extender.policy_source import LivePolicy
from extender.service import ExtenderService
from kube.client import ApiClient
from kube.config import ClusterConfig
from kube.watch import Backoff
from policy.pod_accounting import account_pod

PODS, NODES = "/api/v1/pods", "/api/v1/nodes"


def recount(pods: dict[str, dict]) -> dict[str, tuple[int, int, int, int, int]]:
    """node -> (pods, cpu, memory, exposure cpu, exposure memory) from the objects themselves."""
    out: dict[str, list[int]] = {}
    for pod in pods.values():
        acc = account_pod(pod)
        if not acc.holds_node:
            continue
        sums = out.setdefault(acc.node, [0, 0, 0, 0, 0])  # type: ignore[arg-type]
        sums[0] += 1
        sums[1] += acc.requests["cpu"].nanos
        sums[2] += acc.requests["memory"].nanos
        sums[3] += acc.exposure["cpu"].nanos
        sums[4] += acc.exposure["memory"].nanos
    return {k: tuple(v) for k, v in out.items()}  # type: ignore[misc]


def cached(cache: ClusterCache) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        name: (s.pods, s.req_cpu, s.req_memory, s.exp_cpu, s.exp_memory)
        for name, s in cache.nodes.items() if s.pods
    }


def apply_events(pods: dict[str, dict], ndjson: bytes) -> None:
    for line in ndjson.splitlines():
        event = orjson.loads(line)
        obj = event["object"]
        if event["type"] in ("ADDED", "MODIFIED"):
            pods[obj["metadata"]["uid"]] = obj
        elif event["type"] == "DELETED":
            pods.pop(obj["metadata"]["uid"], None)


@pytest.fixture
async def server() -> AsyncIterator[ReplayApiServer]:
    s = ReplayApiServer()
    await s.start()
    yield s
    await s.stop()


async def test_list_watch_410_relist(server: ReplayApiServer) -> None:
    proceed = asyncio.Event()
    server.on_list(NODES, server.body(recording("nodes-list.json")))
    server.on_list(PODS, server.body(recording("pods-list-1.json")), server.body(recording("pods-list-2.json")),
                   server.body(recording("pods-relist.json")))
    server.on_watch(PODS,
                    server.stream(recording("pods-watch-1.ndjson")),
                    server.stream(recording("pods-watch-gone.ndjson"), hold=proceed),
                    server.stream(recording("pods-watch-2.ndjson"), then_hang=True))

    service = ExtenderService(ClusterCache(), LivePolicy(default_policy(), "test"))
    stop = asyncio.Event()
    async with ApiClient(ClusterConfig(server=server.url)) as client:
        feed = ClusterFeed(client, service, page_size=2, settle_gc=False)
        for watch in feed.watches.values():
            watch.backoff = Backoff(initial=0.01, maximum=0.05)
        task = asyncio.create_task(feed.run(stop))
        try:
            # 1. Two LIST pages, then the first watch stream: bindings, a deletion, a completion.
            await server.wait_for(lambda: len(server.queries(PODS, "watch")) >= 2)
            expected: dict[str, dict] = {}
            for page in ("pods-list-1.json", "pods-list-2.json"):
                for pod in orjson.loads(recording(page))["items"]:
                    expected[pod["metadata"]["uid"]] = pod
            apply_events(expected, recording("pods-watch-1.ndjson"))
            assert service.cache.synced
            assert cached(service.cache) == recount(expected)
            assert len(service.cache.nodes) >= 2 and all(s.known for s in service.cache.nodes.values())

            lists = server.queries(PODS, "list")
            assert lists[0]["fieldSelector"] == POD_SELECTOR and lists[0]["limit"] == "2"
            assert "continue" in lists[1]
            watches = server.queries(PODS, "watch")
            last_rv = orjson.loads(recording("pods-watch-1.ndjson").splitlines()[-1])["object"]["metadata"]["resourceVersion"]
            list_rv = orjson.loads(recording("pods-list-2.json"))["metadata"]["resourceVersion"]
            assert watches[0]["resourceVersion"] == list_rv
            assert watches[1]["resourceVersion"] == last_rv  # resumed, not relisted

            # 2. The resumed watch answers 410 Expired: relist, then watch from the relist.
            proceed.set()
            await server.wait_for(lambda: len(server.queries(PODS, "watch")) >= 3)
            expected = {p["metadata"]["uid"]: p for p in orjson.loads(recording("pods-relist.json"))["items"]}
            apply_events(expected, recording("pods-watch-2.ndjson"))
            await server.wait_for(lambda: cached(service.cache) == recount(expected))  # the last stream's events
            assert set(service.cache.accounting.pods) == set(expected)
            relist_rv = orjson.loads(recording("pods-relist.json"))["metadata"]["resourceVersion"]
            assert server.queries(PODS, "watch")[2]["resourceVersion"] == relist_rv
            stats = feed.watches["pods"].stats
            assert (stats.lists, stats.relists) == (2, 1)

            text = service.metrics.render().decode()
            assert 'meshfit_extender_watch_relists_total{resource="pods"} 1' in text
            assert 'meshfit_extender_watch_restarts_total{resource="pods"}' in text
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


async def test_policy_configmap_watch_keeps_the_last_good_policy(server: ReplayApiServer, caplog) -> None:
    path = "/api/v1/namespaces/meshfit-system/configmaps"
    good = orjson.loads(orjson.dumps({
        "kind": "ConfigMapList", "apiVersion": "v1", "metadata": {"resourceVersion": "10"},
        "items": [_configmap("10", ceiling_memory='"0.05"')],
    }))
    events = b"\n".join(orjson.dumps(e) for e in (
        {"type": "MODIFIED", "object": _configmap("11", ceiling_memory='"lots"')},
        {"type": "MODIFIED", "object": _configmap("12", ceiling_memory='"0.2"', observe_only=True)},
        {"type": "DELETED", "object": _configmap("13", ceiling_memory='"0.2"')},
    )) + b"\n"
    gate = asyncio.Event()
    server.on_list(NODES, server.body(orjson.dumps({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})))
    server.on_list(PODS, server.body(orjson.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})))
    server.on_list(path, server.body(orjson.dumps(good)))
    server.on_watch(path, server.stream(events, hold=gate, then_hang=True))

    holder = LivePolicy()
    service = ExtenderService(ClusterCache(), holder)
    stop = asyncio.Event()
    async with ApiClient(ClusterConfig(server=server.url)) as client:
        feed = ClusterFeed(client, service, policy_configmap=("meshfit-system", "meshfit-policy"), settle_gc=False)
        assert not holder.settled
        task = asyncio.create_task(feed.run(stop))
        try:
            await server.wait_for(lambda: holder.settled)
            assert server.queries(path, "list")[0]["fieldSelector"] == "metadata.name=meshfit-policy"
            assert str(holder.policy.scheduling.exposure_ceiling["memory"]) == "1/20"
            gate.set()
            await server.wait_for(lambda: holder.rejections == 1 and holder.observe_only)
            assert str(holder.policy.scheduling.exposure_ceiling["memory"]) == "1/5"
            watch = feed.watches["policy"]
            await server.wait_for(lambda: watch.stats.events_by_type.get("DELETED", 0) >= 1)
            assert holder.observe_only, "the DELETED event leaves the last good policy in place"
            assert "scheduling.exposureCeiling.memory" in holder.last_rejection.message
            assert any("scheduling.exposureCeiling.memory" in r.getMessage() for r in caplog.records)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


def _configmap(rv: str, *, ceiling_memory: str, observe_only: bool = False) -> dict:
    text = default_policy_text().replace('exposureCeiling: {cpu: "0.25", memory: "0.10"}',
                                         f'exposureCeiling: {{cpu: "0.25", memory: {ceiling_memory}}}')
    text = text.replace("extenderObserveOnly: false", f"extenderObserveOnly: {str(observe_only).lower()}")
    assert ceiling_memory in text
    return {
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "meshfit-policy", "namespace": "meshfit-system", "resourceVersion": rv},
        "data": {"policy.yaml": text},
    }


def default_policy_text() -> str:
    import yaml
    from extender_shapes import POLICY_FILE

    return yaml.safe_load(POLICY_FILE.read_text())["data"]["policy.yaml"]
