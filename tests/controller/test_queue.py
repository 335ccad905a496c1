"""The work queue: each key once, never to two workers at a time, backoff per key."""

from __future__ import annotations

import asyncio

import pytest

from controller.queue import RetryBackoff, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_added_twice_is_queued_once() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_a_key_added_while_processed_is_handed_out_again_only_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    assert len(q) == 0  # not to a second worker while the first holds it
    q.done("a")
    assert len(q) == 1 and await q.get() == "a"


async def test_a_key_done_without_a_new_add_is_not_queued_again() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    assert key is not None
    q.done(key)
    assert len(q) == 0


@pytest.mark.parametrize(("failures", "delay"), [(0, 0.05), (1, 0.1), (3, 0.4), (40, 60.0)])
def test_the_backoff_doubles_and_is_capped(failures: int, delay: float) -> None:
    assert RetryBackoff(base=0.05, cap=60.0).delay(failures) == pytest.approx(delay)


async def test_retry_waits_out_the_backoff_and_forget_resets_it() -> None:
    clock = Clock()
    q = WorkQueue(backoff=RetryBackoff(base=1.0, cap=8.0), clock=clock)
    assert q.retry("a") == 1.0
    assert q.retry("a") == 2.0
    assert q.failures("a") == 2
    q.forget("a")
    assert q.failures("a") == 0 and q.retry("a") == 1.0


async def test_add_after_hands_the_key_out_when_due_not_before() -> None:
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("a", 5.0)
    q.add("b")
    assert await q.get() == "b"  # "a" is not due: the clock has not moved
    assert q.delayed == 1 and len(q) == 0
    clock.now += 5.0
    assert await asyncio.wait_for(q.get(), 1.0) == "a"


async def test_add_after_zero_is_now() -> None:
    q = WorkQueue()
    q.add_after("a", 0)
    assert len(q) == 1


async def test_shut_down_releases_waiting_workers() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shut_down()
    assert await asyncio.wait_for(getter, 1.0) is None
    q.add("a")
    assert len(q) == 0
