"""donation.split: an amount shared in proportion to capacities, in granule steps, never above one.

Every expected split is worked out by hand in the comment beside it; the
property test checks the contract (exact total, no part above its capacity,
none below zero) over random inputs.
"""

from __future__ import annotations

import pytest
from example_budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.donation import split


@pytest.mark.parametrize(("amount", "capacities", "granule", "parts"), [
    (0, [5], 1, [0]),                   # nothing to give
    (1, [5], 1, [1]),                   # the smallest amount is given
    (-5, [3, 7], 1, [0, 0]),            # a negative amount gives nothing
    (1, [1], 1, [1]),                   # the smallest capacity takes it
    (5, [0, 0], 1, [0, 0]),             # no capacity, nothing given
    (10, [3, 7], 1, [3, 7]),            # exactly the capacities
    (100, [3, 7], 1, [3, 7]),           # never above them
    # 58 over 99:49 -> 58*99//148 = 38, 58*49//148 = 19; the last 1 to the largest: 39, 19
    (58, [99, 49], 1, [39, 19]),
    # 5 over one donor of 10 in steps of 2: 4, then the odd 1 in steps of 1
    (5, [10], 2, [5]),
    # 3 over 2:1 in steps of 2: 2 and 0, then the 1 left can only go to the donor with room
    (3, [2, 1], 2, [2, 1]),
])
def test_a_split_worked_by_hand(amount: int, capacities: list[int], granule: int, parts: list[int]) -> None:
    assert split(amount, capacities, granule) == parts


@settings(max_examples=examples(300))
@given(st.integers(0, 10**12), st.lists(st.integers(0, 10**12), min_size=1, max_size=6),
       st.sampled_from([1, 10**6, 2**20 * 10**9]))
def test_the_parts_add_up_to_what_can_be_given_and_none_exceeds_its_capacity(
        amount: int, capacities: list[int], granule: int) -> None:
    parts = split(amount, capacities, granule)
    assert sum(parts) == min(amount, sum(capacities))
    assert all(0 <= p <= c for p, c in zip(parts, capacities, strict=True))
