"""Benchmark 3: scheduling throughput of the real kube-scheduler: stock, a no-op extender, meshfit's extender.

    python -m bench.scheduling [--nodes 5000] [--pods 4000] [--rounds 2] [--mixed-pods 5000] [--quick]

A LocalCluster whose scheduler's client rate limit is lifted (qps 5000,
burst 10000, as upstream's scheduler_perf does; the default 50 QPS would
cap binding well below what is measured here) and ``--nodes`` fake Ready
nodes. Two sets of interleaved rounds:

**Meshed pods** (every pod injected by the engine, what the webhook would have
stored): the stock scheduler; the **floor**, :mod:`bench.noop_extender` in the
same ``extenders:`` entry as meshfit's (nodeCacheCapable, filter, prioritize,
bind: every node passes, every score 0, bind POSTs the Binding), which is what
calling any HTTP extender costs; meshfit's extender as shipped; and meshfit's
with fewer verbs (filter only; filter and prioritize; filter and bind, burst-safe
without scores), which prices each verb.
The target is meshfit over the no-op floor.

**A mixed fleet** (30 % of the pods meshed, the rest plain): all through the
stock scheduler (the reference); all through one scheduler with the extender;
the meshed pods through a second kube-scheduler process ``meshfit-scheduler``
(``injection.schedulerName``) with the extender and the rest through the stock
one; one scheduler whose extender entry has ``managedResources`` naming an
extended resource only meshed pods carry (``ignoredByScheduler``). Target: the
best wiring of the mixed fleet against the stock scheduler.

Each round, per configuration: the scheduler is stopped, a batch of pods is
created in a namespace of its own and waits Pending, the configuration's
extender starts (``meshfit extender serve`` list+watching the cluster, or the
no-op one) and then its scheduler(s), and a watch timestamps every binding.
Throughput is pods bound per second between the first and the last binding;
CPU per process is metered over the round. The round's pods are deleted
afterwards, so every round meets the same empty fleet. Configurations run
A B C ... C B A, so drift in the machine falls on all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import command
from bench.apiserver import NODE_TOLERATION, Api, bench_cluster, connect, create_nodes, create_pods
from bench.cpu import CpuMeter, cluster_pids, cpu_seconds
from bench.pods import client_pod
from bench.report import REPO, Report, write
from controlplane.cluster import LocalCluster, SecondScheduler
from controlplane.meshfit_servers import (
    MeshfitServer,
    install_policy,
    shipped_extender_config,
    start_extender,
)
from controlplane.ports import LOOPBACK, free_port
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file

#: meshfit's extender against the no-op extender; the mixed fleet's best wiring against stock.
TARGET_FLOOR = 0.95
TARGET_MIXED = 0.8
SCHEDULER_QPS, SCHEDULER_BURST = 5000.0, 10000
SECOND_SCHEDULER = "meshfit-scheduler"
#: The extended resource of the managedResources wiring: only meshed pods carry it (a limit of 1).
MANAGED_RESOURCE = "meshfit.io/extender"
#: Of every 10 pods of the mixed fleet, these are meshed (30 %).
MESHED_OF_10 = (0, 3, 6)
VERBS = ("filter", "prioritize", "bind")


@dataclass(frozen=True)
class Config:
    """One way of scheduling: which extender, which verbs, which wiring."""

    name: str
    extender: str = ""  # "", "noop" or "meshfit"
    verbs: tuple[str, ...] = VERBS
    #: The extender sits in a second kube-scheduler, for the meshed pods only.
    second: bool = False
    #: The extender's entry manages MANAGED_RESOURCE: called for pods that carry it only.
    managed: bool = False


STOCK = Config("stock scheduler")
NOOP = Config("no-op extender (floor)", "noop")
MESHFIT = Config("meshfit extender", "meshfit")
FILTER_ONLY = Config("meshfit, filter only", "meshfit", ("filter",))
FILTER_PRIORITIZE = Config("meshfit, filter+prioritize", "meshfit", ("filter", "prioritize"))
#: Burst-safe without scores: prioritize is the one verb burst safety does not need (docs/scheduling.md).
FILTER_BIND = Config("meshfit, filter+bind", "meshfit", ("filter", "bind"))
MESHED_CONFIGS = (STOCK, NOOP, MESHFIT, FILTER_ONLY, FILTER_PRIORITIZE, FILTER_BIND)

MIX_STOCK = Config("mixed: stock scheduler")
MIX_ONE = Config("mixed: one scheduler + extender", "meshfit")
MIX_SECOND = Config("mixed: second scheduler", "meshfit", second=True)
MIX_MANAGED = Config("mixed: managedResources", "meshfit", managed=True)
MIXED_CONFIGS = (MIX_STOCK, MIX_ONE, MIX_SECOND, MIX_MANAGED)


def _app_pod(namespace: str) -> dict[str, Any]:
    """The typical pod with a smaller app (500m, 1Gi), so every round fits the nodes many times over."""
    pod = client_pod("template")
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                 "limits": {"cpu": "1", "memory": "1Gi"}}
    pod["spec"]["tolerations"] = [*pod["spec"]["tolerations"], NODE_TOLERATION]
    pod["metadata"]["namespace"] = namespace
    return pod


def meshed_template(namespace: str, config: Config) -> dict[str, Any]:
    """A pod as the webhook would have stored it for ``config`` (shipped policy, swap or pod-level as it picks).

    For the second scheduler the policy's ``injection.schedulerName`` is set,
    so the engine names ``meshfit-scheduler`` in the pod; for managedResources
    the first container also gets a limit of 1 of :data:`MANAGED_RESOURCE`.
    """
    policy = load_policy_file(REPO / "manifests" / "policy.yaml")
    if config.second:
        policy = dataclasses.replace(policy, injection=dataclasses.replace(policy.injection,
                                                                           scheduler_name=SECOND_SCHEDULER))
    pod = inject(_app_pod(namespace), Namespace(namespace, {"meshfit.io/inject": "enabled"}), policy).pod
    if config.managed:
        app = pod["spec"]["containers"][0]
        app["resources"]["limits"] = {**app["resources"]["limits"], MANAGED_RESOURCE: "1"}
    return pod


def _named(template: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    return {**template, "metadata": {**template["metadata"], "name": name, "namespace": namespace}}


def meshed_pods(namespace: str, count: int, prefix: str, config: Config = MESHFIT) -> list[dict[str, Any]]:
    """``count`` meshed pods."""
    template = meshed_template(namespace, config)
    return [_named(template, namespace, f"{prefix}-{i:05d}") for i in range(count)]


def mixed_pods(namespace: str, count: int, prefix: str, config: Config) -> list[dict[str, Any]]:
    """``count`` pods, 30 % meshed (as the webhook would have made them for ``config``), the rest plain."""
    meshed, plain = meshed_template(namespace, config), _app_pod(namespace)
    return [_named(meshed if i % 10 in MESHED_OF_10 else plain, namespace, f"{prefix}-{i:05d}") for i in range(count)]


#: meshed_pods or mixed_pods: (namespace, count, name prefix, configuration) -> pods.
Batch = Callable[[str, int, str, Config], list[dict[str, Any]]]


def extender_entry(config: Config, url: str) -> dict[str, Any]:
    """The shipped ``extenders:`` entry, pointed at ``url``, with ``config``'s verbs and wiring."""
    entry = shipped_extender_config(url, ignorable=False if config.second else None)
    if "prioritize" not in config.verbs:
        entry.pop("prioritizeVerb", None)
    if "bind" not in config.verbs:
        entry.pop("bindVerb", None)
    if config.managed:
        entry["managedResources"] = [{"name": MANAGED_RESOURCE, "ignoredByScheduler": True}]
    return entry


