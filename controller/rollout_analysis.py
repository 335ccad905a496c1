"""Measurements, and the verdict on a batch they add up to: Successful, Failed, or Inconclusive.

The rules are the ones users of canary tools asked for after being burnt:

* **Missing data is never a success.** An empty vector, a missing series, NaN
  (``0/0``: a batch that served no requests), a baseline group with no data,
  a batch with no pods left to judge: each is *Inconclusive*, never a pass
  (Flagger #1098, Argo Rollouts #1466, #180).
* **Inconclusive never hangs.** The first round that is not conclusive starts
  a deadline (``inconclusiveDeadline``); rounds go on, and a batch without
  ``count`` conclusive rounds by then *Fails*, saying so (Argo Rollouts #3015).
* **Errors are not data.** A query that fails (timeout, HTTP error, a PromQL
  error) is an *Error*; more than ``consecutiveErrorLimit`` in a row of one
  check fails the batch. An error never counts towards ``count``.
* **A failure names itself.** The measurement keeps the check, the value, the
  baseline it was compared with, the threshold and the pods, and the reason
  for a Failed verdict is built from them (Argo Rollouts #404, #2087).

A threshold is met at its boundary: ``max: 0.01`` passes 0.01 and fails
0.0100001; ``min`` likewise; ``maxIncrease: d`` passes ``batch - baseline <= d``;
``maxRatio: r`` passes ``batch <= r * baseline`` (a zero baseline passes only
a zero batch). A query that returns several series is judged by its worst one
(the highest for max, maxIncrease and maxRatio; the lowest for min).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.rollout_pods import PodView
from controller.rollout_spec import Analysis, Builtin, Metric

SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR = "Successful", "Failed", "Inconclusive", "Error"
RESULTS = (SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR)
#: Pod names kept per measurement (the message says how many more).
POD_NAMES = 10
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z]+)\s*\}\}")


def stamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with milliseconds (bakes and intervals of a second or two are real)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_stamp(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Reading:
    """One query's answer: a value, no data (``value`` ``None``), or an ``error``."""

    value: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One check in one round, with everything its verdict rests on."""

    round: int
    at: str
    check: str
    result: str
    value: float | None = None
    baseline: float | None = None
    threshold: str = ""
    message: str = ""
    pods: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"round": self.round, "at": self.at, "check": self.check, "result": self.result}
        for key, value in (("value", self.value), ("baseline", self.baseline)):
            if value is not None:
                out[key] = _json_number(value)
        if self.threshold:
            out["threshold"] = self.threshold
        if self.message:
            out["message"] = self.message
        if self.pods:
            out["pods"] = list(self.pods)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(round=int(data.get("round") or 0), at=str(data.get("at") or ""), check=str(data.get("check") or ""),
                   result=str(data.get("result") or ERROR), value=_number_of(data.get("value")),
                   baseline=_number_of(data.get("baseline")), threshold=str(data.get("threshold") or ""),
                   message=str(data.get("message") or ""), pods=tuple(str(p) for p in data.get("pods") or ()))

    def describe(self) -> str:
        """One line: check, value, baseline, threshold, pods — what an abort's reason says."""
        parts = [self.check]
        if self.value is not None:
            parts.append(f"value {fmt(self.value)}")
        if self.baseline is not None:
            parts.append(f"baseline {fmt(self.baseline)}")
        if self.threshold:
            parts.append(f"threshold {self.threshold}")
        text = " ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
        if self.message:
            text += f" ({self.message})"
        if self.pods:
            text += f"; pods {', '.join(self.pods)}"
        return text


def fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.6g}"


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else fmt(value)


def _number_of(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def names(pods: Sequence[PodView]) -> tuple[str, ...]:
    return tuple(p.name for p in pods[:POD_NAMES])


def _more(pods: Sequence[Any]) -> str:
    return f"{len(pods) - POD_NAMES} more" if len(pods) > POD_NAMES else ""


# -- queries ------------------------------------------------------------------------------------------------
def alternation(values: Iterable[str]) -> str:
    """A PromQL regex (inside a double-quoted string) matching exactly these names."""
    return "|".join(sorted({re.sub(r"([.\\+*?()\[\]{}|^$])", r"\\\\\1", v) for v in values}))


def render(query: str, namespaces: Iterable[str], pods: Iterable[str], baseline: Iterable[str]) -> str:
    """``query`` with ``{{namespace}}``, ``{{pods}}`` and ``{{baselinePods}}`` filled in as regex alternations."""
    values = {"namespace": alternation(namespaces), "pods": alternation(pods), "baselinePods": alternation(baseline)}
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), query)


