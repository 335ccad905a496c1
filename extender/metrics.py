"""Prometheus metrics in the text exposition format, written by hand.

Three metric types and a renderer are a page of code; a client library would
be a dependency (and a global registry) for that page. Values that come from
elsewhere (cache sizes, watch counters, exposure totals) are read at scrape
time through callbacks rather than copied on every change, so the hot path
pays nothing for them.

Resource totals are exact: nano-unit integers are printed as decimal strings
(``1.5`` cores, ``1073741824`` bytes), never through a float.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TypeVar

from policy.quantity import NANO

Labels = tuple[str, ...]
M = TypeVar("M", bound="Metric")
Sample = tuple[Labels, "int | float | str"]

#: Latency buckets (seconds): the scheduler's cycle budget is milliseconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)


def nanos_text(nanos: int) -> str:
    """An exact decimal for a nano-unit integer: ``1500000000`` -> ``1.5``."""
    return format((Decimal(nanos) / NANO).normalize(), "f")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Labels, values: Labels, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames: Labels = tuple(labelnames)

    def samples(self) -> Iterable[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        lines.extend(self.samples())
        return "\n".join(lines)


class Counter(Metric):
    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[Labels, int | float] = {}
        if not self.labelnames:
            self.values[()] = 0

    def inc(self, *labels: str, by: int | float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + by

    def get(self, *labels: str) -> int | float:
        return self.values.get(labels, 0)

    def samples(self) -> Iterable[str]:
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


class Gauge(Metric):
    """A gauge set directly, or read from ``callback`` at scrape time."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], Iterable[Sample]] | None = None,
    ) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[Labels, int | float | str] = {}
        self.callback = callback

    def set(self, value: int | float | str, *labels: str) -> None:
        self.values[labels] = value

    def samples(self) -> Iterable[str]:
        items = list(self.callback()) if self.callback is not None else sorted(self.values.items())
        for labels, value in items:
            yield f"{self.name}{_labels(self.labelnames, labels)} {_number(value)}"


class CallbackCounter(Gauge):
    """A counter kept elsewhere (a watch's stats), read at scrape time."""

    kind = "counter"


class Histogram(Metric):
    kind = "histogram"

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        #: labels -> [per-bucket counts (+Inf last), sum, count]
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = ([0] * (len(self.buckets) + 1), [0.0, 0.0])
        series[0][bisect.bisect_left(self.buckets, value)] += 1
        series[1][0] += value
        series[1][1] += 1

    def count(self, *labels: str) -> int:
        series = self.series.get(labels)
        return int(series[1][1]) if series else 0

    def samples(self) -> Iterable[str]:
        for labels, (counts, (total, count)) in sorted(self.series.items()):
            running = 0
            for bound, n in zip(self.buckets, counts):
                running += n
                le = 'le="' + _number(bound) + '"'
                yield f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {running}"
            running += counts[-1]
            le = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {running}"
            yield f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(total)}"
            yield f"{self.name}_count{_labels(self.labelnames, labels)} {int(count)}"


class Registry:
    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def add(self, metric: M) -> M:
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        return "\n".join(m.render() for m in self.metrics) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
