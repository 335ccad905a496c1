"""A loopback HTTP server that plays back recorded apiserver bytes, per collection, in scripted order.

It knows nothing of Kubernetes: each GET of a path pops the next scripted
answer for that path and kind (LIST or WATCH), and every request is kept so a
test can check which resourceVersion a watch resumed from. The bytes come from
``recordings/`` (see ``recordings/record.py``), taken from a real apiserver.
A WATCH with nothing scripted stays open until the server stops, as an idle
real watch does. POSTs (bindings) are recorded and answered 201.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from aiohttp import web

RECORDINGS = Path(__file__).parent / "recordings"

Step = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recording(name: str) -> bytes:
    return (RECORDINGS / name).read_bytes()


class ReplayApiServer:
    def __init__(self) -> None:
        self.script: dict[tuple[str, str], deque[Step]] = defaultdict(deque)
        #: (path, "list" | "watch" | "post", query) in arrival order.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.posts: list[tuple[str, dict]] = []
        self.closing = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    # -- scripting ---------------------------------------------------------
    def on_list(self, path: str, *steps: Step) -> None:
        self.script[(path, "list")].extend(steps)

    def on_watch(self, path: str, *steps: Step) -> None:
        self.script[(path, "watch")].extend(steps)

    @staticmethod
    def body(data: bytes, status: int = 200) -> Step:
        async def step(_request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, status=status, content_type="application/json")

        return step

    def stream(self, data: bytes, *, hold: asyncio.Event | None = None, then_hang: bool = False) -> Step:
        """Send ``data`` (after ``hold`` is set, if given), then end the stream (or keep it open)."""

        async def step(request: web.Request) -> web.StreamResponse:
            if hold is not None:
                await hold.wait()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await response.write(data)
            if then_hang:
                await self.closing.wait()
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response

        return step

    # -- what the client asked -----------------------------------------------
    def queries(self, path: str, kind: str) -> list[dict[str, str]]:
        return [q for p, k, q in self.requests if p == path and k == kind]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"timed out; requests so far: {[(p, k) for p, k, _ in self.requests]}")
            await asyncio.sleep(0.01)

    # -- serving -------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            body = orjson.loads(await request.read())
            self.requests.append((request.path, "post", dict(request.query)))
            self.posts.append((request.path, body))
            return web.Response(body=orjson.dumps({"kind": "Status", "status": "Success", "code": 201}),
                                status=201, content_type="application/json")
        kind = "watch" if request.query.get("watch") in ("1", "true") else "list"
        self.requests.append((request.path, kind, dict(request.query)))
        queue = self.script.get((request.path, kind))
        if queue:
            return await queue.popleft()(request)
        if kind == "watch":
            return await self.stream(b"", then_hang=True)(request)
        return web.Response(status=500, text=f"no scripted LIST left for {request.path}")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
