"""Version resolution: one precedence, stable experiments, explainable verdicts."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from fractions import Fraction

from podshapes import container, pod
from policies import default_policy

from policy.decision import Namespace
from policy.inject import inject
from policy.model import NamespacePolicy, SidecarOverride, VersionRule
from policy.versions import experiment_bucket, resolve_version, workload_of

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


def _app_pod(app: str = "orders", **kw) -> dict:
    return pod([container("app", {"cpu": "1", "memory": "1Gi"})], labels={"app.kubernetes.io/name": app}, **kw)


def _resolve(p: dict, policy=None, ns_pin=None, namespace="shop"):
    policy = policy or default_policy()
    return resolve_version(p, namespace, policy.sidecars[0], policy.versions, ns_pin, NOW)


def _with_rules(*rules: VersionRule):
    policy = default_policy()
    return dataclasses.replace(policy, versions=dataclasses.replace(policy.versions, rules=rules))


def test_baseline_when_no_rule_applies() -> None:
    choice = _resolve(_app_pod())
    assert (choice.version, choice.source, choice.image) == ("1.8.0", "baseline", "registry.example.com/mesh/mosn:1.8.0")
    assert {v.rule: v.outcome for v in choice.verdicts}["mosn-1.8.1-conn-leak-fix"] == "no-match"


def test_bugfix_wins_for_its_app() -> None:
    choice = _resolve(_app_pod("payments"))
    assert (choice.version, choice.source, choice.rule) == ("1.8.1", "bugfix", "mosn-1.8.1-conn-leak-fix")


def test_precedence_is_fixed_whatever_the_file_order() -> None:
    policy = _with_rules(
        VersionRule("zone-a", "zone", "1.9.0-rc.1", zones=("a",)),
        VersionRule("app-x", "app", "1.8.1", apps=("orders",)),
    )
    p = _app_pod()
    p["metadata"]["labels"]["topology.kubernetes.io/zone"] = "a"
    choice = _resolve(p, policy)
    assert (choice.version, choice.source) == ("1.8.1", "app")
    assert {v.rule: v.outcome for v in choice.verdicts}["zone-a"] == "shadowed"


def test_pod_pin_beats_rules_when_allowed_and_is_refused_otherwise() -> None:
    p = _app_pod("payments", annotations={"meshfit.io/version": "rpc-mesh=1.9.0-rc.1"})
    assert _resolve(p).source == "pin"
    policy = default_policy()
    no_pins = dataclasses.replace(policy, versions=dataclasses.replace(policy.versions, allow_pod_pin=False))
    choice = _resolve(p, no_pins)
    assert choice.source == "bugfix" and "does not allow pod pins" in choice.warnings[0]
    bad = _app_pod(annotations={"meshfit.io/version": "7.0"})
    choice = _resolve(bad)
    assert choice.source == "baseline" and "not an allowed version" in choice.warnings[0]


def test_expired_rules_are_skipped_and_say_so() -> None:
    policy = _with_rules(VersionRule("old", "app", "1.8.1", apps=("orders",), expires=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    choice = _resolve(_app_pod(), policy)
    assert choice.source == "baseline"
    assert choice.verdicts[0].outcome == "expired"


def test_namespace_pin_sits_between_experiment_and_app() -> None:
    policy = _with_rules(VersionRule("app-x", "app", "1.8.1", apps=("orders",)))
    choice = _resolve(_app_pod(), policy, ns_pin="1.9.0-rc.1")
    assert (choice.version, choice.source) == ("1.9.0-rc.1", "namespace")


def test_experiment_picks_whole_workloads_stably() -> None:
    rs_pod = _app_pod()
    rs_pod["metadata"]["labels"]["pod-template-hash"] = "5d9c7b"
    rs_pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "orders-5d9c7b", "controller": True}]
    assert workload_of(rs_pod, "shop") == "shop/Deployment/orders"
    job_pod = _app_pod()
    job_pod["metadata"]["ownerReferences"] = [{"kind": "Job", "name": "settle-29012345", "controller": True}]
    assert workload_of(job_pod, "shop") == "shop/CronJob/settle"
    # the bucket is a pure function: the same workload always lands in the same place
    assert experiment_bucket("exp", "shop/Deployment/orders") == experiment_bucket("exp", "shop/Deployment/orders")
    # and percent selects about that share of workloads
    inside = sum(experiment_bucket("exp", f"ns/Deployment/w{i}") < 10 for i in range(4000))
    assert 320 < inside < 480


def test_experiment_rule_matches_by_bucket() -> None:
    rule = VersionRule("canary", "experiment", "1.9.0-rc.1", percent=Fraction(100))
    assert _resolve(_app_pod(), _with_rules(rule)).source == "experiment"
    zero = VersionRule("canary", "experiment", "1.9.0-rc.1", percent=Fraction(0))
    assert _resolve(_app_pod(), _with_rules(zero)).source == "baseline"


def test_versions_are_written_in_the_status_annotation() -> None:
    import orjson
    ns = Namespace("shop", None, NamespacePolicy("shop", "r", {"rpc-mesh": SidecarOverride(version="1.9.0-rc.1")}))
    result = inject(_app_pod(), ns, default_policy(), now=NOW)
    status = orjson.loads(result.pod["metadata"]["annotations"]["meshfit.io/status"])
    assert status["sidecars"][0] == {"name": "rpc-mesh", "version": "1.9.0-rc.1",
                                     "image": "registry.example.com/mesh/mosn:1.9.0-rc.1", "source": "namespace"}


def test_pins_are_read_per_sidecar_or_bare_with_spaces_and_empty_parts_ignored() -> None:
    from policy.versions import parse_pins

    assert parse_pins("rpc-mesh=1.8.1, msg-mesh = 2.3.0,") == ({"rpc-mesh": "1.8.1", "msg-mesh": "2.3.0"}, None)
    assert parse_pins("1.8.1") == ({}, "1.8.1")
    assert parse_pins("") == ({}, None)
    # an empty part in the middle is skipped, not the end of the list
    assert parse_pins("rpc-mesh=1.8.1,,msg-mesh=2.3.0") == ({"rpc-mesh": "1.8.1", "msg-mesh": "2.3.0"}, None)
    # only the first "=" separates: the rest is the version (which the policy then judges)
    assert parse_pins("rpc-mesh=1.8.1=x") == ({"rpc-mesh": "1.8.1=x"}, None)
