"""Measurements and verdicts: no data is never a pass, inconclusive ends at its deadline, errors are counted."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from rollout_support import Fleet, NOW, meshed

from controller.rollout_analysis import (
    ERROR,
    FAILED,
    INCONCLUSIVE,
    SUCCESSFUL,
    Measurement,
    Reading,
    builtin_measurements,
    metric_measurement,
    render,
    stamp,
    verdict,
)
from controller.rollout_spec import Analysis, Builtin, Metric

PODS = Fleet([meshed("web-0"), meshed("web-1")]).views()


def judge(metric: Metric, value: float | None, baseline: float | None = None, *, error: str | None = None,
          baseline_absent: bool = False, recorded: float | None = None) -> Measurement:
    base = None if baseline_absent else Reading(baseline)
    return metric_measurement(metric, Reading(value, error), base, round_=0, at="t", pods=PODS,
                              recorded_baseline=recorded)


@pytest.mark.parametrize(("value", "result"), [(0.01, SUCCESSFUL), (0.0100001, FAILED), (0.0, SUCCESSFUL),
                                               (math.inf, FAILED)])
def test_max_passes_at_its_boundary(value: float, result: str) -> None:
    assert judge(Metric("e", "q", max=0.01), value).result == result


@pytest.mark.parametrize(("value", "result"), [(0.99, SUCCESSFUL), (0.98999, FAILED)])
def test_min_passes_at_its_boundary(value: float, result: str) -> None:
    assert judge(Metric("ok", "q", min=0.99), value).result == result


@pytest.mark.parametrize(("value", "error"), [(None, None), (math.nan, None), (None, "timeout after 10s")])
def test_no_data_or_nan_or_an_error_is_never_a_success(value: float | None, error: str | None) -> None:
    m = judge(Metric("e", "q", max=0.01), value, error=error)
    assert m.result == (ERROR if error else INCONCLUSIVE)


@pytest.mark.parametrize(("value", "baseline", "result"), [
    (0.15, 0.05, SUCCESSFUL),      # an increase of exactly 0.1
    (0.1501, 0.05, FAILED),
    (0.0, 0.05, SUCCESSFUL),
])
def test_max_increase_compares_with_the_baseline(value: float, baseline: float, result: str) -> None:
    m = judge(Metric("e", "q", max_increase=0.1), value, baseline)
    assert (m.result, m.baseline) == (result, baseline)


@pytest.mark.parametrize(("value", "baseline", "result"), [
    (0.3, 0.2, SUCCESSFUL),  # ratio 1.5 exactly
    (0.30001, 0.2, FAILED),
    (0.0, 0.0, SUCCESSFUL),  # a zero baseline passes only a zero batch
    (0.001, 0.0, FAILED),
])
def test_max_ratio_compares_with_the_baseline(value: float, baseline: float, result: str) -> None:
    assert judge(Metric("e", "q", max_ratio=1.5), value, baseline).result == result


def test_a_relative_condition_without_baseline_data_is_inconclusive() -> None:
    assert judge(Metric("e", "q", max_ratio=2), 0.1, None).result == INCONCLUSIVE
    assert judge(Metric("e", "q", max_ratio=2), 0.1, baseline_absent=True).result == INCONCLUSIVE
    # With no pod left unchanged, the baseline last measured stands in, and says so.
    m = judge(Metric("e", "q", max_ratio=2), 0.1, baseline_absent=True, recorded=0.04)
    assert (m.result, m.baseline) == (FAILED, 0.04) and "last measured" in m.message


def test_render_fills_the_placeholders_with_escaped_alternations() -> None:
    query = 'sum(rate(e{namespace=~"{{namespace}}",pod=~"{{ pods }}"}[1m])) / x{pod=~"{{baselinePods}}"}'
    assert render(query, ["shop"], ["web-1", "web.0"], ["db-0"]) == (
        'sum(rate(e{namespace=~"shop",pod=~"web-1|web\\\\.0"}[1m])) / x{pod=~"db-0"}')


def test_builtins_read_readiness_restarts_ooms_and_crash_loops() -> None:
    fleet = Fleet([meshed("a", restarts=3), meshed("b", ready=False)])
    fleet.pods["shop/a"]["status"]["containerStatuses"][0]["lastState"] = {"terminated": {"reason": "OOMKilled"}}
    views = fleet.views()
    out = {m.check: m for m in builtin_measurements(Builtin(max_restarts=1, min_ready_percent=50), views,
                                                    {"shop/a": 1, "shop/b": 0}, round_=0, at="t")}
    assert (out["readiness"].result, out["readiness"].value) == (SUCCESSFUL, 50.0)  # 50% meets min 50%
    assert (out["restarts"].result, out["restarts"].value, out["restarts"].pods) == (FAILED, 2.0, ("a",))
    assert (out["oomKilled"].result, out["oomKilled"].pods) == (FAILED, ("a",))
    assert out["crashLoop"].result == SUCCESSFUL
    strict = {m.check: m for m in builtin_measurements(Builtin(), views, {"shop/a": 3, "shop/b": 0},
                                                       round_=0, at="t")}
    assert (strict["readiness"].result, strict["readiness"].pods) == (FAILED, ("b",))
    assert strict["restarts"].result == SUCCESSFUL and strict["oomKilled"].result == SUCCESSFUL  # none since settle


def test_a_batch_with_no_pods_left_is_inconclusive() -> None:
    assert {m.result for m in builtin_measurements(Builtin(), [], {}, round_=0, at="t")} == {INCONCLUSIVE}


def _round(i: int, *results: str, seconds: float | None = None) -> list[Measurement]:
    at = stamp(NOW + dt.timedelta(seconds=i * 10 if seconds is None else seconds))
    return [Measurement(i, at, f"c{j}", r, value=1.0, threshold="max 0") for j, r in enumerate(results)]


def test_count_conclusive_rounds_make_a_success() -> None:
    analysis = Analysis(count=2)
    assert verdict(analysis, _round(0, SUCCESSFUL, SUCCESSFUL), NOW).state == "Running"
    assert verdict(analysis, _round(0, SUCCESSFUL) + _round(1, SUCCESSFUL), NOW).state == SUCCESSFUL


def test_failures_up_to_the_limit_are_tolerated_and_one_more_fails() -> None:
    analysis = Analysis(count=3, failure_limit=1)
    one = _round(0, FAILED) + _round(1, SUCCESSFUL)
    assert verdict(analysis, one, NOW).state == "Running"
    two = one + _round(2, FAILED)
    judged = verdict(analysis, two, NOW)
    assert judged.state == FAILED and judged.check == "c0" and "failureLimit 1" in judged.reason
    assert verdict(Analysis(count=3), _round(0, FAILED), NOW).state == FAILED


def test_consecutive_errors_past_the_limit_fail_and_a_success_resets_them() -> None:
    analysis = Analysis(count=5, consecutive_error_limit=2)
    two = _round(0, ERROR) + _round(1, ERROR)
    assert verdict(analysis, two, NOW).state != FAILED
    assert verdict(analysis, two + _round(2, ERROR), NOW).check == "errors"
    broken = two + _round(2, SUCCESSFUL) + _round(3, ERROR) + _round(4, ERROR)
    assert verdict(analysis, broken, NOW).state != FAILED


def test_inconclusive_pauses_with_a_deadline_and_fails_at_it() -> None:
    analysis = Analysis(count=2, inconclusive_deadline=30)
    rounds = _round(0, INCONCLUSIVE, seconds=0)
    paused = verdict(analysis, rounds, NOW + dt.timedelta(seconds=29.999))
    assert paused.state == INCONCLUSIVE and paused.deadline == NOW + dt.timedelta(seconds=30)
    failed = verdict(analysis, rounds, NOW + dt.timedelta(seconds=30))
    assert failed.state == FAILED and failed.check == "inconclusive" and "deadline" in failed.reason
    # Data coming back in time ends the pause, and enough of it succeeds.
    back = rounds + _round(1, SUCCESSFUL, seconds=10) + _round(2, SUCCESSFUL, seconds=20)
    assert verdict(analysis, back, NOW + dt.timedelta(seconds=20)).state == SUCCESSFUL


def test_a_failure_reason_names_check_value_threshold_and_pods() -> None:
    m = judge(Metric("error-rate", "q", max_ratio=1.5), 0.2, 0.01)
    text = m.describe()
    for part in ("error-rate", "value 0.2", "baseline 0.01", "threshold maxRatio 1.5", "web-0", "web-1"):
        assert part in text, text


def test_pruning_keeps_what_a_verdict_needs_and_the_deadline_still_counts_from_the_first_unclear_round() -> None:
    from controller.rollout_analysis import prune

    analysis = Analysis(count=3, failure_limit=1, inconclusive_deadline=100)
    history = _round(0, FAILED, SUCCESSFUL) + [m for i in range(1, 30) for m in _round(i, INCONCLUSIVE, SUCCESSFUL)]
    kept = prune(history, keep=5)
    rounds = sorted({m.round for m in kept})
    assert rounds == [0, 25, 26, 27, 28, 29]  # the failed round, and the last five unclear ones
    assert [m.result for m in kept if m.round == 0] == [FAILED, SUCCESSFUL]
    # Round 1 (at +10 s) started the pause; pruned away, it is given apart.
    first = NOW + dt.timedelta(seconds=10)
    assert verdict(analysis, kept, NOW + dt.timedelta(seconds=109), first).state == INCONCLUSIVE
    failed = verdict(analysis, kept, NOW + dt.timedelta(seconds=110), first)
    assert failed.state == FAILED and failed.check == "inconclusive"
    # Without it, the deadline would have moved to the oldest round kept: the pause would last longer.
    assert verdict(analysis, kept, NOW + dt.timedelta(seconds=110)).state == INCONCLUSIVE
