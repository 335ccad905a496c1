"""Version resolution, verdict by verdict: what ``meshfit explain`` prints for each rule.

Every verdict is pinned whole (rule, type, outcome, detail), since people read the
details to learn why a pod got the version it got; every comparison on the input
(expiry against now, a workload's bucket against the percent) is tried at its edge.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from podshapes import container, pod
from policies import default_policy

from policy.model import SidecarVersions, VersionPolicy, VersionRule
from policy.versions import RuleVerdict, VersionChoice, experiment_bucket, resolve_version, workload_of

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
TICK = timedelta(microseconds=1)
PIN = "meshfit.io/version"
RPC = SidecarVersions("1.8.0", ("1.8.0", "1.8.1", "1.9.0-rc.1"))


def _pod(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return pod([container("app", {"cpu": "1", "memory": "1Gi"})], labels=labels, annotations=annotations)


def _versions(*rules: VersionRule, **changes: Any) -> VersionPolicy:
    return VersionPolicy(sidecars={"rpc-mesh": changes.pop("rpc", RPC), "msg-mesh": SidecarVersions("2.3.0", ("2.3.0",))},
                         rules=rules, **changes)


def _choose(p: dict[str, Any], versions: VersionPolicy, ns_pin: str | None = None, now: datetime = NOW) -> VersionChoice:
    spec = default_policy().sidecars[0]  # rpc-mesh, image registry.example.com/mesh/mosn
    assert spec.name == "rpc-mesh"
    return resolve_version(p, "shop", spec, versions, ns_pin, now)


def _only(choice: VersionChoice) -> tuple[str, str, str, str]:
    assert len(choice.verdicts) == 1, choice.verdicts
    v = choice.verdicts[0]
    return (v.rule, v.type, v.outcome, v.detail)


def _reference_bucket(rule: str, workload: str) -> Fraction:
    """The bucket as docs/policy.md defines it: the first 8 bytes of sha256("rule\\0workload"),
    as a big-endian number, modulo 1,000,000, in hundredths of a percent."""
    first16hex = hashlib.sha256((rule + "\0" + workload).encode()).hexdigest()[:16]
    return Fraction(int(first16hex, 16) % 10**6, 10**4)


ORDERS = {"app.kubernetes.io/name": "orders"}


# --- each rule's verdict, alone --------------------------------------------------------------

JUDGED = [
    # (rule, pod labels, expected verdict (rule, type, outcome, detail), version chosen)
    pytest.param(VersionRule("r", "app", "1.8.1", sidecar="msg-mesh"), ORDERS,
                 ("r", "app", "other-sidecar", "applies to msg-mesh"), "1.8.0", id="other-sidecar"),
    pytest.param(VersionRule("r", "app", "1.8.1", sidecar="rpc-mesh"), ORDERS,
                 ("r", "app", "won", "matched → 1.8.1"), "1.8.1", id="its-own-sidecar"),
    pytest.param(VersionRule("r", "bugfix", "7.0"), ORDERS,
                 ("r", "bugfix", "not-allowed", "7.0 is not an allowed version of rpc-mesh"), "1.8.0", id="not-allowed"),
    pytest.param(VersionRule("r", "app", "1.8.1", namespaces=("shop",)), ORDERS,
                 ("r", "app", "won", "matched → 1.8.1"), "1.8.1", id="namespace-in"),
    pytest.param(VersionRule("r", "app", "1.8.1", namespaces=("bank", "shopping")), ORDERS,
                 ("r", "app", "no-match", "namespace shop not in ['bank', 'shopping']"), "1.8.0", id="namespace-out"),
    pytest.param(VersionRule("r", "app", "1.8.1", apps=("orders",)), ORDERS,
                 ("r", "app", "won", "matched → 1.8.1"), "1.8.1", id="app-in"),
    pytest.param(VersionRule("r", "app", "1.8.1", apps=("payments", "billing")), ORDERS,
                 ("r", "app", "no-match", "app orders not in ['payments', 'billing']"), "1.8.0", id="app-out"),
    pytest.param(VersionRule("r", "app", "1.8.1", apps=("payments",)), {},
                 ("r", "app", "no-match", "app (no app label) not in ['payments']"), "1.8.0", id="app-unlabelled"),
    pytest.param(VersionRule("r", "zone", "1.8.1", zones=("a",)), {**ORDERS, "topology.kubernetes.io/zone": "a"},
                 ("r", "zone", "won", "matched → 1.8.1"), "1.8.1", id="zone-in"),
    pytest.param(VersionRule("r", "zone", "1.8.1", zones=("a", "c")), {**ORDERS, "topology.kubernetes.io/zone": "b"},
                 ("r", "zone", "no-match", "zone b not in ['a', 'c']"), "1.8.0", id="zone-out"),
    pytest.param(VersionRule("r", "zone", "1.8.1", zones=("a",)), ORDERS,
                 ("r", "zone", "no-match", "zone (no zone label) not in ['a']"), "1.8.0", id="zone-unlabelled"),
    pytest.param(VersionRule("r", "bugfix", "1.8.1", reason="leak under TLS renegotiation"), ORDERS,
                 ("r", "bugfix", "won", "leak under TLS renegotiation → 1.8.1"), "1.8.1", id="reason"),
    # checks in order: the first that fails is the one reported
    pytest.param(VersionRule("r", "app", "7.0", sidecar="msg-mesh", expires=NOW - TICK), ORDERS,
                 ("r", "app", "other-sidecar", "applies to msg-mesh"), "1.8.0", id="other-sidecar-first"),
    pytest.param(VersionRule("r", "app", "7.0", expires=NOW - TICK), ORDERS,
                 ("r", "app", "expired", "expired at 2026-11-25T11:59:59.999999+00:00"), "1.8.0", id="expired-before-allowed"),
    pytest.param(VersionRule("r", "app", "7.0", namespaces=("bank",)), ORDERS,
                 ("r", "app", "not-allowed", "7.0 is not an allowed version of rpc-mesh"), "1.8.0", id="allowed-before-namespace"),
    pytest.param(VersionRule("r", "app", "1.8.1", namespaces=("bank",), apps=("payments",)), ORDERS,
                 ("r", "app", "no-match", "namespace shop not in ['bank']"), "1.8.0", id="namespace-before-app"),
    pytest.param(VersionRule("r", "app", "1.8.1", apps=("payments",), zones=("a",)), ORDERS,
                 ("r", "app", "no-match", "app orders not in ['payments']"), "1.8.0", id="app-before-zone"),
]


@pytest.mark.parametrize(("rule", "labels", "verdict", "version"), JUDGED)
def test_each_rule_is_judged_with_its_reason(rule: VersionRule, labels: dict[str, str],
                                             verdict: tuple[str, str, str, str], version: str) -> None:
    choice = _choose(_pod(labels), _versions(rule))
    assert _only(choice) == verdict
    assert choice.version == version
    won = verdict[2] == "won"
    assert (choice.source, choice.rule) == ((rule.type, "r") if won else ("baseline", None))
    assert choice.image == f"registry.example.com/mesh/mosn:{version}"


@pytest.mark.parametrize(("expires", "outcome"), [
    (NOW - TICK, "expired"),   # a moment before now
    (NOW, "expired"),          # at now: the rule has just run out
    (NOW + TICK, "won"),       # a moment after now: still in force
])
def test_expiry_is_judged_at_its_edge(expires: datetime, outcome: str) -> None:
    choice = _choose(_pod(ORDERS), _versions(VersionRule("r", "app", "1.8.1", expires=expires)))
    assert choice.verdicts[0].outcome == outcome
    if outcome == "expired":
        assert (choice.version, choice.expires) == ("1.8.0", None)
    else:
        # the winner's expiry is handed on, so a cached answer is not kept past it
        assert (choice.version, choice.expires) == ("1.8.1", NOW + TICK)


def test_expired_detail_is_the_instant_in_iso_form() -> None:
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    choice = _choose(_pod(ORDERS), _versions(VersionRule("old", "app", "1.8.1", expires=at)))
    assert _only(choice) == ("old", "app", "expired", "expired at 2026-01-01T00:00:00+00:00")


# --- experiments -------------------------------------------------------------------------

def test_experiment_bucket_is_the_documented_hash() -> None:
    # worked out with sha256 by hand: the first 16 hex digits of sha256("canary\0shop/Pod/orders")
    # are c05af38d326eb3f6, which modulo 1,000,000 is 176886 -> 17.6886
    assert experiment_bucket("canary", "shop/Pod/orders") == Fraction(176886, 10_000)
    # "canary\0shop/Deployment/orders": 5319f8822806d299 -> 757785 -> 75.7785
    assert experiment_bucket("canary", "shop/Deployment/orders") == Fraction(757785, 10_000)
    # salted with the rule: "other\0shop/Deployment/orders": 6252473e79a09bf2 -> 324786
    assert experiment_bucket("other", "shop/Deployment/orders") == Fraction(324786, 10_000)
    for i in range(50):
        assert experiment_bucket(f"e{i}", f"ns/StatefulSet/s{i}") == _reference_bucket(f"e{i}", f"ns/StatefulSet/s{i}")


STEP = Fraction(1, 10_000)
AT = Fraction(176886, 10_000)  # the bucket of shop/Pod/orders in "canary" (above)


@pytest.mark.parametrize(("percent", "verdict"), [
    (AT - STEP, ("no-match", "workload shop/Pod/orders is at 17.69, outside the first 17.6885%")),
    (AT, ("no-match", "workload shop/Pod/orders is at 17.69, outside the first 17.6886%")),
    (AT + STEP, ("won", "workload shop/Pod/orders is at 17.69, inside the first 17.6887% → 1.9.0-rc.1")),
    (Fraction(10), ("no-match", "workload shop/Pod/orders is at 17.69, outside the first 10%")),
    (Fraction(25, 2), ("no-match", "workload shop/Pod/orders is at 17.69, outside the first 12.5%")),
    (Fraction(100), ("won", "workload shop/Pod/orders is at 17.69, inside the first 100% → 1.9.0-rc.1")),
])
def test_experiment_takes_the_workloads_below_its_percent(percent: Fraction, verdict: tuple[str, str]) -> None:
    rule = VersionRule("canary", "experiment", "1.9.0-rc.1", percent=percent, reason="not shown for experiments")
    choice = _choose(_pod(ORDERS), _versions(rule))
    assert _only(choice) == ("canary", "experiment", *verdict)
    assert choice.version == ("1.9.0-rc.1" if verdict[0] == "won" else "1.8.0")


def test_experiment_filters_come_before_the_bucket() -> None:
    rule = VersionRule("canary", "experiment", "1.9.0-rc.1", percent=Fraction(100), apps=("payments",))
    assert _only(_choose(_pod(ORDERS), _versions(rule))) == (
        "canary", "experiment", "no-match", "app orders not in ['payments']")


# --- precedence, shadowing and the namespace pin ----------------------------------------------

def test_every_rule_gets_a_verdict_in_precedence_order() -> None:
    versions = _versions(
        VersionRule("z", "zone", "1.8.1", zones=("a",)),
        VersionRule("a1", "app", "1.9.0-rc.1", apps=("orders",), expires=NOW + timedelta(days=1)),
        VersionRule("a2", "app", "1.8.1", apps=("orders",), reason="second app rule"),
        VersionRule("b", "bugfix", "1.8.1", apps=("payments",)),
    )
    choice = _choose(_pod({**ORDERS, "topology.kubernetes.io/zone": "a"}), versions)
    assert [(v.rule, v.type, v.outcome, v.detail) for v in choice.verdicts] == [
        ("b", "bugfix", "no-match", "app orders not in ['payments']"),
        ("a1", "app", "won", "matched → 1.9.0-rc.1"),
        ("a2", "app", "shadowed", "matched, but app rule a1 won first"),
        ("z", "zone", "shadowed", "matched, but app rule a1 won first"),
    ]
    assert (choice.version, choice.source, choice.rule, choice.expires) == ("1.9.0-rc.1", "app", "a1", NOW + timedelta(days=1))
    assert choice.warnings == ()


def test_a_shadowed_rule_does_not_hand_on_its_expiry() -> None:
    versions = _versions(VersionRule("b", "bugfix", "1.8.1"),
                         VersionRule("a", "app", "1.9.0-rc.1", expires=NOW + timedelta(days=1)))
    choice = _choose(_pod(ORDERS), versions)
    assert (choice.rule, choice.expires) == ("b", None)
    assert choice.verdicts[1] == RuleVerdict("a", "app", "shadowed", "matched, but bugfix rule b won first")


def test_namespace_pin_wins_over_app_and_zone_rules() -> None:
    versions = _versions(VersionRule("a", "app", "1.8.1"), VersionRule("z", "zone", "1.8.1"))
    choice = _choose(_pod(ORDERS), versions, ns_pin="1.9.0-rc.1")
    assert [(v.rule, v.type, v.outcome, v.detail) for v in choice.verdicts] == [
        ("namespace", "namespace", "won", "namespace shop pins 1.9.0-rc.1"),
        ("a", "app", "shadowed", "matched, but namespace rule shop/meshfit-policy won first"),
        ("z", "zone", "shadowed", "matched, but namespace rule shop/meshfit-policy won first"),
    ]
    assert (choice.version, choice.source, choice.rule, choice.expires) == ("1.9.0-rc.1", "namespace", "shop/meshfit-policy", None)


def test_namespace_pin_is_shadowed_by_a_bugfix_or_experiment() -> None:
    versions = _versions(VersionRule("canary", "experiment", "1.8.1", percent=Fraction(100)))
    choice = _choose(_pod(ORDERS), versions, ns_pin="1.9.0-rc.1")
    assert [(v.rule, v.outcome, v.detail) for v in choice.verdicts] == [
        ("canary", "won", "workload shop/Pod/orders is at 17.69, inside the first 100% → 1.8.1"),
        ("namespace", "shadowed", "pins 1.9.0-rc.1, but experiment won first"),
    ]
    assert choice.verdicts[1].type == "namespace"
    assert (choice.version, choice.source) == ("1.8.1", "experiment")


def test_namespace_pin_of_a_version_not_allowed_is_passed_over() -> None:
    choice = _choose(_pod(ORDERS), _versions(VersionRule("a", "app", "1.8.1")), ns_pin="7.0")
    assert [(v.rule, v.outcome) for v in choice.verdicts] == [("a", "won")]
    assert (choice.version, choice.source) == ("1.8.1", "app")


def test_no_namespace_verdict_without_a_namespace_pin() -> None:
    choice = _choose(_pod(ORDERS), _versions())
    assert (choice.verdicts, choice.version, choice.source, choice.rule) == ((), "1.8.0", "baseline", None)


# --- pod pins ----------------------------------------------------------------------------------

def test_pod_pin_wins_and_shadows_everything_after_it() -> None:
    versions = _versions(VersionRule("b", "bugfix", "1.8.1"))
    choice = _choose(_pod(ORDERS, {PIN: "rpc-mesh=1.9.0-rc.1"}), versions, ns_pin="1.8.1")
    assert [(v.rule, v.type, v.outcome, v.detail) for v in choice.verdicts] == [
        (PIN, "pin", "won", "the pod pins rpc-mesh=1.9.0-rc.1"),
        ("b", "bugfix", "shadowed", "matched, but pin rule meshfit.io/version won first"),
        ("namespace", "namespace", "shadowed", "pins 1.8.1, but pin won first"),
    ]
    assert (choice.version, choice.source, choice.rule, choice.warnings) == ("1.9.0-rc.1", "pin", PIN, ())


def test_pod_pin_refused_when_the_policy_disallows_pins() -> None:
    choice = _choose(_pod(ORDERS, {PIN: "1.9.0-rc.1"}), _versions(allow_pod_pin=False))
    assert _only(choice) == (PIN, "pin", "not-allowed", "pod pins are disabled by policy")
    assert choice.warnings == ("rpc-mesh: pod pin '1.9.0-rc.1' ignored: the policy does not allow pod pins",)
    assert (choice.version, choice.source) == ("1.8.0", "baseline")


def test_pod_pin_refused_when_the_version_is_not_allowed() -> None:
    choice = _choose(_pod(ORDERS, {PIN: "7.0"}), _versions())
    assert _only(choice) == (PIN, "pin", "not-allowed", "7.0 is not in the allowed set")
    assert choice.warnings == ("rpc-mesh: pod pin '7.0' ignored: not an allowed version (1.8.0, 1.8.1, 1.9.0-rc.1)",)
    assert (choice.version, choice.source) == ("1.8.0", "baseline")


@pytest.mark.parametrize(("value", "version"), [
    ("1.8.1", "1.8.1"),                              # bare: every sidecar
    ("1.8.1,rpc-mesh=1.9.0-rc.1", "1.9.0-rc.1"),     # a named pin beats the bare one
    ("rpc-mesh=1.9.0-rc.1,1.8.1", "1.9.0-rc.1"),     # whatever their order
    ("msg-mesh=2.3.0,1.8.1", "1.8.1"),               # the bare one for the sidecars not named
])
def test_pod_pin_named_or_bare(value: str, version: str) -> None:
    choice = _choose(_pod(ORDERS, {PIN: value}), _versions())
    assert (choice.version, choice.source) == (version, "pin")


@pytest.mark.parametrize("value", ["msg-mesh=2.3.0", "", "   ", ",", 5, None])
def test_pod_pin_that_names_nothing_for_this_sidecar_leaves_no_trace(value: Any) -> None:
    p = _pod(ORDERS)
    p["metadata"]["annotations"] = {PIN: value}
    choice = _choose(p, _versions())
    assert (choice.verdicts, choice.warnings, choice.version, choice.source) == ((), (), "1.8.0", "baseline")


# --- labels, images and the workload ------------------------------------------------------

@pytest.mark.parametrize(("labels", "wins"), [
    ({"team/app": "orders"}, True),              # the policy's app label
    ({"app": "orders"}, True),                   # else the plain app label
    ({"team/app": "", "app": "orders"}, True),   # an empty app label falls through too
    ({"app.kubernetes.io/name": "orders"}, False),  # the default label is not the policy's
    ({"team/app": "billing", "app": "orders"}, False),  # the policy's label first
])
def test_app_is_read_from_the_policys_label_then_app(labels: dict[str, str], wins: bool) -> None:
    versions = _versions(VersionRule("a", "app", "1.8.1", apps=("orders",)), app_label="team/app")
    assert _choose(_pod(labels), versions).source == ("app" if wins else "baseline")


def test_zone_is_read_from_the_policys_label() -> None:
    versions = _versions(VersionRule("z", "zone", "1.8.1", zones=("a",)), zone_label="site/zone")
    assert _choose(_pod({"site/zone": "a"}), versions).source == "zone"
    assert _only(_choose(_pod({"topology.kubernetes.io/zone": "a"}), versions))[3] == "zone (no zone label) not in ['a']"


def test_image_from_the_policys_images_else_image_colon_version() -> None:
    rpc = SidecarVersions("1.8.0", ("1.8.0", "1.8.1"), images={"1.8.1": "mirror.example.com/mosn@sha256:abc"})
    assert _choose(_pod(ORDERS), _versions(VersionRule("a", "app", "1.8.1"), rpc=rpc)).image == "mirror.example.com/mosn@sha256:abc"
    assert _choose(_pod(ORDERS), _versions(rpc=rpc)).image == "registry.example.com/mesh/mosn:1.8.0"


def _owned(kind: str | None, name: str | None, **extra: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"controller": True, **extra}
    if kind is not None:
        ref["kind"] = kind
    if name is not None:
        ref["name"] = name
    return ref


@pytest.mark.parametrize(("meta", "workload"), [
    # no owner: the app name, else the plain app label, else generateName, else the name
    ({"name": "p", "generateName": "g-", "labels": {"app.kubernetes.io/name": "n", "app": "a"}}, "shop/Pod/n"),
    ({"name": "p", "generateName": "g-", "labels": {"app.kubernetes.io/name": "", "app": "a"}}, "shop/Pod/a"),
    ({"name": "p", "generateName": "g-", "labels": {"app": ""}}, "shop/Pod/g-"),
    ({"name": "p", "generateName": ""}, "shop/Pod/p"),
    ({}, "shop/Pod/"),
    ({"name": "p", "ownerReferences": []}, "shop/Pod/p"),
    # the controller among the owners, else the first owner
    ({"ownerReferences": [{"kind": "A", "name": "a"}, {"kind": "B", "name": "b", "controller": True}]}, "shop/B/b"),
    ({"ownerReferences": [{"kind": "A", "name": "a"}, {"kind": "B", "name": "b", "controller": False}]}, "shop/A/a"),
    ({"ownerReferences": [_owned(None, None)]}, "shop//"),
    # a Deployment's ReplicaSet, named <deployment>-<pod-template-hash>
    ({"labels": {"pod-template-hash": "5d9c7b"}, "ownerReferences": [_owned("ReplicaSet", "web-5d9c7b")]}, "shop/Deployment/web"),
    ({"labels": {"pod-template-hash": "5d9c7b"}, "ownerReferences": [_owned("ReplicaSet", "web5d9c7b")]}, "shop/ReplicaSet/web5d9c7b"),
    ({"labels": {"pod-template-hash": "5d9c7b"}, "ownerReferences": [_owned("ReplicaSet", "web-5d9c7c")]}, "shop/ReplicaSet/web-5d9c7c"),
    ({"labels": {"pod-template-hash": ""}, "ownerReferences": [_owned("ReplicaSet", "web-")]}, "shop/ReplicaSet/web-"),
    ({"ownerReferences": [_owned("ReplicaSet", "web-5d9c7b")]}, "shop/ReplicaSet/web-5d9c7b"),
    ({"labels": {"pod-template-hash": "5d9c7b"}, "ownerReferences": [_owned("StatefulSet", "db-5d9c7b")]}, "shop/StatefulSet/db-5d9c7b"),
    # a CronJob's Job, named <cronjob>-<scheduled minute> (8 digits or more)
    ({"ownerReferences": [_owned("Job", "settle-29012345")]}, "shop/CronJob/settle"),
    ({"ownerReferences": [_owned("Job", "a-b-290123456")]}, "shop/CronJob/a-b"),
    ({"ownerReferences": [_owned("Job", "settle-2901234")]}, "shop/Job/settle-2901234"),
    ({"ownerReferences": [_owned("Job", "settle-2901234x")]}, "shop/Job/settle-2901234x"),
    ({"ownerReferences": [_owned("Job", "-29012345")]}, "shop/Job/-29012345"),
    ({"ownerReferences": [_owned("Deployment", "settle-29012345")]}, "shop/Deployment/settle-29012345"),
])
def test_workload_is_the_owner_people_think_of(meta: dict[str, Any], workload: str) -> None:
    assert workload_of({"metadata": meta}, "shop") == workload


def test_workload_of_a_pod_without_metadata() -> None:
    assert workload_of({}, "ns") == "ns/Pod/"
    assert workload_of({"metadata": None}, "ns") == "ns/Pod/"


def test_experiment_buckets_the_whole_workload() -> None:
    """Two pods of one Deployment (different ReplicaSets) land in one bucket."""
    rule = VersionRule("canary", "experiment", "1.9.0-rc.1", percent=Fraction(757786, 10_000))  # just above 75.7785
    for template_hash in ("5d9c7b", "6f8a1e"):
        p = _pod({"app.kubernetes.io/name": "x", "pod-template-hash": template_hash})
        p["metadata"]["ownerReferences"] = [_owned("ReplicaSet", f"orders-{template_hash}")]
        assert _only(_choose(p, _versions(rule)))[2:] == (
            "won", "workload shop/Deployment/orders is at 75.78, inside the first 75.7786% → 1.9.0-rc.1")


def test_verdict_and_choice_are_values() -> None:
    choice = _choose(_pod(ORDERS), _versions())
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.version = "x"  # type: ignore[misc]
