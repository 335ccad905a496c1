"""Each inspection's findings word for word, on pods and records written out by hand.

``meshfit check`` prints the check, code, subject, message and hint of every
finding, and the fleet controller and alerts key on the check and code: a
finding is asserted whole, with the figures worked out here from the
hand-written pod, not taken from the code under test.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from fractions import Fraction
from typing import Any

import pytest
from test_fleet_inspections import NOW, POLICY, app, running

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.fleet import SidecarState
from policy.inject import inject
from policy.inspections import (NodeExposure, accounting_findings, count_exposure, exposure_findings,
                                missed_injection, node_allocatable, version_findings)
from policy.model import NamespacePolicy, Policy, SidecarOverride
from policy.pod_entry import PodEntry

GIB = 2**30 * 10**9  # nanos
CORE = 10**9

# -- versions ------------------------------------------------------------------------
RPC_180 = "registry.example.com/mesh/mosn:1.8.0"
RPC_181 = "registry.example.com/mesh/mosn:1.8.1"
RPC_190 = "registry.example.com/mesh/mosn:1.9.0"
VERSION_HINTS = {
    "stale": "the policy now chooses another version: upgrade the sidecar (meshfit.io/target) or roll the workload",
    "spec_differs_from_record": "the sidecar's image was changed outside meshfit: restore it, or roll the workload "
                                "so the webhook injects it afresh",
    "running_differs_from_spec": "the kubelet runs another image than the spec asks for: look at the pod's events "
                                 "and the container's restarts (kubectl describe pod)",
    "sidecar_missing": "the record lists a sidecar the pod has no container for: roll the workload",
    "not_in_policy": "the policy no longer has this sidecar (or the namespace disables it): roll the workload to "
                     "remove it, or restore the sidecar in the policy",
}
WEB_1 = {"metadata": {"name": "web-1", "namespace": "shop"}}


def _state(*problems: str, **changes: Any) -> SidecarState:
    """rpc-mesh recorded and running 1.8.0 while the policy's baseline is 1.8.1."""
    base = SidecarState(sidecar="rpc-mesh", desired_version="1.8.1", desired_image=RPC_181, desired_rule="baseline",
                        recorded_version="1.8.0", recorded_image=RPC_180, spec_image=RPC_180, running_image=RPC_180,
                        running_image_id="registry.example.com/mesh/mosn@sha256:0f0f", running_version="1.8.0",
                        problems=problems, live="rpc-mesh")
    return dataclasses.replace(base, **changes)


VERSION_CASES = [
    pytest.param(_state("stale"),
                 "rpc-mesh: runs 1.8.0 (recorded 1.8.0), the policy now chooses 1.8.1 (baseline) → " + RPC_181,
                 id="stale"),
    pytest.param(_state("stale", running_version=None, recorded_version=None, desired_rule="bugfix:cve-1"),
                 "rpc-mesh: runs ? (recorded ?), the policy now chooses 1.8.1 (bugfix:cve-1) → " + RPC_181,
                 id="stale-versions-unknown"),
    pytest.param(_state("stale", active=False, running_version=None),
                 "rpc-mesh: is dormant (recorded 1.8.0), the policy now chooses 1.8.1 (baseline) → " + RPC_181,
                 id="stale-dormant"),
    pytest.param(_state("spec_differs_from_record", spec_image=RPC_190),
                 f"rpc-mesh: spec image {RPC_190}, recorded {RPC_180}", id="spec-edited"),
    pytest.param(_state("spec_differs_from_record", spec_image=RPC_190, live=""),
                 f"rpc-mesh: spec image {RPC_190}, recorded {RPC_180}", id="spec-edited-no-live-slot"),
    pytest.param(_state("spec_differs_from_record", spec_image=RPC_190, live="rpc-mesh-alt"),
                 f"rpc-mesh (live slot rpc-mesh-alt): spec image {RPC_190}, recorded {RPC_180}",
                 id="spec-edited-alt-slot-live"),
    pytest.param(_state("running_differs_from_spec", running_image=RPC_190,
                        running_image_id="registry.example.com/mesh/mosn@sha256:1e1e"),
                 f"rpc-mesh: running {RPC_190} (registry.example.com/mesh/mosn@sha256:1e1e), spec {RPC_180}",
                 id="running-other-image"),
    pytest.param(_state("running_differs_from_spec", running_image=RPC_190, running_image_id=None,
                        live="rpc-mesh-alt"),
                 f"rpc-mesh (live slot rpc-mesh-alt): running {RPC_190} (no imageID), spec {RPC_180}",
                 id="running-other-image-no-id"),
    pytest.param(_state("sidecar_missing"),
                 "rpc-mesh: recorded, but the pod has no container of that name", id="missing-unnamed"),
    pytest.param(_state("sidecar_missing", missing=("rpc-mesh",)),
                 "rpc-mesh: recorded, but the pod has no container of that name", id="missing-itself"),
    pytest.param(_state("sidecar_missing", missing=("rpc-mesh", "rpc-mesh-alt")),
                 "rpc-mesh: recorded, but the pod has no container rpc-mesh, rpc-mesh-alt", id="missing-both-slots"),
    pytest.param(_state("not_in_policy", sidecar="msg-mesh", recorded_version="2.3.0"),
                 "msg-mesh: recorded 2.3.0, not injected by the policy now", id="dropped"),
    pytest.param(_state("not_in_policy", sidecar="msg-mesh", recorded_version=None),
                 "msg-mesh: recorded ?, not injected by the policy now", id="dropped-version-unknown"),
]


