"""What every step of the controller's decision writes, field by field: the record, the Event, the metric.

test_plan.py follows each action through; this pins what each write holds, so
that a person reading ``kubectl get pod -o yaml`` or the Events, and the
metrics, see exactly what the contract (docs/operations.md) promises.
"""

from __future__ import annotations

import datetime as dt

import pytest
from running_pods import (
    RULES,
    after,
    decide,
    DIGEST_A,
    EMPTY,
    MOSN,
    NOW,
    annotation,
    kubelet_reports,
    meshed_pod,
    stamp,
    with_annotation,
    with_target,
)

from controller.plan import Step
from policy.model import FleetPolicy, Policy


def op_of(pod: dict) -> dict:
    return annotation(pod, "meshfit.io/operation")


def record_of(pod: dict, name: str = "rpc-mesh") -> dict:
    return next(s for s in annotation(pod, "meshfit.io/status")["sidecars"] if s["name"] == name)


# -- starting -----------------------------------------------------------------------------------------


def test_a_started_in_place_upgrade_says_everything_it_did(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=7, version="1.8.1")
    step = decide(pod, policy)
    assert step.kind == "patch" and step.outcome is None and step.duration is None
    assert step.requeue_after == 300.0
    assert step.event == ("Normal", "SidecarOperationStarted",
                          f"rpc-mesh: in-place 1.8.0 -> 1.8.1: rpc-mesh to {MOSN}:1.8.1")
    op = op_of(after(pod, step))
    assert op == {"generation": 7, "sidecar": "rpc-mesh", "action": "in-place", "phase": "InProgress",
                  "reason": "", "from": "1.8.0", "to": "1.8.1", "started": stamp(), "container": "rpc-mesh",
                  "image": f"{MOSN}:1.8.1", "imageBefore": f"{MOSN}:1.8.0", "imageIDBefore": f"{MOSN}@{DIGEST_A}",
                  "restartsBefore": 0}
    assert step.operation is not None and step.operation.in_progress


def test_a_succeeded_upgrade_is_recorded_with_its_event_and_duration(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=7, version="1.8.1")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=12)))
    answered = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1")
    step = decide(answered, policy)
    assert step.kind == "patch" and step.outcome == ("in-place", "succeeded") and step.duration == 12.0
    assert step.requeue_after is None
    assert step.event == ("Normal", "SidecarOperationSucceeded",
                          f"rpc-mesh: in-place 1.8.0 -> 1.8.1: rpc-mesh runs {MOSN}:1.8.1")
    done = after(answered, step)
    op = op_of(done)
    assert (op["phase"], op["reason"], op["finished"], op["started"]) == (
        "Succeeded", f"rpc-mesh runs {MOSN}:1.8.1", stamp(), stamp(12))
    assert "settled" not in op and "rolledBack" not in op
    assert record_of(done) == {"name": "rpc-mesh", "version": "1.8.1", "image": f"{MOSN}:1.8.1",
                               "source": "baseline", "previous": "1.8.0"}
    # The patch touches the annotations only: the image was changed at the start.
    assert step.patch is not None and "spec" not in step.patch
    assert step.patch["metadata"]["resourceVersion"] == answered["metadata"]["resourceVersion"]


def test_a_rolled_back_failure_names_the_crash_and_the_image(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=3, version="1.8.1")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=5)))
    crashing = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", restarts=2, waiting="CrashLoopBackOff")
    step = decide(crashing, policy)
    reason = (f"rpc-mesh crash-loops on {MOSN}:1.8.1 (CrashLoopBackOff, 2 restarts since the change); "
              f"rolled back to {MOSN}:1.8.0")
    assert step.event == ("Warning", "SidecarRolledBack", f"rpc-mesh: in-place 1.8.0 -> 1.8.1: {reason}")
    assert step.duration == 5.0
    op = op_of(after(crashing, step))
    assert (op["phase"], op["reason"], op["rolledBack"], op["settled"], op["finished"]) == (
        "Failed", reason, True, {"rpc-mesh": "Failed"}, stamp())
    assert step.patch is not None
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": f"{MOSN}:1.8.0"}]}


