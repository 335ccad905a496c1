"""A burst of injected pods at a ceiling, through the real server, with the watch lagging behind.

The test plays kube-scheduler: for each pod, filter over every node, prioritize
the survivors, take the best score (first on ties, as the scheduler's
selectHost may), then bind. The watch that would tell the extender about the
bindings is held back until the burst is over. Without the bind verb's
assumed pods the extender would herd the burst onto the emptiest node; with
it, no node's exposure ever exceeds the ceiling, and the fleet is still
filled to exactly the ceiling.

kube-scheduler binds asynchronously: pod *n*'s bind may reach the extender
after pod *n+1*'s filter. The second test sends every bind late (after the
next filter has been sent) and shows the filter's wait for in-flight binds
(:mod:`extender.inflight`) keeps the ceiling anyway; a control run with the
wait disabled overshoots, so the test would notice the mechanism breaking.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

from extender_http import Running
from extender_shapes import app_pod, bound, meshed, node, policy_with, watched

from extender.binder import BindError
from extender.cache import ClusterCache
from extender.inflight import InFlight
from extender.policy_source import LivePolicy
from extender.service import ExtenderService
from policy.pod_accounting import account_pod
from policy.pod_entry import reduce_pod

NODES = [node(f"node-{i}", "16", "32Gi") for i in range(1, 5)]
NAMES = [n["metadata"]["name"] for n in NODES]
POLICY = policy_with(ceiling={"cpu": Fraction(1, 4), "memory": Fraction(1, 10)})


def burst(count: int) -> list[dict]:
    # limits 2 cpu / 4Gi: sidecars 500m+200m cpu, 256Mi+128Mi memory of node-level exposure each.
    return [meshed(app_pod(f"web-{i}", "1", "1Gi", limits={"cpu": "2", "memory": "4Gi"})) for i in range(count)]


class LaggingWatch:
    """Records the bindings the extender makes and delivers them as watch events only when told."""

    def __init__(self, pods: list[dict]) -> None:
        self.by_name = {p["metadata"]["name"]: p for p in pods}
        self.bindings: dict[str, str] = {}

    async def bind(self, namespace: str, name: str, uid: str, node_name: str) -> None:
        if name in self.bindings:
            raise BindError(f"pod {name} is already assigned to node {self.bindings[name]}")
        await asyncio.sleep(0)  # the API round trip
        self.bindings[name] = node_name

    def deliver(self, service: ExtenderService) -> None:
        for name, node_name in self.bindings.items():
            service.on_pod_event("MODIFIED", reduce_pod(bound(self.by_name[name], node_name)))


def exposure_per_node(watch: LaggingWatch) -> dict[str, tuple[int, int]]:
    out = {n: (0, 0) for n in NAMES}
    for name, node_name in watch.bindings.items():
        acc = account_pod(watch.by_name[name])
        cpu, mem = out[node_name]
        out[node_name] = (cpu + acc.exposure["cpu"].nanos, mem + acc.exposure["memory"].nanos)
    return out


def assert_within_ceiling(watch: LaggingWatch) -> None:
    ceiling = POLICY.scheduling.exposure_ceiling
    for n in NODES:
        name = n["metadata"]["name"]
        cpu, mem = exposure_per_node(watch)[name]
        alloc_cpu, alloc_mem = 16 * 10**9, 32 * 2**30 * 10**9
        assert cpu <= alloc_cpu * ceiling["cpu"], f"{name}: cpu exposure {cpu} over the ceiling"
        assert mem <= alloc_mem * ceiling["memory"], f"{name}: memory exposure {mem} over the ceiling"


def new_service(watch: LaggingWatch, inflight: InFlight | None = None) -> ExtenderService:
    """The burst's pods are Pending in the watch (created before they are scheduled); their bindings lag."""
    cache = ClusterCache()
    cache.sync_nodes(NODES)
    cache.sync_pods([])
    service = ExtenderService(cache, LivePolicy(POLICY, "test"), binder=watch, inflight=inflight)
    watched(service, list(watch.by_name.values()))
    return service


async def schedule_one(running: Running, pod: dict, names: list[str]) -> str | None:
    """One scheduling cycle up to the choice of a node; None when no node passes."""
    status, result = await running.post("filter", {"Pod": pod, "NodeNames": names, "Nodes": None})
    assert status == 200, result
    feasible = result["NodeNames"]
    assert set(feasible) <= set(names)
    if not feasible:
        return None
    if len(feasible) == 1:  # kube-scheduler skips scoring a single feasible node
        return feasible[0]
    status, scores = await running.post("prioritize", {"Pod": pod, "NodeNames": feasible, "Nodes": None})
    assert status == 200 and [s["Host"] for s in scores] == feasible
    best = max(s["Score"] for s in scores)
    return next(s["Host"] for s in scores if s["Score"] == best)


async def bind(running: Running, pod: dict, node_name: str) -> None:
    meta = pod["metadata"]
    status, result = await running.post("bind", {
        "PodName": meta["name"], "PodNamespace": meta["namespace"], "PodUID": meta["uid"], "Node": node_name,
    })
    assert (status, result) == (200, {"Error": ""})


