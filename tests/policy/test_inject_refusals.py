"""Each way a candidate variant is refused, with its skip code and its exact reason.

The reason is the text a user reads on the skipped pod (and the fleet audit shows),
the code is the metric label: both are pinned as written.
"""

from __future__ import annotations

import pytest
from podshapes import container, pod
from policies import default_policy, with_resources
from slotted import slotted

import policy.inject as engine
from policy.decision import Namespace
from policy.inject import inject
from policy.quantity import Quantity
from policy.sizing import SidecarSize

SHOP = Namespace("shop", None)
GUARANTEED_1CPU = pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})])


def _skip(p: dict, policy=None) -> tuple[str, str, list[str]]:
    result = inject(p, SHOP, policy or default_policy())
    assert not result.injected and result.patch == []
    return result.skip_code, result.reason, result.warnings


def test_a_pod_level_limit_below_both_sidecars_floors_names_them_both() -> None:
    # The pod sets its own pod-level limit, so only the pod-level variant applies; each
    # sidecar is capped at that 40m limit, under its 50m CPU request floor.
    p = pod([container("a", {"cpu": "10m", "memory": "1Gi"})], pod_limits={"cpu": "40m"})
    reason = "the pod's CPU limit cannot hold rpc-mesh, msg-mesh at the request floor"
    assert _skip(p) == ("pod_too_small", reason, [f"meshfit did not inject this pod: {reason}"])


@pytest.mark.parametrize("limit", ["49m", "50m", "51m"])
def test_the_floor_refusal_is_below_the_floor_only(limit: str) -> None:
    p = pod([container("a", {"cpu": "10m", "memory": "1Gi"})], pod_limits={"cpu": limit})
    result = inject(p, SHOP, default_policy())
    starved = "the pod's CPU limit cannot hold rpc-mesh, msg-mesh at the request floor"
    # 49m < 50m starves both sidecars; at 50m and above each fits at its floor.
    assert (result.reason == starved) is (limit == "49m")


def test_the_floor_refusal_falls_back_to_swap_with_a_note() -> None:
    p = pod([container("a", {"cpu": "10m"}, {"cpu": "40m"})])
    result = inject(p, SHOP, default_policy())
    assert result.injected and result.record is not None and result.record.variant == "swap"
    assert result.notes[0] == ("pod-level variant refused (the pod's CPU limit cannot hold rpc-mesh, msg-mesh at "
                               "the request floor): the swap variant applies")


def test_additive_mode_never_raises_the_users_pod_level_request() -> None:
    # additive keeps the app's 1 cpu and adds the sidecars: the containers would pass the pod's own 1 cpu.
    p = pod([container("a", {"cpu": "1"}, {"cpu": "1"})], pod_requests={"cpu": "1"})
    reason = ("additive mode would push the containers past the pod's own pod-level resources, which meshfit "
              "never raises")
    assert _skip(p, with_resources(mode="additive"))[:2] == ("pod_level_request", reason)


def test_a_qos_change_is_refused_with_its_reason() -> None:
    # swap would make the Guaranteed pod Burstable; the pod-level variant is not offered.
    reason = "the result would change the QoS class from Guaranteed to Burstable (resources.qosChange: skip)"
    assert _skip(GUARANTEED_1CPU, with_resources(variant="swap", pod_level_resources=False)) == (
        "qos_change", reason, [f"meshfit did not inject this pod: {reason}"])


def test_a_shortfall_in_the_donations_is_caught_by_the_invariant_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    # Donations that give nothing back would raise R(pod) by the sidecars' requests: the
    # guard refuses that result rather than admit it.
    monkeypatch.setattr(engine, "donation_plan", lambda *args, **kwargs: [])
    p = pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})])
    reason = ("the result would change R(pod) for cpu, memory beyond what the policy allows; "
              "the pod is left as it is")
    code, got, _ = _skip(p, with_resources(variant="swap", pod_level_resources=False))
    assert (code, got) == ("invariant", reason)


def test_a_hot_sidecar_with_under_two_millicores_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sizing keeps a hot sidecar at two slots' minimum; the guard behind it refuses
    # a size of 1m (which could not give each of the two slots 1m) should it ever come.
    def tiny(*args, **kwargs) -> SidecarSize:
        return SidecarSize(limits={"cpu": Quantity.parse("1m"), "memory": Quantity.parse("64Mi")}, requests={})

    monkeypatch.setattr(engine, "size_sidecar", tiny)
    policy = slotted(with_resources(mode="carve"), rpc_mesh={"hot": True, "placement": "legacy"},
                     msg_mesh={"hot": True, "placement": "legacy"})
    reason = ("too little CPU request to split between the two hot-upgrade slots of rpc-mesh (cpu 1m), "
              "msg-mesh (cpu 1m): each slot needs at least 1m")
    assert _skip(GUARANTEED_1CPU, policy)[:2] == ("pod_too_small", reason)


@pytest.mark.parametrize(("cpu", "refused"), [("1m", True), ("2m", False), ("3m", False)])
def test_the_hot_split_guard_is_at_two_millicores(monkeypatch: pytest.MonkeyPatch, cpu: str, refused: bool) -> None:
    def sized(*args, **kwargs) -> SidecarSize:
        return SidecarSize(limits={"cpu": Quantity.parse(cpu), "memory": Quantity.parse("64Mi")}, requests={})

    monkeypatch.setattr(engine, "size_sidecar", sized)
    policy = slotted(with_resources(mode="carve"), only="rpc-mesh", rpc_mesh={"hot": True, "placement": "legacy"})
    result = inject(GUARANTEED_1CPU, SHOP, policy)
    assert result.reason.startswith("too little CPU request to split") is refused


def test_a_hot_sidecar_without_a_cpu_size_is_not_split_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    def memory_only(*args, **kwargs) -> SidecarSize:
        return SidecarSize(limits={"memory": Quantity.parse("64Mi")}, requests={})

    monkeypatch.setattr(engine, "size_sidecar", memory_only)
    policy = slotted(with_resources(mode="carve"), only="rpc-mesh", rpc_mesh={"hot": True, "placement": "legacy"})
    result = inject(pod([container("a", {"memory": "1Gi"}, {"memory": "1Gi"})]), SHOP, policy)
    assert not result.reason.startswith("too little CPU request")
