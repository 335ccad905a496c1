"""The controller's decision, pod by pod: which action, what the write holds, how the kubelet's answer is judged.

Every expectation is written out by hand from the contract (docs/operations.md,
DESIGN.md "Fleet operations"): the image the container must get, the record's
fields, the phase; none is computed by the code under test.
"""

from __future__ import annotations

import dataclasses
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
    image_of,
    kubelet_reports,
    meshed_pod,
    stamp,
    with_annotation,
    with_target,
)

from controller.plan import Step
from policy.model import FleetPolicy, Policy


# -- nothing to do ----------------------------------------------------------------------------------


def test_a_pod_without_a_target_is_left_alone(policy: Policy) -> None:
    assert decide(meshed_pod(), policy).kind == "none"


def test_a_pod_already_at_its_target_is_in_sync(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), version="1.8.0"), policy)
    assert (step.kind, step.reason) == ("none", "in sync with the target")


def test_a_pod_not_running_waits(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    pod["status"]["phase"] = "Pending"
    assert decide(pod, policy).kind == "none"


# -- in-place upgrade -------------------------------------------------------------------------------


def test_an_upgrade_changes_the_native_sidecars_image_and_records_the_operation_in_one_write(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    step = decide(pod, policy)
    assert step.kind == "patch"
    assert step.patch is not None
    assert step.patch["metadata"]["resourceVersion"] == "41"
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": f"{MOSN}:1.8.1"}]}
    new = after(pod, step)
    op = annotation(new, "meshfit.io/operation")
    assert (op["action"], op["phase"], op["from"], op["to"], op["container"]) == \
        ("in-place", "InProgress", "1.8.0", "1.8.1", "rpc-mesh")
    assert op["restartsBefore"] == 0 and op["imageIDBefore"] == f"{MOSN}@{DIGEST_A}"
    assert op["imageBefore"] == f"{MOSN}:1.8.0"
    assert new["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh"] == "1.8.1"
    # The record still says 1.8.0: it says what the pod has, and the kubelet has not answered.
    assert annotation(new, "meshfit.io/status")["sidecars"][0]["version"] == "1.8.0"


def test_an_operation_in_progress_is_judged_not_started_again(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    again = decide(started, policy)
    assert again.kind == "none" and again.patch is None
    assert again.requeue_after == pytest.approx(300)


def test_the_kubelets_answer_ends_it_succeeded_and_the_record_moves(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=7)))
    answered = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", restarts=1)
    step = decide(answered, policy)
    assert step.outcome == ("in-place", "succeeded")
    assert step.duration == pytest.approx(7)
    done = after(answered, step)
    op = annotation(done, "meshfit.io/operation")
    assert op["phase"] == "Succeeded" and op["finished"] == stamp()
    record = annotation(done, "meshfit.io/status")["sidecars"][0]
    assert (record["version"], record["image"], record["previous"]) == ("1.8.1", f"{MOSN}:1.8.1", "1.8.0")
    assert decide(done, policy).reason == "in sync with the target"


def test_a_new_image_not_yet_ready_is_not_success(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    assert decide(kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", ready=False), policy).kind == "none"


def test_a_crash_loop_fails_the_upgrade_and_rolls_the_image_back_in_the_same_write(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    crashing = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", restarts=1, waiting="CrashLoopBackOff")
    step = decide(crashing, policy)
    assert step.outcome == ("in-place", "rolled_back")
    assert step.event is not None and step.event[:2] == ("Warning", "SidecarRolledBack")
    rolled = after(crashing, step)
    assert image_of(rolled, "rpc-mesh") == f"{MOSN}:1.8.0"
    op = annotation(rolled, "meshfit.io/operation")
    assert op["phase"] == "Failed" and op["rolledBack"] is True and "crash-loops" in op["reason"]
    assert op["settled"] == {"rpc-mesh": "Failed"}
    assert rolled["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh"] == "1.8.0"
    # Not tried again for this generation...
    assert decide(rolled, policy).kind == "none"
    # ... but a higher generation asks afresh.
    asked_again = with_target(rolled, generation=2, version="1.8.1")
    assert decide(asked_again, policy).kind == "patch"


def test_without_rollback_a_failure_leaves_the_image(policy: Policy) -> None:
    rules = dataclasses.replace(RULES, rollback=False)
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy, rules=rules))
    crashing = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", waiting="CrashLoopBackOff")
    step = decide(crashing, policy, rules=rules)
    assert step.outcome == ("in-place", "failed")
    assert step.patch is not None and "spec" not in step.patch


@pytest.mark.parametrize(("restarts", "fails"), [(3, False), (4, True)])
def test_restarts_beyond_the_one_the_change_causes_are_a_crash_loop_at_the_boundary(
        policy: Policy, restarts: int, fails: bool) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    # crash_restarts=2: the change's own restart plus two more is still patience; one more is a loop.
    flapping = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.1", restarts=restarts, ready=False)
    assert (decide(flapping, policy).outcome is not None) is fails


@pytest.mark.parametrize(("elapsed", "fails"), [(299, False), (300, True)])
def test_the_timeout_at_its_boundary(policy: Policy, elapsed: int, fails: bool) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy, now=NOW - dt.timedelta(seconds=elapsed)))
    step = decide(started, policy)
    assert (step.outcome == ("in-place", "rolled_back")) is fails