# Per node: cpu ceiling 4 cores / 700m = 5 pods, memory ceiling 3.2Gi / 384Mi = 8 pods; so 5 each.
PER_NODE = 5


async def test_a_sequential_burst_never_overshoots_the_ceiling(serve) -> None:
    pods = burst(30)
    watch = LaggingWatch(pods)
    service = new_service(watch)
    running: Running = await serve(service)
    unschedulable = 0
    for pod in pods:
        chosen = await schedule_one(running, pod, NAMES)
        if chosen is None:
            unschedulable += 1
            continue
        await bind(running, pod, chosen)
        assert_within_ceiling(watch)  # after every single binding

    assert len(watch.bindings) == PER_NODE * len(NODES) and unschedulable == 30 - PER_NODE * len(NODES)
    assert sorted(exposure_per_node(watch).values()) == [(PER_NODE * 700 * 10**6, PER_NODE * 384 * 2**20 * 10**9)] * 4

    # The watch catches up: every assumption is confirmed, nothing is counted twice.
    assert len(service.cache.assumed) == len(watch.bindings)
    watch.deliver(service)
    assert not service.cache.assumed and service.cache.stats.confirmed == len(watch.bindings)
    for name in NAMES:
        state = service.cache.nodes[name]
        assert state.pods == PER_NODE and state.exp_cpu == PER_NODE * 700 * 10**6


async def test_without_assumed_bindings_the_same_burst_overshoots(serve) -> None:
    """The control: the scheduler binds itself and the extender learns only from the lagging watch."""
    pods = burst(30)
    watch = LaggingWatch(pods)
    running: Running = await serve(new_service(watch))
    for pod in pods[:12]:
        chosen = await schedule_one(running, pod, NAMES)
        assert chosen is not None
        watch.bindings[pod["metadata"]["name"]] = chosen  # bound behind the extender's back
    worst = max(cpu for cpu, _ in exposure_per_node(watch).values())
    assert worst > 16 * 10**9 // 4  # every pod went to the same "best" node


async def pipelined_burst(running: Running, pods: list[dict], bind_delay: float) -> int:
    """As kube-scheduler does it: each bind leaves in the background; the next cycle starts at once."""
    binds: list[asyncio.Task[None]] = []
    unschedulable = 0

    async def late_bind(pod: dict, node_name: str) -> None:
        await asyncio.sleep(bind_delay)
        await bind(running, pod, node_name)

    for pod in pods:
        chosen = await schedule_one(running, pod, NAMES)
        if chosen is None:
            unschedulable += 1
            continue
        binds.append(asyncio.create_task(late_bind(pod, chosen)))
    await asyncio.gather(*binds)
    return unschedulable


async def test_binds_that_arrive_after_the_next_filter_still_keep_the_ceiling(serve) -> None:
    pods = burst(30)
    watch = LaggingWatch(pods)
    service = new_service(watch, InFlight(timeout=2.0, engaged=True))
    running: Running = await serve(service)
    unschedulable = await pipelined_burst(running, pods, bind_delay=0.02)
    assert_within_ceiling(watch)
    assert len(watch.bindings) == PER_NODE * len(NODES) and unschedulable == 30 - PER_NODE * len(NODES)
    assert service.inflight.stats.waits > 0 and service.inflight.stats.timeouts == 0


async def test_without_the_wait_late_binds_overshoot(serve) -> None:
    pods = burst(30)
    watch = LaggingWatch(pods)
    running: Running = await serve(new_service(watch, InFlight(timeout=0)))
    await pipelined_burst(running, pods, bind_delay=0.02)
    worst = max(cpu for cpu, _ in exposure_per_node(watch).values())
    assert worst > 16 * 10**9 // 4


async def test_a_pod_that_never_binds_costs_one_timeout_once(serve) -> None:
    pods = burst(3)
    watch = LaggingWatch(pods)
    service = new_service(watch, InFlight(timeout=0.2, engaged=True))
    service.inflight.bind_seen()  # binds are known to come
    running: Running = await serve(service)
    assert await schedule_one(running, pods[0], NAMES)  # ... and then its cycle fails elsewhere: no bind
    loop = asyncio.get_running_loop()
    started = loop.time()
    chosen = await schedule_one(running, pods[1], NAMES)
    assert chosen and 0.15 <= loop.time() - started < 1.0
    await bind(running, pods[1], chosen)
    started = loop.time()
    assert await schedule_one(running, pods[2], NAMES)
    assert loop.time() - started < 0.15
    assert service.inflight.stats.timeouts == 1


async def test_waiting_switches_itself_off_when_no_bind_ever_comes(serve, caplog) -> None:
    pods = burst(6)
    watch = LaggingWatch(pods)
    service = new_service(watch, InFlight(timeout=0.05, engaged=True))
    running: Running = await serve(service)
    for pod in pods:  # a scheduler configured without bindVerb: filters and prioritizes only
        assert await schedule_one(running, pod, NAMES)
    assert not service.inflight.engaged
    assert service.inflight.stats.timeouts == 3
    assert any("is bindVerb configured" in r.getMessage() for r in caplog.records)
