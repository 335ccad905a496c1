"""Whole results of the engine, with the figures worked out by hand in the comments."""

from __future__ import annotations

from typing import Any

import pytest
from podshapes import container, pod
from policies import default_policy, with_injection, with_resources
from slotted import slotted

from policy.decision import Namespace
from policy.inject import inject
from policy.quantity import Quantity

SHOP = Namespace("shop", None)


def _resources(p: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c.get("resources") for k in ("initContainers", "containers") for c in p["spec"].get(k) or ()}


def test_carving_takes_from_the_app_only_never_from_the_pods_own_native_sidecar() -> None:
    own = pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
              init=[container("own", {"cpu": "500m", "memory": "256Mi"}, {"cpu": "500m", "memory": "256Mi"},
                              restart="Always")])
    result = inject(own, SHOP, with_resources(mode="carve"))
    assert result.injected
    # rpc-mesh: 1/4 of the app allocation's 1.5 cpu = 375m, 1/16 of 1280Mi = 80Mi; msg-mesh fixed 200m, 128Mi.
    # The app gives all 575m and 208Mi: 1000m - 575m = 425m, 1024Mi - 208Mi = 816Mi; "own" keeps its figures.
    assert _resources(result.pod) == {
        "rpc-mesh": {"requests": {"cpu": "375m", "memory": "80Mi"}, "limits": {"cpu": "375m", "memory": "80Mi"}},
        "msg-mesh": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "own": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "a": {"requests": {"cpu": "425m", "memory": "816Mi"}, "limits": {"cpu": "425m", "memory": "816Mi"}},
    }


@pytest.mark.parametrize("kind", ["containers", "initContainers"])
def test_a_container_limit_over_the_pod_level_limit_is_never_admitted(kind: str) -> None:
    # The owner's container (or init container) may burst to 2 cpu inside a 1-cpu pod:
    # Kubernetes refuses such a pod, so meshfit leaves it as it is.
    burst = container("b", {"cpu": "100m"}, {"cpu": "2"})
    p = (pod([container("a", {"cpu": "100m"}), burst], pod_limits={"cpu": "1"}) if kind == "containers"
         else pod([container("a", {"cpu": "100m"})], init=[burst], pod_limits={"cpu": "1"}))
    result = inject(p, SHOP, default_policy())
    assert (result.injected, result.skip_code, result.reason) == (
        False, "pod_too_small", "the sidecars' requests do not fit under the pod's limit")


def test_a_container_limit_at_the_pod_level_limit_is_admitted() -> None:
    p = pod([container("a", {"cpu": "100m"}), container("b", {"cpu": "100m"}, {"cpu": "1"})], pod_limits={"cpu": "1"})
    assert inject(p, SHOP, default_policy()).injected


GUARANTEED_1CPU = pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})])
ONE_CPU = {"cpu": Quantity.parse("1"), "memory": Quantity.parse("1Gi")}
NONE = {"cpu": None, "memory": None}
ZEROS = {"cpu": Quantity.parse("0"), "memory": Quantity.parse("0")}
WHOLE_CORE_NOTE = ("a Guaranteed pod with whole-core CPU requests: under the kubelet's static CPU manager policy "
                   "its containers no longer get exclusive cores once meshed")


def test_an_engine_skip_keeps_the_pods_figures() -> None:
    result = inject(GUARANTEED_1CPU, SHOP, with_resources(exclusive_cpu_pods="skip"))
    reason = ("the pod is Guaranteed with whole-core CPU requests and would lose the static CPU manager's "
              "exclusive cores (resources.exclusiveCpuPods: skip)")
    assert (result.injected, result.skip_code, result.reason) == (False, "exclusive_cpu", reason)
    assert result.warnings == [f"meshfit did not inject this pod: {reason}"]
    assert result.before is not None and result.before.effective == ONE_CPU
    assert result.before_limits == ONE_CPU and result.after is None


def test_a_decision_skip_keeps_the_pods_figures() -> None:
    result = inject(pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
                        annotations={"meshfit.io/inject": "false"}), SHOP, default_policy())
    assert not result.injected and result.skip_code == "pod_opt_out"
    assert result.before is not None and result.before.effective == ONE_CPU
    assert result.before_limits == ONE_CPU


def test_a_best_effort_pod_is_skipped_when_the_policy_says_so() -> None:
    result = inject(pod([container("a")]), SHOP, with_resources(best_effort="skip"))
    reason = "the pod is BestEffort and resources.bestEffort is skip"
    assert (result.skip_code, result.reason, result.warnings) == (
        "best_effort", reason, [f"meshfit did not inject this pod: {reason}"])
    assert result.before is not None and result.before.effective == ZEROS and result.before_limits == NONE


