"""The extender process: the cache, the feeds, the policy and the HTTP server, run by :mod:`serving.process`.

Everything that can be wrong with the command line (an unreadable policy or
snapshot, a bad kubeconfig) is found in :func:`prepare`, before the server
starts, and raised as :class:`~serving.process.StartError` so the command can
say it in one line and exit non-zero. Once serving, nothing but a signal ends
the process: SIGTERM or SIGINT turns readiness off, lets the calls in flight
finish, stops the watches and returns 0, as a Deployment's rolling update
expects.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from extender.binder import ApiBinder
from extender.cache import DEFAULT_ASSUME_TTL, ClusterCache
from extender.collector import settle
from extender.guard import DEFAULT_SCHEDULERS, BindGuard
from extender.handlers import MAX_BODY, build_app, build_probe_app
from extender.inflight import DEFAULT_TIMEOUT, InFlight
from extender.policy_source import LivePolicy
from extender.service import ExtenderService
from extender.snapshot import SnapshotError, load_snapshot
from serving.connections import ConnectionLimits
from serving.policy_source import PolicyFile, policy_file_at_start
from serving.process import Process, StartError

if TYPE_CHECKING:
    from kube.client import ApiClient
    from kube.config import ClusterConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    """What ``meshfit extender serve``'s command line sets."""

    host: str = "127.0.0.1"
    port: int = 8888
    tls_cert_dir: str | None = None
    #: Require client certificates signed by this CA (the scheduler's ``tlsConfig.certFile``).
    tls_client_ca: str | None = None
    #: ... and naming one of these (subject CN or DNS SAN); empty: any the CA signed.
    tls_client_names: tuple[str, ...] = ()
    kubeconfig: str | None = None
    #: The kubeconfig context (default: its current-context).
    context: str | None = None
    #: Neither a kubeconfig nor a snapshot: in-cluster service account (else the default kubeconfig).
    snapshot: str | None = None
    policy_file: str | None = None
    policy_configmap: tuple[str, str] | None = None
    assume_ttl: float = DEFAULT_ASSUME_TTL
    bind_wait: float = DEFAULT_TIMEOUT
    page_size: int = 500
    policy_interval: float = 2.0
    #: A second, plain-HTTP port for /healthz, /readyz and /metrics (the kubelet and Prometheus
    #: hold no client certificate); ``None``: none, everything on ``port``.
    probe_port: int | None = None
    #: ``spec.schedulerName`` values whose pods this extender schedules (its filters count, its binds go).
    schedulers: tuple[str, ...] = DEFAULT_SCHEDULERS
    #: Leader election on the Lease ``leader_elect_lease`` (namespace, name); ``None``: always lead.
    leader_elect_lease: tuple[str, str] | None = None
    leader_elect_identity: str = ""
    leader_elect_lease_duration: float = 15.0
    leader_elect_renew_deadline: float = 10.0
    leader_elect_retry_period: float = 2.0
    #: Largest scheduler call accepted (413 beyond); see :data:`extender.handlers.MAX_BODY`.
    max_body_bytes: int = MAX_BODY
    #: Header, body and idle timeouts and the connection cap of the listener.
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass
class Prepared:
    """Every input read and checked: what :func:`serve` runs."""

    options: ServeOptions
    service: ExtenderService
    cluster_config: ClusterConfig | None  # imported lazily: a snapshot needs no cluster client
    #: ``--policy FILE``, read once already; serving keeps polling it.
    policy_file: PolicyFile | None = None


