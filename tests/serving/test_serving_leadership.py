"""Leader election in a process's lifecycle: campaign once warm, release after the drain, exit on loss."""

from __future__ import annotations

import asyncio

from serving.leadership import elect
from serving.process import Process


class FakeElector:
    """Stands in for kube.leader.LeaderElector: records when it ran and when it was told to stop."""

    def __init__(self, lose_after: float | None = None) -> None:
        self.on_stopped_leading = None
        self.events: list[str] = []
        self.lose_after = lose_after

    async def run(self, stop: asyncio.Event) -> None:
        self.events.append("campaign")
        if self.lose_after is not None:
            await asyncio.sleep(self.lose_after)
            self.events.append("lost")
            assert self.on_stopped_leading is not None
            self.on_stopped_leading()
        await stop.wait()
        self.events.append("released")


async def test_campaign_waits_for_warmth_and_release_follows_the_drain() -> None:
    process = Process("controller", handle_signals=False)
    elector = FakeElector()
    warm = [False]
    elect(process, elector, warm=lambda: warm[0])  # type: ignore[arg-type]
    stop = asyncio.Event()
    run = asyncio.create_task(process.run(stop))
    await asyncio.sleep(0.3)
    assert elector.events == []  # a cold process does not campaign
    warm[0] = True
    await asyncio.sleep(0.3)
    assert elector.events == ["campaign"]

    original_drain = process._drain

    async def drain() -> None:
        await original_drain()
        elector.events.append("drained")

    process._drain = drain  # type: ignore[method-assign]
    stop.set()
    assert await asyncio.wait_for(run, 10) == 0
    assert elector.events == ["campaign", "drained", "released"]


async def test_a_process_without_a_port_exits_1_when_it_loses_the_lease() -> None:
    process = Process("controller", handle_signals=False)
    elector = FakeElector(lose_after=0.1)
    elect(process, elector, exit_on_loss=True)  # type: ignore[arg-type]
    assert await asyncio.wait_for(process.run(), 10) == 1
    assert elector.events == ["campaign", "lost", "released"]
