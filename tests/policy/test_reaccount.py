"""Re-accounting plans: random pods injected under one random policy, re-planned under another.

A plan applied to the injected pod must give, resource for resource, what a
fresh injection of the original pod under the new policy gives — or say why
it cannot (another variant, other sidecars, a regular init container, a QoS
change). Expected values come from ``tests/reference.py`` and from the fresh
injection of the *original* pod, never from the plan itself.
"""

from __future__ import annotations

import copy
import dataclasses
from fractions import Fraction

import orjson
import reference as ref
from hypothesis import given
from policies import default_policy, with_resources
from test_inject_properties import pods, policies

from policy.annotations import ACCOUNTING
from policy.decision import Namespace
from policy.inject import inject
from policy.reaccount import ReaccountPlan, plan_reaccount

NS = Namespace("shop", None)
SKIPS = {"no_record", "bad_record", "mode", "inconsistent", "not_injected", "needs_recreate", "qos_change",
         "pod_level_resize"}


def _apply(pod: dict, plan: ReaccountPlan) -> dict:
    """What the apiserver stores after the resize and the record patch (an independent merge)."""
    out = copy.deepcopy(pod)
    for change in plan.changes:
        for c in out["spec"][change.kind]:
            if c["name"] == change.name:
                c["resources"] = copy.deepcopy(change.after)
    if plan.pod_level:
        out["spec"]["resources"] = copy.deepcopy(plan.pod_level)
    if plan.record is not None:
        out["metadata"]["annotations"][ACCOUNTING] = plan.record.to_json()
    return out


def _resources(pod: dict) -> dict:
    return {c["name"]: (ref.requests_of(c), ref.limits_of(c))
            for k in ("initContainers", "containers") for c in pod["spec"].get(k) or ()}


@given(pods(), policies(), policies())
def test_a_plan_gives_what_a_fresh_injection_would_or_says_why(p: dict, old, new) -> None:
    injected = inject(p, NS, old)
    if not injected.injected or old.resources.mode != "overcommit":
        return
    pod = injected.pod
    plan = plan_reaccount(pod, NS, new, pod_level_resize=True)
    fresh = inject(p, NS, new)
    if plan.action == "skip":
        assert plan.code in SKIPS and plan.reason, plan
        assert plan.code != "inconsistent", plan.reason  # nobody else touched this pod
        if plan.code == "not_injected":
            assert not fresh.injected
        return
    assert fresh.injected and fresh.record is not None
    after = _apply(pod, plan)
    assert _resources(after) == _resources(fresh.pod)
    assert ref.effective_requests(after) == ref.effective_requests(fresh.pod)
    assert ref.qos_class(after) == ref.qos_class(pod)
    # the invariants of a fresh injection hold on the re-accounted pod
    assert ref.effective_requests(after)[  "cpu"] - ref.effective_requests(p)["cpu"] == (
        fresh.record.leak["cpu"].units if "cpu" in fresh.record.leak else 0)
    for c in ref.sidecar_containers(after, {s.name for s in fresh.record.sidecars}):
        assert ("cpu" in ref.requests_of(c)) == ("cpu" in ref.limits_of(c))
    # only container resources move, and regular init containers never do
    for change in plan.changes:
        container = next(c for c in pod["spec"][change.kind] if c["name"] == change.name)
        assert change.kind == "containers" or container.get("restartPolicy") == "Always"
        assert change.before == container.get("resources", {})
    # a plan that changes pod-level resources needs the feature, which is off unless passed
    if plan.pod_level:
        assert plan_reaccount(pod, NS, new).code == "pod_level_resize"
    # the plan comes from the record, not the current requests: once applied there is nothing left to do
    again = plan_reaccount(after, NS, new, pod_level_resize=True)
    assert again.action == "unchanged", again
    # an interrupted run (resized, record not yet written) finishes with the record alone
    if plan.action == "resize":
        half = copy.deepcopy(after)
        half["metadata"]["annotations"][ACCOUNTING] = pod["metadata"]["annotations"][ACCOUNTING]
        resumed = plan_reaccount(half, NS, new, pod_level_resize=True)
        assert resumed.action == "record_only" and resumed.record == plan.record


@given(pods(), policies())
def test_the_same_policy_changes_nothing(p: dict, policy) -> None:
    injected = inject(p, NS, policy)
    if not injected.injected or policy.resources.mode != "overcommit":
        return
    plan = plan_reaccount(injected.pod, NS, policy, pod_level_resize=True)
    assert plan.action == "unchanged", plan


