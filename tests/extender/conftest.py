"""The extender's real HTTP server on loopback, around a service the test builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from extender.handlers import build_app
from extender.service import ExtenderService


class Running:
    def __init__(self, service: ExtenderService, url: str, session: aiohttp.ClientSession) -> None:
        self.service = service
        self.url = url
        self.session = session

    async def post(self, verb: str, body: bytes | dict | list) -> tuple[int, object]:
        import orjson

        data = body if isinstance(body, bytes) else orjson.dumps(body)
        async with self.session.post(f"{self.url}/{verb}", data=data,
                                     headers={"Content-Type": "application/json"}) as response:
            raw = await response.read()
            return response.status, orjson.loads(raw) if raw else None

    async def get(self, path: str) -> tuple[int, str, str]:
        async with self.session.get(f"{self.url}{path}") as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[ExtenderService], Awaitable[Running]]]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(service: ExtenderService) -> Running:
        runner = web.AppRunner(build_app(service), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Running(service, f"http://127.0.0.1:{runner.addresses[0][1]}", session)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await runner.cleanup()
