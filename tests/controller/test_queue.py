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


def test_the_backoff_exponent_stops_growing_so_any_failure_count_has_a_delay() -> None:
    unbounded = RetryBackoff(base=1.0, cap=float("inf"))
    assert unbounded.delay(32) == 2.0**32
    assert unbounded.delay(10_000) == 2.0**32


@pytest.mark.parametrize(("delay", "at_once"), [(-1.0, True), (0.0, True), (0.001, False), (1.0, False)])
def test_add_after_at_its_boundary(delay: float, at_once: bool) -> None:
    q = WorkQueue(clock=Clock())
    q.add_after("a", delay)
    assert (len(q), q.delayed) == ((1, 0) if at_once else (0, 1))


async def test_add_after_zero_queues_that_key() -> None:
    q = WorkQueue()
    q.add_after("a", 0)
    assert await q.get() == "a"


async def test_keys_due_at_the_same_time_come_out_in_the_order_added() -> None:
    clock = Clock()
    q = WorkQueue(clock=clock)
    for key in ("c", "a", "b"):
        q.add_after(key, 5.0)
    clock.now += 5.0
    assert [await q.get(), await q.get(), await q.get()] == ["c", "a", "b"]


async def test_a_retried_key_comes_back_after_its_backoff() -> None:
    clock = Clock()
    q = WorkQueue(backoff=RetryBackoff(base=2.0, cap=8.0), clock=clock)
    q.retry("a")
    clock.now += 2.0
    assert await asyncio.wait_for(q.get(), 1.0) == "a"


def test_forgetting_a_key_that_never_failed_is_harmless() -> None:
    q = WorkQueue()
    q.forget("a")
    assert q.failures("a") == 0


class CountingClock:
    """The real monotonic clock, counting how often the queue reads it."""

    def __init__(self) -> None:
        import time

        self.reads = 0
        self._clock = time.monotonic

    def __call__(self) -> float:
        self.reads += 1
        return self._clock()


async def test_a_worker_sleeps_until_the_next_delayed_key_is_due_rather_than_polling() -> None:
    clock = CountingClock()
    q = WorkQueue(clock=clock)
    q.add_after("a", 0.2)
    assert await asyncio.wait_for(q.get(), 5.0) == "a"
    # add_after, then one look before sleeping until due and one after: a polling loop reads it thousands of times.
    assert clock.reads <= 4


async def test_a_key_re_added_while_processed_comes_back_once() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.done("a")
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_a_worker_retries_a_key_whose_reconcile_fails_and_stops_when_shut_down() -> None:
    clock = Clock()
    q = WorkQueue(backoff=RetryBackoff(base=3.0, cap=3.0), clock=clock)
    seen: list[str] = []
    errors: list[tuple[str, str]] = []

    async def reconcile(key: str) -> None:
        seen.append(key)
        if key == "bad" and seen.count("bad") == 1:
            raise RuntimeError("apiserver said no")
        if key == "good":
            clock.now += 3.0  # the backoff of "bad" has passed when the worker looks again
        if len(seen) == 3:
            q.shut_down()

    def on_error(key: str, exc: Exception) -> None:
        errors.append((key, str(exc)))

    q.add("bad")
    q.add("good")
    await asyncio.wait_for(q.drain(reconcile, on_error), 5.0)
    assert seen == ["bad", "good", "bad"]
    assert errors == [("bad", "apiserver said no")]
    assert q.failures("bad") == 1 and q.processing == 0
