"""Prometheus text exposition, written by hand.

The webhook needs a handful of counters, one latency histogram and a few
gauges read at scrape time. A client library would bring a registry, locks
and a second HTTP server; here every update is a dict increment on the event
loop's thread (no locks needed) and ``render`` walks the values once per
scrape, which is when the cost belongs.

Label values that come from outside (skip reasons, sidecar versions) are
capped per metric so a misbehaving input cannot grow the series without
bound: past the cap new values count under ``other``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

#: Seconds. Dense below 10 ms where an admission webhook should live.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

#: At most this many label sets per counter; the rest count as ``other``.
MAX_SERIES = 200

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values)) + "}"


def _format_value(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self.values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1) -> None:
        values = self.values
        if labels in values:
            values[labels] += amount
        elif len(values) < MAX_SERIES:
            values[labels] = amount
        else:
            other = ("other",) * len(self.labels)
            values[other] = values.get(other, 0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0)

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, value in sorted(self.values.items()):
            yield self.name, labels, value


class Histogram:
    """Cumulative buckets rendered from per-bucket counts (an observation costs one bisect)."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.name = name
        self.help = help
        self.labels: tuple[str, ...] = ()
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            yield f"{self.name}_bucket", (_format_value(bound),), running
        yield f"{self.name}_bucket", ("+Inf",), self.count
        yield f"{self.name}_sum", (), self.sum
        yield f"{self.name}_count", (), self.count


class Callback:
    """A gauge or counter whose samples are read from live state at scrape time."""

    def __init__(
        self,
        name: str,
        help: str,
        read: Callable[[], Iterable[tuple[Labels, float]]],
        labels: Sequence[str] = (),
        kind: str = "gauge",
    ) -> None:
        self.name = name
        self.help = help
        self.labels = tuple(labels)
        self.kind = kind
        self.read = read

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, value in self.read():
            yield self.name, labels, value


Metric = Counter | Histogram | Callback


class Registry:
    """An ordered set of metrics, rendered in the Prometheus text format 0.0.4."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def add(self, metric: Metric) -> Metric:
        self.metrics.append(metric)
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help, labels)
        self.metrics.append(metric)
        return metric

    def histogram(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        metric = Histogram(name, help, buckets)
        self.metrics.append(metric)
        return metric

    def callback(
        self,
        name: str,
        help: str,
        read: Callable[[], Iterable[tuple[Labels, float]]],
        labels: Sequence[str] = (),
        kind: str = "gauge",
    ) -> Callback:
        metric = Callback(name, help, read, labels, kind)
        self.metrics.append(metric)
        return metric

    def render(self) -> bytes:
        lines: list[str] = []
        for metric in self.metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            for name, labels, value in metric.samples():
                if isinstance(metric, Histogram) and name.endswith("_bucket"):
                    label_text = _format_labels(("le",), labels)
                else:
                    label_text = _format_labels(metric.labels, labels)
                lines.append(f"{name}{label_text} {_format_value(value)}")
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