@pytest.mark.parametrize(("kubelet", "in_place"),
                         [("v1.32.0", True), ("v1.31.9", False), ("v1.36.3", True), ("v1.32.0-eks-1", True)])
def test_the_kubelet_gate_at_its_boundary(policy: Policy, kubelet: str, in_place: bool) -> None:
    step = decide(with_target(meshed_pod(), version="1.8.1"), policy, kubelet=kubelet)
    assert (step.kind == "patch" and step.patch is not None and "spec" in step.patch) is in_place
    if not in_place:
        assert step.kind == "recreate"


def test_an_old_kubelet_falls_back_to_recreating_through_the_workload(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), version="1.8.1"), policy, kubelet="v1.31.4")
    assert step.kind == "recreate"
    assert step.owner is not None and step.owner["kind"] == "ReplicaSet"
    assert step.pin == "rpc-mesh=1.8.1"
    op = step.operation
    assert op is not None and (op.action, op.phase) == ("recreate", "InProgress")
    assert "v1.31.4" in op.reason


def test_forcing_in_place_on_an_old_kubelet_is_blocked_with_what_would_work(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), version="1.8.1", action="in-place"), policy, kubelet="v1.31.4")
    assert step.outcome == ("in-place", "blocked")
    assert step.operation is not None and step.operation.suggest == "recreate"
    assert step.event is not None and "recreate" in step.event[2]


def test_a_bare_pod_is_never_deleted_only_reported(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(owner=None), version="1.8.1"), policy, kubelet="v1.31.4")
    assert step.outcome == ("recreate", "blocked")
    assert step.operation is not None and "never deletes a bare pod" in step.operation.reason


def test_an_unknown_kubelet_version_is_not_guessed(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(owner=None), version="1.8.1"), policy, kubelet=None)
    assert step.outcome == ("recreate", "blocked")
    assert step.operation is not None and "unknown" in step.operation.reason


def test_a_legacy_sidecar_changes_in_place_on_any_kubelet(policy: Policy) -> None:
    pod = with_target(meshed_pod(native=False), version="1.8.1")
    step = decide(pod, policy, kubelet="v1.29.0")
    assert step.patch is not None
    assert step.patch["spec"] == {"containers": [{"name": "rpc-mesh", "image": f"{MOSN}:1.8.1"}]}


def test_a_version_the_policy_does_not_allow_is_blocked(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), version="6.6.6"), policy)
    assert step.outcome == ("auto", "blocked")
    assert step.operation is not None and "allowed" in step.operation.reason


def test_an_invalid_target_is_blocked_once(policy: Policy) -> None:
    pod = with_annotation(meshed_pod(), "meshfit.io/target", "{not json")
    step = decide(pod, policy)
    assert step.outcome == ("auto", "blocked")
    assert "meshfit.io/target is invalid" in step.reason
    assert decide(after(pod, step), policy).kind == "none"


def test_a_pod_the_webhook_never_meshed_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(), version="1.8.1")
    del pod["metadata"]["annotations"]["meshfit.io/status"]
    step = decide(pod, policy)
    assert step.outcome == ("auto", "blocked") and "no meshfit.io/status" in step.reason


