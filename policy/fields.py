"""Reading untrusted YAML with every mistake named by its path.

A policy ConfigMap is edited by hand under pressure (emergency switches live
there). One typo must not hide the next, and no mistake may surface as a stack
trace, so readers collect :class:`FieldError` s with a path such as
``sidecars[1].sizing.ratio.cpu`` and keep going; the caller raises them all
at once as a :class:`PolicyError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any, TypeVar, overload

from policy.quantity import Quantity, QuantityError, parse_ratio

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in a policy document, with the path of the field it is about."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyError(ValueError):
    """An invalid policy document; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError], source: str = "policy") -> None:
        self.errors = errors
        self.source = source
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"invalid {source} ({len(errors)} error{'s' if len(errors) != 1 else ''}):\n{lines}")

    def one_line(self) -> str:
        """Every error on one line, for a log or a readiness probe."""
        return f"invalid {self.source}: " + "; ".join(str(e) for e in self.errors)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class Fields:
    """A mapping at ``path``; typed getters record errors instead of raising."""

    def __init__(self, value: object, path: str, errors: list[FieldError]) -> None:
        self.path = path
        self.errors = errors
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            self.error("", f"must be a mapping, got {_describe(value)}")
            value = {}
        self.data: Mapping[str, Any] = value
        self._seen: set[str] = set()

    # -- paths and errors ---------------------------------------------
    def sub(self, key: str) -> str:
        """The path of ``key`` below this mapping."""
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> None:
        """Record an error about ``key`` (the mapping itself when empty)."""
        self.errors.append(FieldError(self.sub(key) if key else self.path, message))

    def has(self, key: str) -> bool:
        """Whether ``key`` is set to something other than null."""
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        """The value of ``key`` as written (marking it as known)."""
        self._seen.add(key)
        return self.data.get(key)

    def done(self, allowed_extra: tuple[str, ...] = ()) -> None:
        """Unknown keys are errors: a misspelt switch must not be silently ignored."""
        for key in self.data:
            if key not in self._seen and key not in allowed_extra:
                self.error(str(key), "unknown field")

    # -- typed getters ---------------------------------------------------
    def _typed(self, key: str, default: T, kind: type | tuple[type, ...], what: str) -> T:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) and kind is not bool:
            self.error(key, f"must be {what}, got {_describe(value)}")
            return default
        if not isinstance(value, kind):
            self.error(key, f"must be {what}, got {_describe(value)}")
            return default
        return value  # type: ignore[return-value]

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        """A string (an integer is read as its text); ``required`` makes it an error to leave it out."""
        if required and self.raw(key) in (None, ""):
            self.error(key, "is required")
            return default
        value = self.raw(key)
        if isinstance(value, (int,)) and not isinstance(value, bool):
            return str(value)
        return self._typed(key, default, str, "a string")

    def boolean(self, key: str, default: bool = False) -> bool:
        """A boolean."""
        return self._typed(key, default, bool, "true or false")

    def integer(self, key: str, default: int, *, low: int | None = None, high: int | None = None) -> int:
        """An integer within ``low``..``high``."""
        value = self._typed(key, default, int, "an integer")
        if low is not None and value < low or high is not None and value > high:
            self.error(key, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def choice(self, key: str, default: str, options: tuple[str, ...]) -> str:
        """One of ``options``."""
        value = self.string(key, default)
        if value not in options:
            self.error(key, f"must be one of {', '.join(options)}, got {value!r}")
            return default
        return value

    @overload
    def quantity(self, key: str, default: Quantity, *, positive: bool = False) -> Quantity: ...

    @overload
    def quantity(self, key: str, default: None = None, *, positive: bool = False) -> Quantity | None: ...

    def quantity(self, key: str, default: Quantity | None = None, *, positive: bool = False) -> Quantity | None:
        """A Kubernetes quantity (``500m``, ``1Gi``), positive if asked; ``default`` when missing or refused."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            parsed = Quantity.parse(value)
        except QuantityError as exc:
            self.error(key, str(exc))
            return default
        if parsed.nanos < 0 or positive and parsed.nanos == 0:
            self.error(key, f"must be {'positive' if positive else 'non-negative'}, got {value!r}")
            return default
        return parsed

    def ratio(self, key: str, default: Fraction, *, low: Fraction = Fraction(0), high: Fraction = Fraction(1),
              low_open: bool = True) -> Fraction:
        """A fraction within ``low``..``high``, written as a number, a fraction or a percentage."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            parsed = parse_ratio(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return default
        too_low = parsed <= low if low_open else parsed < low
        if too_low or parsed > high:
            self.error(key, f"must be between {low} and {high}, got {value}")
            return default
        return parsed

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        """A list of strings, as a tuple."""
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(key, f"must be a list of strings, got {_describe(value)}")
            return default
        return tuple(value)

    def timestamp(self, key: str) -> datetime | None:
        """An RFC 3339 time (YAML may already have read it as one); a time without a zone is UTC.

        ``datetime.fromisoformat`` reads a trailing ``Z`` as UTC since Python 3.11, the
        oldest this runs on.
        """
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        self.error(key, f"must be an RFC 3339 time such as 2026-12-31T00:00:00Z, got {value!r}")
        return None

    def mapping(self, key: str) -> Fields:
        """The nested mapping at ``key``, with its own path; errors go to the same list."""
        return Fields(self.raw(key), self.sub(key), self.errors)

    def string_map(self, key: str) -> dict[str, str]:
        """A mapping of strings to strings (integers read as their text)."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(key, f"must be a mapping, got {_describe(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(v, (str, int)) or isinstance(v, bool):
                self.error(f"{key}.{k}", f"must be a string, got {_describe(v)}")
                continue
            out[str(k)] = str(v)
        return out

    def objects(self, key: str) -> list[dict[str, Any]]:
        """A list of mappings passed through verbatim (Kubernetes fragments: ports, env, volumes)."""
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be a list, got {_describe(value)}")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                self.error(f"{key}[{i}]", f"must be a mapping, got {_describe(item)}")
                continue
            out.append(dict(item))
        return out

    def object(self, key: str) -> dict[str, Any] | None:
        """A mapping passed through verbatim, or ``None`` when absent."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.error(key, f"must be a mapping, got {_describe(value)}")
            return None
        return dict(value)

    def each(self, key: str, *, required: bool = False) -> Iterator[tuple[int, Fields]]:
        """``(index, item)`` for each mapping in the list at ``key``."""
        value = self.raw(key)
        if value is None:
            if required:
                self.error(key, "is required")
            return
        if not isinstance(value, list):
            self.error(key, f"must be a list, got {_describe(value)}")
            return
        for i, item in enumerate(value):
            yield i, Fields(item, f"{self.sub(key)}[{i}]", self.errors)

    def map_each(self, key: str, read: Callable[[str, Fields], T]) -> dict[str, T]:
        """Each entry of a mapping of mappings, read by ``read(name, fields)``."""
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.error(key, f"must be a mapping, got {_describe(value)}")
            return {}
        return {str(name): read(str(name), Fields(item, f"{self.sub(key)}.{name}", self.errors))
                for name, item in value.items()}
