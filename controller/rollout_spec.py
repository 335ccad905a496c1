"""A ``SidecarRollout``'s spec, read into frozen dataclasses; every mistake named by its path.

The CRD's OpenAPI schema refuses most mistakes at the apiserver; what it
cannot express (a duration that does not parse, a last batch short of every
pod, a relative condition with no baseline to compare against, a placeholder
the query renderer does not know) is refused here, by path
(``spec.batches[2].bake``), so that the rollout's status can say exactly what
to fix while the rollout goes on with the last spec that was good.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.fields import FieldError, Fields

ACTIONS = ("auto", "in-place", "hot", "recreate")
ON_FAILURE = ("rollback", "stop")
#: The placeholders a query may use (see :func:`controller.rollout_analysis.render`).
PLACEHOLDERS = ("namespace", "pods", "baselinePods")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z]+)\s*\}\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class SpecError(ValueError):
    """A spec that cannot be acted on; ``errors`` lists every problem with its path."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def parse_duration(text: object) -> float:
    """A Go-style duration (``90s``, ``1m30s``, ``500ms``, ``2h``) in seconds; ``ValueError`` otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"must be a duration such as 30s, 5m or 1h30m, got {text!r}")
    position, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not math.isfinite(total):
        raise ValueError(f"must be a duration such as 30s, 5m or 1h30m, got {text!r}")
    return total


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return labels.get(self.key) in self.values
        return labels.get(self.key) not in self.values  # NotIn: an absent key is not in the set

    def to_query(self) -> str:
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        op = "in" if self.operator == "In" else "notin"
        return f"{self.key} {op} ({','.join(self.values)})"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A ``metav1.LabelSelector``: every label and every expression must match."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions)

    def to_query(self) -> str:
        """The ``labelSelector`` parameter of a LIST that selects the same objects."""
        return ",".join([f"{k}={v}" for k, v in self.match_labels] + [r.to_query() for r in self.match_expressions])


@dataclass(frozen=True, slots=True)
class Selection:
    """Which pods a rollout changes: namespaces, their labels, the pods' labels, their nodes' zones."""

    namespaces: tuple[str, ...] = ()
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    zones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    """One step: how many pods have changed by its end (``count`` or ``percent``), its bake, its manual gate."""

    count: int | None = None
    percent: int | None = None
    bake: float = 0.0
    pause: bool = False


@dataclass(frozen=True, slots=True)
class MaxUnavailable:
    """Of one workload's selected pods, how many may be mid-change at once: a count or a percent (floored, min 1)."""

    count: int | None = None
    percent: int | None = 25

    def allowed(self, workload_pods: int) -> int:
        if self.count is not None:
            return max(1, self.count)
        assert self.percent is not None
        return max(1, self.percent * workload_pods // 100)

    def text(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent}%"


@dataclass(frozen=True, slots=True)
class Builtin:
    """Checks read from the pods themselves: no metrics system needed."""

    #: Restarts of any container of a batch pod after its change settled (the change's own restart excluded).
    max_restarts: int = 0
    #: The share of the batch's pods that must be Ready.
    min_ready_percent: int = 100
    fail_on_oom_killed: bool = True
    fail_on_crash_loop: bool = True


@dataclass(frozen=True, slots=True)
class Metric:
    """A PromQL query and its condition: an absolute bound, or a bound relative to the baseline group."""

    name: str
    query: str
    max: float | None = None
    min: float | None = None
    max_increase: float | None = None
    max_ratio: float | None = None

    @property
    def relative(self) -> bool:
        return self.max_increase is not None or self.max_ratio is not None

    def threshold(self) -> str:
        for word, value in (("max", self.max), ("min", self.min), ("maxIncrease", self.max_increase),
                            ("maxRatio", self.max_ratio)):
            if value is not None:
                return f"{word} {value:g}"
        return ""


@dataclass(frozen=True, slots=True)
class Prometheus:
    address: str
    metrics: tuple[Metric, ...] = ()
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Analysis:
    """How each batch is judged: ``count`` conclusive rounds, ``interval`` apart, within the limits."""

    interval: float = 30.0
    count: int = 3
    failure_limit: int = 0
    consecutive_error_limit: int = 2
    inconclusive_deadline: float = 300.0
    builtin: Builtin = field(default_factory=Builtin)
    prometheus: Prometheus | None = None


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    sidecar: str
    version: str
    batches: tuple[Batch, ...]
    action: str = "auto"
    selector: Selection = field(default_factory=Selection)
    max_unavailable: MaxUnavailable = field(default_factory=MaxUnavailable)
    paused: bool = False
    abort: bool = False
    #: The last batch whose manual gate (``pause: true``) ``meshfit rollout promote`` passed; -1: none.
    promoted_batch: int = -1
    on_failure: str = "rollback"
    analysis: Analysis = field(default_factory=Analysis)


def parse_spec(spec: object) -> RolloutSpec:
    """The rollout's spec, or :class:`SpecError` with every bad field's path (``spec.…``)."""
    errors: list[FieldError] = []
    try:
        parsed = _spec(Fields(spec, "spec", errors))
    except Exception as exc:  # a shape no check foresaw refuses the spec; it never crashes the reconciler
        errors.append(FieldError("spec", f"cannot be read: {type(exc).__name__}: {exc}"))
        parsed = None
    if errors or parsed is None:
        raise SpecError(errors)
    return parsed


def _duration(f: Fields, key: str, default: float, *, low: float = 0.0) -> float:
    raw = f.raw(key)
    if raw is None:
        return default
    try:
        value = parse_duration(raw)
    except ValueError as exc:
        f.error(key, str(exc))
        return default
    if value < low:
        f.error(key, f"must be at least {low:g}s, got {raw!r}")
        return default
    return value


def _number(f: Fields, key: str) -> float | None:
    raw = f.raw(key)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        f.error(key, f"must be a finite number, got {raw!r}")
        return None
    return float(raw)


def _selector(f: Fields) -> LabelSelector:
    labels = f.string_map("matchLabels")
    expressions = []
    for _, ef in f.each("matchExpressions"):
        key = ef.string("key", required=True)
        operator = ef.choice("operator", "In", OPERATORS)
        values = ef.strings("values")
        if operator in ("In", "NotIn") and not values:
            ef.error("values", f"must list at least one value for {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            ef.error("values", f"must be empty for {operator}")
        ef.done()
        expressions.append(Requirement(key, operator, values))
    f.done()
    return LabelSelector(tuple(sorted(labels.items())), tuple(expressions))


def _selection(f: Fields) -> Selection:
    namespaces = f.strings("namespaces")
    ns_selector = _selector(f.mapping("namespaceSelector")) if f.has("namespaceSelector") else None
    pod_selector = _selector(f.mapping("podSelector")) if f.has("podSelector") else None
    zones = f.strings("zones")
    if not namespaces and ns_selector is None:
        f.error("", "must name namespaces or give a namespaceSelector (a rollout never spans the whole cluster "
                    "by accident)")
    f.done()
    return Selection(namespaces, ns_selector, pod_selector, zones)


def _batches(f: Fields) -> tuple[Batch, ...]:
    batches: list[Batch] = []
    for i, bf in f.each("batches", required=True):
        count = bf.integer("count", 0, low=1, high=10_000_000) if bf.has("count") else None
        percent = bf.integer("percent", 0, low=1, high=100) if bf.has("percent") else None
        if bf.has("count") and bf.has("percent"):
            bf.error("", "must give count or percent, not both")
        elif not bf.has("count") and not bf.has("percent"):
            bf.error("", "must give count or percent")
        batch = Batch(count, percent, _duration(bf, "bake", 0.0), bf.boolean("pause"))
        bf.done()
        if batches and batch.percent is not None and batches[-1].percent is not None \
                and batch.percent < batches[-1].percent:
            bf.error("percent", f"must not be below the batch before's {batches[-1].percent} (percents are "
                                "cumulative: the share changed by the end of the batch)")
        if batches and batch.count is not None and batches[-1].count is not None \
                and batch.count < batches[-1].count:
            bf.error("count", f"must not be below the batch before's {batches[-1].count} (counts are cumulative)")
        batches.append(batch)
    if f.has("batches") and not batches:
        f.error("batches", "must list at least one batch")
    if batches and batches[-1].percent != 100:
        f.error(f"batches[{len(batches) - 1}]", "the last batch must be percent: 100 (every selected pod)")
    return tuple(batches)


def _max_unavailable(f: Fields) -> MaxUnavailable:
    raw = f.raw("maxUnavailable")
    if raw is None:
        return MaxUnavailable()
    if isinstance(raw, int) and not isinstance(raw, bool):
        if raw < 1:
            f.error("maxUnavailable", f"must be at least 1, got {raw}")
            return MaxUnavailable()
        return MaxUnavailable(count=raw, percent=None)
    if isinstance(raw, str) and raw.endswith("%") and raw[:-1].isdigit() and 1 <= int(raw[:-1]) <= 100:
        return MaxUnavailable(count=None, percent=int(raw[:-1]))
    f.error("maxUnavailable", f"must be a count (1, 2, ...) or a percent 1%..100%, got {raw!r}")
    return MaxUnavailable()


def _metric(f: Fields, batches: int) -> Metric:
    name = f.string("name", required=True)
    query = f.string("query", required=True)
    for match in _PLACEHOLDER.finditer(query):
        if match.group(1) not in PLACEHOLDERS:
            f.error("query", f"unknown placeholder {{{{{match.group(1)}}}}} (known: "
                             f"{', '.join('{{' + p + '}}' for p in PLACEHOLDERS)})")
    bounds = {k: _number(f, k) for k in ("max", "min", "maxIncrease", "maxRatio")}
    given = [k for k, v in bounds.items() if v is not None]
    if len(given) != 1:
        f.error("", f"must give exactly one condition of max, min, maxIncrease, maxRatio, got {given or 'none'}")
    if bounds["maxRatio"] is not None and bounds["maxRatio"] <= 0:
        f.error("maxRatio", "must be above 0")
    metric = Metric(name, query, bounds["max"], bounds["min"], bounds["maxIncrease"], bounds["maxRatio"])
    if metric.relative and batches < 2:
        f.error(given[0], "a relative condition needs a baseline group: at least two batches, so that pods not "
                          "yet changed remain while the first is judged")
    if metric.relative and not re.search(r"\{\{\s*pods\s*\}\}", query):
        f.error("query", "a relative condition compares the batch's pods with the baseline's: the query must "
                         "use {{pods}} (it is run once with each group)")
    f.done()
    return metric


def _analysis(f: Fields, batches: int) -> Analysis:
    d = Analysis()
    bf = f.mapping("builtin")
    b = Builtin()
    builtin = Builtin(
        max_restarts=bf.integer("maxRestarts", b.max_restarts, low=0, high=1000),
        min_ready_percent=bf.integer("minReadyPercent", b.min_ready_percent, low=0, high=100),
        fail_on_oom_killed=bf.boolean("failOnOOMKilled", True),
        fail_on_crash_loop=bf.boolean("failOnCrashLoop", True),
    )
    bf.done()
    prometheus = None
    if f.has("prometheus"):
        pf = f.mapping("prometheus")
        address = pf.string("address", required=True)
        if address and not address.startswith(("http://", "https://")):
            pf.error("address", f"must be an http:// or https:// URL, got {address!r}")
        metrics = tuple(_metric(mf, batches) for _, mf in pf.each("metrics", required=True))
        names = [m.name for m in metrics]
        for i, name in enumerate(names):
            if name in names[:i] or name in ("readiness", "restarts", "oomKilled", "crashLoop", "operation"):
                pf.error(f"metrics[{i}].name", f"{name!r} is taken (by another metric or a builtin check)")
        prometheus = Prometheus(address, metrics, _duration(pf, "timeout", 10.0, low=0.1))
        pf.done()
    analysis = Analysis(
        interval=_duration(f, "interval", d.interval, low=0.1),
        count=f.integer("count", d.count, low=1, high=100),
        failure_limit=f.integer("failureLimit", d.failure_limit, low=0, high=100),
        consecutive_error_limit=f.integer("consecutiveErrorLimit", d.consecutive_error_limit, low=0, high=100),
        inconclusive_deadline=_duration(f, "inconclusiveDeadline", d.inconclusive_deadline, low=0.1),
        builtin=builtin,
        prometheus=prometheus,
    )
    f.done()
    return analysis


def _spec(f: Fields) -> RolloutSpec:
    sidecar = f.string("sidecar", required=True)
    version = f.string("version", required=True)
    action = f.choice("action", "auto", ACTIONS)
    selection = _selection(f.mapping("selector")) if f.has("selector") else None
    if selection is None:
        f.error("selector", "is required")
    batches = _batches(f)
    spec = RolloutSpec(
        sidecar=sidecar,
        version=version,
        batches=batches,
        action=action,
        selector=selection or Selection(),
        max_unavailable=_max_unavailable(f),
        paused=f.boolean("paused"),
        abort=f.boolean("abort"),
        promoted_batch=f.integer("promotedBatch", -1, low=-1, high=1000),
        on_failure=f.choice("onFailure", "rollback", ON_FAILURE),
        analysis=_analysis(f.mapping("analysis"), len(batches)),
    )
    f.done()
    return spec


def spec_document(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as kept in ``status.acceptedSpec``: the last good one, verbatim (the user's own words)."""
    return {k: v for k, v in spec.items() if k not in ("paused", "abort", "promotedBatch")}