def prepare(options: ServeOptions) -> Prepared:
    """Read every input the command line names; raise :class:`StartError` on the first bad one."""
    holder = LivePolicy()
    policy_file = None
    if options.policy_file:
        policy_file = policy_file_at_start(holder, options.policy_file, options.policy_interval)
    cache = ClusterCache(assume_ttl=options.assume_ttl)
    service = ExtenderService(
        cache, holder, inflight=InFlight(options.bind_wait, engaged=not options.snapshot),
        guard=BindGuard(options.schedulers),
    )
    cluster_config = None
    if options.snapshot:
        try:
            snap = load_snapshot(options.snapshot)
        except SnapshotError as exc:
            raise StartError(str(exc)) from None
        cache.sync_nodes(snap.nodes)
        cache.sync_pods(snap.pods)
        del snap
        settle()
        log.info(
            "serving snapshot %s: %d nodes, %d pods", options.snapshot, len(cache.nodes), len(cache.accounting.pods)
        )
    else:
        from kube.config import ConfigError, load_config

        try:
            cluster_config = load_config(options.kubeconfig, context=options.context)
        except ConfigError as exc:
            raise StartError(str(exc)) from None
    return Prepared(options, service, cluster_config, policy_file)


async def serve(prepared: Prepared, stop: asyncio.Event | None = None) -> int:
    """Serve until ``stop`` is set (or SIGTERM/SIGINT); return the exit code."""
    options = prepared.options
    service = prepared.service
    process = Process("extender", limits=options.limits)
    ssl_context = None
    if options.tls_cert_dir:
        from certs.inspect import CertLoadError
        from certs.reload import CertReloader

        client_ca = options.tls_client_ca

        def require_client_certificate(context: ssl.SSLContext) -> None:
            # Only a scheduler holding a certificate from this CA may call bind, which creates Bindings
            # with this extender's rights; every context the reloader makes (a key-type rotation makes a
            # fresh one) must ask for it.
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED

        try:
            reloader = CertReloader(options.tls_cert_dir, configure=require_client_certificate if client_ca else None)
        except CertLoadError as exc:
            raise StartError(f"--cert-dir {options.tls_cert_dir}: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise StartError(f"--tls-client-ca {client_ca}: {exc}") from None
        ssl_context = reloader.context
        process.background("cert reload", reloader.run)

    if prepared.policy_file is not None:
        process.background("policy file", prepared.policy_file.run)

    if prepared.cluster_config is not None:
        from extender.feed import ClusterFeed
        from kube.client import ApiClient

        client = ApiClient(prepared.cluster_config)
        process.on_cleanup(client.close)
        binder = service.binder = ApiBinder(client)
        service.guard.lookup = binder.get_pod
        service.guard.node_lookup = binder.node_exists
        if options.leader_elect_lease is not None:
            _elect(process, service, client, options)
        feed = ClusterFeed(
            client, service, policy_configmap=options.policy_configmap, page_size=options.page_size
        )
        log.info(
            "watching nodes and pods at %s%s",
            client.config.server,
            f"; policy from ConfigMap {'/'.join(options.policy_configmap)}" if options.policy_configmap else "",
        )
        process.background("cluster feed", feed.run)

    app = build_app(service, process=process, client_names=frozenset(options.tls_client_names),
                    max_body_bytes=options.max_body_bytes)
    listener = process.listen(app, options.host, options.port, ssl_context=ssl_context)
    probes = None
    if options.probe_port is not None:
        probes = process.listen(build_probe_app(service, process=process), options.host, options.probe_port)

    def started() -> None:
        log.info("meshfit extender listening on %s://%s:%d%s", listener.scheme, options.host, listener.port,
                 f", probes and metrics on http://{options.host}:{probes.port}" if probes is not None else "")

    return await process.run(stop, on_started=started)


def _elect(process: Process, service: ExtenderService, client: ApiClient, options: ServeOptions) -> None:
    """Only the leader answers the verbs and is Ready; a standby keeps its watches (and cache) warm."""
    from serving.leadership import elect, elector_for

    elector = elector_for(client, options)
    config = elector.config
    service.leading = lambda: elector.leading
    service.leader = lambda: elector.leader
    # A new leader must know every binding the last one made: campaign only once the lists are in.
    elect(process, elector, warm=lambda: service.cache.synced and service.policy.settled)
    log.info("leader election on lease %s/%s as %s", config.namespace, config.name, config.identity)
