"""The bind checks and the filters that count, through the real server (extender/guard.py).

Each hostile call of the hardening issue is one case: a bind with an empty or
a foreign ``PodUID``, onto a node the filter did not pass, for another
scheduler's pod; and filters for pods nobody is scheduling, which must not
make a real burst wait. The cluster side is what the watch delivers
(``watched``), as in the burst tests.
"""

from __future__ import annotations

import asyncio
import logging
import time

from extender_http import Running
from extender_shapes import app_pod, meshed, node, policy_with, watched
from test_extender_burst import NAMES, NODES, POLICY, LaggingWatch, assert_within_ceiling, bind, schedule_one

from extender.cache import ClusterCache
from extender.guard import BindGuard, PodIdentity
from extender.inflight import InFlight
from extender.policy_source import LivePolicy
from extender.protocol import BindingArgs
from extender.service import ExtenderService


def pods(count: int, *, scheduler: str | None = None, prefix: str = "web") -> list[dict]:
    out = []
    for i in range(count):
        pod = meshed(app_pod(f"{prefix}-{i}", "1", "1Gi", limits={"cpu": "2", "memory": "4Gi"}))
        if scheduler is not None:
            pod["spec"]["schedulerName"] = scheduler
        out.append(pod)
    return out


def service_with(watch: LaggingWatch, inflight: InFlight | None = None, **guard: object) -> ExtenderService:
    cache = ClusterCache()
    cache.sync_nodes(NODES)
    cache.sync_pods([])
    service = ExtenderService(cache, LivePolicy(POLICY, "test"), binder=watch, inflight=inflight,
                              guard=BindGuard(**guard))  # type: ignore[arg-type]
    watched(service, list(watch.by_name.values()))
    return service


def binding(pod: dict, node_name: str, uid: str | None = None) -> dict:
    meta = pod["metadata"]
    return {"PodName": meta["name"], "PodNamespace": meta["namespace"],
            "PodUID": meta["uid"] if uid is None else uid, "Node": node_name}


async def test_a_bind_without_or_with_a_foreign_uid_is_refused(serve) -> None:
    mine, other = pods(2)
    watch = LaggingWatch([mine, other])
    service = service_with(watch)
    running: Running = await serve(service)
    chosen = await schedule_one(running, mine, NAMES)
    assert chosen is not None
    for uid, needle in (("", "PodUID is empty"), (other["metadata"]["uid"], "was not filtered"),
                        ("made-up", "was not filtered")):
        status, answer = await running.post("bind", binding(mine, chosen, uid))
        assert status == 200 and needle in answer["Error"], answer
    # Another pod's uid that *was* filtered does not lend its verdict to this pod's name.
    assert await schedule_one(running, other, NAMES)
    status, answer = await running.post("bind", binding(mine, chosen, other["metadata"]["uid"]))
    assert "is pod shop/web-1, not shop/web-0" in answer["Error"], answer
    assert watch.bindings == {}
    # The refusals used nothing up: the real bind still goes.
    await bind(running, mine, chosen)
    assert watch.bindings == {"web-0": chosen}
    _, _, text = await running.get("/metrics")
    assert 'meshfit_extender_binds_refused_total{reason="no-uid"} 1' in text
    assert 'meshfit_extender_binds_refused_total{reason="not-filtered"} 2' in text


async def test_a_bind_to_a_node_the_filter_did_not_pass_is_refused(serve) -> None:
    (pod,) = pods(1)
    watch = LaggingWatch([pod])
    running: Running = await serve(service_with(watch))
    status, answer = await running.post("filter", {"Pod": pod, "NodeNames": NAMES[:2]})
    assert answer["NodeNames"] == NAMES[:2]
    for target, needle in ((NAMES[3], "was not among the nodes filter passed"),
                           ("control-plane-0", "was not among the nodes filter passed")):
        status, answer = await running.post("bind", binding(pod, target))
        assert needle in answer["Error"], answer
    # A node the filter passed but the cache does not know (it does not exist) is refused too.
    status, answer = await running.post("filter", {"Pod": pod, "NodeNames": ["no-such-node"]})
    assert answer["NodeNames"] == ["no-such-node"]  # unknown nodes pass filter, neutral
    status, answer = await running.post("bind", binding(pod, "no-such-node"))
    assert "not a node this extender knows" in answer["Error"], answer
    assert watch.bindings == {}