def start_noop_extender(workdir: Path, kubeconfig: Path) -> MeshfitServer:
    """:mod:`bench.noop_extender` on loopback, ready."""
    port = free_port()
    server = MeshfitServer("noop-extender", workdir,
                           [sys.executable, "-m", "bench.noop_extender", "--kubeconfig", str(kubeconfig),
                            "--host", LOOPBACK, "--port", str(port)], f"http://{LOOPBACK}:{port}")
    server.start(60)
    return server


def start_meshfit_extender(workdir: Path, kubeconfig: Path, config: Config) -> MeshfitServer:
    """``meshfit extender serve`` list+watching the cluster, ready.

    Without a bind verb the filter's wait for binds (``--bind-wait``) is off:
    nothing would ever end it (the extender would switch it off itself after
    three timeouts, but only if no bind had ever arrived).
    """
    args = ["--log-level", "warning"]
    if "bind" not in config.verbs:
        args += ["--bind-wait", "0"]
    if config.second:
        args += ["--scheduler-name", SECOND_SCHEDULER]
    return start_extender(workdir, kubeconfig, name=f"bench-extender-{uuid.uuid4().hex[:4]}", extra_args=args,
                          timeout=300)


async def _bindings(api: Api, namespace: str, resource_version: str, expected: int,
                    times: dict[str, float], done: asyncio.Event) -> None:
    """Record the moment each pod of ``namespace`` is first seen bound."""
    async for event in api.watch(f"/api/v1/namespaces/{namespace}/pods", resource_version):
        obj = event.get("object") or {}
        name = str((obj.get("metadata") or {}).get("name"))
        if (obj.get("spec") or {}).get("nodeName") and name not in times:
            times[name] = time.perf_counter()
            if len(times) >= expected:
                done.set()
                return


