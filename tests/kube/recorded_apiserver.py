"""A loopback HTTP server that replays recorded apiserver answers, one scripted step per request.

It is not a fake API: it knows nothing about Kubernetes, it only plays back
the bytes in ``recordings/`` (LIST pages, newline-delimited watch streams,
Status errors) in the order a test scripts them, and records what the
client asked for so the test can check the resourceVersions it resumed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

RECORDINGS = Path(__file__).parent / "recordings"

Step = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recording(name: str) -> bytes:
    return (RECORDINGS / name).read_bytes()


class RecordedApiServer:
    def __init__(self) -> None:
        self.lists: deque[Step] = deque()
        self.watches: deque[Step] = deque()
        #: ("list" | "watch", query, headers) for every request, in order.
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.url = ""
        self.closing = asyncio.Event()
        self.bodies: list[bytes] = []
        self.routes: dict[tuple[str, str], Step] = {}

    # -- what the client asked ------------------------------------------------
    def queries(self, kind: str) -> list[dict[str, str]]:
        return [query for k, query, _ in self.requests if k == kind]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; requests so far: {[(k, q) for k, q, _ in self.requests]}")
            await asyncio.sleep(0.01)

    # -- scripted answers -----------------------------------------------------
    @staticmethod
    def json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Step:
        async def step(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, status=status, content_type="application/json", headers=headers)

        return step

    def stream(self, body: bytes, *, then: str = "close", tail: bytes = b"", chunk: int = 0) -> Step:
        """Send ``body`` (in ``chunk``-byte writes if given), then ``tail``, then end the stream.

        ``then``: ``close`` ends it cleanly (the server's timeoutSeconds),
        ``abort`` drops the connection mid-stream, ``hang`` keeps it open
        until the server shuts down.
        """

        async def step(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            size = chunk or len(body) or 1
            for i in range(0, len(body), size):
                await response.write(body[i : i + size])
            if tail:
                await response.write(tail)
            if then == "abort":
                await asyncio.sleep(0.02)
                assert request.transport is not None
                request.transport.abort()
                return response
            if then == "hang":
                await self.closing.wait()
            with contextlib.suppress(ConnectionError):  # the client may have gone first
                await response.write_eof()
            return response

        return step

    def hang(self) -> Step:
        return self.stream(b"", then="hang")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get((request.method, request.path))
        is_watch = request.query.get("watch") in ("1", "true")
        kind = "watch" if is_watch else "list"
        self.requests.append((kind, dict(request.query), dict(request.headers)))
        if route is not None:
            self.bodies.append(await request.read())
            return await route(request)
        queue = self.watches if is_watch else self.lists
        if queue:
            return await queue.popleft()(request)
        if is_watch:
            return await self.hang()(request)
        return web.Response(status=500, text="no scripted LIST left")


async def start(server: RecordedApiServer, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    sockets: Any = site._server.sockets  # type: ignore[union-attr]
    port = sockets[0].getsockname()[1]
    server.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    return runner