# -- hot upgrade ------------------------------------------------------------------------------------


def hot_pod(**kw: object) -> dict:
    return meshed_pod(slots=("rpc-mesh", "rpc-mesh-alt"), live="rpc-mesh", empty_image=EMPTY, **kw)  # type: ignore[arg-type]


def test_a_hot_upgrade_starts_the_version_in_the_idle_slot_then_idles_the_old_one(policy: Policy) -> None:
    pod = with_target(hot_pod(), version="1.8.1")
    step = decide(pod, policy)
    assert step.patch is not None
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh-alt", "image": f"{MOSN}:1.8.1"}]}
    started = after(pod, step)
    assert annotation(started, "meshfit.io/operation")["step"] == "start"
    assert started["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh-alt"] == "1.8.1"
    # The new version is up in the idle slot: hand over, idle the old slot, the record flips.
    up = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1")
    handover = decide(up, policy)
    assert handover.patch is not None
    assert handover.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": EMPTY}]}
    handed = after(up, handover)
    record = annotation(handed, "meshfit.io/status")["sidecars"][0]
    assert (record["live"], record["version"], record["previous"]) == ("rpc-mesh-alt", "1.8.1", "1.8.0")
    assert handed["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh"] == ""
    assert annotation(handed, "meshfit.io/operation")["step"] == "retire"
    # The old slot idles on the empty image: done.
    idle = kubelet_reports(handed, "rpc-mesh", EMPTY)
    done = decide(idle, policy)
    assert done.outcome == ("hot", "succeeded")
    finished = after(idle, done)
    assert decide(finished, policy).reason == "in sync with the target"
    # The next upgrade goes the other way: into rpc-mesh, now the idle slot.
    again = decide(with_target(finished, generation=2, version="1.9.0-rc.1"), policy)
    assert again.patch is not None and again.patch["spec"]["initContainers"][0]["name"] == "rpc-mesh"


def test_a_hot_upgrade_that_crash_loops_idles_the_slot_again_and_keeps_the_old_version(policy: Policy) -> None:
    pod = with_target(hot_pod(), version="1.8.1")
    started = after(pod, decide(pod, policy))
    crashing = kubelet_reports(started, "rpc-mesh-alt", f"{MOSN}:1.8.1", waiting="CrashLoopBackOff")
    rolled = after(crashing, decide(crashing, policy))
    assert image_of(rolled, "rpc-mesh-alt") == EMPTY
    assert image_of(rolled, "rpc-mesh") == f"{MOSN}:1.8.0"
    record = annotation(rolled, "meshfit.io/status")["sidecars"][0]
    assert (record["live"], record["version"]) == ("rpc-mesh", "1.8.0")
    assert rolled["metadata"]["annotations"]["meshfit.io/slot-rpc-mesh-alt"] == ""


def test_forcing_hot_on_a_one_slot_sidecar_is_blocked(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), version="1.8.1", action="hot"), policy)
    assert step.outcome == ("hot", "blocked")
    assert step.operation is not None and step.operation.suggest == "in-place"


# -- dormant slots: in-place injection and rollback -------------------------------------------------


def test_activating_a_dormant_sidecar_is_an_image_change_of_its_slot(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), active=True)
    assert image_of(pod, "rpc-mesh") == EMPTY
    step = decide(pod, policy)
    assert step.patch is not None
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": f"{MOSN}:1.8.0"}]}
    started = after(pod, step)
    on = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0")
    done = after(on, decide(on, policy))
    record = annotation(done, "meshfit.io/status")["sidecars"][0]
    assert "active" not in record  # active is the default, left out of the record
    # ... and off again: the reverse.
    off = decide(with_target(done, generation=2, active=False), policy)
    assert off.patch is not None
    assert off.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": EMPTY}]}


def test_a_dormant_sidecars_new_version_is_only_recorded(policy: Policy) -> None:
    pod = with_target(meshed_pod(active=False, empty_image=EMPTY), version="1.8.1")
    step = decide(pod, policy)
    assert step.patch is not None and "spec" not in step.patch
    assert step.outcome == ("in-place", "succeeded")
    record = annotation(after(pod, step), "meshfit.io/status")["sidecars"][0]
    assert (record["version"], record["active"]) == ("1.8.1", False)


