"""The fleet view and the inspections on pods with hot-upgrade and dormant slots: no false alarms, real ones named.

An idle alt slot and a dormant slot legitimately run the empty image; the live
slot is the one compared, and after a hot upgrade the live slot is ``NAME-alt``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from slotted import EMPTY, slotted
from test_fleet_inspections import NOW, app, running, with_baseline

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.fleet import DesiredVersions, FleetView, sidecar_states
from policy.inject import inject
from policy.inspections import accounting_findings, version_findings
from policy.model import Policy
from policy.pod_accounting import account_pod
from policy.pod_entry import reduce_pod
from policy.quantity import Quantity
from policy.sidecar_status import parse_status

RPC_180 = "registry.example.com/mesh/mosn:1.8.0"
RPC_181 = "registry.example.com/mesh/mosn:1.8.1"


def _policy(baseline: str = "1.8.0", **sidecars: dict[str, Any]) -> Policy:
    return slotted(with_baseline(baseline), **sidecars)


def _meshed(policy: Policy, name: str = "web") -> dict[str, Any]:
    return running(inject(app(name, "2", "2Gi"), Namespace("shop", None), policy, now=NOW).pod)


def _problems(pod: dict[str, Any], policy: Policy) -> dict[str, tuple[str, ...]]:
    states = sidecar_states(pod, DesiredVersions(policy, {}, NOW))
    assert states is not None
    return {s.sidecar: s.problems for s in states}


def _containers(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for k in ("initContainers", "containers") for c in pod["spec"].get(k) or ()}


def _set_image(pod: dict[str, Any], container: str, image: str) -> None:
    """As the controller's in-place image change and the kubelet's restart leave it."""
    _containers(pod)[container]["image"] = image
    for s in pod["status"]["initContainerStatuses"] + pod["status"]["containerStatuses"]:
        if s["name"] == container:
            s["image"], s["imageID"] = image, f"{image}@sha256:{'1' * 64}"


def test_a_hot_pod_agrees_although_its_alt_slot_runs_the_empty_image() -> None:
    policy = _policy(rpc_mesh={"hot": True})
    pod = _meshed(policy)
    assert _containers(pod)["rpc-mesh-alt"]["image"] == EMPTY
    assert _problems(pod, policy) == {"rpc-mesh": (), "msg-mesh": ()}
    assert version_findings(pod, sidecar_states(pod, DesiredVersions(policy, {}, NOW))) == []
    assert accounting_findings(pod) == []
    states = sidecar_states(pod, DesiredVersions(policy, {}, NOW)) or []
    rpc = next(s for s in states if s.sidecar == "rpc-mesh")
    assert rpc.live == "rpc-mesh" and rpc.active and rpc.running_version == "1.8.0"


def test_after_a_hot_upgrade_the_alt_slot_is_the_one_compared() -> None:
    pod = _meshed(_policy(rpc_mesh={"hot": True}))
    # the controller started 1.8.1 in the alt slot, handed over, idled the old slot, and recorded it
    _set_image(pod, "rpc-mesh-alt", RPC_181)
    _set_image(pod, "rpc-mesh", EMPTY)
    annotations = pod["metadata"]["annotations"]
    status = parse_status(annotations[STATUS])
    rpc = status.sidecar("rpc-mesh")
    assert rpc is not None
    upgraded = dataclasses.replace(rpc, version="1.8.1", image=RPC_181, live="rpc-mesh-alt", previous="1.8.0")
    annotations[STATUS] = status.with_sidecar(upgraded).to_json()
    newer = _policy("1.8.1", rpc_mesh={"hot": True})
    assert _problems(pod, newer) == {"rpc-mesh": (), "msg-mesh": ()}
    assert accounting_findings(pod) == [], "an image change moves no resources"
    # and against the old baseline it is stale, by the live slot's running version
    states = sidecar_states(pod, DesiredVersions(_policy(rpc_mesh={"hot": True}), {}, NOW)) or []
    rpc_state = next(s for s in states if s.sidecar == "rpc-mesh")
    assert rpc_state.problems == ("stale",) and rpc_state.running_version == "1.8.1" and rpc_state.live == "rpc-mesh-alt"


def test_the_live_slot_running_something_else_is_still_found() -> None:
    policy = _policy(rpc_mesh={"hot": True})
    pod = _meshed(policy)
    pod["status"]["initContainerStatuses"][0]["image"] = "registry.example.com/mesh/mosn:0.9"
    assert "running_differs_from_spec" in _problems(pod, policy)["rpc-mesh"]
    edited = _meshed(policy)
    _containers(edited)["rpc-mesh"]["image"] = RPC_181
    findings = version_findings(edited, sidecar_states(edited, DesiredVersions(policy, {}, NOW)))
    assert "spec_differs_from_record" in {f.code for f in findings}


def test_a_missing_alt_slot_is_named() -> None:
    policy = _policy(rpc_mesh={"hot": True})
    pod = _meshed(policy)
    pod["spec"]["initContainers"] = [c for c in pod["spec"]["initContainers"] if c["name"] != "rpc-mesh-alt"]
    assert _problems(pod, policy)["rpc-mesh"] == ("sidecar_missing",)
    (finding,) = [f for f in version_findings(pod, sidecar_states(pod, DesiredVersions(policy, {}, NOW)))
                  if f.code == "sidecar_missing"]
    assert finding.message == "rpc-mesh: recorded, but the pod has no container rpc-mesh-alt"
    codes = {(f.code, f.message.split(":")[0]) for f in accounting_findings(pod)}
    assert ("sidecar_missing", "rpc-mesh (slot rpc-mesh-alt)") in codes


def test_a_dormant_pod_agrees_and_goes_stale_by_its_recorded_version() -> None:
    policy = _policy(msg_mesh={"dormant": True}, rpc_mesh={"dormant": True, "hot": True})
    pod = _meshed(policy)
    assert _containers(pod)["rpc-mesh"]["image"] == _containers(pod)["msg-mesh"]["image"] == EMPTY
    assert _problems(pod, policy) == {"rpc-mesh": (), "msg-mesh": ()}
    assert accounting_findings(pod) == []
    states = sidecar_states(pod, DesiredVersions(policy, {}, NOW)) or []
    assert all(not s.active and s.running_version is None for s in states)
    newer = _policy("1.8.1", msg_mesh={"dormant": True}, rpc_mesh={"dormant": True, "hot": True})
    stale = sidecar_states(pod, DesiredVersions(newer, {}, NOW)) or []
    rpc = next(s for s in stale if s.sidecar == "rpc-mesh")
    assert rpc.problems == ("stale",)
    (finding,) = version_findings(pod, stale)
    assert finding.message.startswith("rpc-mesh: is dormant (recorded 1.8.0), the policy now chooses 1.8.1")


def test_a_dormant_slot_given_the_version_without_a_record_is_found() -> None:
    policy = _policy(msg_mesh={"dormant": True})
    pod = _meshed(policy)
    _set_image(pod, "msg-mesh", "registry.example.com/mesh/msg-agent:2.3.0")
    (finding,) = [f for f in version_findings(pod, sidecar_states(pod, DesiredVersions(policy, {}, NOW)))
                  if f.code == "spec_differs_from_record"]
    assert finding.message == ("msg-mesh: spec image registry.example.com/mesh/msg-agent:2.3.0, recorded the empty "
                               "image while dormant")


def test_the_fleet_view_counts_dormant_sidecars_as_dormant() -> None:
    policy = _policy(msg_mesh={"dormant": True})
    view = FleetView(DesiredVersions(policy, {}, NOW), ("namespace",))
    view.add(_meshed(policy))
    cell = view.cells[("msg-mesh", ("shop",))]
    assert cell.running == {"dormant": 1} and cell.recorded == {"2.3.0": 1} and cell.disagreeing == 0
    assert view.pods_disagreeing == 0


def test_tampered_slot_resources_are_named_by_slot() -> None:
    pod = _meshed(_policy(rpc_mesh={"hot": True}))
    alt = _containers(pod)["rpc-mesh-alt"]
    alt["resources"]["requests"]["cpu"] = "1m"
    codes = [(f.code, f.message.split(":")[0]) for f in accounting_findings(pod)]
    assert ("sidecar_resources_differ", "rpc-mesh (slot rpc-mesh-alt)") in codes
    # R(pod) is held by the pod-level request: only the slot's own share gives the edit away
    assert {c for c, _ in codes} == {"sidecar_resources_differ"}
    no_limit = _meshed(_policy(rpc_mesh={"hot": True}))
    del _containers(no_limit)["rpc-mesh-alt"]["resources"]["limits"]["cpu"]
    assert ("sidecar_without_cpu_quota", "rpc-mesh (slot rpc-mesh-alt)") in [
        (f.code, f.message.split(":")[0]) for f in accounting_findings(no_limit)]


def test_a_record_with_a_bad_slot_list_is_a_bad_record() -> None:
    pod = _meshed(_policy(rpc_mesh={"hot": True}))
    record = json.loads(pod["metadata"]["annotations"][ACCOUNTING])
    record["sidecars"][0]["slots"] = record["sidecars"][0]["slots"][:1]
    broken = copy.deepcopy(pod)
    broken["metadata"]["annotations"][ACCOUNTING] = json.dumps(record)
    (finding,) = accounting_findings(broken)
    assert finding.code == "bad_record" and "slots must name two or more distinct containers" in finding.message


def test_the_extender_accounts_a_hot_pod_as_one_sidecar_requests_and_both_slots_exposure() -> None:
    policy = _policy(rpc_mesh={"hot": True})
    swap = dataclasses.replace(policy, resources=dataclasses.replace(policy.resources, variant="swap"))
    burstable = app("web", "2", "2Gi")
    burstable["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "4"
    pod = running(inject(burstable, Namespace("shop", None), swap, now=NOW).pod)
    accounted = account_pod(pod)
    assert accounted.requests == {"cpu": Quantity.parse("2"), "memory": Quantity.parse("2Gi")}
    # rpc-mesh is 1/4 of the 4-core limit = 1 core per slot, msg-mesh 200m: 2200m beyond the pod's limit
    assert accounted.exposure["cpu"] == Quantity.parse("2200m")
    entry = reduce_pod(pod)
    assert entry.exp_cpu == accounted.exposure["cpu"].nanos and entry.error is None
