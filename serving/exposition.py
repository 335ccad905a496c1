"""Prometheus text exposition (format 0.0.4), written by hand for both servers.

Each server needs a handful of counters, one latency histogram and gauges read
at scrape time. A client library would bring a global registry, locks and a
second HTTP server for that page of code; here every update is a dict
increment on the event loop's thread (no locks needed) and ``render`` walks
the values once per scrape, which is when the cost belongs. Values that live
elsewhere (cache sizes, watch counters, the policy in force) are read through
callbacks at scrape time rather than copied on every change, so the hot path
pays nothing for them.

Label values that come from outside (skip reasons, sidecar versions) are
capped per metric so a misbehaving input cannot grow the series without
bound: past the cap new values count under ``other``.

A sample's value may be a string: an exact decimal the caller formatted
itself (resource totals are never put through a float). Numbers print as
integers when they are whole (``le="1"``, as the Kubernetes components
print them), otherwise as Python's shortest round-tripping repr.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: At most this many label sets per labelled metric; the rest count as ``other``.
MAX_SERIES = 200

Labels = tuple[str, ...]
Value = int | float | str
Sample = tuple[Labels, Value]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def format_value(value: Value) -> str:
    """A sample value as the text format writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _capped(series: Mapping[Labels, object], labels: Labels, width: int) -> Labels:
    """``labels`` if it is known or there is room for it, else the ``other`` label set."""
    if labels in series or len(series) < MAX_SERIES:
        return labels
    return ("other",) * width


class Counter:
    """A monotonically increasing count per label set (an unlabelled one starts at 0)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labels: Labels = tuple(labels)
        self.values: dict[Labels, int | float] = {} if self.labels else {(): 0}

    def inc(self, *labels: str, by: int | float = 1) -> None:
        """Add ``by`` to the count of ``labels``."""
        values = self.values
        if labels in values:
            values[labels] += by
        else:
            key = _capped(values, labels, len(self.labels))
            values[key] = values.get(key, 0) + by

    def get(self, *labels: str) -> int | float:
        """The count of ``labels`` (0 when never incremented)."""
        return self.values.get(labels, 0)

    def lines(self) -> Iterator[str]:
        """The metric's sample lines, sorted by label values."""
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_format_labels(self.labels, labels)} {format_value(value)}"


_LE_INF = 'le="+Inf"'


class _Series:
    __slots__ = ("counts", "sum", "count")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # per bucket, +Inf last
        self.sum = 0.0
        self.count = 0


class Histogram:
    """Cumulative buckets rendered from per-bucket counts (an observation costs one bisect).

    The buckets are the caller's: each server knows its own latency budget.
    """

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labels: Labels = tuple(labels)
        self.bounds = tuple(sorted(buckets))
        self.series: dict[Labels, _Series] = {} if self.labels else {(): _Series(len(self.bounds))}

    def observe(self, value: float, *labels: str) -> None:
        """Count one observation of ``value`` for ``labels``."""
        series = self.series.get(labels)
        if series is None:
            key = _capped(self.series, labels, len(self.labels))
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series(len(self.bounds))
        series.counts[bisect_left(self.bounds, value)] += 1
        series.sum += value
        series.count += 1

    def count(self, *labels: str) -> int:
        """How many observations ``labels`` has."""
        series = self.series.get(labels)
        return series.count if series is not None else 0

    def lines(self) -> Iterator[str]:
        """The bucket, sum and count lines, sorted by label values."""
        name, names = self.name, self.labels
        for labels, series in sorted(self.series.items()):
            running = 0
            for bound, n in zip(self.bounds, series.counts):
                running += n
                le = f'le="{format_value(bound)}"'
                yield f"{name}_bucket{_format_labels(names, labels, le)} {running}"
            yield f"{name}_bucket{_format_labels(names, labels, _LE_INF)} {series.count}"
            yield f"{name}_sum{_format_labels(names, labels)} {format_value(series.sum)}"
            yield f"{name}_count{_format_labels(names, labels)} {series.count}"


class Callback:
    """A gauge or counter whose samples are read from live state at scrape time."""

    def __init__(
        self,
        name: str,
        help: str,
        read: Callable[[], Iterable[Sample]],
        labels: Sequence[str] = (),
        kind: str = "gauge",
    ) -> None:
        self.name = name
        self.help = help
        self.labels: Labels = tuple(labels)
        self.kind = kind
        self.read = read

    def lines(self) -> Iterator[str]:
        """The sample lines of what the callback returns now."""
        for labels, value in self.read():
            yield f"{self.name}{_format_labels(self.labels, labels)} {format_value(value)}"


Metric = Counter | Histogram | Callback
M = TypeVar("M", Counter, Histogram, Callback)


class Registry:
    """An ordered set of metrics, rendered in the Prometheus text format 0.0.4."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def add(self, metric: M) -> M:
        """Register ``metric`` (rendered in the order added) and return it."""
        self.metrics.append(metric)
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        """A new registered :class:`Counter`."""
        return self.add(Counter(name, help, labels))

    def histogram(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
        """A new registered :class:`Histogram`."""
        return self.add(Histogram(name, help, buckets, labels))

    def callback(
        self,
        name: str,
        help: str,
        read: Callable[[], Iterable[Sample]],
        labels: Sequence[str] = (),
        kind: str = "gauge",
    ) -> Callback:
        """A metric whose samples ``read`` returns at scrape time."""
        return self.add(Callback(name, help, read, labels, kind))

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        lines: list[str] = []
        for metric in self.metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.lines())
        lines.append("")
        return "\n".join(lines).encode("utf-8")


def parse_text(text: str) -> dict[str, float]:
    """Samples of an exposition keyed by ``name{labels}`` as written: for tests and smoke checks."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples
