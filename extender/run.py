"""Running the extender: wire the cache, the feeds, the policy and the HTTP server, until SIGTERM.

Everything that can be wrong with the command line (an unreadable policy or
snapshot, a bad kubeconfig) is found in :func:`prepare`, before the server
starts, and raised as :class:`StartupError` so the command can say it in
one line and exit non-zero. Once serving, nothing but a signal ends the
process: SIGTERM or SIGINT stops the watches, drains the server and returns,
so the process exits 0, as a Deployment's rolling update expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web

from extender.binder import ApiBinder
from extender.cache import DEFAULT_ASSUME_TTL, ClusterCache
from extender.collector import settle
from extender.inflight import DEFAULT_TIMEOUT, InFlight
from extender.policy_source import PolicyHolder
from extender.server import build_app
from extender.service import ExtenderService
from extender.snapshot import SnapshotError, load_snapshot
from serving.policy_source import PolicyFile

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The extender cannot start as configured; the message says why."""


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8888
    tls_cert_dir: str | None = None
    #: Require client certificates signed by this CA (the scheduler's ``tlsConfig.certFile``).
    tls_client_ca: str | None = None
    kubeconfig: str | None = None
    #: Neither a kubeconfig nor a snapshot: in-cluster service account (else the default kubeconfig).
    snapshot: str | None = None
    policy_file: str | None = None
    policy_configmap: tuple[str, str] | None = None
    assume_ttl: float = DEFAULT_ASSUME_TTL
    bind_wait: float = DEFAULT_TIMEOUT
    page_size: int = 500
    policy_interval: float = 2.0


@dataclass
class Prepared:
    options: ServeOptions
    service: ExtenderService
    cluster_config: object | None  # kube.config.ClusterConfig, imported lazily
    #: ``--policy FILE``, read once already; serving keeps polling it.
    policy_file: PolicyFile | None = None


def prepare(options: ServeOptions) -> Prepared:
    """Read every input the command line names; raise :class:`StartupError` on the first bad one."""
    holder = PolicyHolder()
    policy_file = None
    if options.policy_file:
        # A file must be good at start: a typo should fail the rollout, not serve the defaults.
        policy_file = PolicyFile(holder, options.policy_file, interval=options.policy_interval)
        if not policy_file.check_now():
            if policy_file.unreadable is not None:
                raise StartupError(f"policy {options.policy_file}: {policy_file.unreadable}")
            assert holder.rejected is not None
            raise StartupError(holder.rejected.message)
    cache = ClusterCache(assume_ttl=options.assume_ttl)
    service = ExtenderService(
        cache, holder, inflight=InFlight(options.bind_wait, engaged=not options.snapshot)
    )
    cluster_config = None
    if options.snapshot:
        try:
            snap = load_snapshot(options.snapshot)
        except SnapshotError as exc:
            raise StartupError(str(exc)) from None
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
            cluster_config = load_config(options.kubeconfig)
        except ConfigError as exc:
            raise StartupError(str(exc)) from None
    return Prepared(options, service, cluster_config, policy_file)


async def serve(prepared: Prepared, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (by SIGTERM/SIGINT when not given)."""
    options = prepared.options
    service = prepared.service
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task[None]] = []
    client = None
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
            raise StartupError(f"--tls-cert-dir {options.tls_cert_dir}: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"--tls-client-ca {client_ca}: {exc}") from None
        ssl_context = reloader.context
        tasks.append(asyncio.create_task(reloader.run(stop), name="cert reload"))

    if prepared.policy_file is not None:
        tasks.append(asyncio.create_task(prepared.policy_file.run(stop), name="policy file"))

    if prepared.cluster_config is not None:
        from extender.feed import ClusterFeed
        from kube.client import ApiClient

        client = ApiClient(prepared.cluster_config)  # type: ignore[arg-type]
        service.binder = ApiBinder(client)
        feed = ClusterFeed(
            client, service, policy_configmap=options.policy_configmap, page_size=options.page_size
        )
        log.info(
            "watching nodes and pods at %s%s",
            client.config.server,
            f"; policy from ConfigMap {'/'.join(options.policy_configmap)}" if options.policy_configmap else "",
        )
        tasks.append(asyncio.create_task(feed.run(stop), name="cluster feed"))

    runner = web.AppRunner(build_app(service), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {options.host}:{options.port}: {exc.strerror or exc}") from None
        scheme = "https" if ssl_context else "http"
        port = _bound_port(runner, options.port)
        log.info("meshfit extender listening on %s://%s:%d", scheme, options.host, port)
        await stop.wait()
        log.info("stopping")
    finally:
        stop.set()
        await runner.cleanup()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        if client is not None:
            await client.close()


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    """The port actually bound (``--port 0`` picks a free one, which tests use)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