async def test_a_node_the_watch_has_not_shown_yet_is_asked_about(serve) -> None:
    (pod,) = pods(1)
    watch = LaggingWatch([pod])
    service = service_with(watch)
    asked: list[str] = []

    async def exists(name: str) -> bool:
        asked.append(name)
        return name == "node-new"

    service.guard.node_lookup = exists
    running: Running = await serve(service)
    await running.post("filter", {"Pod": pod, "NodeNames": ["node-gone", "node-new"]})
    status, answer = await running.post("bind", binding(pod, "node-gone"))
    assert "not a node this extender knows" in answer["Error"], answer
    await bind(running, pod, "node-new")
    assert asked == ["node-gone", "node-new"] and watch.bindings == {"web-0": "node-new"}


async def test_another_schedulers_pod_is_neither_counted_nor_bound(serve) -> None:
    (theirs,) = pods(1, scheduler="gpu-scheduler", prefix="gpu")
    watch = LaggingWatch([theirs])
    service = service_with(watch)
    running: Running = await serve(service)
    # The request may claim the default scheduler: what counts is the live pod the watch shows.
    claimed = {**theirs, "spec": {**theirs["spec"], "schedulerName": "default-scheduler"}}
    status, answer = await running.post("filter", {"Pod": claimed, "NodeNames": NAMES})
    assert status == 200 and answer["NodeNames"]
    assert not service.inflight.pending and not service.guard.filtered
    status, answer = await running.post("bind", binding(theirs, NAMES[0]))
    assert "was not filtered by this extender for a scheduler it serves" in answer["Error"], answer
    assert watch.bindings == {}
    assert service.guard.uncounted["other-scheduler"] == 1


async def test_a_configured_scheduler_name_is_served() -> None:
    (theirs,) = pods(1, scheduler="gpu-scheduler", prefix="gpu")
    watch = LaggingWatch([theirs])
    service = service_with(watch, schedulers=("gpu-scheduler",))
    outcome = await service.filter(__import__("extender.protocol", fromlist=["decode_args"]).decode_args(
        __import__("orjson").dumps({"Pod": theirs, "NodeNames": NAMES})))
    assert outcome.passed and theirs["metadata"]["uid"] in service.guard.filtered
    assert await service.bind(BindingArgs("gpu-0", "shop", theirs["metadata"]["uid"], outcome.passed[0])) == ""


async def test_a_filter_verdict_expires_and_memory_is_bounded() -> None:
    clock = [0.0]
    guard = BindGuard(ttl=30, max_pods=3, max_nodes=10, clock=lambda: clock[0])
    ident = PodIdentity("shop", "p", "default-scheduler")
    for i in range(5):
        guard.pending[f"u{i}"] = ident._replace(name=f"p{i}")
        guard.passed(f"u{i}", ident._replace(name=f"p{i}"), ["a", "b"])
    assert list(guard.filtered) == ["u2", "u3", "u4"]  # oldest dropped first
    guard.passed("u5", ident._replace(name="p5"), [f"n{i}" for i in range(5)])
    assert list(guard.filtered) == ["u3", "u4", "u5"]  # node names held stay within the bound
    guard.pending["u5"] = ident._replace(name="p5")
    clock[0] = 31.0
    refusal = await guard.check_bind(BindingArgs("p5", "shop", "u5", "n1"), lambda _n: True)
    assert refusal is not None and "was not filtered" in refusal and "u5" not in guard.filtered


