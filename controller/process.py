"""The controller process: watches, policy, leader election, workers and probes, run by :mod:`serving.process`.

Every replica watches pods (keeping only those with a target), nodes (their
kubelet versions and zones), the policy ConfigMap and the ``SidecarRollout`` s,
so a standby is warm when it takes over. The leader runs both reconcilers: the
executor's (each pod's target) and the rollouts' (:mod:`controller.rollouts`,
which write those targets batch by batch). Only the leader's workers act; a
replica that loses its lease exits (code 1) at once, as client-go's controllers
do, so that it never acts on state from a leadership it no longer has: the
kubelet restarts it and it campaigns again. Whatever it was doing, the next
leader resumes from the pods themselves (:mod:`controller.plan` is
level-based) and from each rollout's status (:mod:`controller.rollout_plan`),
so a failover mid-batch repeats nothing and leaves nothing half-changed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from controller.executor import Executor, keep_targeted
from controller.inspector import Inspector
from controller.metrics import ControllerMetrics
from controller.rollouts import COLLECTION, RolloutReconciler
from controller.runtime_sync import RuntimeSync, pod_group
from kube.client import ApiClient
from kube.config import ClusterConfig, ConfigError, load_config
from kube.watch import ListWatch
from policy.degradations import STORE_NAME
from policy.model import NAMESPACE_POLICY_CONFIGMAP, Policy
from policy.runtime import LABEL as RUNTIME_LABEL
from serving.exposition import CONTENT_TYPE
from serving.namespace_policies import LivePolicy, namespace_configmap_handlers
from serving.policy_source import PolicyFile, policy_file_at_start, settling_configmap_handlers
from serving.leadership import elect, elector_for
from serving.process import Process, StartError, http_app

log = logging.getLogger(__name__)

#: Until (or unless) a policy is loaded: no sidecars, so every target is Blocked with the reason.
BUILTIN_POLICY = Policy(revision="builtin-defaults", sidecars=())


@dataclass(frozen=True)
class ServeOptions:
    """What ``meshfit controller serve``'s command line sets."""

    kubeconfig: str | None = None
    #: The kubeconfig context (default: its current-context).
    context: str | None = None
    policy_file: str | None = None
    policy_configmap: tuple[str, str] | None = None
    host: str = "0.0.0.0"
    #: /healthz, /readyz and /metrics (plain HTTP: the kubelet and Prometheus hold no client certificate).
    probe_port: int = 8080
    #: Reconciles at once (the cap on concurrent operations).
    workers: int = 4
    #: Writes per second (and burst) across all pods.
    qps: float = 20.0
    burst: int = 40
    page_size: int = 500
    policy_interval: float = 2.0
    #: Seconds between fleet inspections (the gauges ``meshfit_fleet_*``); 0: none.
    inspect_interval: float = 300.0
    #: Leader election on the Lease (namespace, name); ``None``: always lead (one replica).
    leader_elect_lease: tuple[str, str] | None = None
    leader_elect_identity: str = ""
    leader_elect_lease_duration: float = 15.0
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0
    #: How often a SidecarRollout whose pods are changing is looked at when nothing else is due.
    rollout_poll: float = 2.0
    #: The longest between two passes over the runtime parameters' ConfigMaps (any change runs one at once).
    runtime_interval: float = 10.0
    #: The degradations' store (namespace, name).
    degradations: tuple[str, str] = ("meshfit-system", STORE_NAME)


class ControllerPolicy(LivePolicy):
    """The policy in force (the last good one), the namespaces' own, and whether its source has answered yet."""

    policy: Policy

    def __init__(self) -> None:
        super().__init__(BUILTIN_POLICY, "built-in defaults")

    def absent(self, source: str, reason: str) -> None:
        log.warning("%s: %s; acting on policy %s from %s", source, reason, self.policy.revision, self.source)