def test_deactivating_without_an_empty_image_is_blocked(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), active=False), policy)
    assert step.outcome == ("deactivate", "blocked")
    assert step.operation is not None and "emptyImage" in step.operation.reason


# -- restart --------------------------------------------------------------------------------------


def test_a_restart_moves_the_image_to_its_digest_pinned_form_and_back(policy: Policy) -> None:
    pod = with_target(meshed_pod(), restart="t1")
    step = decide(pod, policy)
    assert step.patch is not None
    pinned = f"{MOSN}:1.8.0@{DIGEST_A}"
    assert step.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": pinned}]}
    started = after(pod, step)
    restarted = kubelet_reports(started, "rpc-mesh", f"{MOSN}:1.8.0", digest=DIGEST_A,
                                restarts=1)
    done = decide(restarted, policy)
    assert done.outcome == ("restart", "succeeded")
    finished = after(restarted, done)
    assert annotation(finished, "meshfit.io/status")["sidecars"][0]["restart"] == "t1"
    again = decide(with_target(finished, generation=2, restart="t2"), policy)
    assert again.patch is not None
    assert again.patch["spec"] == {"initContainers": [{"name": "rpc-mesh", "image": f"{MOSN}:1.8.0"}]}


def test_a_restart_not_yet_answered_is_not_success(policy: Policy) -> None:
    pod = with_target(meshed_pod(), restart="t1")
    started = after(pod, decide(pod, policy))
    assert decide(started, policy).kind == "none"


# -- resize -------------------------------------------------------------------------------------


def test_a_limits_only_resize_goes_through_the_resize_subresource(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": "300m"}}, action="resize")
    step = decide(pod, policy)
    assert step.kind == "resize"
    assert step.resize == {"spec": {"initContainers": [{"name": "rpc-mesh", "resources": {
        "requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}}]}}


def test_a_resize_that_would_change_R_pod_is_blocked(policy: Policy) -> None:
    step = decide(with_target(meshed_pod(), resources={"requests": {"cpu": "150m"}}, action="resize"), policy)
    assert step.outcome == ("resize", "blocked")
    assert step.operation is not None and "R(pod)" in step.operation.reason


def test_an_infeasible_resize_fails_and_is_resized_back(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": "300m"}}, action="resize")
    step = decide(pod, policy)
    started = after(pod, step)
    started["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] = "300m"
    started["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Infeasible",
                                        "message": "Node didn't have enough capacity"}]
    failed = decide(started, policy)
    assert failed.outcome == ("resize", "rolled_back")
    assert failed.resize is not None
    back = failed.resize["spec"]["initContainers"][0]["resources"]
    assert back["limits"]["cpu"] == "200m"


def test_a_resize_past_the_pods_own_request_is_blocked(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"requests": {"cpu": "150m"}}, action="resize")
    # The pod-level variant: the pod's own request (1 CPU) holds the app (900m) and the sidecar (100m) exactly.
    pod["spec"]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    step = decide(pod, policy)
    assert step.outcome == ("resize", "blocked")
    assert step.operation is not None and "pod's own request" in step.operation.reason


@pytest.mark.parametrize(("limit", "blocked"), [("2", False), ("2001m", True)])
def test_a_limit_resize_at_the_pods_own_limit(policy: Policy, limit: str, blocked: bool) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": limit}}, action="resize")
    pod["spec"]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    step = decide(pod, policy)
    assert (step.outcome == ("resize", "blocked")) is blocked


def test_a_deferred_resize_is_reported_once_and_keeps_waiting(policy: Policy) -> None:
    pod = with_target(meshed_pod(), resources={"limits": {"cpu": "300m"}}, action="resize")
    started = after(pod, decide(pod, policy))
    started["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] = "300m"
    started["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Deferred",
                                        "message": "Node didn't have enough resource: cpu"}]
    noted = decide(started, policy)
    assert noted.event is not None and noted.event[1] == "SidecarResizeDeferred"
    recorded = after(started, noted)
    op = annotation(recorded, "meshfit.io/operation")
    assert op["phase"] == "InProgress" and "deferred by the kubelet" in op["reason"]
    again = decide(recorded, policy)
    assert again.kind == "none" and again.requeue_after is not None