# -- checks -------------------------------------------------------------------------------------------------
def metric_measurement(metric: Metric, batch: Reading, baseline: Reading | None, *, round_: int, at: str,
                       pods: Sequence[PodView], recorded_baseline: float | None = None) -> Measurement:
    """The measurement of one metric: its batch reading against its condition (and the baseline's reading).

    ``baseline`` is ``None`` when no selected pod is left unchanged; a relative
    condition then compares with ``recorded_baseline``, the baseline last measured.
    """
    def made(result: str, value: float | None = None, reference: float | None = None, message: str = "") -> Measurement:
        return Measurement(round_, at, metric.name, result, value, reference, metric.threshold(), message, names(pods))

    if batch.error is not None:
        return made(ERROR, message=f"query failed: {batch.error}")
    if batch.value is None or math.isnan(batch.value):
        return made(INCONCLUSIVE, message="no data for the batch's pods")
    value = batch.value
    if metric.max is not None:
        return made(SUCCESSFUL if value <= metric.max else FAILED, value)
    if metric.min is not None:
        return made(SUCCESSFUL if value >= metric.min else FAILED, value)
    note = ""
    if baseline is not None and baseline.error is not None:
        return made(ERROR, value, message=f"baseline query failed: {baseline.error}")
    if baseline is not None and baseline.value is not None and not math.isnan(baseline.value):
        reference = baseline.value
    elif baseline is None and recorded_baseline is not None:
        reference, note = recorded_baseline, "no pod left unchanged: the baseline last measured"
    else:
        what = "no data for the baseline pods" if baseline is not None else "no baseline pods and none measured before"
        return made(INCONCLUSIVE, value, message=what)
    if metric.max_increase is not None:
        ok = value - reference <= metric.max_increase
    else:
        assert metric.max_ratio is not None
        ok = value <= metric.max_ratio * reference if reference > 0 else value <= 0
    return made(SUCCESSFUL if ok else FAILED, value, reference, note)


def builtin_measurements(builtin: Builtin, pods: Sequence[PodView], settled_restarts: Mapping[str, int], *,
                         round_: int, at: str) -> list[Measurement]:
    """Readiness, restarts, OOM kills and crash loops of the batch's pods, read from the kubelet's statuses."""
    if not pods:
        return [Measurement(round_, at, check, INCONCLUSIVE, message="no pod of the batch is left to judge")
                for check in ("readiness", "restarts")]
    out: list[Measurement] = []
    ready = [p for p in pods if p.ready]
    unready = [p for p in pods if not p.ready]
    percent = 100.0 * len(ready) / len(pods)
    out.append(Measurement(round_, at, "readiness", SUCCESSFUL if percent >= builtin.min_ready_percent else FAILED,
                           value=percent, threshold=f"min {builtin.min_ready_percent}%",
                           message=_more(unready) and f"not ready: {len(unready)} pods", pods=names(unready)))
    since = {p.key: p.restarts - settled_restarts.get(p.key, p.restarts) for p in pods}
    worst = max(since.values())
    restarted = sorted((p for p in pods if since[p.key] > builtin.max_restarts), key=lambda p: -since[p.key])
    out.append(Measurement(round_, at, "restarts", SUCCESSFUL if worst <= builtin.max_restarts else FAILED,
                           value=float(worst), threshold=f"max {builtin.max_restarts}",
                           message="restarts of a pod's containers since its change settled", pods=names(restarted)))
    if builtin.fail_on_oom_killed:
        killed = [p for p in pods if p.oom_killed and since[p.key] > 0]
        out.append(Measurement(round_, at, "oomKilled", FAILED if killed else SUCCESSFUL, value=float(len(killed)),
                               threshold="max 0", pods=names(killed)))
    if builtin.fail_on_crash_loop:
        looping = [p for p in pods if p.crash_looping]
        out.append(Measurement(round_, at, "crashLoop", FAILED if looping else SUCCESSFUL, value=float(len(looping)),
                               threshold="max 0", pods=names(looping)))
    return out


def last_baseline(measurements: Iterable[Measurement], check: str) -> float | None:
    """The most recent baseline value measured for ``check`` (for a batch that left no pod unchanged)."""
    found = None
    for m in measurements:
        if m.check == check and m.baseline is not None:
            found = m.baseline
    return found


