"""How a refused policy's errors read: one line each for a log or a readiness probe."""

from __future__ import annotations

from policy.fields import FieldError, PolicyError


def test_every_error_on_one_line_separated_by_semicolons() -> None:
    error = PolicyError([FieldError("a.b", "must be x"), FieldError("c", "must be y")], "policy.yaml")
    assert error.one_line() == "invalid policy.yaml: a.b: must be x; c: must be y"