def _start_schedulers(cluster: LocalCluster, main_extenders: list[dict[str, Any]],
                      second: SecondScheduler | None) -> None:
    """The cluster's scheduler and, if any, the second one, started together and both waited on."""
    if second is not None:
        second.launch()
    cluster.start_scheduler(main_extenders)
    if second is not None:
        second.wait_ready()


async def _round(cluster: LocalCluster, api: Api, config: Config, pods: list[dict[str, Any]], namespace: str,
                 workdir: Path, timeout: float) -> dict[str, Any]:
    await asyncio.to_thread(cluster.stop_scheduler)
    cluster.create_namespace(namespace)
    await create_pods(api, namespace, pods)
    meshed = {p["metadata"]["name"] for p in pods if "meshfit.io/accounting" in (p["metadata"].get("annotations") or {})}
    extender: MeshfitServer | None = None
    second: SecondScheduler | None = None
    try:
        if config.extender == "noop":
            extender = await asyncio.to_thread(start_noop_extender, workdir, cluster.kubeconfig_path)
        elif config.extender == "meshfit":
            extender = await asyncio.to_thread(start_meshfit_extender, workdir, cluster.kubeconfig_path, config)
        entries = [extender_entry(config, extender.url)] if extender is not None else []
        if config.second:
            second = cluster.second_scheduler(SECOND_SCHEDULER, entries)
            entries = []
        listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/pods?limit=1")
        times: dict[str, float] = {}
        done = asyncio.Event()
        watcher = asyncio.create_task(_bindings(api, namespace, listed["metadata"]["resourceVersion"], len(pods),
                                                times, done))
        pids = {k: v for k, v in cluster_pids(cluster).items() if k != "kube-scheduler"}
        if extender is not None and extender.pid is not None:
            pids["extender"] = extender.pid
        meter = CpuMeter(pids)
        meter.start()
        started = time.perf_counter()
        await asyncio.to_thread(_start_schedulers, cluster, entries, second)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            watcher.cancel()
        cpu = meter.stop()
        # A new scheduler process each round: its whole life is this round (informer sync included).
        cpu["kube-scheduler"] = round(cpu_seconds(cluster_pids(cluster).get("kube-scheduler", 0))
                                      + (cpu_seconds(second.pid) if second is not None and second.pid else 0.0), 2)
    finally:
        if second is not None:
            await asyncio.to_thread(second.stop)
        if extender is not None:
            await asyncio.to_thread(extender.stop)
    bound = len(times)
    if bound < len(pods):
        listed = await api.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        on_nodes = sum(1 for p in listed["items"] if p["spec"].get("nodeName"))
        events = await api.request("GET", f"/api/v1/namespaces/{namespace}/events")
        why = {e.get("message", "") for e in events["items"] if e.get("reason") == "FailedScheduling"}
        raise RuntimeError(f"{config.name}: {bound} of {len(pods)} pods seen bound by the watch within {timeout:g} s "
                           f"({on_nodes} bound in a LIST); FailedScheduling: {sorted(why)[:3]}")
    await api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods?gracePeriodSeconds=0")
    ordered = sorted(times.values())
    span = ordered[-1] - ordered[0] if bound > 1 else float("nan")
    meshed_times = sorted(t for n, t in times.items() if n in meshed)
    return {
        "configuration": config.name, "pods": len(pods), "bound": bound, "meshed": len(meshed),
        "seconds_first_to_last_binding": span,
        "pods_per_second": (bound - 1) / span if bound > 1 and span > 0 else 0.0,
        "meshed_seconds_first_to_last_binding": (meshed_times[-1] - meshed_times[0]) if len(meshed_times) > 1 else 0.0,
        "seconds_from_scheduler_start": (ordered[-1] - started) if ordered else float("nan"),
        "cpu_seconds": cpu,
    }


