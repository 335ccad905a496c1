"""The limits every listener holds: header, body and idle timeouts, the connection cap, the body limit.

Each test runs a real :class:`serving.process.Process` on loopback with small
limits, and drives it with raw sockets, the way a slow or hostile client
would: what matters is what reaches the kernel, not what a polite client does.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from certs.generate import generate
from certs.reload import CertReloader
from serving.connections import ConnectionLimits
from serving.process import Listener, Process, http_app

FAST = ConnectionLimits(header_timeout=0.5, body_timeout=0.5, idle_timeout=1.0, max_connections=5)


@dataclass
class Running:
    process: Process
    listener: Listener
    release: asyncio.Event
    refused: list[int]

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def pool(self):  # noqa: ANN201
        assert self.listener.pool is not None
        return self.listener.pool


async def run_server(limits: ConnectionLimits, *, ssl_context: ssl.SSLContext | None = None,
                     max_body: int = 64 * 1024) -> AsyncIterator[Running]:
    release = asyncio.Event()
    refused: list[int] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=f"{len(body)}\n")

    async def hold(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="released\n")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = http_app(max_body, on_refused=lambda _request, status: refused.append(status))
    app.router.add_post("/echo", echo)
    app.router.add_get("/hold", hold)
    app.router.add_get("/healthz", healthz)
    process = Process("test", handle_signals=False, limits=limits, shutdown_timeout=1)
    listener = process.listen(app, "127.0.0.1", 0, ssl_context=ssl_context)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(process.run(stop, on_started=started.set))
    await asyncio.wait_for(started.wait(), 10)
    try:
        yield Running(process, listener, release, refused)
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async for running in run_server(FAST):
        yield running


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closes the connection (EOF or reset); fails past ``seconds``."""
    started = time.perf_counter()
    try:
        while await asyncio.wait_for(reader.read(4096), seconds):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    return time.perf_counter() - started


async def get(port: int, path: str = "/healthz", context: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_headers_that_trickle_are_cut_off_at_the_header_timeout(server: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
    took = await closed_within(reader, 3)
    assert 0.4 < took < 2, took
    silent_reader, _silent = await asyncio.open_connection("127.0.0.1", server.port)
    assert await closed_within(silent_reader, 3) < 2, "a connection that says nothing is closed too"
    assert server.pool.timed_out == 2
    assert b"200 OK" in await get(server.port)


async def test_a_kept_alive_connection_gets_its_header_clock_at_the_next_request(server: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for wait in (0, 0.7, 0.7):
        await asyncio.sleep(wait)  # longer than the header timeout, shorter than the idle timeout
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"ok\n"), 5)
        assert b"200 OK" in head
    assert await closed_within(reader, 3) > 0.5, "closed once idle past the idle timeout"
    writer.close()


async def test_a_slow_body_is_408_and_an_aborted_one_is_quiet(server: Running, caplog: pytest.LogCaptureFixture) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    writer.close()

    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.transport.abort()
    await asyncio.sleep(0.2)
    assert b"200 OK" in await get(server.port)
    assert server.refused.count(408) == 1 and server.refused.count(400) == 20
    tracebacks = [r for r in caplog.records if r.exc_info]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    assert len(warnings) == 1 and "uploads aborted" in warnings[0].getMessage(), "one summary, not one per request"


async def test_bodies_past_the_limit_are_413_by_length_and_by_stream(server: Running) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 3)  # closed at once: nothing of the body was sent
    assert answer.startswith(b"HTTP/1.1 413") and b"exceeds the limit of 65536" in answer
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"y" * 16384
    try:
        for _ in range(100):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
    except ConnectionError:
        pass
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    writer.close()
    assert server.refused == [413, 413]
    assert b"200 OK" in await get(server.port)


async def test_the_cap_replaces_the_slowest_waiting_connection_and_refuses_when_all_are_busy(
    server: Running,
) -> None:
    slow = []
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        slow.append((reader, writer))
    await asyncio.sleep(0.05)
    assert server.pool.open == 5
    # A client with a whole request gets in at the cap: the oldest slow one makes room.
    assert b"200 OK" in await get(server.port)
    assert server.pool.evicted >= 1 and server.pool.open <= 5
    for _, writer in slow:
        writer.close()
    await asyncio.sleep(0.05)

    busy = []
    for _ in range(5):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        busy.append((reader, writer))
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await closed_within(reader, 2) < 0.5, "closed at once: every slot is answering a request"
    assert server.pool.refused == 1
    server.release.set()
    for reader, writer in busy:
        assert b"released" in await asyncio.wait_for(reader.read(4096), 5)
        writer.close()


async def test_tls_handshakes_count_and_time_out_too(tmp_path: Path) -> None:
    generate(tmp_path, service="s", namespace="n", ips=["127.0.0.1"])
    certs = CertReloader(tmp_path)
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    async for running in run_server(FAST, ssl_context=certs.context):
        # Plain TCP connections that never send a ClientHello hold slots until the header timeout.
        stalled = [await asyncio.open_connection("127.0.0.1", running.port) for _ in range(5)]
        await asyncio.sleep(0.05)
        assert running.pool.open == 5
        assert b"200 OK" in await get(running.port, context=client), "a real client still gets in"
        for reader, _writer in stalled[1:]:
            assert await closed_within(reader, 3) < 2
        assert running.pool.open == 0
        assert running.pool.timed_out >= 4


async def test_the_body_budget_makes_a_chunk_wait_until_an_answer_frees_room() -> None:
    from serving.process import ByteBudget

    budget = ByteBudget(100)
    await budget.take(80)
    waiting = asyncio.create_task(budget.take(30))
    await asyncio.sleep(0.05)
    assert not waiting.done() and budget.used == 80
    await budget.give(80)
    await asyncio.wait_for(waiting, 1)
    assert budget.used == 30
    await budget.give(30)
    await asyncio.wait_for(budget.take(500), 1)  # a request alone is never made to wait


async def test_malformed_http_is_400_without_a_traceback(server: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for request in (b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n",
                    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n") * 5:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.split(b" ", 2)[1] == b"400", answer[:100]
    assert b"200 OK" in await get(server.port)
    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG and r.name.startswith(("aiohttp", "serving"))]
    assert not [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
    assert len(above_debug) <= 1 and all("malformed HTTP requests" in r.getMessage() for r in above_debug)
