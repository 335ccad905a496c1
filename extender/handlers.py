"""The extender's HTTP surface: handlers that only move bytes.

Each verb handler reads the body, decodes it (:mod:`extender.protocol`),
calls :class:`~extender.service.ExtenderService` and writes the encoded
answer. A malformed body (or one cut off on the wire) is a 400 with a
message the scheduler logs, and here only at DEBUG with a WARNING summary at
most once a minute (:class:`serving.log_summary.LogSummary`): whoever can
reach the port must not be able to flood the log. Any other failure is a
500 with the error, logged with its traceback: the process never dies of a
request. Access logging is off: at hundreds of cycles a second it would cost
more than the verbs.

A standby replica (leader election) answers every verb with an ``Error``
naming the leader, and closes the connection, so a scheduler whose
keep-alive connection still reaches it reconnects through the Service,
whose endpoints are the ready replica: the leader.

:func:`build_probe_app` is the plain-HTTP port for the kubelet and
Prometheus when the verbs are served over TLS with client certificates:
``/healthz``, ``/readyz`` and ``/metrics`` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from extender.protocol import (
    ProtocolError,
    decode_args,
    decode_binding,
    encode_binding,
    encode_error,
    encode_filter,
    encode_priorities,
)
from extender.service import ExtenderService
from serving.log_summary import LogSummary
from serving.exposition import CONTENT_TYPE
from serving.process import Process, http_app

log = logging.getLogger(__name__)

JSON = "application/json"
#: The largest call the scheduler makes with ``nodeCacheCapable: true`` (what the manifests ship):
#: a pod (at most 1.5 MiB, etcd's default request limit; 3 MiB, the apiserver's) and up to 10,000
#: node names of at most 253 bytes each (2.6 MB). 8 MiB holds both with room, and what the
#: extender makes of 8 MiB of JSON stays far inside its memory limit. A full NodeList
#: (``nodeCacheCapable: false``) is tens of megabytes: raise ``--max-body-bytes`` and the limit.
MAX_BODY = 8 * 1024 * 1024

SERVICE_KEY = web.AppKey("service", ExtenderService)
MALFORMED_KEY = web.AppKey("malformed", LogSummary)
#: The process serving the app, when there is one (readiness fails while it drains).
PROCESS_KEY = web.AppKey("process", Process)
#: Client-certificate names admitted (``--tls-client-name``); empty: any certificate the CA signed.
CLIENT_NAMES_KEY = web.AppKey("client_names", frozenset)
REFUSED_CLIENTS_KEY = web.AppKey("refused_clients", LogSummary)


def client_names(peercert: object) -> set[str]:
    """The subject common names and DNS names of a verified peer certificate (``ssl`` dict form)."""
    names: set[str] = set()
    if not isinstance(peercert, dict):
        return names
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                names.add(value)
    for kind, value in peercert.get("subjectAltName") or ():
        if kind == "DNS":
            names.add(value)
    return names


@web.middleware
async def _client_name_check(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
    """With ``--tls-client-name``: only a certificate naming one of them may call anything on this port."""
    allowed = request.app[CLIENT_NAMES_KEY]
    transport = request.transport
    names = client_names(transport.get_extra_info("peercert") if transport is not None else None)
    if names & allowed:
        return await handler(request)
    request.app[REFUSED_CLIENTS_KEY].note("%s", f"{request.method} {request.path} from a certificate naming "
                                          f"{sorted(names) or 'nothing'}")
    return _json(encode_error(f"client certificate names {sorted(names)}, not one of {sorted(allowed)}"), 403)


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


Answer = Callable[[ExtenderService, bytes], Awaitable[bytes]]


async def _timed(request: web.Request, verb: str, answer: Answer) -> web.Response:
    service = request.app[SERVICE_KEY]
    metrics = service.metrics
    started = time.perf_counter()
    try:
        if not service.leading():
            metrics.standby_answers.inc(verb)
            leader = service.leader()
            response = _json(encode_error(
                f"{verb}: this meshfit extender replica is a standby"
                + (f"; the leader is {leader}" if leader else "; no leader is known yet")
            ))
            response.force_close()
        else:
            body = await request.read()  # read already, within the limits, by serving.process
            response = _json(await answer(service, body))
    except (ProtocolError, aiohttp.ClientPayloadError, HttpProcessingError, ConnectionError) as exc:
        # The caller's fault (or its connection's): no traceback, no WARNING per request.
        reason = str(exc) if isinstance(exc, ProtocolError) else f"request body not received: {type(exc).__name__}"
        metrics.malformed.inc(verb)
        request.app[MALFORMED_KEY].note("%s: %s", verb, reason)
        response = _json(encode_error(f"{verb}: {reason}"), 400)
    except web.HTTPException:
        raise  # aiohttp's own answers (413 for an oversize body)
    except Exception as exc:  # a bug must cost one answer, not the process
        log.exception("%s failed", verb)
        response = _json(encode_error(f"{verb}: internal error: {type(exc).__name__}: {exc}"), 500)
    metrics.latency.observe(time.perf_counter() - started, verb)
    metrics.requests.inc(verb, str(response.status))
    return response


async def _filter(service: ExtenderService, body: bytes) -> bytes:
    args = decode_args(body)
    outcome = await service.filter(args)
    return encode_filter(args, outcome.passed, outcome.failed, outcome.unresolvable)


async def _prioritize(service: ExtenderService, body: bytes) -> bytes:
    args = decode_args(body)
    return encode_priorities(args.names, service.prioritize(args))


async def _bind(service: ExtenderService, body: bytes) -> bytes:
    args = decode_binding(body)
    return encode_binding(await service.bind(args))


async def filter_handler(request: web.Request) -> web.Response:
    """``POST /filter``."""
    return await _timed(request, "filter", _filter)


async def prioritize_handler(request: web.Request) -> web.Response:
    """``POST /prioritize``."""
    return await _timed(request, "prioritize", _prioritize)


async def bind_handler(request: web.Request) -> web.Response:
    """``POST /bind``."""
    return await _timed(request, "bind", _bind)


async def healthz(_request: web.Request) -> web.Response:
    """``GET /healthz``: alive, the event loop answers."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 once the initial lists and the policy are in and this replica leads; 503 otherwise."""
    process = request.app.get(PROCESS_KEY)
    if process is not None and process.draining:
        return web.Response(text="shutting down\n", status=503)
    service = request.app[SERVICE_KEY]
    if not service.leading():
        leader = service.leader()
        # Not ready, so the Service sends the scheduler to the leader; the cache stays warm meanwhile.
        return web.Response(
            text=f"standby: {'the leader is ' + leader if leader else 'no leader known yet'} "
                 f"(cache {'warm' if service.cache.synced else 'filling'})\n",
            status=503,
        )
    cache = service.cache
    waiting = [
        what
        for what, done in (
            ("nodes", cache.nodes_synced),
            ("pods", cache.pods_synced),
            ("policy", service.policy.settled),
        )
        if not done
    ]
    if waiting:
        return web.Response(text=f"waiting for the initial list of {', '.join(waiting)}\n", status=503)
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` in the Prometheus text format."""
    body = request.app[SERVICE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def debug_node(request: web.Request) -> web.Response:
    """``GET /debug/nodes/NAME``: one node's figures as the extender counts them."""
    name = request.match_info["name"]
    report = request.app[SERVICE_KEY].node_report(name)
    if report is None:
        return _json(orjson.dumps({"error": f"node {name!r} is not in the cache"}), 404)
    return _json(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def _refused(request: web.Request, status: int) -> None:
    """A call the listener answered itself (413 too large, 408 too slow, 400 aborted), counted by verb."""
    verb = request.path.strip("/") if request.path in ("/filter", "/prioritize", "/bind") else "other"
    request.app[SERVICE_KEY].metrics.requests.inc(verb, str(status))


def _base_app(service: ExtenderService, process: Process | None, max_body: int) -> web.Application:
    app = http_app(max_body, on_refused=_refused, in_flight=service.metrics)
    app[SERVICE_KEY] = service
    app[MALFORMED_KEY] = LogSummary(log, "malformed requests")
    if process is not None:
        app[PROCESS_KEY] = process
    return app


def build_probe_app(service: ExtenderService, *, process: Process | None = None) -> web.Application:
    """``/healthz``, ``/readyz`` and ``/metrics`` alone, for a plain-HTTP port beside a TLS one."""
    app = _base_app(service, process, 64 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def build_app(
    service: ExtenderService, *, process: Process | None = None, client_names: frozenset[str] = frozenset(),
    max_body_bytes: int = MAX_BODY,
) -> web.Application:
    """The routes over ``service``, on an application with the limits every listener has.

    ``client_names``: on a TLS listener that requires client certificates, the names
    (subject CN or DNS SAN) a certificate must carry; a CA that signs more than the
    scheduler's certificate (a cluster CA) then admits the scheduler alone.
    """
    app = _base_app(service, process, max_body_bytes)
    if client_names:
        app[CLIENT_NAMES_KEY] = client_names
        app[REFUSED_CLIENTS_KEY] = LogSummary(log, "calls refused for their client certificate")
        app.middlewares.append(_client_name_check)
    app.router.add_post("/filter", filter_handler)
    app.router.add_post("/prioritize", prioritize_handler)
    app.router.add_post("/bind", bind_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/nodes/{name}", debug_node)
    return app
