"""A policy that takes long to parse never stalls the event loop, and one that takes too long is refused.

The parser is a stub put in through :class:`serving.policy_source.GlobalPolicy`'s
seam, burning CPU in pure Python as a huge or hostile document would: the
loop must keep answering ``/healthz`` throughout, the way a kubelet's probe
and the apiserver's reviews need it to.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from policy.load import parse_policy_text
from policy.model import Policy
from serving.policy_source import GlobalPolicy, PolicyFile
from serving.process import Process, http_app

POLICY_FILE = Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml"


def burn(seconds: float) -> None:
    """Pure-Python work, as a parser's would be (it holds the GIL between switches)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1


def slow_parser(seconds: float) -> Any:
    def parse(text: str, *, source: str) -> Policy:
        burn(seconds)
        return parse_policy_text(text, source=source)

    return parse


async def healthz_while(work: asyncio.Task[Any], url: str) -> list[float]:
    """Latencies of ``GET /healthz`` every 20 ms until ``work`` is done."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not work.done():
            started = time.perf_counter()
            async with session.get(url + "/healthz") as response:
                assert response.status == 200
                await response.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
    return latencies


async def serving(live: GlobalPolicy) -> tuple[Process, str, asyncio.Event, asyncio.Task[int]]:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = http_app(1024 * 1024)
    app.router.add_get("/healthz", healthz)
    process = Process("test", handle_signals=False)
    listener = process.listen(app, "127.0.0.1", 0)
    stop = asyncio.Event()
    started = asyncio.Event()
    task = asyncio.create_task(process.run(stop, on_started=started.set))
    await asyncio.wait_for(started.wait(), 10)
    return process, f"http://127.0.0.1:{listener.port}", stop, task


async def test_a_slow_parse_does_not_delay_healthz(tmp_path: Path) -> None:
    text = POLICY_FILE.read_text()
    live = GlobalPolicy(parse_text=slow_parser(2.0))
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    _, url, stop, task = await serving(live)
    try:
        offer = asyncio.create_task(PolicyFile(live, path).check_off_loop())
        latencies = await healthz_while(offer, url)
        assert await offer, "the slow policy is installed once parsed"
    finally:
        stop.set()
        await task
    print(f"/healthz during a 2 s parse: {len(latencies)} probes, max {max(latencies) * 1000:.1f} ms")
    assert len(latencies) >= 20
    assert max(latencies) < 0.5, "the event loop stalled behind the parse"


async def test_a_parse_past_the_time_bound_is_refused_and_the_next_update_is_not_queued(tmp_path: Path) -> None:
    text = POLICY_FILE.read_text()
    good = parse_policy_text(text, source="start")
    live = GlobalPolicy(good, "start", parse_text=slow_parser(3.0), parse_timeout=0.3)
    started = time.perf_counter()
    assert not await live.offer_text_off_loop(text.replace("stopInjection: false", "stopInjection: true"), "file")
    assert time.perf_counter() - started < 2.0, "the refusal comes at the time bound, not at the parse's end"
    assert live.policy is good, "the last good policy keeps serving"
    assert live.rejected is not None and "took longer than 0.3s to parse" in live.rejected.message
    assert live.rejections == 1

    # The stuck parse still runs in its thread; a quick one gets a thread of its own.
    live.parse_text = parse_policy_text
    assert await live.offer_text_off_loop(text.replace("stopInjection: false", "stopInjection: true"), "file")
    assert live.policy is not good and live.policy.emergency.stop_injection and live.rejected is None


async def test_any_exception_from_the_loader_is_a_refused_policy() -> None:
    def broken(text: str, *, source: str) -> Policy:
        raise OverflowError("a loader bug")

    good = parse_policy_text(POLICY_FILE.read_text(), source="start")
    live = GlobalPolicy(good, "start", parse_text=broken)
    assert not await live.offer_text_off_loop("anything", "file")
    assert not live.offer_text("anything else", "file")
    assert live.policy is good and live.rejections == 2
    assert live.rejected is not None and "OverflowError: a loader bug" in live.rejected.message
