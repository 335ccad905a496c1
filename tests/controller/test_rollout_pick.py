"""Batch sizes (cumulative, percent rounded up), the spread pick, and maxUnavailable."""

from __future__ import annotations

from collections import Counter

import pytest
from rollout_support import Fleet, meshed

from controller.rollout_pick import cumulative, interleave, pick, spread, writable


@pytest.mark.parametrize(("count", "percent", "total", "size"), [
    (None, 10, 10, 1), (None, 10, 9, 1), (None, 10, 11, 2), (None, 10, 1, 1), (None, 1, 50, 1),
    (None, 50, 3, 2), (None, 100, 7, 7), (None, 33, 100, 33), (None, 34, 100, 34), (None, 25, 0, 0),
    (1, None, 10, 1), (20, None, 10, 10),
])
def test_a_batch_size_is_cumulative_and_a_percent_rounds_up(count: int | None, percent: int | None, total: int,
                                                            size: int) -> None:
    assert cumulative(count, percent, total) == size


def test_interleave_takes_one_of_each_in_turn() -> None:
    assert interleave([[1, 2, 3], [4], [5, 6]]) == [1, 4, 5, 2, 6, 3]


def _fleet() -> Fleet:
    pods = []
    for app, count in (("cart", 6), ("pay", 3), ("search", 1)):
        for i in range(count):
            pods.append(meshed(f"{app}-{i}", app=app, node=f"node-{i % 3}"))
    return Fleet(pods, zones={"node-0": "z1", "node-1": "z2", "node-2": "z1"})


def test_a_pick_spreads_over_apps_before_taking_a_second_of_one() -> None:
    first = pick(_fleet().views(), 3)
    assert sorted(v.app for v in first) == ["shop/cart", "shop/pay", "shop/search"]


def test_within_an_app_a_pick_spreads_over_zones_then_nodes() -> None:
    cart = [v for v in _fleet().views() if v.app == "shop/cart"]
    two = pick(cart, 2)
    assert {v.zone for v in two} == {"z1", "z2"}
    three = pick(cart, 3)
    assert len({v.node for v in three}) == 3


def test_the_pick_is_the_same_whatever_order_the_pods_come_in() -> None:
    views = _fleet().views()
    assert [v.key for v in spread(views)] == [v.key for v in spread(list(reversed(views)))]
    assert sorted(v.key for v in spread(views)) == sorted(v.key for v in views)


def test_a_pick_of_nothing_is_nothing() -> None:
    assert pick(_fleet().views(), 0) == []
    assert len(pick(_fleet().views(), 100)) == 10


def test_writable_keeps_each_workload_under_its_cap() -> None:
    views = [v for v in _fleet().views()]
    cart = [v for v in views if v.app == "shop/cart"]
    allowed = writable(views, {cart[0].workload: 1}, Counter(v.workload for v in views), lambda n: 2)
    per_workload = Counter(v.workload for v in allowed)
    assert per_workload[cart[0].workload] == 1  # one already in flight, cap 2
    assert all(n <= 2 for n in per_workload.values())
    assert writable(views, {}, {}, lambda n: 1) and all(
        n == 1 for n in Counter(v.workload for v in writable(views, {}, {}, lambda n: 1)).values())
