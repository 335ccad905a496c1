"""How a refused policy's errors read, and what each typed getter of the YAML reader returns or records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest

from policy.fields import FieldError, Fields, PolicyError
from policy.quantity import Quantity


def test_every_error_on_one_line_separated_by_semicolons() -> None:
    error = PolicyError([FieldError("a.b", "must be x"), FieldError("c", "must be y")], "policy.yaml")
    assert error.one_line() == "invalid policy.yaml: a.b: must be x; c: must be y"


def test_a_policy_error_names_its_source_and_reads_whole_at_a_glance() -> None:
    error = PolicyError([FieldError("", "must be a mapping")])
    assert error.source == "policy"
    assert error.one_line() == "invalid policy: must be a mapping"
    assert str(FieldError("", "must be a mapping")) == "must be a mapping"


@pytest.mark.parametrize(("value", "shown"), [(None, "null"), ({"a": 1}, "a mapping"), ([1], "a list"),
                                              ("x", "'x'"), (3.5, "3.5")])
def test_a_wrong_value_is_described_as_yaml_shows_it(value: object, shown: str) -> None:
    from policy.fields import _describe

    assert _describe(value) == shown
    if value is not None:  # null is an absent field, which takes the default
        errors: list[FieldError] = []
        Fields({"k": value}, "top", errors).integer("k", 0)
        assert [str(e) for e in errors] == [f"top.k: must be an integer, got {shown}"]


# -- the typed getters, one by one: what each returns and the exact error it records ----------

def _read(doc: object, get: Callable[[Fields], Any]) -> tuple[Any, list[str]]:
    """``get`` applied to ``doc`` read at path ``top``, and the errors it recorded, as printed."""
    errors: list[FieldError] = []
    value = get(Fields(doc, "top", errors))
    return value, [str(e) for e in errors]


def test_a_mapping_or_null_is_read_and_anything_else_is_an_error_at_the_mapping_itself() -> None:
    assert _read({"a": "x"}, lambda f: f.string("a")) == ("x", [])
    assert _read(None, lambda f: (dict(f.data), f.string("a"))) == (({}, ""), [])
    assert _read([1], lambda f: (dict(f.data), f.string("a"))) == (({}, ""), ["top: must be a mapping, got a list"])
    errors: list[FieldError] = []
    Fields("x", "", errors)
    assert [str(e) for e in errors] == ["must be a mapping, got 'x'"]


def test_paths_below_the_top_and_below_a_mapping() -> None:
    assert Fields({}, "", []).sub("a") == "a"
    assert Fields({}, "top", []).sub("a") == "top.a"


def test_unknown_keys_are_errors_unless_read_or_allowed() -> None:
    def get(f: Fields) -> None:
        f.raw("a")
        f.done(allowed_extra=("b",))

    assert _read({"a": 1, "b": 2, "c": 3, 4: 5}, get) == (None, ["top.c: unknown field", "top.4: unknown field"])


def test_booleans() -> None:
    assert _read({"b": True}, lambda f: f.boolean("b")) == (True, [])
    assert _read({}, lambda f: f.boolean("b")) == (False, [])
    assert _read({}, lambda f: f.boolean("b", True)) == (True, [])
    assert _read({"b": "yes"}, lambda f: f.boolean("b", True)) == (True, ["top.b: must be true or false, got 'yes'"])


@pytest.mark.parametrize(("value", "expected", "errors"), [
    (3, 3, []),
    (None, 7, []),
    (True, 7, ["top.n: must be an integer, got True"]),  # YAML's true is a bool, never the integer 1
    ("3", 7, ["top.n: must be an integer, got '3'"]),
])
def test_integers(value: object, expected: int, errors: list[str]) -> None:
    assert _read({"n": value}, lambda f: f.integer("n", 7)) == (expected, errors)


@pytest.mark.parametrize(("low", "high", "value", "ok"), [
    (1, 5, 0, False), (1, 5, 1, True), (1, 5, 2, True), (1, 5, 4, True), (1, 5, 5, True), (1, 5, 6, False),
    (None, 5, -(10**9), True), (None, 5, 6, False), (1, None, 10**9, True), (1, None, 0, False),
])
def test_integer_bounds_at_each_edge_and_either_side(low: int | None, high: int | None, value: int, ok: bool) -> None:
    got = _read({"n": value}, lambda f: f.integer("n", 3, low=low, high=high))
    assert got == ((value, []) if ok else (3, [f"top.n: must be between {low} and {high}, got {value}"]))


@pytest.mark.parametrize(("value", "expected", "errors"), [
    ("x", "x", []),
    (None, "", []),
    (12, "12", []),  # YAML reads ``version: 12`` as an integer; it is the text 12
    (True, "", ["top.s: must be a string, got True"]),
    ([1], "", ["top.s: must be a string, got a list"]),
])
def test_strings(value: object, expected: str, errors: list[str]) -> None:
    assert _read({"s": value}, lambda f: f.string("s")) == (expected, errors)


@pytest.mark.parametrize(("value", "expected", "errors"), [
    (None, "d", ["top.s: is required"]), ("", "d", ["top.s: is required"]), ("x", "x", []), (0, "0", []),
])
def test_required_strings(value: object, expected: str, errors: list[str]) -> None:
    assert _read({"s": value}, lambda f: f.string("s", "d", required=True)) == (expected, errors)


def test_an_optional_string_left_out_or_empty_is_no_error() -> None:
    assert _read({"s": ""}, lambda f: f.string("s", "d")) == ("", [])
    assert _read({}, lambda f: f.string("s", "d")) == ("d", [])


@pytest.mark.parametrize(("value", "expected", "errors"), [
    ("b", "b", []), (None, "a", []), ("c", "a", ["top.k: must be one of a, b, got 'c'"]),
])
def test_choices(value: object, expected: str, errors: list[str]) -> None:
    assert _read({"k": value}, lambda f: f.choice("k", "a", ("a", "b"))) == (expected, errors)


_DEFAULT_QUANTITY = Quantity.parse("7")


@pytest.mark.parametrize(("value", "positive", "nanos", "errors"), [
    (None, False, 7 * 10**9, []),
    ("500m", False, 500_000_000, []),
    ("0", False, 0, []),
    ("1n", False, 1, []),
    ("-1n", False, 7 * 10**9, ["top.q: must be non-negative, got '-1n'"]),
    ("0", True, 7 * 10**9, ["top.q: must be positive, got '0'"]),
    (0, True, 7 * 10**9, ["top.q: must be positive, got 0"]),
    ("1n", True, 1, []),
    ("-1", True, 7 * 10**9, ["top.q: must be positive, got '-1'"]),
    ("lots", False, 7 * 10**9, ["top.q: invalid quantity 'lots'"]),
])
def test_quantities(value: object, positive: bool, nanos: int, errors: list[str]) -> None:
    got, recorded = _read({"q": value}, lambda f: f.quantity("q", _DEFAULT_QUANTITY, positive=positive))
    assert (got.nanos, recorded) == (nanos, errors)


def test_a_quantity_is_non_negative_unless_positive_is_asked_and_absent_is_the_default() -> None:
    assert _read({"q": "0"}, lambda f: f.quantity("q")) == (Quantity(0), [])
    assert _read({}, lambda f: f.quantity("q")) == (None, [])


_OUT = Fraction(1, 7)  # the default, told apart from every value read below


@pytest.mark.parametrize(("value", "kwargs", "expected", "errors"), [
    (None, {}, _OUT, []),
    ("0", {}, _OUT, ["top.r: must be between 0 and 1, got 0"]),  # the low end is open by default
    ("1/1000000", {}, Fraction(1, 10**6), []),
    ("99%", {}, Fraction(99, 100), []),
    ("1", {}, Fraction(1), []),
    ("101%", {}, _OUT, ["top.r: must be between 0 and 1, got 101%"]),
    ("0", {"low_open": False}, Fraction(0), []),
    ("-1/100", {"low_open": False}, _OUT, ["top.r: must be between 0 and 1, got -1/100"]),
    ("1/2", {"low": Fraction(1, 2), "high": Fraction(2), "low_open": False}, Fraction(1, 2), []),
    ("0.49", {"low": Fraction(1, 2), "high": Fraction(2), "low_open": False}, _OUT,
     ["top.r: must be between 1/2 and 2, got 0.49"]),
    ("0.51", {"low": Fraction(1, 2), "high": Fraction(2)}, Fraction(51, 100), []),
    ("1/2", {"low": Fraction(1, 2), "high": Fraction(2)}, _OUT, ["top.r: must be between 1/2 and 2, got 1/2"]),
    ("x", {}, _OUT, ["top.r: expected a ratio such as \"1/16\" or \"0.25\", got 'x'"]),
])
def test_ratios_at_each_edge_and_either_side(value: object, kwargs: dict[str, Any], expected: Fraction,
                                             errors: list[str]) -> None:
    assert _read({"r": value}, lambda f: f.ratio("r", _OUT, **kwargs)) == (expected, errors)


@pytest.mark.parametrize(("value", "expected", "errors"), [
    (None, ("d",), []),
    (["a", "b"], ("a", "b"), []),
    ([], (), []),
    ("a", ("d",), ["top.l: must be a list of strings, got 'a'"]),
    (["a", 1], ("d",), ["top.l: must be a list of strings, got a list"]),
])
def test_lists_of_strings(value: object, expected: tuple[str, ...], errors: list[str]) -> None:
    assert _read({"l": value}, lambda f: f.strings("l", ("d",))) == (expected, errors)


_UTC = timezone.utc
_PLUS_2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(("value", "expected"), [
    (None, None),
    (datetime(2026, 12, 31, 6, 30), datetime(2026, 12, 31, 6, 30, tzinfo=_UTC)),  # YAML's own, without a zone
    (datetime(2026, 12, 31, 6, 30, tzinfo=_PLUS_2), datetime(2026, 12, 31, 6, 30, tzinfo=_PLUS_2)),
    ("2026-12-31T06:30:00Z", datetime(2026, 12, 31, 6, 30, tzinfo=_UTC)),
    ("2026-12-31T06:30:00", datetime(2026, 12, 31, 6, 30, tzinfo=_UTC)),
    ("2026-12-31T06:30:00+02:00", datetime(2026, 12, 31, 6, 30, tzinfo=_PLUS_2)),
])
def test_times_keep_their_zone_and_a_time_without_one_is_utc(value: object, expected: datetime | None) -> None:
    got, errors = _read({"t": value}, lambda f: f.timestamp("t"))
    assert errors == []
    # Equal instants compare equal whatever their zone: the offset is checked on its own.
    assert (got, got and got.utcoffset()) == (expected, expected and expected.utcoffset())


@pytest.mark.parametrize(("value", "shown"), [("soon", "'soon'"), (5, "5"), ("2026-12-31T06:30:00z", "'2026-12-31T06:30:00z'")])
def test_what_is_not_a_time_is_an_error(value: object, shown: str) -> None:
    assert _read({"t": value}, lambda f: f.timestamp("t")) == (
        None, [f"top.t: must be an RFC 3339 time such as 2026-12-31T00:00:00Z, got {shown}"])


def test_a_nested_mapping_has_its_own_path_and_shares_the_error_list() -> None:
    errors: list[FieldError] = []
    top = Fields({"m": {"a": 1, "b": "x"}}, "top", errors)
    nested = top.mapping("m")
    assert (nested.path, nested.errors is errors, nested.integer("a", 0), nested.integer("b", 0)) == ("top.m", True, 1, 0)
    assert [str(e) for e in errors] == ["top.m.b: must be an integer, got 'x'"]
    assert dict(top.mapping("absent").data) == {}


def test_string_maps_keep_strings_and_integers_as_text() -> None:
    doc = {"m": {"a": "x", "b": 2, "c": True, "d": [1], 5: "y"}}
    assert _read(doc, lambda f: f.string_map("m")) == (
        {"a": "x", "b": "2", "5": "y"}, ["top.m.c: must be a string, got True", "top.m.d: must be a string, got a list"])
    assert _read({"m": "x"}, lambda f: f.string_map("m")) == ({}, ["top.m: must be a mapping, got 'x'"])
    assert _read({}, lambda f: f.string_map("m")) == ({}, [])


def test_lists_of_objects_pass_mappings_through_and_name_each_bad_item() -> None:
    doc = {"o": [{"a": 1}, 2, {"b": 2}, "x"]}
    assert _read(doc, lambda f: f.objects("o")) == (
        [{"a": 1}, {"b": 2}], ["top.o[1]: must be a mapping, got 2", "top.o[3]: must be a mapping, got 'x'"])
    assert _read({"o": {"a": 1}}, lambda f: f.objects("o")) == ([], ["top.o: must be a list, got a mapping"])
    assert _read({}, lambda f: f.objects("o")) == ([], [])


def test_one_object_passed_through() -> None:
    assert _read({"o": {"a": 1}}, lambda f: f.object("o")) == ({"a": 1}, [])
    assert _read({"o": [1]}, lambda f: f.object("o")) == (None, ["top.o: must be a mapping, got a list"])
    assert _read({}, lambda f: f.object("o")) == (None, [])


def test_each_item_of_a_list_with_its_index_and_path() -> None:
    def get(f: Fields) -> list[tuple[int, str, int]]:
        return [(i, item.path, item.integer("a", 0)) for i, item in f.each("l")]

    assert _read({"l": [{"a": 1}, "x", {"a": 3}]}, get) == (
        [(0, "top.l[0]", 1), (1, "top.l[1]", 0), (2, "top.l[2]", 3)], ["top.l[1]: must be a mapping, got 'x'"])
    assert _read({"l": {"a": 1}}, get) == ([], ["top.l: must be a list, got a mapping"])
    assert _read({}, get) == ([], [])
    assert _read({}, lambda f: list(f.each("l", required=True))) == ([], ["top.l: is required"])


def test_each_entry_of_a_mapping_of_mappings_by_name() -> None:
    def get(f: Fields) -> dict[str, tuple[str, str, int]]:
        return f.map_each("m", lambda name, item: (name, item.path, item.integer("a", 0)))

    assert _read({"m": {"x": {"a": 1}, 2: {"a": 2}, "y": 5}}, get) == (
        {"x": ("x", "top.m.x", 1), "2": ("2", "top.m.2", 2), "y": ("y", "top.m.y", 0)},
        ["top.m.y: must be a mapping, got 5"])
    assert _read({"m": [1]}, get) == ({}, ["top.m: must be a mapping, got a list"])
    assert _read({}, get) == ({}, [])