async def test_fake_filters_do_not_slow_a_burst(serve) -> None:
    """47 filters for pods nobody schedules, interleaved with a 20-pod burst whose binds arrive late.

    Before the guard each fake filter registered an in-flight entry whose bind
    never came, and the next real filter waited ``--bind-wait`` for it.
    """
    real = pods(20)
    watch = LaggingWatch(real)
    service = service_with(watch, InFlight(timeout=0.5, engaged=True))
    service.inflight.bind_seen()
    running: Running = await serve(service)
    fakes = pods(47, prefix="fake")  # never created: the watch has never shown them
    fakes[-5:] = pods(5, scheduler="gpu-scheduler", prefix="gpu")
    watched(service, fakes[-5:])  # ... and five real pods of another scheduler
    binds: list[asyncio.Task[None]] = []

    async def late_bind(pod: dict, node_name: str) -> None:
        await asyncio.sleep(0.01)
        await bind(running, pod, node_name)

    started = time.monotonic()
    fake_iter = iter(fakes)
    for i, pod in enumerate(real):
        for fake in [next(fake_iter, None) for _ in range(3 if i < 16 else 0)]:
            if fake is not None:
                status, answer = await running.post("filter", {"Pod": fake, "NodeNames": NAMES})
                assert status == 200 and answer["NodeNames"]
        chosen = await schedule_one(running, pod, NAMES)
        if chosen is not None:
            binds.append(asyncio.create_task(late_bind(pod, chosen)))
    await asyncio.gather(*binds)
    elapsed = time.monotonic() - started
    assert next(fake_iter, None) is None  # all 47 were sent
    print(f"20-pod burst with 47 fake filters: {elapsed:.2f}s, {service.inflight.stats.timeouts} timeouts")
    assert service.inflight.stats.timeouts == 0 and elapsed < 2.0
    assert len(watch.bindings) == 20
    assert_within_ceiling(watch)
    assert sum(service.guard.uncounted.values()) == 47


async def test_malformed_requests_warn_once_then_summarise(serve, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="extender.handlers")
    service = ExtenderService(ClusterCache(), LivePolicy(policy_with(), "test"))
    service.cache.sync_nodes([node("node-a")])
    running: Running = await serve(service)
    for _ in range(50):
        status, _answer = await running.post("filter", b"{not json")
        assert status == 400
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "extender.handlers"]
    debugs = [r for r in caplog.records if r.levelno == logging.DEBUG and r.name == "extender.handlers"]
    assert len(warnings) == 1 and len(debugs) == 50
    assert not any(r.exc_info for r in caplog.records)
    _, _, text = await running.get("/metrics")
    assert 'meshfit_extender_malformed_requests_total{verb="filter"} 50' in text


async def test_a_standby_answers_no_verb_and_is_not_ready(serve) -> None:
    (pod,) = pods(1)
    watch = LaggingWatch([pod])
    service = service_with(watch)
    service.leading = lambda: False
    service.leader = lambda: "meshfit-extender-7d9f_ab12cd34"
    running: Running = await serve(service)
    for verb, body in (("filter", {"Pod": pod, "NodeNames": NAMES}), ("prioritize", {"Pod": pod, "NodeNames": NAMES}),
                       ("bind", binding(pod, NAMES[0]))):
        status, answer = await running.post(verb, body)
        assert status == 200 and "standby; the leader is meshfit-extender-7d9f_ab12cd34" in answer["Error"]
    status, _, text = await running.get("/readyz")
    assert status == 503 and text.startswith("standby: the leader is meshfit-extender-7d9f_ab12cd34")
    assert watch.bindings == {} and not service.inflight.pending
    _, _, metrics = await running.get("/metrics")
    assert "meshfit_extender_leader 0" in metrics
    assert 'meshfit_extender_standby_answers_total{verb="bind"} 1' in metrics


async def test_a_uid_the_apiserver_does_not_have_is_looked_up_once() -> None:
    gets: list[tuple[str, str]] = []

    async def lookup(namespace: str, name: str) -> dict | None:
        gets.append((namespace, name))
        return None

    guard = BindGuard(lookup=lookup)
    fake = {"metadata": {"name": "ghost", "namespace": "shop"}}
    for _ in range(5):
        assert await guard.admit_filter("11111111-2222", fake) is None
    # Names the API could not hold never reach a request path.
    assert await guard.admit_filter("33333333-4444", {"metadata": {"name": "../nodes", "namespace": "shop"}}) is None
    assert gets == [("shop", "ghost")] and guard.uncounted["unknown-pod"] == 6


async def test_pods_in_flight_are_bounded() -> None:
    inflight = InFlight(timeout=0.5, engaged=True, max_entries=3)
    for i in range(10):
        inflight.register(f"u{i}")
    assert list(inflight.pending) == ["u7", "u8", "u9"]
    inflight.register("u8")  # registered again: the newest
    assert list(inflight.pending) == ["u7", "u9", "u8"]
