"""The per-pod size annotation (``cpu=500m,memory=256Mi``): what it accepts and how it refuses."""

from __future__ import annotations

import pytest

from policy.quantity import Quantity
from policy.sizing import parse_size_annotation


def test_both_resources_with_spaces_and_empty_parts_anywhere() -> None:
    assert parse_size_annotation("cpu=500m, ,memory=256Mi") == {"cpu": Quantity.parse("500m"),
                                                                "memory": Quantity.parse("256Mi")}
    assert parse_size_annotation(" memory = 1Gi ,") == {"memory": Quantity.parse("1Gi")}
    assert parse_size_annotation("") == {}


@pytest.mark.parametrize(("value", "message"), [
    ("cpu", "expected cpu=<quantity>,memory=<quantity>, got 'cpu'"),
    ("gpu=1", "expected cpu=<quantity>,memory=<quantity>, got 'gpu=1'"),
    ("cpu=500m,ephemeral-storage=1Gi", "expected cpu=<quantity>,memory=<quantity>, got 'ephemeral-storage=1Gi'"),
    ("cpu=1=2", "cpu: invalid quantity '1=2'"),
    ("memory=lots", "memory: invalid quantity 'lots'"),
])
def test_a_bad_part_is_named(value: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size_annotation(value)
    assert str(info.value) == message
