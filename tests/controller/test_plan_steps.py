"""Each branch of the controller's decision, as the whole Step it returns.

test_plan_records.py pins the records of the main paths field by field; this
compares the entire :class:`controller.plan.Step` (kind, reason, patch, Event,
outcome, duration, requeue, operation) of every other branch, refusals
included, because each of those strings is shown to a person: in the Event,
in ``meshfit.io/operation`` on the pod, and in what ``suggest`` says would
work. Every expected value is written out by hand from the contract.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from local_zone import local_zone
from running_pods import (
    DIGEST_A,
    EMPTY,
    MOSN,
    NOW,
    RULES,
    after,
    annotation,
    decide,
    kubelet_reports,
    meshed_pod,
    stamp,
    with_annotation,
    with_target,
)

from controller.plan import Step
from policy.model import FleetPolicy, Policy
from policy.targets import Operation

ID_A = f"{MOSN}@{DIGEST_A}"
OP = "meshfit.io/operation"
STATUS = "meshfit.io/status"


def body(op: Operation, rv: str = "41", spec: dict[str, Any] | None = None, **annotations: str | None) -> dict:
    """The patch the controller sends: the resourceVersion read, the annotations, the images."""
    out: dict[str, Any] = {"metadata": {"resourceVersion": rv, "annotations": {**annotations, OP: op.to_json()}}}
    if spec is not None:
        out["spec"] = spec
    return out


def blocked(generation: int, sidecar: str, action: str, reason: str, suggest: str | None, *,
            from_: str | None = None, to: str | None = None, settled: dict[str, str] | None = None,
            rv: str = "41") -> Step:
    """A ``Blocked`` step as :func:`controller.plan._blocked` must write it."""
    op = Operation(generation, sidecar, action, "Blocked", reason=reason, from_=from_, to=to, started=stamp(),
                   finished=stamp(), suggest=suggest, settled=settled or {sidecar: "Blocked"})
    message = f"{sidecar}: {reason}" + (f" (what would work: {suggest})" if suggest else "")
    return Step("patch", message, patch=body(op, rv), event=("Warning", "SidecarOperationBlocked", message),
                outcome=(action, "blocked"), operation=op)


def record(**fields: Any) -> dict[str, Any]:
    return {"name": "rpc-mesh", "version": "1.8.0", "image": f"{MOSN}:1.8.0", "source": "baseline", **fields}


def with_record(pod: dict[str, Any], *sidecars: dict[str, Any]) -> dict[str, Any]:
    return with_annotation(pod, STATUS, {"v": 1, "policy": "r1", "sidecars": list(sidecars)})


def with_operation(pod: dict[str, Any], **fields: Any) -> dict[str, Any]:
    base = {"generation": 1, "sidecar": "rpc-mesh", "action": "in-place", "phase": "InProgress", "reason": "",
            "from": "1.8.0", "to": "1.8.1", "started": stamp(30)}
    return with_annotation(pod, OP, {**base, **fields})


def set_status(pod: dict[str, Any], container: str, **fields: Any) -> None:
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in pod["status"].get(key, []):
            if entry["name"] == container:
                entry.update(fields)


def drop_status(pod: dict[str, Any], container: str) -> None:
    for key in ("initContainerStatuses", "containerStatuses"):
        pod["status"][key] = [e for e in pod["status"].get(key, []) if e["name"] != container]


def hot_pod() -> dict[str, Any]:
    return meshed_pod(slots=("rpc-mesh", "rpc-mesh-alt"), empty_image=EMPTY)


def policy_with_empty_image(policy: Policy, empty: str = EMPTY) -> Policy:
    sidecars = tuple(dataclasses.replace(s, upgrade=dataclasses.replace(s.upgrade, empty_image=empty))
                     if s.name == "rpc-mesh" else s for s in policy.sidecars)
    return dataclasses.replace(policy, sidecars=sidecars)


def policy_without(policy: Policy, sidecar: str = "rpc-mesh") -> Policy:
    return dataclasses.replace(policy, sidecars=tuple(s for s in policy.sidecars if s.name != sidecar))


OLD_KUBELET = ("the node's kubelet v1.31.4 does not restart a native sidecar whose image changes "
               "(kubelets from 1.32 do)")


# -- refusing the whole target ------------------------------------------------------------------------


def test_a_pod_the_webhook_never_meshed_is_refused_whole_with_the_whole_step(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=4, version="1.8.1")
    del pod["metadata"]["annotations"][STATUS]
    reason = ("the pod has no meshfit.io/status: meshfit did not inject it, so it has no sidecars to change; "
              "recreate it under the webhook")
    op = Operation(4, "*", "auto", "Blocked", reason=reason, started=stamp(), finished=stamp(), suggest="recreate",
                   settled={"*": "Blocked"})
    step = decide(pod, policy)
    assert step == Step("patch", reason, patch=body(op), event=("Warning", "SidecarOperationBlocked", reason),
                        outcome=("auto", "blocked"), operation=op)
    # Recorded once: the same refusal for the same generation writes nothing more.
    assert decide(after(pod, step), policy) == Step("none", reason)


def test_an_invalid_target_is_refused_for_generation_zero_and_once(policy: Policy) -> None:
    pod = with_annotation(meshed_pod(), "meshfit.io/target", {"generation": 3, "sidecars": []})
    del pod["metadata"]["resourceVersion"]
    step = decide(pod, policy)
    assert step.operation is not None
    reason = step.operation.reason
    assert reason.startswith("meshfit.io/target is invalid: ")
    op = Operation(0, "*", "auto", "Blocked", reason=reason, started=stamp(), finished=stamp(),
                   settled={"*": "Blocked"})
    # No resourceVersion read: the patch is unconditional rather than conditional on a made-up one.
    assert step == Step("patch", reason, patch=body(op, rv=""), event=("Warning", "SidecarOperationBlocked", reason),
                        outcome=("auto", "blocked"), operation=op)
    again = with_annotation(pod, OP, op.to_json())
    assert decide(again, policy) == Step("none", reason)
    # The same reason for another generation is a new refusal.
    other = with_annotation(pod, OP, dataclasses.replace(op, generation=1).to_json())
    assert decide(other, policy).kind == "patch"


@pytest.fixture
def tokyo() -> Iterator[None]:
    """A controller whose local time zone is not UTC."""
    with local_zone():
        yield


def test_times_on_the_record_are_utc_whatever_the_clock_or_the_zone(policy: Policy, tokyo: None) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    del pod["metadata"]["annotations"][STATUS]
    local = NOW.astimezone(dt.timezone(dt.timedelta(hours=9)))
    step = decide(pod, policy, now=local)
    assert step.operation is not None
    assert (step.operation.started, step.operation.finished) == ("2026-12-01T12:00:00Z", "2026-12-01T12:00:00Z")


# -- nothing more to do -----------------------------------------------------------------------------


def test_a_target_blocked_whole_for_this_generation_is_not_tried_again(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=2, version="1.8.1")
    pod = with_operation(pod, generation=2, sidecar="*", action="auto", phase="Blocked", reason="x",
                         finished=stamp(), settled={"*": "Blocked"})
    assert decide(pod, policy) == Step("none", "the target was blocked for this generation")


def test_a_restart_already_done_is_in_sync_when_the_target_asks_for_none(policy: Policy) -> None:
    pod = with_record(with_target(meshed_pod(), version="1.8.0"), record(restart="t1"))
    assert decide(pod, policy) == Step("none", "in sync with the target")


# -- starting, in place -------------------------------------------------------------------------------


def test_an_upgrade_notes_the_restart_count_it_starts_from(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=2, version="1.8.1")
    set_status(pod, "rpc-mesh", restartCount=3)
    message = f"rpc-mesh: in-place 1.8.0 -> 1.8.1: rpc-mesh to {MOSN}:1.8.1"
    op = Operation(2, "rpc-mesh", "in-place", "InProgress", from_="1.8.0", to="1.8.1", started=stamp(),
                   container="rpc-mesh", image=f"{MOSN}:1.8.1", image_before=f"{MOSN}:1.8.0", restarts_before=3,
                   image_id_before=ID_A)
    spec = {"initContainers": [{"name": "rpc-mesh", "image": f"{MOSN}:1.8.1"}]}
    assert decide(pod, policy) == Step("patch", message, patch=body(op, spec=spec, **{"meshfit.io/slot-rpc-mesh": "1.8.1"}),
                                       event=("Normal", "SidecarOperationStarted", message), requeue_after=300.0,
                                       operation=op)


def test_a_sidecar_without_a_versions_entry_takes_the_policys_image_at_the_version(policy: Policy) -> None:
    unlisted = dataclasses.replace(policy, versions=dataclasses.replace(
        policy.versions, sidecars={k: v for k, v in policy.versions.sidecars.items() if k != "rpc-mesh"}))
    spec = next(s for s in policy.sidecars if s.name == "rpc-mesh")
    step = decide(with_target(meshed_pod(), version="7.0.0"), unlisted)
    assert step.patch is not None
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": f"{spec.image}:7.0.0"}]}


def test_an_unknown_kubelet_version_is_said_so(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1", action="in-place")
    reason = "the kubelet version of the pod's node is unknown (not reported)"
    assert decide(pod, policy, kubelet=None) == blocked(1, "rpc-mesh", "in-place", reason, "recreate",
                                                        from_="1.8.0", to="1.8.1")
    odd = "the kubelet version of the pod's node is unknown (vNext)"
    assert decide(pod, policy, kubelet="vNext") == blocked(1, "rpc-mesh", "in-place", odd, "recreate",
                                                           from_="1.8.0", to="1.8.1")


def test_a_forced_recreate_goes_through_the_workload(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=3, version="1.8.1", action="recreate")
    why = "the target asks for a recreate"
    op = Operation(3, "rpc-mesh", "recreate", "InProgress", reason=why, from_="1.8.0", to="1.8.1", started=stamp())
    message = f"rpc-mesh: recreate through ReplicaSet/shop-7d9 ({why})"
    owner = pod["metadata"]["ownerReferences"][0]
    assert decide(pod, policy) == Step("recreate", message, patch=body(op),
                                       event=("Normal", "SidecarOperationStarted", message), owner=owner,
                                       pin="rpc-mesh=1.8.1", operation=op)


def test_forcing_hot_on_a_sidecar_with_one_slot_says_what_it_needs(policy: Policy) -> None:
    reason = "rpc-mesh has one slot: a hot upgrade needs sidecars[].upgrade.hot when the pod is created"
    assert decide(with_target(meshed_pod(), version="1.8.1", action="hot"), policy) == blocked(
        1, "rpc-mesh", "hot", reason, "in-place", from_="1.8.0", to="1.8.1")


# -- starting, hot ------------------------------------------------------------------------------------


def test_a_forced_hot_upgrade_starts_in_the_idle_slot(policy: Policy) -> None:
    step = decide(with_target(hot_pod(), version="1.8.1", action="hot"), policy)
    assert step.patch is not None
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh-alt", "image": f"{MOSN}:1.8.1"}]}
    assert step.operation is not None and (step.operation.action, step.operation.step) == ("hot", "start")


def test_a_hot_upgrade_on_an_old_kubelet_is_a_recreate_when_the_controller_chooses(policy: Policy) -> None:
    step = decide(with_target(hot_pod(), version="1.8.1"), policy, kubelet="v1.31.4")
    assert step.kind == "recreate" and step.pin == "rpc-mesh=1.8.1"
    assert step.operation is not None
    assert (step.operation.action, step.operation.reason, step.operation.from_, step.operation.to) == (
        "recreate", OLD_KUBELET, "1.8.0", "1.8.1")


def test_a_forced_hot_upgrade_on_an_old_kubelet_is_blocked(policy: Policy) -> None:
    step = decide(with_target(hot_pod(), version="1.8.1", action="hot"), policy, kubelet="v1.31.4")
    assert step == blocked(1, "rpc-mesh", "hot", OLD_KUBELET, "recreate", from_="1.8.0", to="1.8.1")


def test_a_hot_upgrade_waits_for_the_idle_slot_to_be_reported(policy: Policy) -> None:
    pod = with_target(hot_pod(), version="1.8.1")
    drop_status(pod, "rpc-mesh-alt")
    assert decide(pod, policy) == Step("none", "waiting for the kubelet to report rpc-mesh-alt")


# -- activation ---------------------------------------------------------------------------------------


def test_activating_without_an_empty_image_is_blocked_with_the_whole_step(policy: Policy) -> None:
    reason = ("rpc-mesh has no emptyImage (sidecars[].upgrade.emptyImage): a sidecar is switched on and off in "
              "place through its empty image")
    pod = with_target(meshed_pod(active=False), active=True)
    assert decide(pod, policy) == blocked(1, "rpc-mesh", "activate", reason, "recreate")


def test_the_policys_empty_image_serves_a_record_without_one(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=2, active=False)
    message = f"rpc-mesh: deactivate 1.8.0 -> -: rpc-mesh to {EMPTY}"
    op = Operation(2, "rpc-mesh", "deactivate", "InProgress", from_="1.8.0", started=stamp(), container="rpc-mesh",
                   image=EMPTY, image_before=f"{MOSN}:1.8.0", image_id_before=ID_A)
    spec = {"initContainers": [{"name": "rpc-mesh", "image": EMPTY}]}
    assert decide(pod, policy_with_empty_image(policy)) == Step(
        "patch", message, patch=body(op, spec=spec, **{"meshfit.io/slot-rpc-mesh": ""}),
        event=("Normal", "SidecarOperationStarted", message), requeue_after=300.0, operation=op)


def test_activating_a_sidecar_the_policy_dropped_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), active=True)
    reason = "the policy has no sidecar rpc-mesh to take an image from"
    assert decide(pod, policy_without(policy)) == blocked(1, "rpc-mesh", "activate", reason, "recreate")


def test_activating_a_sidecar_with_no_version_anywhere_is_blocked(policy: Policy) -> None:
    pod = with_record(with_target(meshed_pod(active=False, empty_image=EMPTY), active=True),
                      {"name": "rpc-mesh", "active": False, "emptyImage": EMPTY})
    reason = "rpc-mesh has no version to run: neither the record nor the target names one"
    assert decide(pod, policy) == blocked(1, "rpc-mesh", "activate", reason, None)


def test_activating_on_an_old_kubelet_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), active=True)
    assert decide(pod, policy, kubelet="v1.31.4") == blocked(1, "rpc-mesh", "activate", OLD_KUBELET, "recreate")


def test_activating_waits_for_the_slot_to_be_reported(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), active=True)
    drop_status(pod, "rpc-mesh")
    assert decide(pod, policy) == Step("none", "waiting for the kubelet to report rpc-mesh")


def test_activating_at_a_new_version_records_that_version(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), active=True, version="1.8.1")
    started = after(pod, decide(pod, policy))
    on = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1")
    done = after(on, decide(on, policy))
    # The record says what runs: the version activated, its image, and the version it was dormant at.
    assert annotation(done, STATUS)["sidecars"][0] == record(version="1.8.1", image=f"{MOSN}:1.8.1",
                                                             emptyImage=EMPTY, previous="1.8.0")


def test_a_deactivation_succeeds_with_the_record_dormant(policy: Policy) -> None:
    pod = with_target(meshed_pod(empty_image=EMPTY), active=False)
    started = after(pod, decide(pod, policy))
    off = kubelet_reports(started, "rpc-mesh", EMPTY)
    done = after(off, decide(off, policy))
    assert annotation(done, STATUS)["sidecars"][0] == record(active=False, emptyImage=EMPTY)


# -- a dormant sidecar's version ------------------------------------------------------------------------


def test_a_dormant_version_keeps_what_was_settled_for_the_generation(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), generation=6, version="1.8.1")
    pod = with_operation(pod, generation=6, sidecar="msg-mesh", phase="Failed", finished=stamp(5),
                         settled={"msg-mesh": "Failed"})
    reason = "dormant: the version is recorded and runs once the sidecar is activated"
    op = Operation(6, "rpc-mesh", "in-place", "Succeeded", reason=reason, from_="1.8.0", to="1.8.1", started=stamp(),
                   finished=stamp(), settled={"msg-mesh": "Failed"})
    message = "rpc-mesh: dormant, now recorded at 1.8.1"
    status = orjson.dumps({"v": 1, "policy": "r1", "sidecars": [record(
        version="1.8.1", image=f"{MOSN}:1.8.1", active=False, emptyImage=EMPTY, previous="1.8.0")]}).decode()
    step = decide(pod, policy)
    assert step.patch is not None
    assert orjson.loads(step.patch["metadata"]["annotations"][STATUS]) == orjson.loads(status)
    step_status = step.patch["metadata"]["annotations"][STATUS]
    assert step == Step("patch", message, patch=body(op, **{STATUS: step_status}),
                        event=("Normal", "SidecarOperationSucceeded", message), outcome=("in-place", "succeeded"),
                        duration=0.0, operation=op)


# -- restart --------------------------------------------------------------------------------------------


def test_a_restart_waits_for_the_container_to_be_reported(policy: Policy) -> None:
    pod = with_target(meshed_pod(), restart="t1")
    drop_status(pod, "rpc-mesh")
    assert decide(pod, policy) == Step("none", "waiting for the kubelet to report rpc-mesh")


def test_a_restart_on_an_old_kubelet_is_blocked(policy: Policy) -> None:
    assert decide(with_target(meshed_pod(), restart="t1"), policy, kubelet="v1.31.4") == blocked(
        1, "rpc-mesh", "restart", OLD_KUBELET, "recreate")


def test_a_restart_without_another_reference_form_says_why(policy: Policy) -> None:
    pod = with_target(meshed_pod(), restart="t")
    pod["spec"]["initContainers"][0]["image"] = f"{MOSN}@{DIGEST_A}"
    reason = (f"rpc-mesh's image {MOSN}@{DIGEST_A} has no other reference form to restart it with (no tag, or no "
              "digest reported in its imageID)")
    assert decide(pod, policy) == blocked(1, "rpc-mesh", "restart", reason, "recreate")


def test_a_restart_notes_the_restart_count_it_starts_from(policy: Policy) -> None:
    pod = with_target(meshed_pod(), restart="t1")
    set_status(pod, "rpc-mesh", restartCount=2)
    step = decide(pod, policy)
    assert step.operation is not None and step.operation.restarts_before == 2


# -- recreate ---------------------------------------------------------------------------------------------


def test_a_recreate_follows_the_controlling_owner_not_the_first(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1", action="recreate")
    controller = pod["metadata"]["ownerReferences"][0]
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "c-1"},
                                          controller]
    step = decide(pod, policy)
    assert (step.kind, step.owner) == ("recreate", controller)


def test_the_refused_recreates_say_why_and_what_to_do(policy: Policy) -> None:
    bare = with_target(meshed_pod(owner=None), version="1.8.1", action="recreate")
    why = "the target asks for a recreate"
    assert decide(bare, policy) == blocked(
        1, "rpc-mesh", "recreate", f"{why}; the pod has no owning workload to recreate it, and meshfit never deletes "
        "a bare pod: delete and create it again yourself", None, to="1.8.1")
    job = with_target(meshed_pod(owner="Job"), version="1.8.1", action="recreate")
    assert decide(job, policy) == blocked(
        1, "rpc-mesh", "recreate", f"{why}; its owner Job/shop-7d9 is not a workload meshfit restarts (Deployment, "
        "StatefulSet, DaemonSet)", None, to="1.8.1")
    no_pins = dataclasses.replace(policy, versions=dataclasses.replace(policy.versions, allow_pod_pin=False))
    pod = with_target(meshed_pod(), version="1.8.1", action="recreate")
    assert decide(pod, no_pins) == blocked(
        1, "rpc-mesh", "recreate", f"{why}; a recreate pins the version for the webhook, and versions.allowPodPin "
        "is false", None, to="1.8.1")


def test_a_sidecar_added_without_a_version_pins_only_the_others(policy: Policy) -> None:
    pod = with_annotation(meshed_pod(), "meshfit.io/target", {"generation": 1, "sidecars": {"msg-mesh": {}}})
    step = decide(pod, policy)
    assert (step.kind, step.pin) == ("recreate", "rpc-mesh=1.8.0")
    assert step.operation is not None and (step.operation.from_, step.operation.to) == (None, None)


# -- resize -----------------------------------------------------------------------------------------------


def resize_target(pod: dict[str, Any], **resources: dict[str, str]) -> dict[str, Any]:
    return with_target(pod, resources=resources, action="resize")


POD_LEVEL = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}


def test_a_started_resize_is_the_whole_step(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    before = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
    wanted = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
    op = Operation(1, "rpc-mesh", "resize", "InProgress", from_="1.8.0", to="1.8.0", started=stamp(),
                   container="rpc-mesh", resources_before=before, resources=wanted)
    message = f"rpc-mesh: resize rpc-mesh to {wanted}"
    assert decide(pod, policy) == Step(
        "resize", message, patch=body(op), resize={"spec": {"initContainers": [{"name": "rpc-mesh",
                                                                                "resources": wanted}]}},
        event=("Normal", "SidecarOperationStarted", message), requeue_after=300.0, operation=op)


def test_a_resize_adding_a_resource_is_not_in_sync(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "200m"})
    del pod["spec"]["initContainers"][0]["resources"]["limits"]["cpu"]
    step = decide(pod, policy)
    assert step.resize is not None
    assert step.resize["spec"]["initContainers"][0]["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}


def test_a_resize_the_kubelet_reports_in_a_form_that_does_not_parse_is_not_done(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    started = after(pod, decide(pod, policy))
    wanted = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
    started["spec"]["initContainers"][0]["resources"] = wanted
    set_status(started, "rpc-mesh", resources={**wanted, "limits": {"cpu": "3OOm", "memory": "64Mi"}})
    assert decide(started, policy).reason == "rpc-mesh: resize waiting for the kubelet to actuate it"


def test_the_refused_resizes_say_why_and_what_works(policy: Policy) -> None:
    hot = resize_target(hot_pod(), limits={"cpu": "300m"})
    assert decide(hot, policy) == blocked(
        1, "rpc-mesh", "resize", "rpc-mesh has two slots sized alike: resizing one would leave the other unlike it",
        "recreate")
    own_request = resize_target(meshed_pod(), requests={"cpu": "150m", "memory": "100Mi"})
    own_request["spec"]["resources"] = POD_LEVEL
    assert decide(own_request, policy) == blocked(
        1, "rpc-mesh", "resize", "the containers' requests would exceed the pod's own request (pod-level "
        "resources) for cpu, memory, which meshfit never raises", "recreate")
    own_limit = resize_target(meshed_pod(), limits={"cpu": "2001m", "memory": "2Gi"})
    own_limit["spec"]["resources"] = POD_LEVEL
    assert decide(own_limit, policy) == blocked(
        1, "rpc-mesh", "resize", "rpc-mesh's limit would exceed the pod's own limit for cpu, memory", "recreate")
    r_pod = resize_target(meshed_pod(), requests={"cpu": "150m", "memory": "100Mi"})
    assert decide(r_pod, policy) == blocked(
        1, "rpc-mesh", "resize", "the resize would change R(pod) for cpu, memory: raise the pod's own budget (a "
        "pod-level request) or recreate it", "recreate")
    qos = resize_target(meshed_pod(), limits={"cpu": "100m"})
    qos["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"},
                                                 "limits": {"cpu": "1", "memory": "1Gi"}}
    assert decide(qos, policy) == blocked(
        1, "rpc-mesh", "resize", "the resize would change the QoS class from Burstable to Guaranteed", "recreate")


# -- judging ---------------------------------------------------------------------------------------------


def in_place_started(policy: Policy, seconds_ago: float = 30, **target: Any) -> dict[str, Any]:
    pod = with_target(meshed_pod(), version="1.8.1", **target)
    return after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=seconds_ago)))


def test_a_record_with_a_start_time_that_does_not_parse_counts_no_time(policy: Policy) -> None:
    started = in_place_started(policy)
    garbled = with_annotation(started, OP, {**annotation(started, OP), "started": "yesterday"})
    step = decide(kubelet_reports(garbled, "rpc-mesh", f"{MOSN}:1.8.1"), policy)
    assert (step.outcome, step.duration) == (("in-place", "succeeded"), 0.0)


def test_the_judge_waits_for_the_container_to_be_reported(policy: Policy) -> None:
    started = in_place_started(policy)
    drop_status(started, "rpc-mesh")
    assert decide(started, policy) == Step("none", "waiting for the kubelet to report rpc-mesh")


def test_a_new_image_id_alone_is_the_kubelets_answer(policy: Policy) -> None:
    started = in_place_started(policy)
    answered = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", restarts=0)
    assert decide(answered, policy).outcome == ("in-place", "succeeded")


def test_too_many_restarts_without_a_waiting_reason_are_a_crash_loop_counted_from_the_baseline(
        policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    set_status(pod, "rpc-mesh", restartCount=5)
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=30)))
    flapping = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", restarts=9, ready=False)
    reason = (f"rpc-mesh crash-loops on {MOSN}:1.8.1 (restarting, 4 restarts since the change); rolled back to "
              f"{MOSN}:1.8.0")
    step = decide(flapping, policy)
    assert step.operation is not None and step.operation.reason == reason
    assert step.event == ("Warning", "SidecarRolledBack", f"rpc-mesh: in-place 1.8.0 -> 1.8.1: {reason}")


def test_a_failure_without_rollback_says_how_long_it_took(policy: Policy) -> None:
    rules = FleetPolicy(rollback=False)
    started = in_place_started(policy, seconds_ago=300)
    step = decide(started, policy, rules=rules)
    assert (step.outcome, step.duration) == (("in-place", "failed"), 300.0)


def test_an_operation_for_a_sidecar_the_record_lacks_ends_done(policy: Policy) -> None:
    started = in_place_started(policy)
    answered = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1")
    answered = with_record(answered, {"name": "other", "version": "1"})
    op = Operation(1, "rpc-mesh", "in-place", "InProgress", from_="1.8.0", to="1.8.1", started=stamp(30),
                   container="rpc-mesh", image=f"{MOSN}:1.8.1", image_before=f"{MOSN}:1.8.0", image_id_before=ID_A)
    done = op.finish("Succeeded", "done", stamp())
    message = "rpc-mesh: in-place 1.8.0 -> 1.8.1: done"
    assert decide(answered, policy) == Step(
        "patch", message, patch=body(done, rv="42"), event=("Normal", "SidecarOperationSucceeded", message),
        outcome=("in-place", "succeeded"), duration=30.0, operation=done)


def test_a_judged_recreate_waits_without_an_owner_and_asks_again_with_one(policy: Policy) -> None:
    started = with_target(meshed_pod(owner=None), version="1.8.1")
    started = with_operation(started, action="recreate")
    assert decide(started, policy) == Step("none", "rpc-mesh: waiting for the workload to replace the pod")
    owned = with_record(with_target(meshed_pod(), version="1.8.1"), record(),
                        {"name": "msg-mesh", "version": "2.3.0", "image": "m:2.3.0"})
    controller = owned["metadata"]["ownerReferences"][0]
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "c"},
                                            controller]
    owned = with_operation(owned, action="recreate")
    assert decide(owned, policy) == Step("recreate", "rpc-mesh: waiting for the workload to replace the pod",
                                         owner=controller, pin="msg-mesh=2.3.0,rpc-mesh=1.8.1")
    # A recreate with no version to pin waits for the workload rather than guessing one.
    unpinned = with_operation(with_target(meshed_pod(), version="1.8.1"), action="recreate", to=None)
    assert decide(unpinned, policy) == Step("none", "rpc-mesh: waiting for the workload to replace the pod")


def test_a_hand_over_names_both_slots_and_the_baseline_of_the_old_one(policy: Policy) -> None:
    pod = with_target(hot_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=20)))
    set_status(started, "rpc-mesh", restartCount=4, imageID=ID_A)
    up = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1")
    step = decide(up, policy)
    message = "rpc-mesh: 1.8.1 is live in rpc-mesh-alt; idling rpc-mesh"
    op = Operation(1, "rpc-mesh", "hot", "InProgress", from_="1.8.0", to="1.8.1", started=stamp(20), step="retire",
                   container="rpc-mesh", image=EMPTY, image_before=f"{MOSN}:1.8.0", restarts_before=4,
                   image_id_before=ID_A)
    status = {"v": 1, "policy": "r1", "sidecars": [record(
        version="1.8.1", image=f"{MOSN}:1.8.1", slots=["rpc-mesh", "rpc-mesh-alt"], live="rpc-mesh-alt",
        emptyImage=EMPTY, previous="1.8.0")]}
    assert step.patch is not None
    assert orjson.loads(step.patch["metadata"]["annotations"][STATUS]) == status
    spec = {"initContainers": [{"name": "rpc-mesh", "image": EMPTY}]}
    assert step == Step("patch", message, patch=body(op, rv="42", spec=spec, **{
        "meshfit.io/slot-rpc-mesh": "", STATUS: step.patch["metadata"]["annotations"][STATUS]}),
        event=("Normal", "SidecarHandedOver", message), requeue_after=300.0, operation=op)


def test_a_hand_over_with_no_empty_image_to_idle_on_fails(policy: Policy) -> None:
    pod = with_target(meshed_pod(slots=("rpc-mesh", "rpc-mesh-alt")), version="1.8.1")
    started = after(pod, decide(pod, policy_with_empty_image(policy), now=NOW - dt.timedelta(seconds=20)))
    up = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1")
    op = annotation(up, OP)
    assert op["step"] == "start"
    step = decide(up, policy)
    # The policy's empty image served the start; without it now the old slot cannot idle.
    reason = "cannot idle rpc-mesh: no emptyImage"
    message = f"rpc-mesh: hot 1.8.0 -> 1.8.1: {reason}"
    assert step.kind == "patch" and step.reason == message
    assert step.event == ("Warning", "SidecarOperationFailed", message)
    assert (step.outcome, step.duration) == (("hot", "failed"), 20.0)
    assert step.operation is not None and (step.operation.phase, step.operation.reason) == ("Failed", reason)
    # With the policy's empty image the hand-over goes ahead.
    assert decide(up, policy_with_empty_image(policy)).event == (
        "Normal", "SidecarHandedOver", "rpc-mesh: 1.8.1 is live in rpc-mesh-alt; idling rpc-mesh")


def test_the_judged_resize_branches_say_what_they_saw(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=40)))
    wanted = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
    # Resent when the spec does not hold it yet, with the time left.
    assert decide(started, policy) == Step(
        "resize", "rpc-mesh: resize rpc-mesh again", resize={"spec": {"initContainers": [
            {"name": "rpc-mesh", "resources": wanted}]}}, operation=dataclasses.replace(
            decide(started, policy).operation or Operation(0, "", "", "")), requeue_after=260.0)
    started["spec"]["initContainers"][0]["resources"] = wanted
    # Infeasible without a message.
    infeasible = dict(started, status={**started["status"], "conditions": [
        {"type": "PodResizePending", "status": "True", "reason": "Infeasible"}]})
    step = decide(infeasible, policy, rules=FleetPolicy(rollback=False))
    why = "the kubelet refuses the resize as infeasible: no reason given"
    assert step.operation is not None and step.operation.reason == why
    assert (step.kind, step.outcome, step.duration) == ("patch", ("resize", "failed"), 40.0)
    # Deferred past the timeout.
    deferred = dict(started, status={**started["status"], "conditions": [
        {"type": "PodResizePending", "status": "True", "reason": "Deferred"}]})
    late = decide(deferred, policy, now=NOW + dt.timedelta(seconds=260), rules=dataclasses.replace(RULES,
                                                                                                  rollback=False))
    assert late.operation is not None
    assert late.operation.reason == "the resize was not actuated within 300s (deferred by the kubelet)"
    assert late.duration == 300.0
    # Actuated: the container runs with the wanted resources.
    actuated = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0", digest=DIGEST_A, restarts=0)
    actuated["status"]["initContainerStatuses"][0]["resources"] = wanted
    done = decide(actuated, policy)
    message = f"rpc-mesh: resize 1.8.0 -> 1.8.0: rpc-mesh runs with {wanted}"
    assert (done.kind, done.reason, done.event, done.outcome) == (
        "patch", message, ("Normal", "SidecarOperationSucceeded", message), ("resize", "succeeded"))
    assert done.operation is not None and done.operation.phase == "Succeeded"


def test_a_judged_resize_of_a_container_the_pod_lost_fails(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=40)))
    gone = with_operation(started, **{**annotation(started, OP), "container": "rpc-mesh-old"})
    reason = "the pod has no container rpc-mesh-old"
    message = f"rpc-mesh: resize 1.8.0 -> 1.8.0: {reason}"
    step = decide(gone, policy)
    assert step.operation is not None
    assert step == Step("patch", message, patch=body(step.operation, rv="42"),
                        event=("Warning", "SidecarOperationFailed", message), outcome=("resize", "failed"),
                        duration=40.0, operation=step.operation)
    assert (step.operation.phase, step.operation.reason, step.operation.settled) == (
        "Failed", reason, {"rpc-mesh": "Failed"})


WANTED = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
BEFORE = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}


def resize_in_flight(policy: Policy, seconds_ago: float = 40, **condition: str) -> tuple[dict[str, Any], Operation]:
    """A resize recorded ``seconds_ago`` and written to the spec; the kubelet shows ``condition`` if given."""
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=seconds_ago)))
    started["spec"]["initContainers"][0]["resources"] = WANTED
    if condition:
        started["status"]["conditions"] = [{"status": "True", **condition}]
    op = Operation(1, "rpc-mesh", "resize", "InProgress", from_="1.8.0", to="1.8.0", started=stamp(seconds_ago),
                   container="rpc-mesh", resources_before=BEFORE, resources=WANTED)
    return started, op


def test_an_infeasible_resize_rolled_back_is_the_whole_step(policy: Policy) -> None:
    started, op = resize_in_flight(policy, type="PodResizePending", reason="Infeasible", message="no room")
    reason = "the kubelet refuses the resize as infeasible: no room; resized back"
    done = op.finish("Failed", reason, stamp(), rolled_back=True)
    message = f"rpc-mesh: resize 1.8.0 -> 1.8.0: {reason}"
    assert decide(started, policy) == Step(
        "resize", message, patch=body(done, rv="42"),
        resize={"spec": {"initContainers": [{"name": "rpc-mesh", "resources": BEFORE}]}},
        event=("Warning", "SidecarRolledBack", message), outcome=("resize", "rolled_back"), duration=40.0,
        operation=done)


def test_an_infeasible_resize_without_rollback_is_the_whole_step(policy: Policy) -> None:
    started, op = resize_in_flight(policy, type="PodResizePending", reason="Infeasible")
    reason = "the kubelet refuses the resize as infeasible: no reason given"
    done = op.finish("Failed", reason, stamp())
    message = f"rpc-mesh: resize 1.8.0 -> 1.8.0: {reason}"
    assert decide(started, policy, rules=dataclasses.replace(RULES, rollback=False)) == Step(
        "patch", message, patch=body(done, rv="42"), event=("Warning", "SidecarOperationFailed", message),
        outcome=("resize", "failed"), duration=40.0, operation=done)


def test_a_deferred_resize_is_noted_once_then_waited_for(policy: Policy) -> None:
    started, op = resize_in_flight(policy, type="PodResizePending", reason="Deferred", message="cpu is short")
    why = "deferred by the kubelet: cpu is short"
    noted = dataclasses.replace(op, reason=why)
    step = decide(started, policy)
    assert step == Step("patch", f"rpc-mesh: resize {why}", patch=body(noted, rv="42"), operation=noted,
                        event=("Warning", "SidecarResizeDeferred", f"rpc-mesh: resize {why}"), requeue_after=260.0)
    assert decide(after(started, step), policy) == Step("none", f"rpc-mesh: resize {why}", requeue_after=260.0)
    # Deferred without a message: the reason the kubelet gave.
    bare, _ = resize_in_flight(policy, type="PodResizePending", reason="Deferred")
    assert decide(bare, policy).reason == "rpc-mesh: resize deferred by the kubelet: Deferred"


def test_a_resize_not_yet_actuated_waits_out_the_time_left(policy: Policy) -> None:
    started, _ = resize_in_flight(policy)
    assert decide(started, policy) == Step("none", "rpc-mesh: resize waiting for the kubelet to actuate it",
                                           requeue_after=260.0)
    assert decide(started, policy, now=NOW + dt.timedelta(seconds=259.5)).requeue_after == 1.0


def test_an_actuated_resize_succeeds_with_the_whole_step(policy: Policy) -> None:
    started, op = resize_in_flight(policy)
    set_status(started, "rpc-mesh", resources=WANTED)
    reason = f"rpc-mesh runs with {WANTED}"
    done = op.finish("Succeeded", reason, stamp())
    message = f"rpc-mesh: resize 1.8.0 -> 1.8.0: {reason}"
    assert decide(started, policy) == Step(
        "patch", message, patch=body(done, rv="42"), event=("Normal", "SidecarOperationSucceeded", message),
        outcome=("resize", "succeeded"), duration=40.0, operation=done)


def test_a_resize_timed_out_while_deferred_says_so_and_goes_back(policy: Policy) -> None:
    started, op = resize_in_flight(policy, seconds_ago=300, type="PodResizePending", reason="Deferred")
    reason = "the resize was not actuated within 300s (deferred by the kubelet); resized back"
    done = op.finish("Failed", reason, stamp(), rolled_back=True)
    step = decide(started, policy)
    assert (step.kind, step.operation, step.duration) == ("resize", done, 300.0)
    plain, op = resize_in_flight(policy, seconds_ago=300)
    assert decide(plain, policy).operation == op.finish(
        "Failed", "the resize was not actuated within 300s; resized back", stamp(), rolled_back=True)


def test_a_resize_sent_again_is_the_whole_step(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=40)))
    op = Operation(1, "rpc-mesh", "resize", "InProgress", from_="1.8.0", to="1.8.0", started=stamp(40),
                   container="rpc-mesh", resources_before=BEFORE, resources=WANTED)
    assert decide(started, policy) == Step(
        "resize", "rpc-mesh: resize rpc-mesh again",
        resize={"spec": {"initContainers": [{"name": "rpc-mesh", "resources": WANTED}]}}, operation=op,
        requeue_after=260.0)


def test_a_resize_sent_again_near_the_timeout_looks_again_within_a_second(policy: Policy) -> None:
    pod = resize_target(meshed_pod(), limits={"cpu": "300m"})
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=40)))
    assert decide(started, policy, now=NOW + dt.timedelta(seconds=259.5)).requeue_after == 1.0


def test_a_resize_deferred_without_reason_or_message_says_none_was_given(policy: Policy) -> None:
    started, _ = resize_in_flight(policy, type="PodResizePending")
    assert decide(started, policy).reason == "rpc-mesh: resize deferred by the kubelet: no reason given"


def test_a_hand_over_with_the_old_slot_not_reported_starts_its_baseline_from_zero(policy: Policy) -> None:
    pod = with_target(hot_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    up = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1")
    drop_status(up, "rpc-mesh")
    step = decide(up, policy)
    assert step.operation is not None
    assert (step.operation.step, step.operation.restarts_before, step.operation.image_id_before) == ("retire", 0, "")


def test_a_retired_slot_ends_the_hot_upgrade_succeeded(policy: Policy) -> None:
    pod = with_target(hot_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    up = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1")
    handed = after(up, decide(up, policy))
    idle = kubelet_reports(handed, "rpc-mesh", EMPTY)
    done = decide(idle, policy)
    assert done.operation is not None
    assert (done.operation.phase, done.operation.reason) == ("Succeeded", "1.8.1 live in rpc-mesh-alt; rpc-mesh idle")


def test_an_activation_at_the_recorded_version_leaves_previous_alone(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), active=True)
    started = after(pod, decide(pod, policy))
    on = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0")
    done = after(on, decide(on, policy))
    assert annotation(done, STATUS)["sidecars"][0] == record(emptyImage=EMPTY)


def test_an_activation_recorded_without_a_version_keeps_the_records(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY, previous="1.7.0"), active=True)
    started = after(pod, decide(pod, policy))
    garbled = with_annotation(started, OP, {**annotation(started, OP), "to": None})
    on = kubelet_reports(garbled, "rpc-mesh", f"{MOSN}:1.8.0")
    done = after(on, decide(on, policy))
    assert annotation(done, STATUS)["sidecars"][0] == record(emptyImage=EMPTY, previous="1.7.0")


def test_deactivating_a_sidecar_the_policy_dropped_without_an_empty_image_on_record_is_blocked(
        policy: Policy) -> None:
    reason = ("rpc-mesh has no emptyImage (sidecars[].upgrade.emptyImage): a sidecar is switched on and off in "
              "place through its empty image")
    pod = with_target(meshed_pod(), active=False)
    assert decide(pod, policy_without(policy)) == blocked(1, "rpc-mesh", "deactivate", reason, "recreate")