def test_a_failure_without_rollback_says_so(policy: Policy) -> None:
    rules = FleetPolicy(rollback=False)
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy, rules=rules, now=NOW - dt.timedelta(seconds=300)))
    step = decide(started, policy, rules=rules)
    reason = f"rpc-mesh not running and ready on {MOSN}:1.8.1 after 300s"
    assert step.event == ("Warning", "SidecarOperationFailed", f"rpc-mesh: in-place 1.8.0 -> 1.8.1: {reason}")
    op = op_of(after(started, step))
    assert (op["phase"], op["reason"], op.get("rolledBack")) == ("Failed", reason, None)


def test_waiting_says_for_what_and_until_when(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=100)))
    step = decide(started, policy)
    assert step.kind == "none" and step.patch is None and step.event is None
    assert step.reason == f"rpc-mesh: waiting for rpc-mesh on {MOSN}:1.8.1"
    assert step.requeue_after == 200.0
    # Near the end, never less than a second.
    late = decide(started, policy, now=NOW + dt.timedelta(seconds=199.5))
    assert late.requeue_after == 1.0


def test_a_container_not_yet_reported_is_waited_for(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    pod["status"]["initContainerStatuses"] = []
    step = decide(pod, policy)
    assert (step.kind, step.reason) == ("none", "waiting for the kubelet to report rpc-mesh")
    started = after(with_target(meshed_pod(), version="1.8.1"), decide(with_target(meshed_pod(), version="1.8.1"),
                                                                        policy))
    started["status"]["initContainerStatuses"] = []
    assert decide(started, policy).reason == "waiting for the kubelet to report rpc-mesh"


# -- blocked ------------------------------------------------------------------------------------------


def test_a_block_is_recorded_once_per_generation_and_keeps_earlier_failures(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=4, version="6.6.6")
    pod = with_annotation(pod, "meshfit.io/operation", {
        "generation": 4, "sidecar": "msg-mesh", "action": "in-place", "phase": "Failed", "reason": "x",
        "started": stamp(60), "finished": stamp(30), "settled": {"msg-mesh": "Failed"}})
    step = decide(pod, policy)
    reason = "version 6.6.6 is not in versions.sidecars.rpc-mesh.allowed"
    assert step.event == ("Warning", "SidecarOperationBlocked", f"rpc-mesh: {reason}")
    op = op_of(after(pod, step))
    assert op == {"generation": 4, "sidecar": "rpc-mesh", "action": "auto", "phase": "Blocked", "reason": reason,
                  "from": "1.8.0", "to": "6.6.6", "started": stamp(), "finished": stamp(),
                  "settled": {"msg-mesh": "Failed", "rpc-mesh": "Blocked"}}
    assert decide(after(pod, step), policy).kind == "none"


def test_a_blocked_suggestion_reaches_the_event(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), version="1.8.1", action="in-place"), policy, kubelet="v1.31.4")
    assert step.event is not None
    assert step.event[2] == ("rpc-mesh: the node's kubelet v1.31.4 does not restart a native sidecar whose image "
                             "changes (kubelets from 1.32 do) (what would work: recreate)")
    op = op_of(after(with_target(meshed_pod(), version="1.8.1", action="in-place"), step))
    assert (op["suggest"], op["from"], op["to"]) == ("recreate", "1.8.0", "1.8.1")


def test_a_whole_target_refused_is_blocked_for_every_sidecar(policy: Policy) -> None:
    pod = with_annotation(with_target(meshed_pod(), generation=2, version="1.8.1"), "meshfit.io/status", "{broken")
    step = decide(pod, policy)
    assert step.outcome == ("auto", "blocked")
    op = op_of(after(pod, step))
    assert (op["generation"], op["sidecar"], op["settled"], op["suggest"]) == (2, "*", {"*": "Blocked"}, "recreate")
    assert op["reason"].startswith("meshfit.io/status does not parse")
    assert step.event is not None and step.event[:2] == ("Warning", "SidecarOperationBlocked")
    # Recorded once; a new generation of the same broken pod is recorded again.
    assert decide(after(pod, step), policy).kind == "none"
    again = with_target(after(pod, step), generation=3, version="1.8.1")
    assert decide(again, policy).kind == "patch"