def _order(configs: Sequence[Config], r: int) -> list[Config]:
    return list(configs) if r % 2 == 0 else list(reversed(configs))


def _chosen(configs: Sequence[Config], only: str) -> list[Config]:
    """``configs``, or those of them named in ``only`` (comma-separated names of this module's constants)."""
    if not only:
        return list(configs)
    wanted = {globals()[name.strip()] for name in only.split(",") if name.strip()}
    return [c for c in configs if c in wanted]


def run(nodes: int = 5000, pods: int = 4000, rounds: int = 2, mixed_pods_total: int = 5000, only: str = "",
        cluster: LocalCluster | None = None, out_dir: Path | None = None, timeout: float = 600.0,
        log: Callable[[str], None] = print) -> Report:
    started = time.monotonic()
    meshed_configs, mixed_configs = _chosen(MESHED_CONFIGS, only), _chosen(MIXED_CONFIGS, only)
    report = Report("scheduling", "Benchmark 3: kube-scheduler throughput: stock, a no-op extender, meshfit's")
    per_round = max(1, pods // rounds)
    mixed_per_round = max(10, mixed_pods_total // rounds)
    report.parameters = {
        "nodes": nodes, "rounds": rounds, "meshed_pods_per_configuration": per_round * rounds,
        "meshed_pods_per_round": per_round, "mixed_pods_per_configuration": mixed_per_round * rounds,
        "mixed_pods_per_round": mixed_per_round, "mixed_meshed_share": len(MESHED_OF_10) / 10,
        "scheduler_client_qps": SCHEDULER_QPS, "scheduler_client_burst": SCHEDULER_BURST,
        "extender": "meshfit extender serve --kubeconfig (list+watch), started per round; "
                    "the extenders: entry of manifests/extender/scheduler-config.yaml",
        "floor": "bench/noop_extender.py in the same entry",
        "managed_resource": MANAGED_RESOURCE, "only": only,
    }
    with bench_cluster(cluster, scheduler_qps=SCHEDULER_QPS, scheduler_burst=SCHEDULER_BURST) as c:
        previous = c.extenders
        workdir = c.workdir / f"bench-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        run_id = uuid.uuid4().hex[:6]
        results: list[dict[str, Any]] = []

        async def one(api: Api, config: Config, r: int, count: int, make: Batch) -> None:
            namespace = f"bench-sched-{run_id}-{len(results)}"
            result = await _round(c, api, config, make(namespace, count, f"r{r}", config), namespace, workdir, timeout)
            result["round"] = r + 1
            results.append(result)
            log(f"  round {r + 1}/{rounds} {config.name:34} {result['pods_per_second']:7.1f} pods/s "
                f"({result['bound']}/{result['pods']} bound in {result['seconds_first_to_last_binding']:.1f} s)")

        async def main() -> None:
            async with connect(c, 32) as api:
                t = time.perf_counter()
                await create_nodes(api, [f"bench-{run_id}-node-{i:05d}" for i in range(nodes)])
                report.details["node_creation_seconds"] = round(time.perf_counter() - t, 1)
                log(f"scheduling: {nodes} nodes created in {time.perf_counter() - t:.0f} s")
                install_policy(c)
                for r in range(rounds):
                    for config in _order(meshed_configs, r):
                        await one(api, config, r, per_round, meshed_pods)
                for r in range(rounds):
                    for config in _order(mixed_configs, r):
                        await one(api, config, r, mixed_per_round, mixed_pods)

        try:
            asyncio.run(main())
        finally:
            c.restart_scheduler(previous)
    _summarise(report, results)
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


def _totals(results: list[dict[str, Any]], config: Config) -> tuple[float, list[dict[str, Any]]]:
    """Pods/s over all of ``config``'s rounds (each round's first binding starts its clock), and the rounds."""
    mine = [r for r in results if r["configuration"] == config.name]
    seconds = sum(r["seconds_first_to_last_binding"] for r in mine)
    intervals = sum(max(0, r["bound"] - 1) for r in mine)
    return (intervals / seconds if seconds > 0 else 0.0), mine


def _row(config: Config, rate: float, mine: list[dict[str, Any]]) -> dict[str, Any]:
    bound = sum(r["bound"] for r in mine)
    row: dict[str, Any] = {"configuration": config.name, "pods": sum(r["pods"] for r in mine), "bound": bound,
                           "pods/s": round(rate, 1),
                           "per round": ", ".join(f"{r['pods_per_second']:.0f}" for r in mine)}
    # Where the CPU went, per pod bound: schedulers, apiserver and extender share two cores.
    for process in ("kube-scheduler", "kube-apiserver", "etcd", "extender"):
        spent = sum(r["cpu_seconds"].get(process, 0.0) for r in mine)
        row[f"{process} CPU ms/pod"] = round(1000 * spent / max(bound, 1), 2)
    return row


def _summarise(report: Report, results: list[dict[str, Any]]) -> None:
    report.details["rounds"] = results
    all_bound = all(r["bound"] == r["pods"] for r in results)
    rates: dict[str, float] = {}
    rows: dict[str, dict[str, Any]] = {}
    for config in (*MESHED_CONFIGS, *MIXED_CONFIGS):
        rate, mine = _totals(results, config)
        if not mine:
            continue
        rates[config.name] = rate
        rows[config.name] = row = _row(config, rate, mine)
        reference = MIX_STOCK if config in MIXED_CONFIGS else STOCK
        row["x stock"] = round(rate / rates[reference.name], 3) if rates.get(reference.name) else 0.0
        if config in MESHED_CONFIGS and config.extender and rates.get(NOOP.name):
            row["x no-op"] = round(rate / rates[NOOP.name], 3)
        report.rows.append(row)
    # What each verb costs the scheduler, for meshed pods: the step from one verb set to the next.
    steps = [(STOCK, FILTER_ONLY, "filter"), (FILTER_ONLY, FILTER_PRIORITIZE, "prioritize"),
             (FILTER_PRIORITIZE, MESHFIT, "bind"), (FILTER_ONLY, FILTER_BIND, "bind, without prioritize"),
             (FILTER_BIND, MESHFIT, "prioritize, with bind")]
    verb_costs = {}
    for before, after, verb in steps:
        if before.name in rows and after.name in rows:
            verb_costs[verb] = {
                "kube-scheduler CPU ms/pod": round(rows[after.name]["kube-scheduler CPU ms/pod"]
                                                   - rows[before.name]["kube-scheduler CPU ms/pod"], 2),
                "pods/s": f"{rates[before.name]:.0f} -> {rates[after.name]:.0f}",
            }
    report.details["verb_costs"] = verb_costs
    note = "" if all_bound else "; NOT all bound"
    if NOOP.name in rates and MESHFIT.name in rates:
        ratio = rates[MESHFIT.name] / rates[NOOP.name] if rates[NOOP.name] else 0.0
        report.target("meshfit extender vs the no-op extender", f">= {TARGET_FLOOR}x no-op", ratio, "x",
                      ratio >= TARGET_FLOOR and all_bound,
                      f"{rates[MESHFIT.name]:.0f} vs {rates[NOOP.name]:.0f} pods/s" + (
                          f"; the no-op floor is {rates[NOOP.name] / rates[STOCK.name]:.2f}x stock "
                          f"({rates[STOCK.name]:.0f} pods/s)" if rates.get(STOCK.name) else "") + note)
    stock = rates.get(MIX_STOCK.name, 0.0)
    for config in (MIX_SECOND, MIX_MANAGED):
        if config.name in rates and stock:
            ratio = rates[config.name] / stock
            report.target(f"mixed fleet (30% meshed), {config.name.removeprefix('mixed: ')}",
                          f">= {TARGET_MIXED}x stock", ratio, "x", ratio >= TARGET_MIXED and all_bound,
                          f"{rates[config.name]:.0f} vs {stock:.0f} pods/s; one scheduler with the extender for "
                          f"every pod: {rates.get(MIX_ONE.name, 0.0) / stock:.2f}x" + note)


#: Sizes of a smoke run (``--quick``, ``run_all --quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(nodes=20, pods=20, rounds=1, mixed_pods_total=20, timeout=120.0)


def main() -> None:
    command.main(run, QUICK, __doc__, {"nodes": "", "pods": "meshed pods per configuration", "rounds": "",
                                       "mixed_pods_total": "mixed-fleet pods per configuration",
                                       "only": "only these configurations, e.g. STOCK,NOOP,MESHFIT"})


if __name__ == "__main__":
    main()
