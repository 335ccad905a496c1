"""Re-accounting pods with hot-upgrade and dormant slots: the alt slot is the sidecar's, never the owner's.

As in test_reaccount.py, a plan applied to the injected pod must give what a
fresh injection of the original pod under the new policy gives, resource for
resource, or say why not; expected values come from ``tests/reference.py`` and
from that fresh injection, never from the plan.
"""

from __future__ import annotations

import copy
import dataclasses

import reference as ref
from hypothesis import event, given
from hypothesis import strategies as st
from podshapes import java_pod
from slotted import slotted
from test_inject_properties import pods
from test_inject_slots_properties import slot_policies
from test_reaccount import SKIPS, _apply, _resources

from policy.annotations import ACCOUNTING
from policy.decision import Namespace
from policy.inject import inject
from policy.model import Sizing
from policy.quantity import Quantity
from policy.reaccount import own_shape, plan_reaccount
from policy.record import parse_record

NS = Namespace("shop", None)


def test_the_owners_pod_is_rebuilt_without_either_slot() -> None:
    p = java_pod()
    pod = inject(p, NS, slotted(rpc_mesh={"hot": True}, msg_mesh={"dormant": True})).pod
    own = own_shape(pod, parse_record(pod["metadata"]["annotations"][ACCOUNTING]))
    assert [c["name"] for c in own["spec"]["containers"]] == ["app", "log-shipper"]
    assert "initContainers" not in own["spec"]
    assert not [k for k in own["metadata"]["annotations"] if k.startswith("meshfit.io/")]
    assert ref.effective_requests(own) == ref.effective_requests(p)


def test_a_hot_pod_under_its_own_policy_is_unchanged() -> None:
    policy = slotted(rpc_mesh={"hot": True}, msg_mesh={"dormant": True, "hot": True})
    pod = inject(java_pod(), NS, policy).pod
    assert plan_reaccount(pod, NS, policy).action == "unchanged"


def test_resizing_a_hot_sidecar_resizes_both_slots_and_keeps_r() -> None:
    old = slotted(rpc_mesh={"hot": True})
    bigger = slotted(rpc_mesh={"hot": True, "sizing": Sizing(mode="fixed", fixed={"cpu": Quantity.parse("301m"),
                                                                                  "memory": Quantity.parse("256Mi")})})
    p = java_pod()
    pod = inject(p, NS, old).pod
    plan = plan_reaccount(pod, NS, bigger, pod_level_resize=True)
    assert plan.action == "resize", plan.reason
    changed = {c.name: c.after for c in plan.changes}
    # fixed 301m, guaranteed 1/2 -> s = 150m (rounded down to 1m): live 75m, alt 75m; both limits 301m
    assert changed["rpc-mesh"] == {"requests": {"cpu": "75m", "memory": "128Mi"}, "limits": {"cpu": "301m", "memory": "256Mi"}}
    assert changed["rpc-mesh-alt"] == {"requests": {"cpu": "75m", "memory": "128Mi"}, "limits": {"cpu": "301m", "memory": "256Mi"}}
    after = _apply(pod, plan)
    fresh = inject(p, NS, bigger)
    assert _resources(after) == _resources(fresh.pod)
    assert ref.effective_requests(after) == ref.effective_requests(p)
    assert plan_reaccount(after, NS, bigger, pod_level_resize=True).action == "unchanged"


def test_turning_hot_upgrades_on_or_off_needs_a_new_pod() -> None:
    plain, hot = slotted(), slotted(rpc_mesh={"hot": True})
    for before, target in ((plain, hot), (hot, plain)):
        pod = inject(java_pod(), NS, before).pod
        plan = plan_reaccount(pod, NS, target, pod_level_resize=True)
        assert (plan.action, plan.code) == ("skip", "needs_recreate"), plan
        assert plan.reason == "the target adds or removes containers: recreate the pod"


def test_a_tampered_alt_slot_is_left_alone_with_the_reason() -> None:
    pod = inject(java_pod(), NS, slotted(rpc_mesh={"hot": True})).pod
    tampered = copy.deepcopy(pod)
    alt = next(c for c in tampered["spec"]["initContainers"] if c["name"] == "rpc-mesh-alt")
    alt["resources"]["limits"]["cpu"] = "3"
    plan = plan_reaccount(tampered, NS, slotted(rpc_mesh={"hot": True}))
    assert plan.code == "inconsistent" and "rpc-mesh (its slot rpc-mesh-alt)" in plan.reason
    missing = copy.deepcopy(pod)
    missing["spec"]["initContainers"] = [c for c in missing["spec"]["initContainers"] if c["name"] != "rpc-mesh-alt"]
    plan = plan_reaccount(missing, NS, slotted(rpc_mesh={"hot": True}))
    assert plan.code == "inconsistent" and "rpc-mesh-alt" in plan.reason


@given(pods(), slot_policies(), slot_policies(), st.booleans())
def test_a_slotted_plan_gives_what_a_fresh_injection_would_or_says_why(p: dict, old, new, same_slots: bool) -> None:
    if same_slots:  # mostly the same containers, so most plans resize rather than ask for a new pod
        new = dataclasses.replace(new, sidecars=tuple(
            dataclasses.replace(n, upgrade=o.upgrade, placement=o.placement, position=o.position)
            for o, n in zip(old.sidecars, new.sidecars)))
    injected = inject(p, NS, old)
    if not injected.injected or old.resources.mode != "overcommit":
        return
    pod = injected.pod
    assert plan_reaccount(pod, NS, old, pod_level_resize=True).action == "unchanged"
    plan = plan_reaccount(pod, NS, new, pod_level_resize=True)
    event(f"{plan.action} {plan.code}".strip())
    if plan.action == "skip":
        assert plan.code in SKIPS and plan.reason, plan
        assert plan.code != "inconsistent", plan.reason  # nobody else touched this pod
        return
    fresh = inject(p, NS, new)
    assert fresh.injected and fresh.record is not None
    after = _apply(pod, plan)
    assert _resources(after) == _resources(fresh.pod)
    assert ref.effective_requests(after) == ref.effective_requests(fresh.pod)
    assert plan_reaccount(after, NS, new, pod_level_resize=True).action == "unchanged"


def test_the_record_keeps_the_slot_split_through_versions_kept() -> None:
    """Re-accounting keeps the recorded versions and still records each slot's share."""
    old = slotted(rpc_mesh={"hot": True})
    versions = dict(old.versions.sidecars)
    versions["rpc-mesh"] = dataclasses.replace(versions["rpc-mesh"], baseline="1.8.1")
    new = dataclasses.replace(slotted(rpc_mesh={"hot": True, "cpu_request_floor": Quantity.parse("601m")}),
                              versions=dataclasses.replace(old.versions, sidecars=versions, rules=()))
    pod = inject(java_pod(), NS, old).pod
    plan = plan_reaccount(pod, NS, new, pod_level_resize=True)
    assert plan.record is not None, plan.reason
    rpc = plan.record.sidecars[0]
    assert rpc.version == "1.8.0" and [s.container for s in rpc.slots] == ["rpc-mesh", "rpc-mesh-alt"]
    # the floor raises s from 525m to 601m: live 301m, alt 300m
    assert rpc.requests["cpu"] == Quantity.parse("601m")
    assert (rpc.slots[0].requests["cpu"], rpc.slots[1].requests["cpu"]) == (Quantity.parse("301m"), Quantity.parse("300m"))