def test_an_operation_in_flight_is_judged_even_when_the_target_breaks(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    broken = with_annotation(started, "meshfit.io/target", "{nope")
    answered = kubelet_reports(broken, "rpc-mesh", f"{MOSN}:1.8.1")
    step = decide(answered, policy)
    assert step.outcome == ("in-place", "succeeded")
    assert record_of(after(answered, step))["version"] == "1.8.1"


def test_a_pod_being_deleted_is_left_alone(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    pod["metadata"]["deletionTimestamp"] = stamp()
    assert decide(pod, policy) == Step("none", "the pod is being deleted")


# -- recreate -----------------------------------------------------------------------------------------


def test_a_recreate_pins_every_sidecar_and_records_why(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=5, version="1.8.1")
    step = decide(pod, policy, kubelet="v1.31.4")
    assert step.kind == "recreate" and step.requeue_after is None
    assert step.pin == "rpc-mesh=1.8.1"
    assert step.owner == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-7d9", "uid": "o-1",
                          "controller": True}
    why = ("the node's kubelet v1.31.4 does not restart a native sidecar whose image changes "
           "(kubelets from 1.32 do)")
    assert step.event == ("Normal", "SidecarOperationStarted",
                          f"rpc-mesh: recreate through ReplicaSet/shop-7d9 ({why})")
    op = op_of(after(pod, step))
    assert (op["action"], op["phase"], op["reason"], op["from"], op["to"], op["generation"]) == (
        "recreate", "InProgress", why, "1.8.0", "1.8.1", 5)
    # Resumed (another leader): the workload restart is asked again, idempotent on the pin.
    resumed = decide(after(pod, step), policy, kubelet="v1.31.4")
    assert (resumed.kind, resumed.pin, resumed.patch) == ("recreate", "rpc-mesh=1.8.1", None)
    assert resumed.owner is not None and resumed.owner["name"] == "shop-7d9"


def test_a_recreate_is_refused_for_an_owner_that_is_not_a_workload(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(owner="Job"), version="1.8.1"), policy, kubelet="v1.31.4")
    assert step.outcome == ("recreate", "blocked")
    assert step.operation is not None and "its owner Job/shop-7d9 is not a workload meshfit restarts" in \
        step.operation.reason


def test_a_recreate_is_refused_where_the_pin_would_not_be_honoured(policy: Policy) -> None:
    import dataclasses

    no_pins = dataclasses.replace(policy, versions=dataclasses.replace(policy.versions, allow_pod_pin=False))
    step = decide(with_target(meshed_pod(), version="1.8.1"), no_pins, kubelet="v1.31.4")
    assert step.outcome == ("recreate", "blocked")
    assert step.operation is not None and "versions.allowPodPin is false" in step.operation.reason


def test_a_sidecar_the_pod_lacks_needs_a_recreate(policy: Policy) -> None:
    pod = with_annotation(meshed_pod(), "meshfit.io/target",
                          {"generation": 1, "sidecars": {"msg-mesh": {"version": "2.3.0"}}})
    step = decide(pod, policy)
    assert step.kind == "recreate" and step.pin == "msg-mesh=2.3.0,rpc-mesh=1.8.0"
    assert step.operation is not None
    assert step.operation.reason == "the pod has no sidecar msg-mesh: adding a container needs a new pod"


# -- slots ------------------------------------------------------------------------------------------


def test_each_step_of_a_hot_upgrade_is_recorded(policy: Policy) -> None:
    pod = with_target(meshed_pod(slots=("rpc-mesh", "rpc-mesh-alt"), empty_image=EMPTY), generation=2,
                      version="1.8.1")
    start = decide(pod, policy, now=NOW - dt.timedelta(seconds=20))
    assert start.event == ("Normal", "SidecarOperationStarted",
                           f"rpc-mesh: hot 1.8.0 -> 1.8.1 (start): rpc-mesh-alt to {MOSN}:1.8.1")
    started = after(pod, start)
    assert op_of(started)["imageBefore"] == EMPTY
    up = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1", restarts=1)
    handover = decide(up, policy, now=NOW - dt.timedelta(seconds=10))
    assert handover.outcome is None and handover.requeue_after == 300.0
    assert handover.event == ("Normal", "SidecarHandedOver", "rpc-mesh: 1.8.1 is live in rpc-mesh-alt; idling rpc-mesh")
    handed = after(up, handover)
    op = op_of(handed)
    assert (op["step"], op["container"], op["image"], op["imageBefore"], op["restartsBefore"], op["started"]) == (
        "retire", "rpc-mesh", EMPTY, f"{MOSN}:1.8.0", 0, stamp(20))
    idle = kubelet_reports(handed, "rpc-mesh", EMPTY, restarts=1)
    done = decide(idle, policy)
    assert done.outcome == ("hot", "succeeded") and done.duration == 20.0
    assert done.event == ("Normal", "SidecarOperationSucceeded",
                          "rpc-mesh: hot 1.8.0 -> 1.8.1: 1.8.1 live in rpc-mesh-alt; rpc-mesh idle")


