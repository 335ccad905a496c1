"""The extender's HTTP surface: handlers that only move bytes.

Each verb handler reads the body, decodes it (:mod:`extender.protocol`),
calls :class:`~extender.service.ExtenderService` and writes the encoded
answer. A malformed body is a 400 with a message the scheduler logs; any
other failure is a 500 with the error, logged with its traceback: the
process never dies of a request. Access logging is off: at hundreds of
cycles a second it would cost more than the verbs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

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
#: The process serving the app, when there is one (readiness fails while it drains).
PROCESS_KEY = web.AppKey("process", Process)


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


Answer = Callable[[ExtenderService, bytes], Awaitable[bytes]]


async def _timed(request: web.Request, verb: str, answer: Answer) -> web.Response:
    service = request.app[SERVICE_KEY]
    metrics = service.metrics
    started = time.perf_counter()
    try:
        body = await request.read()  # read already, within the limits, by serving.process
        response = _json(await answer(service, body))
    except ProtocolError as exc:
        log.warning("%s: malformed request: %s", verb, exc)
        response = _json(encode_error(f"{verb}: {exc}"), 400)
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
    """``GET /readyz``: 200 once the initial lists and the policy are in, 503 before and while draining."""
    process = request.app.get(PROCESS_KEY)
    if process is not None and process.draining:
        return web.Response(text="shutting down\n", status=503)
    service = request.app[SERVICE_KEY]
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


def build_app(
    service: ExtenderService, *, process: Process | None = None, max_body_bytes: int = MAX_BODY
) -> web.Application:
    """The routes over ``service``, on an application with the limits every listener has."""
    app = http_app(max_body_bytes, on_refused=_refused, in_flight=service.metrics)
    app[SERVICE_KEY] = service
    if process is not None:
        app[PROCESS_KEY] = process
    app.router.add_post("/filter", filter_handler)
    app.router.add_post("/prioritize", prioritize_handler)
    app.router.add_post("/bind", bind_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/nodes/{name}", debug_node)
    return app
