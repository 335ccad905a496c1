"""A real webhook server on loopback with generated certificates, and a client that verifies them.

The helpers live in :mod:`webhook_server_helpers` so test modules import them
by a name no other test directory uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from webhook_samples import POLICY_FILE
from webhook_server_helpers import NAMESPACE, SERVICE, Served, StartServer, client_context

from certs.generate import generate
from webhook.process import Running, ServeOptions, serve


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    generate(directory, service=SERVICE, namespace=NAMESPACE, ips=["127.0.0.1"])
    return directory


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    shutil.copy(POLICY_FILE, path)
    return path


@pytest.fixture
async def start_server(cert_dir: Path, policy_path: Path) -> AsyncIterator[StartServer]:
    started: list[Served] = []

    async def start(**overrides: Any) -> Served:
        options = ServeOptions(
            cert_dir=cert_dir,
            port=0,
            policy_file=policy_path,
            policy_interval=0.05,
            cert_interval=0.05,
            shutdown_timeout=5,
        )
        options = dataclasses.replace(options, **overrides)
        ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(
            serve(options, stop, on_started=ready.set_result, install_signal_handlers=False)
        )
        done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises the start error
        running = ready.result()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context(cert_dir / "ca.crt")))
        served = Served(running, f"https://127.0.0.1:{running.port}", session, stop, task)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.session.close()
        served.stop.set()
        assert await asyncio.wait_for(served.task, 10) == 0


@pytest.fixture
async def server(start_server: StartServer) -> Served:
    return await start_server()