def test_a_retiring_slot_that_fails_is_not_rolled_back(policy: Policy) -> None:
    pod = with_target(meshed_pod(slots=("rpc-mesh", "rpc-mesh-alt"), empty_image=EMPTY), version="1.8.1")
    started = after(pod, decide(pod, policy))
    handed = after(kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1"),
                   decide(kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1"), policy))
    crashing = kubelet_reports(handed, "rpc-mesh", EMPTY, waiting="CrashLoopBackOff")
    step = decide(crashing, policy)
    assert step.outcome == ("hot", "failed")
    assert step.patch is not None and "spec" not in step.patch  # the new version serves; nothing goes back


def test_an_activation_is_recorded(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), generation=9, active=True)
    step = decide(pod, policy)
    assert step.event == ("Normal", "SidecarOperationStarted",
                          f"rpc-mesh: activate - -> 1.8.0: rpc-mesh to {MOSN}:1.8.0")
    started = after(pod, step)
    op = op_of(started)
    assert (op["action"], op["from"], op["to"], op["imageBefore"]) == ("activate", None, "1.8.0", EMPTY)
    assert started["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh"] == "1.8.0"
    on = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0")
    done = decide(on, policy)
    assert done.event == ("Normal", "SidecarOperationSucceeded", "rpc-mesh: activate - -> 1.8.0: rpc-mesh active at 1.8.0")
    assert record_of(after(on, done)).get("active", True) is True


def test_a_deactivation_is_recorded(policy: Policy) -> None:
    pod = with_target(meshed_pod(empty_image=EMPTY), active=False)
    step = decide(pod, policy)
    started = after(pod, step)
    op = op_of(started)
    assert (op["action"], op["from"], op["to"], op["image"]) == ("deactivate", "1.8.0", None, EMPTY)
    assert started["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh"] == ""
    off = kubelet_reports(started, "rpc-mesh", EMPTY)
    done = decide(off, policy)
    assert done.event is not None and done.event[2] == "rpc-mesh: deactivate 1.8.0 -> -: rpc-mesh dormant"
    assert record_of(after(off, done))["active"] is False


def test_a_dormant_sidecars_version_is_recorded_with_its_reason(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), generation=6, version="1.8.1")
    step = decide(pod, policy)
    assert step.event == ("Normal", "SidecarOperationSucceeded", "rpc-mesh: dormant, now recorded at 1.8.1")
    assert step.duration == 0.0
    done = after(pod, step)
    op = op_of(done)
    assert op == {"generation": 6, "sidecar": "rpc-mesh", "action": "in-place", "phase": "Succeeded",
                  "reason": "dormant: the version is recorded and runs once the sidecar is activated",
                  "from": "1.8.0", "to": "1.8.1", "started": stamp(), "finished": stamp()}
    assert record_of(done) == {"name": "rpc-mesh", "version": "1.8.1", "image": f"{MOSN}:1.8.1",
                               "source": "baseline", "active": False, "emptyImage": EMPTY, "previous": "1.8.0"}
    assert image_unchanged(pod, done)


def image_unchanged(before: dict, now: dict) -> bool:
    return before["spec"] == now["spec"]


# -- restart and resize -------------------------------------------------------------------------------


def test_a_restart_is_recorded_with_its_token(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=2, restart="tok-1")
    step = decide(pod, policy)
    pinned = f"{MOSN}:1.8.0@{DIGEST_A}"
    assert step.event == ("Normal", "SidecarOperationStarted", f"rpc-mesh: restart rpc-mesh (image reference {pinned})")
    started = after(pod, step)
    op = op_of(started)
    assert (op["action"], op["step"], op["image"], op["imageBefore"], op["from"], op["to"]) == (
        "restart", "tok-1", pinned, f"{MOSN}:1.8.0", "1.8.0", "1.8.0")
    assert record_of(started)["restart"] == "tok-1"
    restarted = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0", digest=DIGEST_A, restarts=1)
    done = decide(restarted, policy)
    assert done.event is not None and done.event[2] == "rpc-mesh: restart 1.8.0 -> 1.8.0: rpc-mesh restarted alone"


