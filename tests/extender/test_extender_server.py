"""The real server on loopback, fed the ExtenderArgs kube-scheduler sent (recordings/), in both node modes."""

from __future__ import annotations

import orjson
import pytest
from extender_http import Running
from extender_shapes import app_pod, bound, default_policy, meshed, node, policy_with, watched
from replay_apiserver import recording

from extender.cache import ClusterCache
from extender.policy_source import LivePolicy
from extender.service import ExtenderService
from policy.pod_accounting import account_pod
from policy.pod_entry import reduce_pod

RECORDED_POD = orjson.loads(recording("args-cache-filter.json"))["Pod"]


def service_for(policy=None) -> ExtenderService:
    """node-a/b/c as recorded, node-c (4 cpu, 8Gi) already carrying a pod with 640Mi of memory exposure."""
    cache = ClusterCache()
    cache.sync_nodes(orjson.loads(recording("nodes-list.json"))["items"])
    filler = meshed(app_pod("filler-0", "1", "2Gi", limits={"cpu": "1", "memory": "8Gi"}))
    assert account_pod(filler).exposure["memory"].format() == "640Mi"
    cache.sync_pods([bound(filler, "node-c")])
    return ExtenderService(cache, LivePolicy(policy or default_policy(), "test"))


def keys(answer: object) -> set[str]:
    assert isinstance(answer, dict)
    return set(answer)


