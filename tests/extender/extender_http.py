"""A client for the extender's real HTTP server in tests (the ``serve`` fixture of conftest.py returns one)."""

from __future__ import annotations

import aiohttp

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
