"""How a refused policy's errors read: one line each for a log or a readiness probe."""

from __future__ import annotations

import pytest

from policy.fields import FieldError, Fields, PolicyError


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