async def test_recorded_filter_node_cache_capable(serve) -> None:
    running: Running = await serve(service_for())
    status, answer = await running.post("filter", recording("args-cache-filter.json"))
    assert status == 200
    assert keys(answer) == {"NodeNames", "Nodes", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    assert answer["Nodes"] is None and answer["Error"] == ""
    asked = orjson.loads(recording("args-cache-filter.json"))["NodeNames"]
    assert set(answer["NodeNames"]) | set(answer["FailedAndUnresolvableNodes"]) == set(asked)
    assert answer["FailedAndUnresolvableNodes"] == {
        "node-c": "cpu exposure would reach 41.3 percent of allocatable (ceiling 25 percent): "
                  "450m already exposed + 1200m for this pod, of 4 allocatable; "
                  "memory exposure would reach 12.5 percent of allocatable (ceiling 10 percent): "
                  "640Mi already exposed + 384Mi for this pod, of 8Gi allocatable",
    }
    assert answer["FailedNodes"] == {}


async def test_recorded_filter_full_node_list(serve) -> None:
    running: Running = await serve(service_for())
    args = orjson.loads(recording("args-full-filter.json"))
    status, answer = await running.post("filter", recording("args-full-filter.json"))
    assert status == 200
    assert answer["NodeNames"] is None
    passed = answer["Nodes"]["items"]
    assert [n["metadata"]["name"] for n in passed] == ["node-a", "node-b"]
    # The very objects the scheduler sent come back.
    sent = {n["metadata"]["name"]: n for n in args["Nodes"]["items"]}
    assert passed == [sent["node-a"], sent["node-b"]]
    assert set(answer["FailedAndUnresolvableNodes"]) == {"node-c"}


@pytest.mark.parametrize("name", ["args-cache-prioritize.json", "args-full-prioritize.json"])
async def test_recorded_prioritize(serve, name: str) -> None:
    running: Running = await serve(service_for())
    status, answer = await running.post("prioritize", recording(name))
    assert status == 200
    assert isinstance(answer, list)
    assert [h["Host"] for h in answer] == ["node-a", "node-b", "node-c"]
    assert all(set(h) == {"Host", "Score"} and 0 <= h["Score"] <= 10 for h in answer)
    scores = {h["Host"]: h["Score"] for h in answer}
    # Identical empty nodes score alike; the smaller, exposed node-c scores lowest.
    assert scores["node-a"] == scores["node-b"] > scores["node-c"]


async def test_an_unknown_node_passes_with_a_neutral_score_and_is_counted(serve) -> None:
    running: Running = await serve(service_for())
    args = orjson.loads(recording("args-cache-filter.json"))
    args["NodeNames"] = ["node-new", "node-a"]
    status, answer = await running.post("filter", args)
    assert status == 200 and answer["NodeNames"] == ["node-new", "node-a"]
    status, answer = await running.post("prioritize", args)
    assert answer[0] == {"Host": "node-new", "Score": 5}
    _, _, text = await running.get("/metrics")
    assert 'meshfit_extender_unknown_nodes_total{verb="filter"} 1' in text
    assert 'meshfit_extender_unknown_nodes_total{verb="prioritize"} 1' in text


async def test_a_pod_meshfit_did_not_inject_passes_untouched(serve) -> None:
    running: Running = await serve(service_for())
    plain = app_pod("batch-1", "3", "7Gi")  # would not even fit node-c's requests
    status, answer = await running.post("filter", {"Pod": plain, "NodeNames": ["node-a", "node-b", "node-c"]})
    assert answer["NodeNames"] == ["node-a", "node-b", "node-c"]
    assert answer["FailedNodes"] == {} and answer["FailedAndUnresolvableNodes"] == {}
    status, scores = await running.post("prioritize", {"Pod": plain, "NodeNames": ["node-a", "node-c"]})
    assert scores[0]["Score"] > scores[1]["Score"]  # still comparable: node-c is fuller


async def test_an_injected_pod_gets_the_fit_recheck(serve) -> None:
    running: Running = await serve(service_for())
    big = meshed(app_pod("big-0", "4", "4Gi"), policy_with(variant="pod-level"))  # no node exposure
    status, answer = await running.post("filter", {"Pod": big, "NodeNames": ["node-a", "node-c"]})
    assert answer["NodeNames"] == ["node-a"]
    assert answer["FailedNodes"]["node-c"].startswith("pod does not fit: cpu requests 1 of 4 allocatable")


async def test_observe_only_passes_everything_and_counts_what_it_would_fail(serve) -> None:
    running: Running = await serve(service_for(policy_with(observe_only=True)))
    status, answer = await running.post("filter", recording("args-cache-filter.json"))
    assert answer["NodeNames"] == orjson.loads(recording("args-cache-filter.json"))["NodeNames"]
    assert answer["FailedAndUnresolvableNodes"] == {} and answer["FailedNodes"] == {}
    status, scores = await running.post("prioritize", recording("args-cache-prioritize.json"))
    assert status == 200 and len(scores) == 3
    _, _, text = await running.get("/metrics")
    assert 'meshfit_extender_nodes_would_fail_total{reason="exposure"} 1' in text
    assert "meshfit_extender_nodes_failed_total{" not in text
    assert "meshfit_extender_observe_only 1" in text


@pytest.mark.parametrize("verb,body,needle", [
    ("filter", b"", "empty request body"),
    ("filter", b"{not json", "not JSON"),
    ("filter", b"[]", "must be a JSON object"),
    ("filter", b'{"NodeNames": ["a"]}', "Pod must be a Pod object"),
    ("filter", b'{"Pod": {"metadata": {}}, "NodeNames": ["a"]}', "metadata.name is required"),
    ("filter", b'{"Pod": {"metadata": {"name": "x"}}, "NodeNames": "a"}', "NodeNames must be a list of strings"),
    ("filter", b'{"Pod": {"metadata": {"name": "x"}}}', "needs NodeNames"),
    ("prioritize", b'{"Pod": {"metadata": {"name": "x"}}, "Nodes": {"items": [{"metadata": 3}]}}', "items[0].metadata.name"),
    ("prioritize", b'{"Pod": {"metadata": {"name": "x"}, "spec": []}, "NodeNames": []}', "spec must be an object"),
    ("bind", b'{"PodName": "x", "PodNamespace": "y", "PodUID": "z"}', "Node must be a non-empty string"),
    ("bind", b"null", "must be a JSON object"),
])
async def test_malformed_bodies_get_400_and_the_server_goes_on(serve, verb: str, body: bytes, needle: str) -> None:
    running: Running = await serve(service_for())
    status, answer = await running.post(verb, body)
    assert status == 400
    assert needle in answer["Error"] and answer["Error"].startswith(f"{verb}: ")
    status, _ = await running.post("filter", recording("args-cache-filter.json"))
    assert status == 200
    _, _, text = await running.get("/metrics")
    assert f'meshfit_extender_requests_total{{verb="{verb}",code="400"}} 1' in text


async def test_a_pod_with_unreadable_quantities_is_a_400_not_a_crash(serve) -> None:
    running: Running = await serve(service_for())
    pod = app_pod("bad-0", "lots", "1Gi")
    status, answer = await running.post("filter", {"Pod": pod, "NodeNames": ["node-a"]})
    assert status == 400
    assert "cannot account pod" in answer["Error"] and "'lots'" in answer["Error"]
    status, _ = await running.post("filter", recording("args-cache-filter.json"))
    assert status == 200


async def test_probes_metrics_and_debug(serve) -> None:
    service = ExtenderService(ClusterCache(), LivePolicy(default_policy(), "test"))
    running: Running = await serve(service)
    assert (await running.get("/healthz"))[0] == 200
    status, _, text = await running.get("/readyz")
    assert status == 503 and "nodes" in text and "pods" in text
    service.on_node_sync([node("node-a")])
    await service.on_pod_sync([reduce_pod(bound(meshed(app_pod("web-0", "2", "4Gi")), "node-a"))])
    assert (await running.get("/readyz"))[0] == 200

    await running.post("filter", recording("args-cache-filter.json"))
    status, content_type, text = await running.get("/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    for needle in (
        'meshfit_extender_request_duration_seconds_bucket{verb="filter",le="+Inf"} 1',
        'meshfit_extender_requests_total{verb="filter",code="200"} 1',
        'meshfit_extender_cache_nodes{state="known"} 1',
        'meshfit_extender_cache_pods{state="placed"} 1',
        'meshfit_extender_exposure{resource="cpu"} 0.7',
        'meshfit_extender_exposure{resource="memory"} 402653184',
        'meshfit_extender_policy_info{revision="',
        "meshfit_extender_ready 1",
    ):
        assert needle in text, needle

    status, content_type, text = await running.get("/debug/nodes/node-a")
    report = orjson.loads(text)
    assert status == 200 and content_type == "application/json"
    assert report["requested"] == {"cpu": "2", "memory": "4Gi"}
    assert report["exposure"] == {"cpu": "700m", "memory": "384Mi"}
    assert report["exposurePercent"] == {"cpu": "8.8%", "memory": "2.3%"}
    status, _, text = await running.get("/debug/nodes/nope")
    assert status == 404 and "not in the cache" in text


class RecordingBinder:
    def __init__(self, fail: str = "") -> None:
        self.calls: list[tuple[str, str, str, str]] = []
        self.fail = fail

    async def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        from extender.binder import BindError

        self.calls.append((namespace, name, uid, node))
        if self.fail:
            raise BindError(self.fail)


def pending_recorded_pod(service: ExtenderService) -> None:
    """The recorded pod as the watch shows it before it is scheduled (Pending, unbound)."""
    watched(service, [RECORDED_POD])


async def test_recorded_bind_counts_the_pod_at_once(serve) -> None:
    service = service_for()
    service.binder = RecordingBinder()
    pending_recorded_pod(service)
    running: Running = await serve(service)
    await running.post("filter", recording("args-cache-filter.json"))
    status, answer = await running.post("bind", recording("bind.json"))
    assert (status, answer) == (200, {"Error": ""})
    args = orjson.loads(recording("bind.json"))
    assert service.binder.calls == [(args["PodNamespace"], args["PodName"], args["PodUID"], args["Node"])]
    state = service.cache.nodes[args["Node"]]
    acc = account_pod(RECORDED_POD)
    assert (state.pods, state.exp_memory) == (1, acc.exposure["memory"].nanos)


async def test_a_refused_binding_is_reported_and_undone(serve) -> None:
    service = service_for()
    service.binder = RecordingBinder(fail="409 Conflict: pod web-0 is already assigned to node node-b")
    pending_recorded_pod(service)
    running: Running = await serve(service)
    await running.post("filter", recording("args-cache-filter.json"))
    status, answer = await running.post("bind", recording("bind.json"))
    assert status == 200 and "already assigned" in answer["Error"]
    assert service.cache.nodes["node-a"].pods == 0 and not service.cache.assumed


async def test_a_snapshot_server_refuses_to_bind(serve) -> None:
    running: Running = await serve(service_for())
    status, answer = await running.post("bind", recording("bind.json"))
    assert status == 200 and "snapshot" in answer["Error"]


async def test_readyz_fails_while_the_process_drains() -> None:
    import aiohttp
    from aiohttp import web

    from extender.handlers import build_app
    from serving.process import Process

    process = Process("extender", handle_signals=False)
    service = ExtenderService(ClusterCache(), LivePolicy(default_policy(), "test"))
    service.cache.sync_nodes([])
    service.cache.sync_pods([])
    runner = web.AppRunner(build_app(service, process=process), handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/readyz"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                assert response.status == 200
            process.draining = True
            async with session.get(url) as response:
                assert response.status == 503 and "shutting down" in await response.text()
    finally:
        await runner.cleanup()