def test_a_tampered_pod_is_left_alone_with_the_reason() -> None:
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "labels": {"app": "x"}},
         "spec": {"containers": [{"name": "app", "image": "x",
                                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}]}}
    pod = inject(p, NS, default_policy()).pod
    tampered = copy.deepcopy(pod)
    tampered["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] = "3"
    plan = plan_reaccount(tampered, NS, with_resources(small_pods="skip"))
    assert (plan.action, plan.code) == ("skip", "inconsistent")
    assert plan.reason == "sidecar rpc-mesh's resources differ from the record: changed by someone else"
    bare = copy.deepcopy(p)
    assert plan_reaccount(bare, NS, default_policy()).code == "no_record"
    broken = copy.deepcopy(pod)
    broken["metadata"]["annotations"][ACCOUNTING] = "{not json"
    plan = plan_reaccount(broken, NS, default_policy())
    assert plan.code == "bad_record" and plan.reason.startswith("accounting record is not JSON: "), plan


def test_a_pod_whose_figures_disagree_with_its_record_is_left_alone_with_both() -> None:
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "labels": {"app": "x"}},
         "spec": {"containers": [{"name": "app", "image": "x",
                                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}]}}
    pod = inject(p, NS, default_policy()).pod  # the pod-level variant: R(pod) is spec.resources.requests
    record = orjson.loads(pod["metadata"]["annotations"][ACCOUNTING])
    record["original"]["cpu"] = "1500m"
    edited_record = copy.deepcopy(pod)
    edited_record["metadata"]["annotations"][ACCOUNTING] = orjson.dumps(record).decode()
    plan = plan_reaccount(edited_record, NS, default_policy())
    assert (plan.action, plan.code) == ("skip", "inconsistent")
    assert plan.reason == ("the spec and the record disagree: the pod's own shape rebuilt from the record has "
                           "R 1/1Gi, the record says A = 1500m/1Gi (changed by someone else)")
    edited_spec = copy.deepcopy(pod)
    edited_spec["spec"]["resources"]["requests"]["cpu"] = "1500m"
    plan = plan_reaccount(edited_spec, NS, default_policy())
    assert (plan.action, plan.code) == ("skip", "inconsistent")
    assert plan.reason == "the pod's R 1500m/1Gi differs from the recorded 1/1Gi: changed by someone else"


def test_what_a_resize_cannot_do_is_refused_with_the_reason() -> None:
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "labels": {"app": "x"}},
         "spec": {"containers": [{"name": "app", "image": "x",
                                  "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}]}}
    policy = default_policy()  # rpc-mesh and msg-mesh, the pod-level variant
    pod = inject(p, NS, policy).pod
    additive = inject(p, NS, with_resources(mode="additive")).pod
    assert (plan_reaccount(additive, NS, policy).code, plan_reaccount(additive, NS, policy).reason) == (
        "mode", "recorded under mode additive; re-accounting keeps overcommit pods in place only")
    one = dataclasses.replace(policy, sidecars=policy.sidecars[:1])
    plan = plan_reaccount(pod, NS, one)
    assert (plan.code, plan.reason) == (
        "needs_recreate", "the target policy injects other sidecars (rpc-mesh instead of rpc-mesh, msg-mesh): recreate the pod")
    plan = plan_reaccount(inject(p, NS, one).pod, NS, policy)
    assert (plan.code, plan.reason) == (
        "needs_recreate", "the target policy injects other sidecars (rpc-mesh, msg-mesh instead of rpc-mesh): recreate the pod")
    plan = plan_reaccount(pod, NS, with_resources(variant="swap"))
    assert (plan.code, plan.reason) == (
        "needs_recreate", "the target policy takes the swap variant, the pod has pod-level: the pod-level fields "
                          "cannot be added or removed in place; recreate the pod")
    # the QoS class the API reports is the pod's, whatever its spec would give
    reported = copy.deepcopy(pod)
    reported["status"] = {"qosClass": "Guaranteed"}
    plan = plan_reaccount(reported, NS, policy)
    assert (plan.code, plan.reason) == (
        "qos_change", "the result's QoS class Burstable differs from the pod's Guaranteed; a resize never changes the QoS class")
    # a regular init container heavier than the app: the target gives it another share of the budget
    heavy = copy.deepcopy(p)
    heavy["spec"]["initContainers"] = [{"name": "init", "image": "x", "resources": {
        "requests": {"cpu": "4", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}}}]
    plan = plan_reaccount(inject(heavy, NS, policy).pod, NS,
                          with_resources(guaranteed={"cpu": Fraction(1), "memory": Fraction(1)}), pod_level_resize=True)
    assert (plan.code, plan.reason) == (
        "needs_recreate", "the plan changes regular init container init, which pods/resize cannot change "
                          "(only containers and native sidecars): recreate the pod")
