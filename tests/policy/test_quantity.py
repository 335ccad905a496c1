"""Quantities: parsing, exact arithmetic and the API server's canonical strings."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref

from policy.quantity import Quantity, QuantityError, format_ratio, parse_ratio, percent


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0", "0"),
        ("1", "1"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("1.5", "1500m"),
        ("0.5Gi", "512Mi"),
        ("1.5Gi", "1536Mi"),
        ("1024", "1024"),
        ("1Ki", "1Ki"),
        ("1023Ki", "1023Ki"),
        ("0.5Ki", "512"),  # under 1Ki binary falls back to decimal, as CanonicalizeBytes does
        ("1000k", "1M"),
        ("1500000", "1500k"),
        ("1e3", "1e3"),
        ("12e6", "12e6"),
        ("0.1m", "100u"),
        ("1n", "1n"),
        ("0.1n", "1n"),  # finer than nano rounds up
        ("2E", "2E"),
        ("-1", "-1"),
        ("100Mi", "100Mi"),
        ("1073741824", "1073741824"),  # decimal input stays decimal
        (".5", "500m"),
        ("5.", "5"),
    ],
)
def test_canonical_form_matches_kubernetes(text: str, canonical: str) -> None:
    assert Quantity.parse(text).format() == canonical


@pytest.mark.parametrize("text", ["", "1.2.3", "Gi", "1GB", " 1Gi", "1 Gi", "abc", "1e", "--1", "0x10", "1Ki1"])
def test_invalid_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError, match="invalid quantity"):
        Quantity.parse(text)


@pytest.mark.parametrize(("number", "expected"), [(0.5, "500m"), (0.15, "150m"), (2.0, "2"), (1.5e3, "1500"),
                                                   (128974848, "128974848")])
def test_yaml_numbers_are_quantities_as_the_apiserver_reads_them(number: float, expected: str) -> None:
    assert Quantity.parse(number).format() == expected


def test_booleans_and_non_finite_numbers_are_refused() -> None:
    for value in (True, float("nan"), float("inf")):
        with pytest.raises(QuantityError):
            Quantity.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "ok"), [("9223372036854775807", True), ("9223372036854775808", False),
                                          ("8Ei", False), ("7Ei", True), ("1e1000000", False), ("-1e1000000", False)])
def test_quantities_beyond_what_kubernetes_holds_have_a_named_error(text: str, ok: bool) -> None:
    if ok:
        assert Quantity.parse(text).nanos > 0
    else:
        with pytest.raises(QuantityError, match="beyond what Kubernetes can hold"):
            Quantity.parse(text)


def test_integers_from_yaml_are_whole_units() -> None:
    assert Quantity.parse(2) == Quantity.parse("2000m")


def test_equality_is_by_value_across_families() -> None:
    assert Quantity.parse("1Gi") == Quantity.parse("1024Mi") == Quantity.parse("1073741824")
    assert Quantity.parse("1G") != Quantity.parse("1Gi")


def test_order_at_equality_and_one_nano_unit_either_side() -> None:
    one, same, less, more = Quantity.parse("1"), Quantity.parse("1000m"), Quantity(10**9 - 1), Quantity(10**9 + 1)
    assert (one <= same, one >= same, one < same, one > same) == (True, True, False, False)
    assert (less <= one, less < one, less >= one, less > one) == (True, True, False, False)
    assert (more <= one, more < one, more >= one, more > one) == (False, False, True, True)


def test_zero_takes_the_other_operands_family_like_kubernetes_add() -> None:
    assert (Quantity(0) + Quantity.parse("1Gi")).format() == "1Gi"
    assert (Quantity.parse("1") + Quantity.parse("1Gi")).fmt == "DecimalSI"


def test_scale_is_exact_and_rounds_up_to_the_granule() -> None:
    mi = 2**20 * 10**9
    assert Quantity.parse("4Gi").scale(Fraction(1, 16), mi).format() == "256Mi"
    assert Quantity.parse("1").scale(Fraction(1, 3), 10**6).format() == "334m"
    assert Quantity.parse("100Mi").scale(Fraction(1, 3), mi).format() == "34Mi"


def test_ratios_parse_exactly() -> None:
    assert parse_ratio("1/16") == Fraction(1, 16)
    assert parse_ratio("0.1") == Fraction(1, 10)
    assert parse_ratio("10%") == Fraction(1, 10)
    assert parse_ratio(0.25) == Fraction(1, 4)
    assert format_ratio(Fraction(1, 16)) == "0.0625"
    assert format_ratio(Fraction(1, 3)) == "1/3"
    with pytest.raises(ValueError):
        parse_ratio("1/0")


def test_percent_rounds_half_up_for_messages() -> None:
    assert percent(Quantity.parse("131"), Quantity.parse("1000")) == "13.1%"
    assert percent(Quantity.parse("1"), Quantity.parse("3")) == "33.3%"


def test_percent_of_nothing_is_infinite_and_of_the_smallest_whole_is_exact() -> None:
    assert percent(Quantity(5), Quantity(0)) == "inf%"
    assert percent(Quantity(0), Quantity(0)) == "inf%"
    assert percent(Quantity(1), Quantity(1)) == "100.0%"  # one nano-unit is a whole, not nothing


def test_from_units_is_decimal_unless_told_and_rounds_up_to_a_nano_unit() -> None:
    assert Quantity.from_units(1000).fmt == "DecimalSI"
    assert Quantity.from_units(1000).format() == "1k"
    assert Quantity.from_units(2**30, "BinarySI").format() == "1Gi"
    assert Quantity.from_units(Fraction(1, 3 * 10**9)).nanos == 1


def test_negation_keeps_the_format_and_equal_values_hash_alike() -> None:
    assert (-Quantity.parse("1Gi")).format() == "-1Gi"
    assert (-Quantity.parse("250m")).nanos == -250_000_000
    assert hash(Quantity.parse("1")) == hash(Quantity.parse("1000m"))
    assert len({Quantity.parse("1"), Quantity.parse("1000m"), Quantity.parse("2")}) == 2


_SUFFIXES = ["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti", "n", "u", "e3", "e-3"]


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=999), st.sampled_from(_SUFFIXES))
def test_format_round_trips(whole: int, frac: int, suffix: str) -> None:
    text = f"{whole}.{frac:03d}{suffix}" if frac else f"{whole}{suffix}"
    value = Quantity.parse(text)
    again = Quantity.parse(value.format())
    assert again == value
    assert again.format() == value.format()  # canonical is a fixed point


@given(st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=20))
def test_sums_are_exact(values: list[int]) -> None:
    total = sum((Quantity.from_units(Fraction(v, 1000)) for v in values), Quantity(0))
    assert total.units == Fraction(sum(values), 1000)


def test_a_ratio_prints_as_a_short_decimal_only_when_exact_and_at_most_eight_characters() -> None:
    assert format_ratio(Fraction(2)) == "2"
    assert format_ratio(Fraction(123456, 1000000)) == "0.123456"          # 8 characters
    assert format_ratio(Fraction(1234567, 10000000)) == "1234567/10000000"  # 9 characters
    assert format_ratio(Fraction(1, 1024)) == "1/1024"                     # exact, but long


def test_rounding_keeps_the_format() -> None:
    assert Quantity.parse("1000Mi").round_up(2**30 * 10**9).format() == "1Gi"
    assert Quantity.parse("1500m").round_up(10**9).format() == "2"


# -- parsing at its edges, with the messages people read -------------------------------------

MAX = "9223372036854775807"  # 2^63 - 1, the int64 Kubernetes keeps a value in


@pytest.mark.parametrize(("text", "nanos", "fmt"), [
    (2, 2 * 10**9, "DecimalSI"),
    (-3, -3 * 10**9, "DecimalSI"),
    (2**63 - 1, (2**63 - 1) * 10**9, "DecimalSI"),
    (-(2**63 - 1), -(2**63 - 1) * 10**9, "DecimalSI"),
    ("2Ki", 2048 * 10**9, "BinarySI"),
    ("3Mi", 3 * 2**20 * 10**9, "BinarySI"),
    ("1e-3", 10**6, "DecimalExponent"),
    ("2e3", 2000 * 10**9, "DecimalExponent"),
    ("1k", 1000 * 10**9, "DecimalSI"),
    ("7", 7 * 10**9, "DecimalSI"),
    ("0.1n", 1, "DecimalSI"),
    ("-0.1n", 0, "DecimalSI"),  # rounded up, towards zero
    (0.25, 250_000_000, "DecimalSI"),
])
def test_parsed_value_and_family(text: object, nanos: int, fmt: str) -> None:
    q = Quantity.parse(text)
    assert (q.nanos, type(q.nanos), q.fmt) == (nanos, int, fmt)


@pytest.mark.parametrize("text", ["1." + "0" * 79 + "1", "1." + "0" * 200 + "1", "1." + "0" * 79 + "1Ki",
                                  "0." + "3" * 100 + "Mi"])
def test_a_long_mantissa_keeps_every_digit_before_rounding_up(text: str) -> None:
    assert Fraction(Quantity.parse(text).nanos, 10**9) == ref.quantity(text)


@pytest.mark.parametrize(("value", "message"), [
    (True, "quantities must be strings or numbers, got True"),
    ([1], "quantities must be strings or numbers, got list"),
    (float("nan"), "invalid quantity nan"),
    (float("inf"), "invalid quantity inf"),
    (float("-inf"), "invalid quantity -inf"),
    ("1 Gi", "invalid quantity '1 Gi'"),
    (2**63, f"quantity {2**63} is beyond what Kubernetes can hold (at most {MAX})"),
    (-(2**63), f"quantity {-(2**63)} is beyond what Kubernetes can hold (at most {MAX})"),
    ("8Ei", f"quantity '8Ei' is beyond what Kubernetes can hold (at most {MAX})"),
    ("1e1000000", f"quantity '1e1000000' is beyond what Kubernetes can hold (at most {MAX})"),
])
def test_what_is_refused_and_the_message_that_says_why(value: object, message: str) -> None:
    with pytest.raises(QuantityError) as refused:
        Quantity.parse(value)
    assert str(refused.value) == message


def test_a_quantity_is_decimal_unless_told_and_true_when_not_zero() -> None:
    assert Quantity(5).fmt == "DecimalSI"
    assert (bool(Quantity(0)), bool(Quantity(1)), bool(Quantity(-1))) == (False, True, True)


@pytest.mark.parametrize(("nanos", "ratio", "granule", "expected"), [
    (5, Fraction(1, 5), 1, 1),          # exactly 1: no rounding
    (5, Fraction(1, 2), 1, 3),          # 2.5 up to 3
    (10**18 + 1, Fraction(1), 1, 10**18 + 1),  # beyond a float's 53 bits: integer arithmetic only
    (9, Fraction(2, 3), 1, 6),
    (10, Fraction(2, 3), 1, 7),         # 6.67 up to 7
    (10, Fraction(2, 3), 4, 8),         # 6.67 up to the next multiple of 4
    (-10, Fraction(1, 3), 1, -3),       # -3.33 up is -3
])
def test_scale_rounds_up_to_the_granule(nanos: int, ratio: Fraction, granule: int, expected: int) -> None:
    got = Quantity(nanos, "BinarySI").scale(ratio, granule) if granule != 1 else Quantity(nanos, "BinarySI").scale(ratio)
    assert (got.nanos, type(got.nanos), got.fmt) == (expected, int, "BinarySI")


@pytest.mark.parametrize(("text", "expected"), [
    ("1/16", Fraction(1, 16)), ("3/4", Fraction(3, 4)), ("10%", Fraction(1, 10)), ("12.5%", Fraction(1, 8)),
    (" 1/2 ", Fraction(1, 2)), (2, Fraction(2)), (0.5, Fraction(1, 2)),
    ("1e30", Fraction(10**30)), ("1e-30", Fraction(1, 10**30)), ("0", Fraction(0)),
    ("0.25" + "0" * 60, Fraction(1, 4)),               # 64 characters: the longest accepted
    (" " * 10 + "0.25" + "0" * 60 + " ", Fraction(1, 4)),  # the length is counted without the spaces
])
def test_ratios_read_exactly(text: object, expected: Fraction) -> None:
    assert parse_ratio(text) == expected


_SUCH = 'expected a ratio such as "1/16" or "0.25", got'


@pytest.mark.parametrize(("value", "message"), [
    (True, "expected a ratio, got True"),
    (float("nan"), "expected a finite ratio, got nan"),
    (float("inf"), "expected a finite ratio, got inf"),
    (float("-inf"), "expected a finite ratio, got -inf"),
    ([1], f"{_SUCH} [1]"),
    ("0.25" + "0" * 61, f"{_SUCH} a 65-character string"),
    ("1e31", f"{_SUCH} '1e31'"),
    ("1e-31", f"{_SUCH} '1e-31'"),
    ("Infinity", f"{_SUCH} 'Infinity'"),
    ("1/0", f"{_SUCH} '1/0'"),
    ("half", f"{_SUCH} 'half'"),
])
def test_ratios_refused_with_the_message_that_says_why(value: object, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_ratio(value)
    assert str(refused.value) == message


def test_a_ratio_out_of_range_says_which_part_in_its_cause() -> None:
    with pytest.raises(ValueError) as refused:
        parse_ratio("1/1e31")
    assert str(refused.value.__cause__) == "out of range: '1e31'"


def test_zero_minus_a_quantity_takes_its_family_and_rounding_keeps_the_family() -> None:
    assert (Quantity(0) - Quantity.parse("1Gi")).format() == "-1Gi"
    assert (Quantity.parse("1") - Quantity.parse("1Gi")).fmt == "DecimalSI"
    mi = 2**20 * 10**9
    assert Quantity.parse("1.5Gi").round_down(mi).format() == "1536Mi"
    assert Quantity.parse("1537.5Mi").round_down(mi).format() == "1537Mi"
    assert Quantity.parse("1537.5Mi").round_up(mi).format() == "1538Mi"
