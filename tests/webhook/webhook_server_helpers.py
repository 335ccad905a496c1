"""Talking to a webhook server under test: a verifying TLS client and a handle on the server."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from webhook.process import Running

SERVICE, NAMESPACE = "meshfit-webhook", "meshfit-system"


def client_context(ca_file: Path) -> ssl.SSLContext:
    """Verifies the chain and the 127.0.0.1 IP SAN, as the apiserver verifies its webhooks."""
    return ssl.create_default_context(cafile=str(ca_file))


@dataclasses.dataclass
class Served:
    running: Running
    url: str
    session: aiohttp.ClientSession
    stop: asyncio.Event
    task: asyncio.Task[int]

    @property
    def webhook(self):  # noqa: ANN201
        return self.running.webhook

    async def post(
        self, body: Any, *, content_type: str | None = "application/json", path: str = "/mutate"
    ) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = {"Content-Type": content_type} if content_type else {}
        async with self.session.post(self.url + path, data=data, headers=headers) as response:
            raw = await response.read()
            if response.content_type == "application/json":
                return response.status, orjson.loads(raw)
            return response.status, raw.decode()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.url + path) as response:
            return response.status, await response.text()


StartServer = Callable[..., Awaitable[Served]]