# -- the verdict --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Verdict:
    """``Running`` (more rounds needed), ``Successful``, ``Failed`` or ``Inconclusive`` (paused, with a deadline)."""

    state: str
    reason: str = ""
    #: The check that decided a Failed verdict ("inconclusive", "errors" ...), for the aborts metric.
    check: str = ""
    deadline: dt.datetime | None = None
    conclusive_rounds: int = 0


#: Rounds that were not conclusive kept per batch (the oldest go first; Failed measurements are always kept).
KEPT_UNCLEAR_ROUNDS = 10


def prune(measurements: Sequence[Measurement], keep: int = KEPT_UNCLEAR_ROUNDS) -> list[Measurement]:
    """The measurements without the oldest rounds that were not conclusive, beyond the last ``keep`` of them.

    A batch paused as inconclusive goes on measuring every interval until its
    deadline; at a 1 s interval and a 1 h deadline that would be thousands of
    rounds in the rollout's status. What a verdict needs is kept whole: every
    conclusive round (at most ``count`` before success), every Failed
    measurement (at most ``failureLimit + 1`` per check), and the latest rounds,
    which hold the consecutive errors and the reason told; the deadline's start
    is kept apart by the caller.
    """
    rounds = rounds_of(measurements)
    unclear = [r for r in rounds if not all(m.result in (SUCCESSFUL, FAILED) for m in r)]
    dropped = {r[0].round for r in unclear[:-keep]} if len(unclear) > keep else set()
    return [m for m in measurements if m.round not in dropped or m.result == FAILED]


def rounds_of(measurements: Iterable[Measurement]) -> list[list[Measurement]]:
    by_round: dict[int, list[Measurement]] = {}
    for m in measurements:
        by_round.setdefault(m.round, []).append(m)
    return [by_round[r] for r in sorted(by_round)]


def verdict(analysis: Analysis, measurements: Sequence[Measurement], now: dt.datetime,
            unclear_since: dt.datetime | None = None) -> Verdict:
    """What the measurements of one batch add up to at ``now`` (see the module docstring).

    ``unclear_since``: when the first round that was not conclusive was taken, if
    its measurements were pruned (:func:`prune`) since.
    """
    rounds = rounds_of(measurements)
    checks: dict[str, list[Measurement]] = {}
    for m in measurements:
        checks.setdefault(m.check, []).append(m)
    for check, series in checks.items():
        failed = [m for m in series if m.result == FAILED]
        if len(failed) > analysis.failure_limit:
            limit = f" (more than failureLimit {analysis.failure_limit})" if analysis.failure_limit else ""
            return Verdict(FAILED, f"{len(failed)} failed measurement{'s' if len(failed) != 1 else ''}{limit}; "
                                   f"last: {failed[-1].describe()}", check, conclusive_rounds=len(rounds))
        errors = 0
        for m in reversed(series):
            if m.result != ERROR:
                break
            errors += 1
        if errors > analysis.consecutive_error_limit:
            return Verdict(FAILED, f"{check}: {errors} measurement errors in a row (more than consecutiveErrorLimit "
                                   f"{analysis.consecutive_error_limit}); last: {series[-1].message}", "errors")
    conclusive = [r for r in rounds if all(m.result in (SUCCESSFUL, FAILED) for m in r)]
    if len(conclusive) >= analysis.count:
        return Verdict(SUCCESSFUL, f"{len(conclusive)} conclusive rounds, every check within its threshold",
                       conclusive_rounds=len(conclusive))
    unclear = [r for r in rounds if r not in conclusive]
    if not unclear:
        return Verdict("Running", conclusive_rounds=len(conclusive))
    first = parse_stamp(unclear[0][0].at) or now
    since = min(first, unclear_since) if unclear_since is not None else first
    deadline = since + dt.timedelta(seconds=analysis.inconclusive_deadline)
    latest = [m for m in unclear[-1] if m.result in (INCONCLUSIVE, ERROR)]
    why = "; ".join(m.describe() for m in latest)
    if now >= deadline:
        return Verdict(FAILED, f"inconclusive past the deadline ({stamp(deadline)}): {len(conclusive)} of "
                               f"{analysis.count} conclusive rounds; last: {why}", "inconclusive", deadline,
                       len(conclusive))
    if rounds[-1] in unclear:
        return Verdict(INCONCLUSIVE, why, deadline=deadline, conclusive_rounds=len(conclusive))
    return Verdict("Running", deadline=deadline, conclusive_rounds=len(conclusive))
