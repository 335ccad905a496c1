"""Exact Kubernetes resource quantities.

Kubernetes never does floating point on resources and neither do we. A
quantity string is parsed with :class:`decimal.Decimal` (so ``0.1`` is one
tenth, not a binary approximation) and stored as an integer count of
nano-units, the finest precision ``resource.Quantity`` keeps (anything finer is
rounded up by the API server, and so here). Integers keep the extender's
per-node sums over hundreds of thousands of pods exact *and* fast.

The suffix family of the input (decimal SI, binary SI, or exponent) is kept,
because Kubernetes keeps it too: ``format()`` reproduces the canonical string
the API server stores, so what ``meshfit inject`` prints is byte-for-byte what
comes back from the API.
"""

from __future__ import annotations

import re
from decimal import MAX_PREC, ROUND_CEILING, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from functools import lru_cache
from typing import Final, Literal, final

Format = Literal["DecimalSI", "BinarySI", "DecimalExponent"]

NANO = 10**9
#: The largest magnitude accepted, in units: ``resource.Quantity`` keeps values as int64
#: (``Value()``), so anything beyond 2^63 - 1 cores or bytes is no real request or limit.
MAX_UNITS = 2**63 - 1

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL_EXP.items()}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")

_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<dec>[numkMGTPE]))?$"
)


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; the message quotes it."""


@final
class Quantity:
    """An exact quantity: ``nanos`` nano-units, printed in the family ``fmt``.

    Immutable (``Final`` attributes: mypy refuses an assignment, compiled code
    raises on one): parsed quantities are cached and shared. A plain class
    rather than a frozen dataclass because an injection makes some seventy of
    them, and a frozen dataclass's ``__init__`` (two ``object.__setattr__``
    calls) was the largest single cost of the compiled engine.
    """

    __slots__ = ("nanos", "fmt")
    nanos: Final[int]
    fmt: Final[Format]

    def __init__(self, nanos: int, fmt: Format = "DecimalSI") -> None:
        self.nanos = nanos
        self.fmt = fmt

    # Immutable: a copy is the object itself; pickling rebuilds it from its two fields.
    def __copy__(self) -> Quantity:
        return self

    def __deepcopy__(self, memo: object) -> Quantity:
        return self

    def __reduce__(self) -> tuple[type[Quantity], tuple[int, Format]]:
        return Quantity, (self.nanos, self.fmt)

    # -- construction -------------------------------------------------
    @classmethod
    def parse(cls, text: object) -> Quantity:
        """Parse a Kubernetes quantity (``500m``, ``1.5Gi``, ``12e6``, ``2``).

        Integers are accepted because YAML turns ``cpu: 2`` into one.
        """
        if isinstance(text, bool):
            raise QuantityError(f"quantities must be strings or numbers, got {text!r}")
        if isinstance(text, int):
            if abs(text) > MAX_UNITS:
                raise QuantityError(f"quantity {text} is beyond what Kubernetes can hold (at most {MAX_UNITS})")
            return cls(text * NANO, "DecimalSI")
        if isinstance(text, float):
            # YAML and JSON numbers (``cpu: 0.15``) are quantities to the apiserver, which reads the
            # number's text; the shortest repr of a float is that text.
            if text != text or text in (float("inf"), float("-inf")):
                raise QuantityError(f"invalid quantity {text!r}")
            text = repr(text)
        if not isinstance(text, str):
            raise QuantityError(f"quantities must be strings or numbers, got {type(text).__name__}")
        match = _QUANTITY_RE.match(text)
        if match is None:
            raise QuantityError(f"invalid quantity {text!r}")
        num = match["num"]
        try:
            with localcontext() as ctx:
                # Unbounded precision: the regex admits any number of digits, and rounding a long
                # mantissa to a fixed precision would lose a fraction finer than a nano-unit that
                # the API server rounds up ("1.<80 zeros>1" is 1000000001n, not 1). Only digits
                # written cost anything; a huge exponent still overflows (``Emax``) as before.
                ctx.prec = MAX_PREC
                value = Decimal(num)
                fmt: Format
                if match["bin"]:
                    fmt = "BinarySI"
                    value *= _BINARY[match["bin"]]
                elif match["exp"]:
                    fmt = "DecimalExponent"
                    value = value.scaleb(int(match["exp"][1:]))
                else:
                    fmt = "DecimalSI"
                    value = value.scaleb(_DECIMAL_EXP[match["dec"] or ""])
                if abs(value) > MAX_UNITS:
                    raise QuantityError(f"quantity {text!r} is beyond what Kubernetes can hold (at most {MAX_UNITS})")
                nanos = int(value.scaleb(9).to_integral_value(rounding=ROUND_CEILING))
        except ArithmeticError as exc:  # Overflow on exponents such as 1e1000000, which the regex admits
            raise QuantityError(f"quantity {text!r} is beyond what Kubernetes can hold (at most {MAX_UNITS})") from exc
        return cls(nanos, fmt)

    @classmethod
    def from_units(cls, units: int | Fraction, fmt: Format = "DecimalSI") -> Quantity:
        """A quantity of ``units`` whole units (cores, bytes), rounded up to a nano-unit."""
        nanos = units * NANO
        if isinstance(nanos, Fraction):
            nanos = -((-nanos.numerator) // nanos.denominator)
        return cls(int(nanos), fmt)

    # -- arithmetic: exact; the left operand's format wins unless it is zero,
    # -- exactly as Kubernetes' Quantity.Add, so ``0 + 1Gi`` stays binary.
    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos + other.nanos, self.fmt if self.nanos else other.fmt)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos, self.fmt if self.nanos else other.fmt)

    def __neg__(self) -> Quantity:
        return Quantity(-self.nanos, self.fmt)

    def __lt__(self, other: Quantity) -> bool:
        return self.nanos < other.nanos

    def __le__(self, other: Quantity) -> bool:
        return self.nanos <= other.nanos

    def __gt__(self, other: Quantity) -> bool:
        return self.nanos > other.nanos

    def __ge__(self, other: Quantity) -> bool:
        return self.nanos >= other.nanos

    def __eq__(self, other: object) -> bool:
        """Quantities are equal when their values are: ``1Gi == 1024Mi == 1073741824``."""
        if isinstance(other, Quantity):
            return self.nanos == other.nanos
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.nanos)

    def __bool__(self) -> bool:
        return self.nanos != 0

    def scale(self, ratio: Fraction, granule: int = 1) -> Quantity:
        """``self × ratio`` rounded *up* to a multiple of ``granule`` nano-units."""
        # Integer ceiling division: exact like Fraction arithmetic, without building Fractions.
        steps = -((-self.nanos * ratio.numerator) // (ratio.denominator * granule))
        return Quantity(steps * granule, self.fmt)

    def round_up(self, granule: int) -> Quantity:
        return Quantity(-((-self.nanos) // granule) * granule, self.fmt)

    def round_down(self, granule: int) -> Quantity:
        return Quantity((self.nanos // granule) * granule, self.fmt)

    def with_format(self, fmt: Format) -> Quantity:
        return Quantity(self.nanos, fmt)

    @property
    def units(self) -> Fraction:
        """The value in whole units (cores, bytes), exact."""
        return Fraction(self.nanos, NANO)

    # -- printing -------------------------------------------------------
    def format(self) -> str:
        """The canonical string Kubernetes would store for this value and family (:func:`canonical`)."""
        return canonical(self.nanos, self.fmt)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Quantity({self.format()!r})"


@lru_cache(maxsize=4096)
def canonical(nanos: int, fmt: Format) -> str:
    """The canonical string Kubernetes would store for ``nanos`` nano-units in family ``fmt``.

    Mirrors ``resource.Quantity.CanonicalizeBytes``: binary SI only for whole
    byte counts of at least 1024 (``1536Mi``), otherwise the largest decimal
    suffix that keeps the mantissa an integer (``1500m``, ``2``, ``128k``).
    Cached: an injection prints some forty quantities (patch, record), nearly
    all of them the same few sizes pod after pod.
    """
    if nanos == 0:
        return "0"
    if fmt == "BinarySI" and (abs(nanos) < 1024 * NANO or nanos % NANO):
        fmt = "DecimalSI"
    if fmt == "BinarySI":
        value, exp = nanos // NANO, 0
        while exp < 6 and value % 1024 == 0:
            value //= 1024
            exp += 1
        return f"{value}{_BINARY_SUFFIXES[exp]}"
    mantissa, exp = nanos, -9
    while exp < 18 and mantissa % 1000 == 0:
        mantissa //= 1000
        exp += 3
    if fmt == "DecimalExponent":
        return f"{mantissa}e{exp}" if exp else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exp]}"


ZERO = Quantity(0)

#: Rounding granules for sizes meshfit computes: a milli-core and a mebibyte.
#: Whole Mi keep generated sizes readable (``96Mi``, not ``100663296``).
CPU_GRANULE = NANO // 1000
MEMORY_GRANULE = NANO * 2**20
#: The step a donated request is split in (a milli-core, a mebibyte); a remainder
#: finer than that goes to the largest donor, so the split stays exact.
SPLIT_GRANULE = {"cpu": CPU_GRANULE, "memory": MEMORY_GRANULE}
SIZE_GRANULE = {"cpu": CPU_GRANULE, "memory": MEMORY_GRANULE}


def parse_ratio(value: object) -> Fraction:
    """A ratio written ``"1/16"``, ``"0.0625"``, ``0.25``-as-string or an integer, exactly.

    YAML floats are refused by the schema layer before they get here; a
    ``Fraction`` keeps ``1/3`` exact where a decimal would not.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a ratio, got {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        # YAML gives floats for 0.25; its shortest repr is what the user wrote.
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite ratio, got {value!r}")
        return Fraction(Decimal(repr(value)))
    if not isinstance(value, str):
        raise ValueError(f"expected a ratio such as \"1/16\" or \"0.25\", got {value!r}")
    text = value.strip()
    if len(text) > 64:
        raise ValueError(f"expected a ratio such as \"1/16\" or \"0.25\", got a {len(text)}-character string")
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return _exact(num) / _exact(den)
        if text.endswith("%"):
            return _exact(text[:-1]) / 100
        return _exact(text)
    except (ArithmeticError, ValueError) as exc:  # InvalidOperation, ZeroDivisionError, OverflowError (Infinity)
        raise ValueError(f"expected a ratio such as \"1/16\" or \"0.25\", got {value!r}") from exc


def _exact(text: str) -> Fraction:
    """A decimal number as a Fraction, refusing non-finite values and exponents no ratio needs.

    ``Fraction(Decimal("1e999999999"))`` would build a billion-digit integer: the
    exponent is bounded before anything is computed.
    """
    number = Decimal(text.strip())
    if not number.is_finite() or (number and abs(number.adjusted()) > 30):
        raise ValueError(f"out of range: {text.strip()!r}")
    return Fraction(number)


def format_ratio(value: Fraction) -> str:
    """Print a ratio as the user would write it: ``1/16``, ``0.25`` or ``2``."""
    if value.denominator == 1:
        return str(value.numerator)
    decimal = Decimal(value.numerator) / Decimal(value.denominator)
    if Fraction(decimal) == value and len(str(decimal)) <= 8:
        return str(decimal)
    return f"{value.numerator}/{value.denominator}"


def percent(part: Quantity, whole: Quantity) -> str:
    """``part / whole`` as a percentage with one decimal, for messages people read."""
    if whole.nanos <= 0:
        return "inf%"
    tenths = Fraction(part.nanos * 1000, whole.nanos)
    rounded = (tenths.numerator * 2 + tenths.denominator) // (2 * tenths.denominator)
    return f"{rounded // 10}.{rounded % 10}%"