def test_best_effort_sidecars_are_noted_as_such() -> None:
    result = inject(pod([container("a")]), SHOP, with_resources(best_effort="besteffort"))
    assert result.injected and result.notes == [
        "rpc-mesh: cpu: 1/4 of 0 = 0, raised to the minimum 100m",
        "rpc-mesh: memory: 1/16 of 0 = 0, raised to the minimum 64Mi",
        "rpc-mesh: BestEffort pod: the sidecar gets no requests or limits",
        "msg-mesh: BestEffort pod: the sidecar gets no requests or limits",
    ]
    assert result.after is not None and result.after.effective == ZEROS


def test_an_allowed_qos_change_is_warned_with_its_setting() -> None:
    result = inject(GUARANTEED_1CPU, SHOP, with_resources(variant="swap", pod_level_resources=False,
                                                          qos_change="allow"))
    assert result.injected
    assert result.warnings == ["the QoS class changes from Guaranteed to Burstable (resources.qosChange: allow)"]
    assert result.notes == [WHOLE_CORE_NOTE]
    assert result.record is not None and result.record.exposure == "node"


def test_the_whole_core_note_and_the_injected_figures() -> None:
    result = inject(GUARANTEED_1CPU, SHOP, default_policy())
    assert result.injected and result.notes[0] == WHOLE_CORE_NOTE
    assert not any("slots carry none" in n for n in result.notes)  # no slots, whatever its probes
    assert result.before is not None and result.before.effective == ONE_CPU
    assert result.before_limits == ONE_CPU
    assert result.after is not None and result.after.effective == ONE_CPU  # R(pod) unchanged
    assert result.record is not None and result.record.exposure == "pod"


def test_additive_mode_records_why_r_grows() -> None:
    result = inject(pod([container("a", {"cpu": "1", "memory": "1Gi"})]), SHOP, with_resources(mode="additive"))
    # rpc-mesh 1/4 of 1 cpu = 250m and 1/16 of 1Gi = 64Mi, msg-mesh 200m and 128Mi, on top of the app.
    assert result.after is not None and result.after.effective == {
        "cpu": Quantity.parse("1450m"), "memory": Quantity.parse("1216Mi")}
    assert result.record is not None and result.record.leak_reasons == {
        "cpu": "additive mode adds the sidecars on top of the app",
        "memory": "additive mode adds the sidecars on top of the app"}
    assert result.record.exposure == "none" and result.warnings == []


def test_two_reasons_for_growth_are_joined_in_one_warning() -> None:
    result = inject(pod([container("a", {"cpu": "10m"})]), SHOP, with_resources(small_pods="leak"))
    # cpu: 100m + 50m of requests against the pod's 10m; memory: 64Mi + 128Mi against none.
    assert result.warnings == [
        "R(pod) grows by cpu 140m, memory 192Mi: the pod requests cpu 10m, less than the sidecars' requests 150m "
        "(resources.smallPods: leak); the pod requests no memory; the sidecars' memory requests are added "
        "(resources.bestEffort: requests)"]


@pytest.mark.parametrize("probes", [{"startup_probe": None},
                                    {"startup_probe": None, "readiness_probe": None,
                                     "liveness_probe": {"tcpSocket": {"port": 12220}}}])
def test_a_slotted_sidecar_with_any_probe_is_noted(probes: dict[str, Any]) -> None:
    policy = slotted(only="rpc-mesh", rpc_mesh={"hot": True, "placement": "legacy", **probes})
    result = inject(pod([container("a", {"cpu": "1", "memory": "1Gi"})]), SHOP, policy)
    assert result.injected and result.notes == [
        "rpc-mesh: its slots carry none of the policy's probes (an idle or dormant slot serves no port, and two "
        "slots share one network namespace)"]


@pytest.mark.parametrize(("current", "after"), [(None, "meshfit"), ("", "meshfit"),
                                                ("default-scheduler", "meshfit"), ("batch", "batch")])
def test_the_scheduler_name_replaces_only_the_default_one(current: str | None, after: str) -> None:
    p = pod([container("a", {"cpu": "1", "memory": "1Gi"})])
    if current is not None:
        p["spec"]["schedulerName"] = current
    result = inject(p, SHOP, with_injection(scheduler_name="meshfit"))
    assert result.injected and result.pod["spec"]["schedulerName"] == after


def test_carving_keeps_the_sizing_notes() -> None:
    result = inject(pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"})]), SHOP,
                    with_resources(mode="carve"))
    # rpc-mesh: 1/4 of 2 cpu = 500m (no note), 1/16 of 1Gi = 64Mi (at the minimum: no note).
    assert result.injected and result.notes == []
    starved = inject(pod([container("a", {"cpu": "1"}, {"cpu": "1"})]), SHOP, with_resources(mode="carve"))
    assert "rpc-mesh: memory: 1/16 of 0 = 0, raised to the minimum 64Mi" in starved.notes
