"""The lifecycle every server runs (serving/process.py), driven in process."""

from __future__ import annotations

import asyncio
import signal
import socket

import aiohttp
import pytest
from aiohttp import web

from serving.process import Process, StartError, http_app


def _app(started: asyncio.Event, release: asyncio.Event) -> web.Application:
    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(text="done")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = http_app(1024)
    app.router.add_get("/slow", slow)
    app.router.add_get("/ready", ready)
    return app


async def test_a_stop_drains_the_request_in_flight_then_stops_tasks_then_cleans_up() -> None:
    events: list[str] = []
    started, release, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    process = Process("test", shutdown_timeout=5)
    listener = process.listen(_app(started, release), "127.0.0.1", 0)

    async def watch(stopped: asyncio.Event) -> None:
        await stopped.wait()
        events.append(f"task stopped, draining={process.draining}")

    async def first() -> None:
        events.append("cleanup first")

    async def second() -> None:
        events.append("cleanup second")

    process.background("watch", watch)
    process.on_cleanup(first)
    process.on_cleanup(second)
    up = asyncio.Event()
    run = asyncio.create_task(process.run(stop, on_started=up.set))
    await asyncio.wait_for(up.wait(), 5)
    assert listener.port > 0 and listener.scheme == "http"
    async with aiohttp.ClientSession() as session:
        slow = asyncio.create_task(session.get(f"http://127.0.0.1:{listener.port}/slow"))
        await asyncio.wait_for(started.wait(), 5)
        assert listener.in_flight == 1
        stop.set()
        await asyncio.sleep(0.1)
        assert process.draining and not run.done(), "waits for the request in flight"
        assert events == [], "background tasks run until the drain is over"
        release.set()
        response = await asyncio.wait_for(slow, 5)
        assert response.status == 200 and await response.text() == "done"
    assert await asyncio.wait_for(run, 5) == 0
    assert events == ["task stopped, draining=True", "cleanup second", "cleanup first"]


async def test_signal_handlers_are_installed_for_the_run_only() -> None:
    loop = asyncio.get_running_loop()
    process = Process("test")
    up = asyncio.Event()
    run = asyncio.create_task(process.run(on_started=up.set))
    await asyncio.wait_for(up.wait(), 5)
    assert loop.remove_signal_handler(signal.SIGINT) is True  # it was installed
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # put one back for the process to remove
    signal.raise_signal(signal.SIGTERM)
    assert await asyncio.wait_for(run, 5) == 0
    assert loop.remove_signal_handler(signal.SIGTERM) is False, "removed after the run"
    assert loop.remove_signal_handler(signal.SIGINT) is False


async def test_a_taken_port_is_a_start_error_and_nothing_is_left_running() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ran: list[str] = []

    async def task(stopped: asyncio.Event) -> None:
        ran.append("task")

    process = Process("test", handle_signals=False)
    process.listen(http_app(1024), "127.0.0.1", taken.getsockname()[1])
    process.background("task", task)
    try:
        with pytest.raises(StartError, match="cannot listen on 127.0.0.1:"):
            await process.run(asyncio.Event())
    finally:
        taken.close()
    assert ran == []


async def test_a_process_without_listeners_stops_from_inside_with_its_exit_code() -> None:
    process = Process("controller", handle_signals=False)

    async def lose_lease(stopped: asyncio.Event) -> None:
        process.stop(3)
        await stopped.wait()

    process.background("leader election", lose_lease)
    assert await asyncio.wait_for(process.run(), 5) == 3
