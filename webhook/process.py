"""The webhook process: what it is made of, run by the shared lifecycle of :mod:`serving.process`.

What runs besides the handlers, all on one event loop:

* :class:`certs.reload.CertReloader` polls the certificate directory and
  loads a rotated pair into the listening context (open connections keep
  theirs);
* the policy source: :class:`serving.policy_source.PolicyFile` polling a file,
  or a ConfigMap list/watch;
* in cluster mode, list/watches of Namespaces (labels) and of the
  namespaces' ``meshfit-policy`` ConfigMaps.

On SIGTERM the replica first reports not ready and waits ``shutdown_delay``
(endpoints controllers and kube-proxy need a moment to stop sending it
traffic), then stops accepting, lets in-flight reviews finish (up to
``shutdown_timeout``) and exits 0 (:class:`serving.process.Process`). An
admission request cut off mid-way is a failed pod CREATE somewhere in the
cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from certs.inspect import CertLoadError
from certs.reload import CertReloader
from policy.model import NAMESPACE_POLICY_CONFIGMAP
from serving.connections import ConnectionLimits
from serving.policy_source import PolicyFile, Rejection, global_configmap_handlers
from serving.process import Process, StartError
from webhook.answer_cache import AnswerCache
from webhook.handlers import DEFAULT_MAX_BODY_BYTES, MUTATE_PATH, Webhook
from webhook.metrics import WebhookMetrics
from webhook.namespaces import NamespaceCache, NoCluster
from serving.namespace_policies import LivePolicy, namespace_configmap_handlers

log = logging.getLogger(__name__)


#: Where the manifests put the global policy ConfigMap.
DEFAULT_GLOBAL_CONFIGMAP = ("meshfit-system", NAMESPACE_POLICY_CONFIGMAP)


@dataclass(frozen=True)
class ServeOptions:
    """What ``meshfit webhook serve``'s command line sets."""

    cert_dir: Path
    host: str = "127.0.0.1"
    port: int = 9443
    policy_file: Path | None = None
    #: ``(namespace, name)`` of the global policy ConfigMap.
    policy_configmap: tuple[str, str] | None = None
    kubeconfig: str | None = None
    #: The kubeconfig context (default: its current-context).
    context: str | None = None
    #: Watch Namespaces and namespace policies; implied by ``policy_configmap`` or ``kubeconfig``.
    cluster: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    policy_interval: float = 2.0
    cert_interval: float = 2.0
    shutdown_delay: float = 0.0
    shutdown_timeout: float = 30.0
    access_log: bool = False
    #: Engine verdicts remembered for identical pods (replicas of one ReplicaSet); 0 turns it off.
    answer_cache_entries: int = 512
    #: Header, body and idle timeouts and the connection cap of the listener.
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass
class Running:
    """What a started server exposes to its caller (tests read ``port``)."""

    webhook: Webhook
    port: int
    certs: CertReloader


async def _cluster_sources(
    options: ServeOptions, live: LivePolicy, namespaces: NamespaceCache
) -> tuple[Any, list[Any]]:
    """An API client and the list/watches cluster mode needs."""
    from kube.client import ApiClient
    from kube.config import ConfigError, load_config
    from kube.events import EventRecorder
    from kube.watch import ListWatch

    try:
        config = await asyncio.to_thread(load_config, options.kubeconfig, context=options.context)
    except ConfigError as exc:
        raise StartError(f"no cluster configuration: {exc}") from exc
    client = ApiClient(config)
    watches = [
        ListWatch(
            client,
            "/api/v1/namespaces",
            on_sync=namespaces.on_sync,
            on_event=namespaces.on_event,
            name="namespaces",
        )
    ]
    global_key = options.policy_configmap
    if global_key is not None:
        namespace, name = global_key
        recorder = EventRecorder(client, "meshfit-webhook")

        async def refused(configmap: Mapping[str, Any], why: Rejection) -> None:
            await recorder.record(configmap, reason="PolicyRefused",
                                  message=f"meshfit-webhook refused this policy and keeps serving revision "
                                          f"{live.revision or 'none'}: {why.message}")

        handlers = global_configmap_handlers(live, namespace, name, on_refused=refused)
        watches.append(
            ListWatch(
                client,
                f"/api/v1/namespaces/{namespace}/configmaps",
                field_selector=f"metadata.name={name}",
                on_sync=handlers.on_sync,
                on_event=handlers.on_event,
                name="policy",
            )
        )
    # The shipped global policy is meshfit-system/meshfit-policy: never read it as a namespace policy,
    # even when this replica takes its global policy from a file.
    handlers = namespace_configmap_handlers(live, skip=global_key or DEFAULT_GLOBAL_CONFIGMAP)
    watches.append(
        ListWatch(
            client,
            "/api/v1/configmaps",
            field_selector=f"metadata.name={NAMESPACE_POLICY_CONFIGMAP}",
            on_sync=handlers.on_sync,
            on_event=handlers.on_event,
            name="namespace-policies",
        )
    )
    return client, watches