def test_a_restart_of_an_image_pinned_by_digest_alone_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(), restart="t")
    pod["spec"]["initContainers"][0]["image"] = f"{MOSN}@{DIGEST_A}"
    step = decide(pod, policy)
    assert step.outcome == ("restart", "blocked")
    assert step.operation is not None and step.operation.suggest == "recreate"
    assert "no other reference form" in step.operation.reason


def test_a_resize_records_before_and_after_and_succeeds_on_the_kubelets_report(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=3, resources={"limits": {"cpu": "300m"}}, action="resize")
    step = decide(pod, policy, now=NOW - dt.timedelta(seconds=4))
    wanted = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
    assert step.kind == "resize" and step.requeue_after == 300.0
    assert step.event is not None and step.event[1] == "SidecarOperationStarted"
    started = after(pod, step)
    op = op_of(started)
    assert (op["action"], op["container"], op["resources"]) == ("resize", "rpc-mesh", wanted)
    assert op["resourcesBefore"] == {"requests": {"cpu": "100m", "memory": "64Mi"},
                                     "limits": {"cpu": "200m", "memory": "64Mi"}}
    # The resize was not sent yet (a leader lost between the record and the resize): it is sent again.
    resend = decide(started, policy)
    assert resend.kind == "resize" and resend.resize == {"spec": {"initContainers": [
        {"name": "rpc-mesh", "resources": wanted}]}}
    started["spec"]["initContainers"][0]["resources"] = wanted
    waiting = decide(started, policy)
    assert (waiting.kind, waiting.reason) == ("none", "rpc-mesh: resize waiting for the kubelet to actuate it")
    actuated = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0", digest=DIGEST_A, restarts=0)
    actuated["status"]["initContainerStatuses"][0]["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                                   "limits": {"cpu": "300m", "memory": "64Mi"}}
    in_progress = dict(actuated, status={**actuated["status"], "conditions": [
        {"type": "PodResizeInProgress", "status": "True"}]})
    assert decide(in_progress, policy).kind == "none"
    done = decide(actuated, policy)
    assert done.outcome == ("resize", "succeeded") and done.duration == 4.0
    assert done.event is not None and done.event[1] == "SidecarOperationSucceeded"


def test_a_resize_not_actuated_in_time_fails_and_goes_back(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": "300m"}}, action="resize")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=300)))
    started["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] = "300m"
    step = decide(started, policy)
    assert step.outcome == ("resize", "rolled_back") and step.kind == "resize"
    assert step.operation is not None
    assert step.operation.reason == "the resize was not actuated within 300s; resized back"
    without = decide(started, policy, rules=FleetPolicy(rollback=False))
    assert without.outcome == ("resize", "failed") and without.kind == "patch" and without.resize is None


def test_a_resize_of_a_hot_sidecar_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(slots=("rpc-mesh", "rpc-mesh-alt"), empty_image=EMPTY),
                      resources={"limits": {"cpu": "300m"}}, action="resize")
    step = decide(pod, policy)
    assert step.outcome == ("resize", "blocked")
    assert step.operation is not None and "two slots" in step.operation.reason


def test_a_resize_that_changes_nothing_is_in_sync(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": "0.2"}}, action="resize")
    assert decide(pod, policy).reason == "in sync with the target"


def test_a_resize_that_would_change_the_qos_class_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": "100m"}}, action="resize")
    # Every other container Guaranteed-shaped: rpc-mesh's limit down to its request would make the pod Guaranteed.
    app = pod["spec"]["containers"][0]
    app["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    side = pod["spec"]["initContainers"][0]
    side["resources"] = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
    step = decide(pod, policy)
    assert step.outcome == ("resize", "blocked")
    assert step.operation is not None and "QoS class from Burstable to Guaranteed" in step.operation.reason


# -- the steps that write nothing say why --------------------------------------------------------------


def test_steps_that_write_nothing_say_why(policy: Policy) -> None:
    assert decide(meshed_pod(), policy) == Step("none", "no target")
    pending = with_target(meshed_pod(), version="1.8.1")
    pending["status"]["phase"] = "Pending"
    assert decide(pending, policy) == Step("none", "waiting for the pod to run")
    assert decide(with_target(meshed_pod(), version="1.8.0"), policy) == Step("none", "in sync with the target")


def test_without_rules_given_the_policys_fleet_block_decides(policy: Policy) -> None:
    import dataclasses

    from controller.plan import plan

    strict = dataclasses.replace(policy, fleet=FleetPolicy(timeout_seconds=10))
    pod = with_target(meshed_pod(), version="1.8.1")
    step = plan(pod, strict, "v1.36.3", NOW)
    assert step.requeue_after == 10.0
    late = plan(after(pod, step), strict, "v1.36.3", NOW + dt.timedelta(seconds=10))
    assert late.outcome == ("in-place", "rolled_back")


def test_a_pod_without_a_record_is_refused_with_what_to_do(policy: Policy) -> None:
    pod = with_target(meshed_pod(), generation=4, version="1.8.1")
    del pod["metadata"]["annotations"]["meshfit.io/status"]
    step = decide(pod, policy)
    reason = ("the pod has no meshfit.io/status: meshfit did not inject it, so it has no sidecars to change; "
              "recreate it under the webhook")
    assert step.reason == reason
    op = op_of(after(pod, step))
    assert (op["generation"], op["suggest"], op["reason"]) == (4, "recreate", reason)


def test_a_broken_record_is_refused_with_what_to_do(policy: Policy) -> None:
    pod = with_annotation(with_target(meshed_pod(), version="1.8.1"), "meshfit.io/status", '{"sidecars":3}')
    step = decide(pod, policy)
    assert step.reason == ("meshfit.io/status does not parse (sidecars: a list is required): roll the workload so "
                           "the webhook writes it afresh")


def test_a_sidecar_the_policy_no_longer_has_cannot_get_an_image(policy: Policy) -> None:
    import dataclasses

    without = dataclasses.replace(policy, sidecars=tuple(s for s in policy.sidecars if s.name != "rpc-mesh"))
    step = decide(with_target(meshed_pod(), generation=2, version="1.8.1"), without)
    assert step.outcome == ("auto", "blocked")
    op = op_of(after(with_target(meshed_pod(), generation=2, version="1.8.1"), step))
    assert (op["reason"], op["suggest"], op["from"], op["to"]) == (
        "the policy has no sidecar rpc-mesh to take an image from", "recreate", "1.8.0", "1.8.1")


def test_an_upgrade_to_a_version_the_policy_maps_to_an_image_uses_that_image(policy: Policy) -> None:
    import dataclasses

    versions = policy.versions.sidecars["rpc-mesh"]
    mapped = dataclasses.replace(versions, images={"1.8.1": "mirror.example.com/mosn:1.8.1-patched"})
    custom = dataclasses.replace(policy, versions=dataclasses.replace(
        policy.versions, sidecars={**policy.versions.sidecars, "rpc-mesh": mapped}))
    step = decide(with_target(meshed_pod(), version="1.8.1"), custom)
    assert step.patch is not None
    assert step.patch["spec"]["initContainers"] == [{"name": "rpc-mesh",
                                                     "image": "mirror.example.com/mosn:1.8.1-patched"}]


def test_a_second_sidecar_is_tried_after_the_first_failed(policy: Policy) -> None:
    pod = with_annotation(meshed_pod(), "meshfit.io/target", {"generation": 3, "sidecars": {
        "rpc-mesh": {"version": "1.8.1"}, "zz-agent": {"version": "1"}}})
    pod = with_annotation(pod, "meshfit.io/operation", {
        "generation": 3, "sidecar": "rpc-mesh", "action": "in-place", "phase": "Failed", "reason": "crash",
        "started": stamp(9), "finished": stamp(5), "settled": {"rpc-mesh": "Failed"}})
    step = decide(pod, policy)
    # rpc-mesh is not tried again for generation 3; zz-agent is next (the pod lacks it: a recreate).
    assert step.kind == "recreate" and step.operation is not None and step.operation.sidecar == "zz-agent"
    assert step.operation.settled == {"rpc-mesh": "Failed"}
