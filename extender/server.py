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

log = logging.getLogger(__name__)

JSON = "application/json"
#: A full NodeList for thousands of nodes is tens of megabytes (nodeCacheCapable: false).
MAX_BODY = 512 * 1024 * 1024

SERVICE_KEY = web.AppKey("service", ExtenderService)


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


async def _timed(request: web.Request, verb: str, answer) -> web.Response:  # type: ignore[no-untyped-def]
    service = request.app[SERVICE_KEY]
    started = time.perf_counter()
    try:
        body = await request.read()
        response = _json(await answer(service, body))
    except ProtocolError as exc:
        log.warning("%s: malformed request: %s", verb, exc)
        response = _json(encode_error(f"{verb}: {exc}"), 400)
    except Exception as exc:  # a bug must cost one answer, not the process
        log.exception("%s failed", verb)
        response = _json(encode_error(f"{verb}: internal error: {type(exc).__name__}: {exc}"), 500)
    instruments = service.instruments
    instruments.latency.observe(time.perf_counter() - started, verb)
    instruments.requests.inc(verb, str(response.status))
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
    return await _timed(request, "filter", _filter)


async def prioritize_handler(request: web.Request) -> web.Response:
    return await _timed(request, "prioritize", _prioritize)


async def bind_handler(request: web.Request) -> web.Response:
    return await _timed(request, "bind", _bind)


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
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
    body = request.app[SERVICE_KEY].instruments.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def debug_node(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    report = request.app[SERVICE_KEY].node_report(name)
    if report is None:
        return _json(orjson.dumps({"error": f"node {name!r} is not in the cache"}), 404)
    return _json(orjson.dumps(report, option=orjson.OPT_INDENT_2))


def build_app(service: ExtenderService) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICE_KEY] = service
    app.router.add_post("/filter", filter_handler)
    app.router.add_post("/prioritize", prioritize_handler)
    app.router.add_post("/bind", bind_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/debug/nodes/{name}", debug_node)
    return app