async def serve(
    options: ServeOptions,
    stop: asyncio.Event | None = None,
    *,
    on_started: Callable[[Running], Awaitable[None] | None] | None = None,
    install_signal_handlers: bool = True,
) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT); return the exit code.

    Raises :class:`~serving.process.StartError` for a configuration that cannot start.
    """
    metrics = WebhookMetrics()

    # Policy: a file must be good at start (a typo should fail the rollout, not
    # serve nothing); a ConfigMap may arrive later, readiness waits for it.
    live = LivePolicy()
    policy_file: PolicyFile | None = None
    if options.policy_file is not None:
        policy_file = PolicyFile(live, options.policy_file, interval=options.policy_interval)
        policy_file.check_now()
        if live.policy is None:
            reason = live.rejected.message if live.rejected else "no policy"
            raise StartError(reason)
    metrics.observe_policy(live)

    try:
        certs = await asyncio.to_thread(CertReloader, options.cert_dir, interval=options.cert_interval)
    except CertLoadError as exc:
        raise StartError(f"no serving certificate in {options.cert_dir}: {exc}") from exc
    metrics.observe_certs(certs)

    process = Process(
        "webhook",
        shutdown_delay=options.shutdown_delay,
        shutdown_timeout=options.shutdown_timeout,
        handle_signals=install_signal_handlers,
        limits=options.limits,
    )
    cluster = options.cluster or options.policy_configmap is not None or options.kubeconfig is not None \
        or options.context is not None
    watches: list[Any] = []
    if cluster:
        namespace_cache = NamespaceCache()
        client, watches = await _cluster_sources(options, live, namespace_cache)
        process.on_cleanup(client.close)
        namespaces: NamespaceCache | NoCluster = namespace_cache
        metrics.observe_namespaces(lambda: namespace_cache.misses, lambda: namespace_cache.size)
        metrics.observe_watches(watches)
    else:
        namespaces = NoCluster()

    cache = AnswerCache(options.answer_cache_entries) if options.answer_cache_entries > 0 else None
    if cache is not None:
        metrics.observe_answer_cache(cache)
    webhook = Webhook(
        live,
        namespaces,
        metrics,
        certs=certs,
        watches=[w for w in watches if w.name != "namespaces"],
        max_body_bytes=options.max_body_bytes,
        cache=cache,
        process=process,
    )
    listener = process.listen(
        webhook.app(),
        options.host,
        options.port,
        ssl_context=certs.context,
        access_log=log if options.access_log else None,
    )
    process.background("cert reload", certs.run)
    if policy_file is not None:
        process.background("policy file", policy_file.run)
    for watch in watches:
        process.background(f"watch {watch.name}", watch.run)

    async def started() -> None:
        log.info(
            "meshfit webhook serving https://%s:%d%s (policy %s, %s)",
            options.host,
            listener.port,
            MUTATE_PATH,
            live.source or f"ConfigMap {'/'.join(options.policy_configmap or ('?', '?'))}",
            "cluster mode" if cluster else "no cluster: namespaces count as opted in",
        )
        if on_started is not None:
            result = on_started(Running(webhook, listener.port, certs))
            if asyncio.iscoroutine(result):
                await result

    return await process.run(stop, on_started=started)
