"""A sidecar's size: the per-pod size annotation (``cpu=500m,memory=256Mi``), each clamp at its edge, and the request."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from policy.model import SidecarSpec, Sizing
from policy.quantity import Quantity
from policy.sizing import SidecarSize, parse_size_annotation, size_sidecar


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


# -- size_sidecar: each clamp at its edge, and the request that follows from the size ----------

_FIXED = {"cpu": Quantity.parse("200m"), "memory": Quantity.parse("128Mi")}
_NO_CAP: dict[str, Quantity | None] = {"cpu": None, "memory": None}


def _size(*, floor: str = "50m", guaranteed: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1)),
          cap: dict[str, Quantity | None] | None = None, **sizing: Any) -> SidecarSize:
    spec = SidecarSpec("mesh", "mesh:1", cpu_request_floor=Quantity.parse(floor))
    return size_sidecar(spec, Sizing(mode="fixed", fixed=dict(_FIXED), **sizing),
                        {"cpu": Quantity.parse("1"), "memory": Quantity.parse("1Gi")},
                        {"cpu": guaranteed[0], "memory": guaranteed[1]}, {}, cap or _NO_CAP)


def _cpu(size: SidecarSize) -> tuple[str | None, str | None, tuple[str, ...]]:
    limit, request = size.limits.get("cpu"), size.requests.get("cpu")
    return (limit and limit.format(), request and request.format(), size.notes)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"min": {"cpu": Quantity.parse("199m")}}, ("200m", "200m", ())),
    ({"min": {"cpu": Quantity.parse("200m")}}, ("200m", "200m", ())),
    ({"min": {"cpu": Quantity.parse("201m")}}, ("201m", "201m", ("cpu: fixed 200m = 200m, raised to the minimum 201m",))),
    ({"max": {"cpu": Quantity.parse("201m")}}, ("200m", "200m", ())),
    ({"max": {"cpu": Quantity.parse("200m")}}, ("200m", "200m", ())),
    ({"max": {"cpu": Quantity.parse("199m")}}, ("199m", "199m", ("cpu: fixed 200m = 200m, lowered to the maximum 199m",))),
    ({"floor": "199m"}, ("200m", "200m", ())),
    ({"floor": "200m"}, ("200m", "200m", ())),
    ({"floor": "201m"}, ("201m", "201m", ("cpu: 200m raised to the request floor 201m",))),
    ({"cap": {"cpu": Quantity.parse("201m"), "memory": None}}, ("200m", "200m", ())),
    ({"cap": {"cpu": Quantity.parse("200m"), "memory": None}}, ("200m", "200m", ())),
    ({"cap": {"cpu": Quantity.parse("199m"), "memory": None}}, ("199m", "199m", ("cpu: 200m lowered to the pod's limit 199m",))),
])
def test_each_clamp_acts_only_past_its_bound_and_says_so(kwargs: dict[str, Any],
                                                        expected: tuple[str, str, tuple[str, ...]]) -> None:
    assert _cpu(_size(**kwargs)) == expected


def test_a_resource_sized_to_zero_is_left_out_and_the_next_is_still_sized() -> None:
    size = _size(cap={"cpu": Quantity(0), "memory": None})
    assert (size.limits, size.requests) == ({"memory": Quantity.parse("128Mi")}, {"memory": Quantity.parse("128Mi")})
    assert size.notes == ("cpu: 200m lowered to the pod's limit 0", "cpu: size is zero, the sidecar gets no cpu request or limit")


def test_one_nano_core_is_a_size() -> None:
    # The pod's limit of 1n caps the limit; half of it rounds down to 0m, under the floor, so the
    # request is raised to the floor but no higher than the limit: 1n.
    assert _cpu(_size(cap={"cpu": Quantity(1), "memory": None}, guaranteed=(Fraction(1, 2), Fraction(1)))) == (
        "1n", "1n", ("cpu: 200m lowered to the pod's limit 1n",))


def test_a_fully_guaranteed_request_is_the_size_itself_not_rounded_to_the_granule() -> None:
    cap = Quantity.parse("1.5Mi")  # 1572864 bytes, not a whole mebibyte
    size = _size(cap={"cpu": None, "memory": cap})
    assert (size.limits["memory"].nanos, size.requests["memory"].nanos) == (1572864 * 10**9, 1572864 * 10**9)


@pytest.mark.parametrize(("fixed_cpu", "cap", "expected"), [
    ("80m", None, ("80m", "50m")),     # half is 40m: raised to the 50m floor
    ("100m", None, ("100m", "50m")),   # half is the floor itself
    ("120m", None, ("120m", "60m")),   # half is above the floor: kept
    ("200m", "20m", ("20m", "20m")),   # capped under the floor: the request is the whole limit, never above it
])
def test_a_partly_guaranteed_cpu_request_is_kept_between_the_floor_and_the_limit(
        fixed_cpu: str, cap: str | None, expected: tuple[str, str]) -> None:
    spec = SidecarSpec("mesh", "mesh:1")  # floor 50m
    size = size_sidecar(spec, Sizing(mode="fixed", fixed={"cpu": Quantity.parse(fixed_cpu), "memory": _FIXED["memory"]}),
                        {}, {"cpu": Fraction(1, 2), "memory": Fraction(1)}, {},
                        {"cpu": cap and Quantity.parse(cap), "memory": None})
    assert (size.limits["cpu"].format(), size.requests["cpu"].format()) == expected


def test_the_pods_size_annotation_overrides_the_policy_rounded_up_and_a_bad_one_is_noted() -> None:
    spec = SidecarSpec("mesh", "mesh:1")
    sizing = Sizing(mode="fixed", fixed=dict(_FIXED))
    base = {"cpu": Quantity.parse("1"), "memory": Quantity.parse("1Gi")}
    whole = {"cpu": Fraction(1), "memory": Fraction(1)}
    asked = size_sidecar(spec, sizing, base, whole, {"meshfit.io/size-mesh": "cpu=300.5m"}, _NO_CAP)
    assert ({r: q.format() for r, q in asked.limits.items()}, asked.notes) == ({"cpu": "301m", "memory": "128Mi"}, ())
    assert {r: q.format() for r, q in asked.requests.items()} == {"cpu": "301m", "memory": "128Mi"}
    other = size_sidecar(spec, sizing, base, whole, {"meshfit.io/size-other": "cpu=300m"}, _NO_CAP)
    assert other.limits["cpu"].format() == "200m"
    bad = size_sidecar(spec, sizing, base, whole, {"meshfit.io/size-mesh": "gpu=1"}, _NO_CAP)
    assert (bad.limits["cpu"].format(), bad.notes) == (
        "200m", ("meshfit.io/size-mesh ignored: expected cpu=<quantity>,memory=<quantity>, got 'gpu=1'",))


def test_a_clamp_note_says_where_a_ratio_size_came_from() -> None:
    spec = SidecarSpec("mesh", "mesh:1")
    base = {"cpu": Quantity.parse("1"), "memory": Quantity.parse("1Gi")}
    whole = {"cpu": Fraction(1), "memory": Fraction(1)}
    # 1/4 of 1 core is 250m; 1/16 of 1Gi is 64Mi.
    raised = size_sidecar(spec, Sizing(min={"cpu": Quantity.parse("300m")}, max={"memory": Quantity.parse("32Mi")}),
                          base, whole, {}, _NO_CAP)
    assert raised.notes == ("cpu: 1/4 of 1 = 250m, raised to the minimum 300m",
                            "memory: 1/16 of 1Gi = 64Mi, lowered to the maximum 32Mi")
    assert ({r: q.format() for r, q in raised.limits.items()}) == {"cpu": "300m", "memory": "32Mi"}
    asked = size_sidecar(spec, Sizing(min={"cpu": Quantity.parse("300m")}), base, whole,
                         {"meshfit.io/size-mesh": "cpu=100m"}, _NO_CAP)
    assert asked.notes == ("cpu: pod annotation asks 100m = 100m, raised to the minimum 300m",)


def test_a_ratio_size_rounds_up_to_a_whole_millicore_and_mebibyte() -> None:
    # 1/4 of 1001m is 250.25m, up to 251m; 1/16 of 1000Mi is 62.5Mi, up to 63Mi.
    size = size_sidecar(SidecarSpec("mesh", "mesh:1"), Sizing(),
                        {"cpu": Quantity.parse("1001m"), "memory": Quantity.parse("1000Mi")},
                        {"cpu": Fraction(1), "memory": Fraction(1)}, {}, _NO_CAP)
    assert {r: q.format() for r, q in size.limits.items()} == {"cpu": "251m", "memory": "63Mi"}