@pytest.mark.parametrize(("state", "message"), VERSION_CASES)
def test_a_version_finding_names_the_sidecar_and_both_sides(state: SidecarState, message: str) -> None:
    (code,) = state.problems
    assert [f.to_dict() for f in version_findings(WEB_1, [state])] == [
        {"check": "versions", "code": code, "subject": "pod shop/web-1", "message": message,
         "hint": VERSION_HINTS[code]}]


def test_every_problem_of_every_sidecar_is_one_finding_in_order() -> None:
    states = [_state("spec_differs_from_record", "running_differs_from_spec", spec_image=RPC_190),
              _state(sidecar="msg-mesh"), _state("not_in_policy", sidecar="trace-mesh", recorded_version="0.1")]
    found = [(f.code, f.message.split(":")[0]) for f in version_findings({"metadata": {"name": "web-2"}}, states)]
    assert found == [("spec_differs_from_record", "rpc-mesh"), ("running_differs_from_spec", "rpc-mesh"),
                     ("not_in_policy", "trace-mesh")]
    assert {f.subject for f in version_findings({"metadata": {"name": "web-2"}}, states)} == {"pod default/web-2"}


def test_an_unreadable_status_is_one_finding() -> None:
    assert [f.to_dict() for f in version_findings(WEB_1, None)] == [
        {"check": "versions", "code": "bad_status", "subject": "pod shop/web-1",
         "message": "meshfit.io/status does not parse",
         "hint": "meshfit.io/status does not parse: roll the workload so the webhook writes it afresh"}]


# -- accounting ----------------------------------------------------------------------
TAMPERED = ("the record and the spec disagree: if the spec was resized by hand, run `meshfit reaccount`; if the "
            "record was edited, roll the workload so the webhook records it afresh")
NO_QUOTA = "re-account with `meshfit reaccount` under a policy with a CPU floor, or roll the workload"
STARVES = "it would starve under CPU shares (docs/design.md#lesson-4)"

# One native sidecar and the app: R(pod) = 250m + 750m = 1 CPU, 128Mi + 896Mi = 1Gi;
# L(pod) = 500m + 1 = 1500m, 128Mi + 1Gi = 1152Mi.
SIDECAR = {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
APP = {"requests": {"cpu": "750m", "memory": "896Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
RECORD: dict[str, Any] = {
    "v": 1, "mode": "overcommit", "variant": "swap", "original": {"cpu": "1", "memory": "1Gi"},
    "sidecars": [{"name": "rpc-mesh", "version": "1.8.0", **SIDECAR}],
    "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1500m", "memory": "1152Mi"},
    "overcommit": {"cpu": "500m"}, "exposure": "node",
}


def _pod(record: Any = None, sidecar: dict[str, Any] | None = None, app_resources: dict[str, Any] | None = None,
         legacy: bool = False) -> dict[str, Any]:
    """``shop/web-1`` with rpc-mesh (native, or ``legacy``: a regular container) and ``record`` as its accounting."""
    rpc = {"name": "rpc-mesh", "image": RPC_180, "resources": copy.deepcopy(SIDECAR if sidecar is None else sidecar)}
    own = {"name": "app", "image": "registry.example.com/app:1",
           "resources": copy.deepcopy(APP if app_resources is None else app_resources)}
    spec = {"containers": [rpc, own]} if legacy else {"initContainers": [{**rpc, "restartPolicy": "Always"}],
                                                      "containers": [own]}
    text = record if isinstance(record, (str, int)) else json.dumps(RECORD if record is None else record)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "annotations": {ACCOUNTING: text}}, "spec": spec}


