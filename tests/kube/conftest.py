"""Fixtures for the kube tests: the recorded apiserver on loopback."""

from __future__ import annotations

import pytest
from recorded_apiserver import RecordedApiServer, start


@pytest.fixture
async def api():
    server = RecordedApiServer()
    runner = await start(server)
    try:
        yield server
    finally:
        server.closing.set()
        await runner.cleanup()
