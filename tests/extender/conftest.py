"""The extender's real HTTP server on loopback, around a service the test builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from extender.handlers import build_app
from extender.service import ExtenderService
from extender_http import Running


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
