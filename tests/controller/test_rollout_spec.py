"""A SidecarRollout's spec: what it means, and every mistake named by its path."""

from __future__ import annotations

from typing import Any

import pytest
from rollout_support import spec

from controller.rollout_spec import MaxUnavailable, SpecError, parse_duration, parse_spec


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("90s", 90.0), ("1m30s", 90.0), ("500ms", 0.5),
                                               ("2h", 7200.0), ("1.5s", 1.5), ("0s", 0.0)])
def test_durations_read_as_go_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s", "1d", "1m 30s", "-1s", "1s1", 30])
def test_a_bad_duration_is_refused(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_a_full_spec_reads_into_its_parts() -> None:
    parsed = parse_spec(spec(
        action="hot", maxUnavailable="10%", onFailure="stop", paused=True, promotedBatch=0,
        selector={"namespaces": ["shop"], "podSelector": {"matchLabels": {"tier": "web"},
                                                          "matchExpressions": [{"key": "env", "operator": "In",
                                                                                "values": ["prod", "canary"]}]},
                  "zones": ["z1"]},
        analysis={"interval": "2s", "count": 4, "failureLimit": 1, "consecutiveErrorLimit": 3,
                  "inconclusiveDeadline": "1m", "builtin": {"maxRestarts": 2, "minReadyPercent": 90},
                  "prometheus": {"address": "http://prometheus:9090", "metrics": [
                      {"name": "errors", "query": 'sum(rate(e{pod=~"{{pods}}"}[1m]))', "maxRatio": 1.5}]}}))
    assert (parsed.action, parsed.on_failure, parsed.paused, parsed.promoted_batch) == ("hot", "stop", True, 0)
    assert parsed.max_unavailable == MaxUnavailable(count=None, percent=10)
    assert parsed.selector.pod_selector is not None
    assert parsed.selector.pod_selector.to_query() == "tier=web,env in (prod,canary)"
    assert parsed.selector.pod_selector.matches({"tier": "web", "env": "canary"})
    assert not parsed.selector.pod_selector.matches({"tier": "web", "env": "dev"})
    a = parsed.analysis
    assert (a.interval, a.count, a.failure_limit, a.consecutive_error_limit, a.inconclusive_deadline) == (
        2.0, 4, 1, 3, 60.0)
    assert (a.builtin.max_restarts, a.builtin.min_ready_percent) == (2, 90)
    assert a.prometheus is not None and a.prometheus.metrics[0].max_ratio == 1.5
    assert a.prometheus.metrics[0].relative


@pytest.mark.parametrize(("changes", "path"), [
    ({"sidecar": ""}, "spec.sidecar"),
    ({"action": "teleport"}, "spec.action"),
    ({"selector": {}}, "spec.selector"),
    ({"batches": [{"count": 1}, {"percent": 90}]}, "spec.batches[1]"),
    ({"batches": [{"count": 1, "percent": 5}, {"percent": 100}]}, "spec.batches[0]"),
    ({"batches": [{"bake": "1s"}, {"percent": 100}]}, "spec.batches[0]"),
    ({"batches": [{"percent": 50}, {"percent": 20}, {"percent": 100}]}, "spec.batches[1].percent"),
    ({"batches": [{"percent": 0}, {"percent": 100}]}, "spec.batches[0].percent"),
    ({"batches": [{"percent": 101}]}, "spec.batches[0].percent"),
    ({"batches": [{"count": 1, "bake": "soon"}, {"percent": 100}]}, "spec.batches[0].bake"),
    ({"maxUnavailable": 0}, "spec.maxUnavailable"),
    ({"maxUnavailable": "0%"}, "spec.maxUnavailable"),
    ({"maxUnavailable": "101%"}, "spec.maxUnavailable"),
    ({"onFailure": "pray"}, "spec.onFailure"),
    ({"analysis": {"count": 0}}, "spec.analysis.count"),
    ({"analysis": {"builtin": {"minReadyPercent": 101}}}, "spec.analysis.builtin.minReadyPercent"),
    ({"analysis": {"prometheus": {"address": "prometheus:9090", "metrics": [{"name": "x", "query": "up",
                                                                             "max": 1}]}}},
     "spec.analysis.prometheus.address"),
    ({"analysis": {"prometheus": {"address": "http://p", "metrics": [{"name": "x", "query": "{{pod}}",
                                                                      "max": 1}]}}},
     "spec.analysis.prometheus.metrics[0].query"),
    ({"analysis": {"prometheus": {"address": "http://p", "metrics": [{"name": "x", "query": "up",
                                                                      "max": 1, "min": 0}]}}},
     "spec.analysis.prometheus.metrics[0]"),
    ({"analysis": {"prometheus": {"address": "http://p", "metrics": [{"name": "readiness", "query": "up",
                                                                      "max": 1}]}}},
     "spec.analysis.prometheus.metrics[0].name"),
    ({"batches": [{"percent": 100}], "analysis": {"prometheus": {"address": "http://p", "metrics": [
        {"name": "x", "query": 'e{pod=~"{{pods}}"}', "maxIncrease": 0.1}]}}},
     "spec.analysis.prometheus.metrics[0].maxIncrease"),
    ({"colour": "blue"}, "spec.colour"),
])
def test_a_bad_spec_names_the_field(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(spec(**changes))
    assert caught.value.errors[0].path == path, caught.value


@pytest.mark.parametrize(("mu", "pods", "allowed"), [
    (MaxUnavailable(percent=25), 4, 1), (MaxUnavailable(percent=25), 7, 1), (MaxUnavailable(percent=25), 8, 2),
    (MaxUnavailable(percent=25), 1, 1), (MaxUnavailable(percent=100), 3, 3),
    (MaxUnavailable(count=2, percent=None), 10, 2), (MaxUnavailable(count=2, percent=None), 1, 2),
])
def test_max_unavailable_floors_a_percent_but_never_below_one(mu: MaxUnavailable, pods: int, allowed: int) -> None:
    assert mu.allowed(pods) == allowed