@dataclass
class Prepared:
    """Every input read and checked: what :func:`serve` runs."""

    options: ServeOptions
    cluster_config: ClusterConfig
    policy: ControllerPolicy
    policy_file: PolicyFile | None = None


def prepare(options: ServeOptions) -> Prepared:
    """Read every input the command line names; :class:`StartError` on the first bad one."""
    if options.workers < 1 or options.qps <= 0 or options.burst < 1:
        raise StartError("--workers and --burst must be at least 1, --qps above 0")
    holder = ControllerPolicy()
    policy_file = None
    if options.policy_file:
        policy_file = policy_file_at_start(holder, options.policy_file, options.policy_interval)
    try:
        config = load_config(options.kubeconfig, context=options.context)
    except ConfigError as exc:
        raise StartError(str(exc)) from None
    return Prepared(options, config, holder, policy_file)


async def serve(prepared: Prepared, stop: asyncio.Event | None = None) -> int:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT, or a lost lease); the exit code."""
    options = prepared.options
    process = Process("controller")
    client = ApiClient(prepared.cluster_config)
    process.on_cleanup(client.close)
    holder = prepared.policy
    metrics = ControllerMetrics()
    executor = Executor(client, lambda: holder.policy, workers=options.workers, qps=options.qps,
                        burst=options.burst, metrics=metrics)
    watches = {
        "pods": ListWatch(client, "/api/v1/pods", on_event=executor.on_pod_event, on_sync=executor.on_pod_sync,
                          transform=keep_targeted, page_size=options.page_size, name="pods"),
        "nodes": ListWatch(client, "/api/v1/nodes", on_event=executor.on_node_event, on_sync=executor.on_node_sync,
                           page_size=options.page_size, name="nodes"),
    }
    if options.policy_configmap is not None:
        namespace, name = options.policy_configmap
        handlers = settling_configmap_handlers(holder, namespace, name)
        watches["policy"] = ListWatch(client, f"/api/v1/namespaces/{namespace}/configmaps",
                                      on_event=handlers.on_event, on_sync=handlers.on_sync,
                                      field_selector=f"metadata.name={name}", name="policy")
    rollouts = RolloutReconciler(client, bucket=executor.bucket, metrics=metrics, events=executor.events,
                                 freeze_windows=lambda: holder.policy.fleet.freeze_windows,
                                 revision=lambda: holder.policy.revision,
                                 zones=lambda: executor.zones, poll=options.rollout_poll, page_size=options.page_size)
    # Not among the watches the process waits for: a cluster without the CRD still runs the controller
    # (the watch retries with its backoff, and no rollout is reconciled until the CRD is there).
    rollout_watch = ListWatch(client, COLLECTION, on_event=rollouts.on_event, on_sync=rollouts.on_sync,
                              page_size=options.page_size, name="sidecarrollouts")
    metrics.watches.update(watches)
    inspector = None
    if options.inspect_interval > 0:
        inspector = Inspector(client, lambda: holder.policy, metrics.registry, interval=options.inspect_interval,
                              page_size=options.page_size, events=executor.events)
    metrics.watches["sidecarrollouts"] = rollout_watch
    runtime = RuntimeSync(client, lambda: holder.policy, holder.namespace_policy, options.degradations,
                          metrics.registry, interval=options.runtime_interval, events=executor.events,
                          bucket=executor.bucket)
    store_ns, store_name = options.degradations
    runtime_watches = {
        "runtime-pods": ListWatch(client, "/api/v1/pods", on_event=runtime.on_pod_event, on_sync=runtime.on_pod_sync,
                                  label_selector=RUNTIME_LABEL, transform=pod_group, page_size=options.page_size,
                                  name="runtime-pods"),
        "runtime-configmaps": ListWatch(client, "/api/v1/configmaps", on_event=runtime.on_configmap_event,
                                        on_sync=runtime.on_configmap_sync, label_selector=RUNTIME_LABEL,
                                        page_size=options.page_size, name="runtime-configmaps"),
        "degradations": ListWatch(client, f"/api/v1/namespaces/{store_ns}/configmaps", on_event=runtime.on_store_event,
                                  on_sync=runtime.on_store_sync, field_selector=f"metadata.name={store_name}",
                                  name="degradations"),
    }
    ns_handlers = namespace_configmap_handlers(holder, skip=options.policy_configmap)
    runtime_watches["namespace-policies"] = ListWatch(
        client, "/api/v1/configmaps", on_event=ns_handlers.on_event, on_sync=ns_handlers.on_sync,
        field_selector=f"metadata.name={NAMESPACE_POLICY_CONFIGMAP}", page_size=options.page_size,
        name="namespace-policies")
    # Not among the watches readiness waits for: the runtime parameters are not what the targets need.
    runtime.ready = lambda: all(w.has_synced for w in runtime_watches.values())
    metrics.watches.update(runtime_watches)
    if prepared.policy_file is not None:
        process.background("policy file", prepared.policy_file.run)

    def warm() -> bool:
        return all(w.has_synced for w in watches.values()) and holder.settled

    async def watch_all(stopped: asyncio.Event) -> None:
        await asyncio.gather(*(w.run(stopped) for w in (*watches.values(), rollout_watch, *runtime_watches.values())))

    process.background("watches", watch_all)
    leader_name = ""
    if options.leader_elect_lease is not None:
        elector = elector_for(client, options)

        executor.leading = lambda: elector.leading
        rollouts.leading = lambda: elector.leading
        metrics.leading = lambda: elector.leading
        if inspector is not None:
            inspector.leading = lambda: elector.leading
        runtime.leading = lambda: elector.leading
        elect(process, elector, warm=warm, exit_on_loss=True)

        async def act(stopped: asyncio.Event) -> None:
            waiting = asyncio.create_task(elector.wait_leading())
            ended = asyncio.create_task(stopped.wait())
            await asyncio.wait({waiting, ended}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiting, ended):
                task.cancel()
            if not stopped.is_set():
                await _act(executor, inspector, rollouts, runtime, stopped)

        process.background("workers", act)
        leader_name = f"lease {'/'.join(options.leader_elect_lease)} as {elector.config.identity}"
    else:
        async def act_when_warm(stopped: asyncio.Event) -> None:
            while not warm() and not stopped.is_set():
                await asyncio.sleep(0.1)
            if not stopped.is_set():
                await _act(executor, inspector, rollouts, runtime, stopped)

        process.background("workers", act_when_warm)

    app = http_app(64 * 1024)
    app.router.add_get("/healthz", _healthz)

    async def readyz(_request: web.Request) -> web.Response:
        if process.draining:
            return web.Response(text="shutting down\n", status=503)
        if not warm():
            return web.Response(text="filling: " + ", ".join(n for n, w in watches.items() if not w.has_synced)
                                + ("" if holder.settled else " policy") + "\n", status=503)
        role = "leading" if executor.leading() else "standby"
        return web.Response(text=f"ok: {role}, {len(executor.pods)} targeted pods, {len(rollouts.rollouts)} "
                                 f"rollouts, policy {holder.revision}\n")

    async def metrics_page(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    listener = process.listen(app, options.host, options.probe_port)

    def started() -> None:
        log.info("meshfit controller: probes and metrics on http://%s:%d; watching %s%s", options.host,
                 listener.port, client.config.server, f"; leader election on {leader_name}" if leader_name else "")

    return await process.run(stop, on_started=started)


async def _act(executor: Executor, inspector: Inspector | None, rollouts: RolloutReconciler, runtime: RuntimeSync,
               stopped: asyncio.Event) -> None:
    """The leader's work: the workers, the rollouts, the runtime parameters, and the inspections beside them."""
    work = [executor.run(stopped), rollouts.run(stopped), runtime.run(stopped)]
    if inspector is not None:
        work.append(inspector.run(stopped))
    await asyncio.gather(*work)


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")