def _record(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(RECORD), **changes}


def _rpc(resources: dict[str, Any], **more: Any) -> dict[str, Any]:
    """rpc-mesh's entry in the record's ``sidecars``."""
    return {"name": "rpc-mesh", "version": "1.8.0", **copy.deepcopy(resources), **more}


def _found(pod: dict[str, Any]) -> list[tuple[str, str, str]]:
    findings = accounting_findings(pod)
    assert {(f.check, f.subject) for f in findings} <= {("accounting", "pod shop/web-1")}
    return [(f.code, f.message, f.hint) for f in findings]


NO_CPU_LIMIT = {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "128Mi"}}
NO_CPU = {"requests": {"memory": "128Mi"}, "limits": {"memory": "128Mi"}}
CPU_LIMIT_ONLY = {"requests": {"memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}
ACCOUNTING_CASES = [
    pytest.param(_pod(), [], id="as-recorded"),
    pytest.param(_pod(legacy=True), [], id="legacy-sidecar-is-a-regular-container"),
    pytest.param(_pod(_record(original={"cpu": "750m", "memory": "1Gi"}, leak={"cpu": "250m"})), [],
                 id="leak-explains-the-difference"),
    pytest.param(_pod(_record(original={"cpu": "2", "memory": "1Gi"})),
                 [("requests_differ_from_original", "R(pod) is cpu 1, memory 1Gi; the record says A = cpu 2, memory 1Gi",
                   TAMPERED)], id="original-edited"),
    pytest.param(_pod(_record(original={"cpu": "500m", "memory": "1Gi"}, leak={"cpu": "250m"})),
                 [("requests_differ_from_original",
                   "R(pod) is cpu 1, memory 1Gi; the record says A = cpu 500m, memory 1Gi + leak cpu 250m, memory -",
                   TAMPERED)], id="leak-short"),
    pytest.param(_pod(_record(requests={"cpu": "1100m", "memory": "1Gi"})),
                 [("record_requests_differ", "R(pod) is cpu 1, memory 1Gi; the record says cpu 1100m, memory 1Gi",
                   TAMPERED)], id="requests-edited"),
    pytest.param(_pod(_record(requests={"cpu": "1"})),
                 [("record_requests_differ", "R(pod) is cpu 1, memory 1Gi; the record says cpu 1, memory -",
                   TAMPERED)], id="requests-without-memory"),
    pytest.param(_pod(_record(limits={"cpu": "1500m", "memory": "2Gi"})),
                 [("record_limits_differ", "L(pod) is cpu 1500m, memory 1152Mi; the record says cpu 1500m, memory 2Gi",
                   TAMPERED)], id="limits-edited"),
    pytest.param(_pod(_record(limits={"cpu": "1500m"})),
                 [("record_limits_differ", "L(pod) is cpu 1500m, memory 1152Mi; the record says cpu 1500m, memory -",
                   TAMPERED)], id="limits-unbounded-in-the-record"),
    pytest.param(_pod(_record(sidecars=[_rpc(SIDECAR), _rpc(SIDECAR, name="msg-mesh", version="2.3.0")])),
                 [("sidecar_missing", "msg-mesh: in the record, not in the spec", TAMPERED)], id="sidecar-gone"),
    pytest.param(_pod(sidecar={"requests": SIDECAR["requests"], "limits": {"cpu": "400m", "memory": "128Mi"}}),
                 [("record_limits_differ", "L(pod) is cpu 1400m, memory 1152Mi; the record says cpu 1500m, memory 1152Mi",
                   TAMPERED),
                  ("sidecar_resources_differ", "rpc-mesh: spec requests cpu 250m, memory 128Mi limits cpu 400m, "
                   "memory 128Mi; recorded requests cpu 250m, memory 128Mi limits cpu 500m, memory 128Mi", TAMPERED)],
                 id="sidecar-limit-edited"),
    # records that agree with their spec, of sidecars without CPU quota (L(pod) has no CPU bound then)
    pytest.param(_pod(_record(sidecars=[_rpc(NO_CPU_LIMIT)],
                              limits={"memory": "1152Mi"}), sidecar=NO_CPU_LIMIT),
                 [("sidecar_without_cpu_quota", f"rpc-mesh: no CPU limit: {STARVES}", NO_QUOTA)], id="no-cpu-limit"),
    pytest.param(_pod(_record(sidecars=[_rpc(NO_CPU)], limits={"memory": "1152Mi"},
                              original={"cpu": "750m", "memory": "1Gi"}, requests={"cpu": "750m", "memory": "1Gi"}),
                      sidecar=NO_CPU),
                 [("sidecar_without_cpu_quota", f"rpc-mesh: no CPU request: {STARVES}", NO_QUOTA)], id="no-cpu"),
    # the CPU request defaults to the limit: R(pod) is 500m + 750m
    pytest.param(_pod(_record(sidecars=[_rpc({"requests": {"cpu": "500m", "memory": "128Mi"},
                                                "limits": CPU_LIMIT_ONLY["limits"]})],
                              original={"cpu": "1250m", "memory": "1Gi"}, requests={"cpu": "1250m", "memory": "1Gi"}),
                      sidecar=CPU_LIMIT_ONLY), [], id="cpu-limit-only"),
    # a pod that declares no memory, and a record that leaves memory out of A (and bounds none)
    pytest.param(_pod(_record(original={"cpu": "1"}, requests={"cpu": "1", "memory": "0"}, limits={"cpu": "1500m"},
                              sidecars=[_rpc({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}})]),
                      sidecar={"requests": {"cpu": "250m"}, "limits": {"cpu": "500m"}},
                      app_resources={"requests": {"cpu": "750m"}, "limits": {"cpu": "1"}}), [], id="no-memory-anywhere"),
]


@pytest.mark.parametrize(("pod", "expected"), ACCOUNTING_CASES)
def test_the_record_against_the_spec(pod: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    assert _found(pod) == expected


def test_a_slot_that_lacks_cpu_is_named_by_slot_and_sidecar() -> None:
    slots = [{"name": "rpc-mesh", **SIDECAR}, {"name": "rpc-mesh-alt", **NO_CPU_LIMIT}]
    record = _record(sidecars=[_rpc(SIDECAR, slots=slots)])
    pod = _pod(record)
    pod["spec"]["initContainers"].append({"name": "rpc-mesh-alt", "image": RPC_180, "restartPolicy": "Always",
                                          "resources": copy.deepcopy(NO_CPU_LIMIT)})
    # the alt slot adds 250m and 128Mi to R(pod) and takes the CPU bound off L(pod)
    pod["metadata"]["annotations"][ACCOUNTING] = json.dumps(
        {**record, "original": {"cpu": "1250m", "memory": "1152Mi"}, "requests": {"cpu": "1250m", "memory": "1152Mi"},
         "limits": {"memory": "1280Mi"}})
    assert _found(pod) == [("sidecar_without_cpu_quota", f"rpc-mesh (slot rpc-mesh-alt): no CPU limit: {STARVES}",
                            NO_QUOTA)]


def test_a_best_effort_pod_meshed_without_resources_is_no_finding() -> None:
    """``resources.bestEffort: besteffort`` leaves the sidecars without CPU on purpose: the record's variant says so."""
    besteffort = dataclasses.replace(POLICY, resources=dataclasses.replace(POLICY.resources, best_effort="besteffort"))
    bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"},
            "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}}
    pod = inject(bare, Namespace("shop", None), besteffort, now=NOW).pod
    assert [c.get("resources") or {} for c in pod["spec"]["initContainers"]] == [{}, {}]
    assert accounting_findings(pod) == []
    record = json.loads(pod["metadata"]["annotations"][ACCOUNTING])
    assert record["variant"] == "besteffort"
    pod["metadata"]["annotations"][ACCOUNTING] = json.dumps({**record, "variant": "swap"})
    assert [(f.code, f.message) for f in accounting_findings(pod)] == [
        ("sidecar_without_cpu_quota", f"rpc-mesh: no CPU request: {STARVES}"),
        ("sidecar_without_cpu_quota", f"msg-mesh: no CPU request: {STARVES}")]


BAD_RECORD_HINT = "roll the workload so the webhook records it afresh (the extender counts the pod from its spec meanwhile)"


@pytest.mark.parametrize(("text", "message"), [
    (json.dumps({**RECORD, "v": 2}), "accounting record must be an object with v=1"),
    (1, "accounting record is not a string"),
])
def test_a_record_that_cannot_be_read_is_one_finding(text: Any, message: str) -> None:
    assert [f.to_dict() for f in accounting_findings(_pod(text))] == [
        {"check": "accounting", "code": "bad_record", "subject": "pod shop/web-1", "message": message,
         "hint": BAD_RECORD_HINT}]


def test_resources_that_do_not_parse_are_one_finding() -> None:
    pod = _pod(app_resources={"requests": {"cpu": "lots", "memory": "896Mi"}, "limits": APP["limits"]})
    assert [f.to_dict() for f in accounting_findings(pod)] == [
        {"check": "accounting", "code": "unreadable_resources", "subject": "pod shop/web-1",
         "message": "invalid quantity 'lots'", "hint": "fix the pod's resources"}]


# -- exposure ------------------------------------------------------------------------
def test_node_allocatable_in_nanos_and_zero_where_absent() -> None:
    assert node_allocatable({"status": {"allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"}}}) == (
        4 * CORE, 16 * GIB)
    assert node_allocatable({"status": {"allocatable": {"cpu": "3500m"}}}) == (3500 * 10**6, 0)
    assert node_allocatable({"status": {"allocatable": {"memory": "1Gi"}}}) == (0, GIB)
    assert node_allocatable({"status": {"capacity": {"cpu": "4"}}}) == (0, 0)
    assert node_allocatable({"metadata": {"name": "n1"}}) == (0, 0)


def test_count_exposure_sums_running_pods_per_node() -> None:
    nodes = {"n1": NodeExposure("n1", alloc_cpu=4 * CORE, alloc_memory=GIB, known=True)}
    count_exposure(nodes, PodEntry("n2", "shop", CORE, GIB, exp_cpu=300, exp_memory=500))
    assert nodes["n2"] == NodeExposure("n2", exp_cpu=300, exp_memory=500, pods=1)
    count_exposure(nodes, PodEntry("n2", "shop", CORE, GIB, exp_cpu=200, exp_memory=100))
    count_exposure(nodes, PodEntry("n1", "shop", CORE, GIB, exp_cpu=7, exp_memory=9))
    for not_counted in (PodEntry("n2", "shop", CORE, GIB, exp_cpu=50, exp_memory=50, terminal=True),
                        PodEntry("n2", "shop", 0, 0, error="spec.containers[0].resources: invalid quantity 'lots'"),
                        PodEntry(None, "shop", CORE, GIB, exp_cpu=50, exp_memory=50)):
        count_exposure(nodes, not_counted)
    assert nodes == {"n1": NodeExposure("n1", alloc_cpu=4 * CORE, alloc_memory=GIB, known=True, exp_cpu=7, exp_memory=9,
                                        pods=1),
                     "n2": NodeExposure("n2", exp_cpu=500, exp_memory=600, pods=2)}


OVER_HINT = ("move exposed pods off the node (evict one; the extender places no more there), "
             "or raise scheduling.exposureCeiling if the node can take it")


def _ceiling(cpu: Fraction, memory: Fraction) -> Policy:
    return dataclasses.replace(POLICY, scheduling=dataclasses.replace(
        POLICY.scheduling, exposure_ceiling={"cpu": cpu, "memory": memory}))


def test_nodes_over_the_ceiling_in_name_order_and_unknown_nodes_skipped() -> None:
    nodes = [NodeExposure("n3", alloc_cpu=2000 * CORE, known=True, exp_cpu=600 * CORE, pods=4),
             NodeExposure("n0", exp_cpu=5 * CORE, pods=3),  # no allocatable known: nothing to judge against
             NodeExposure("n1", alloc_cpu=4 * CORE, alloc_memory=4 * GIB, known=True, exp_cpu=CORE + 1,
                          exp_memory=GIB, pods=1),
             NodeExposure("n2", alloc_cpu=4 * CORE, known=True, exp_cpu=CORE, pods=1)]
    assert [f.to_dict() for f in exposure_findings(nodes, POLICY)] == [
        {"check": "exposure", "code": "over_ceiling", "subject": "node n1",
         "message": "cpu exposure 25.0% of allocatable (ceiling 25%): 1000000001n of 4; "
                    "memory exposure 25.0% of allocatable (ceiling 10%): 1Gi of 4Gi (1 pod)", "hint": OVER_HINT},
        {"check": "exposure", "code": "over_ceiling", "subject": "node n3",
         "message": "cpu exposure 30.0% of allocatable (ceiling 25%): 600 of 2k (4 pods)", "hint": OVER_HINT}]


def test_a_ceiling_that_is_not_a_unit_fraction_passes_exactly_its_share() -> None:
    policy = _ceiling(Fraction(3, 4), Fraction(3, 10))
    at = NodeExposure("n1", alloc_cpu=4 * CORE, alloc_memory=10 * GIB, known=True, exp_cpu=3 * CORE,
                      exp_memory=3 * GIB, pods=2)
    assert exposure_findings([at], policy) == []
    over = dataclasses.replace(at, exp_cpu=3 * CORE + 1)
    assert [f.message for f in exposure_findings([over], policy)] == [
        "cpu exposure 75.0% of allocatable (ceiling 75%): 3000000001n of 4 (2 pods)"]


def test_the_ceiling_is_judged_in_integers_where_a_float_quotient_rounds_up() -> None:
    # 1 TB and a byte: alloc × 1/10 is 100000000000100000000 nanos exactly, a float quotient 7936 more
    alloc = 1_000_000_000_001 * 10**9
    limit = 100_000_000_000_100_000_000
    assert Fraction(alloc, 10) == limit and alloc / 10 == limit + 7936
    at = NodeExposure("n1", alloc_memory=alloc, known=True, exp_memory=limit, pods=1)
    assert exposure_findings([at], POLICY) == []
    over = dataclasses.replace(at, exp_memory=limit + 1)
    assert [(f.code, f.subject) for f in exposure_findings([over], POLICY)] == [("over_ceiling", "node n1")]


# -- missed injections ---------------------------------------------------------------
OPTED_IN = {"meshfit.io/inject": "enabled"}
MISSED_HINT = ("the pod was admitted while the webhook was not answering (failurePolicy: Ignore): "
               "roll its workload (kubectl rollout restart) to mesh it")


def test_a_missed_injection_names_the_sidecars_the_webhook_would_add() -> None:
    finding = missed_injection(running(app("web")), OPTED_IN, POLICY)
    assert finding is not None and finding.to_dict() == {
        "check": "missed-injections", "code": "missed_injection", "subject": "pod shop/web",
        "message": "no meshfit.io/status: the webhook would inject rpc-mesh, msg-mesh now (namespace shop is opted in)",
        "hint": MISSED_HINT}
    unnamespaced = running(app("web"))
    del unnamespaced["metadata"]["namespace"]
    finding = missed_injection(unnamespaced, OPTED_IN, POLICY)
    assert finding is not None and (finding.subject, finding.message) == (
        "pod default/web", "no meshfit.io/status: the webhook would inject rpc-mesh, msg-mesh now "
        "(namespace default is opted in)")


def test_the_namespace_policy_decides_which_sidecars_are_missed() -> None:
    only_rpc = NamespacePolicy("shop", "r7", sidecars={"msg-mesh": SidecarOverride(enabled=False)})
    finding = missed_injection(running(app("web")), OPTED_IN, POLICY, only_rpc)
    assert finding is not None and finding.message == (
        "no meshfit.io/status: the webhook would inject rpc-mesh now (namespace shop is opted in)")
    none = NamespacePolicy("shop", "r8", sidecars={"msg-mesh": SidecarOverride(enabled=False),
                                                   "rpc-mesh": SidecarOverride(enabled=False)})
    assert missed_injection(running(app("web")), OPTED_IN, POLICY, none) is None


@pytest.mark.parametrize("annotation", [STATUS, ACCOUNTING])
def test_either_record_means_the_webhook_saw_the_pod(annotation: str) -> None:
    pod = running(app("web"))
    pod["metadata"]["annotations"] = {annotation: "{}"}
    assert missed_injection(pod, OPTED_IN, POLICY) is None
