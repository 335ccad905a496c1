"""The rollout's state machine, driven over a small fleet whose operations are finished by hand."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import orjson
from rollout_support import Fleet, at, meshed, names, rollout, spec, step

from controller.rollout_analysis import Reading
from controller.rollout_plan import plan
from policy.freeze import FreezeWindow

PROM = {"address": "http://prometheus:9090", "metrics": [
    {"name": "error-rate", "query": 'sum(rate(errors{pod=~"{{pods}}"}[1m]))', "maxRatio": 2}]}


def _five() -> Fleet:
    return Fleet([meshed(f"web-{i}", owner="web-5d8") for i in range(5)])


def _batches(cr: dict[str, Any]) -> list[dict[str, Any]]:
    return list(cr["status"]["batches"])


def test_a_healthy_rollout_goes_batch_by_batch_to_the_end() -> None:
    fleet, cr = _five(), rollout(spec())
    d = step(fleet, cr, at(0))
    assert cr["status"]["phase"] == "Progressing" and cr["status"]["step"] == "Updating"
    (canary,) = names(_batches(cr)[0]["pods"])
    assert [w.pod for w in d.writes] == [canary]
    assert fleet.target(canary) == {"generation": 1, "sidecars": {"rpc-mesh": {"version": "1.8.1"}}}
    assert ("Normal", "RolloutBatchStarted") == d.events[0][:2]
    # Nothing more is written while the canary is mid-change.
    assert step(fleet, cr, at(1)).writes == ()
    fleet.finish(canary)
    step(fleet, cr, at(2))
    assert cr["status"]["step"] == "Baking" and _batches(cr)[0]["bakeUntil"].startswith("2026-12-07T12:00:12")
    assert step(fleet, cr, at(11.9)).requeue_after is not None and cr["status"]["step"] == "Baking"
    step(fleet, cr, at(12))  # round 1 of 2
    assert cr["status"]["step"] == "Analysing" and len({m["round"] for m in _batches(cr)[0]["measurements"]}) == 1
    assert step(fleet, cr, at(14)).writes == ()  # the next round is not due until 17
    d = step(fleet, cr, at(17))  # round 2: the canary passes, batch 2 starts with the other four
    assert _batches(cr)[0]["verdict"] == "Successful"
    assert sorted(w.pod for w in d.writes) == sorted(set(fleet.pods) - {canary})
    assert cr["status"]["batch"] == 1 and cr["status"]["batchText"] == "2/2"
    fleet.finish_all()
    step(fleet, cr, at(18))
    step(fleet, cr, at(28))
    d = step(fleet, cr, at(33))
    assert cr["status"]["phase"] == "Succeeded", cr["status"]
    assert (cr["status"]["updated"], cr["status"]["total"]) == (5, 5)
    assert all(fleet.version(k) == "1.8.1" for k in fleet.pods)
    assert "RolloutSucceeded" in [e[1] for e in d.events]
    # Done is done: nothing more is written however often it is looked at.
    assert step(fleet, cr, at(99)).writes == () and fleet.writes == 5


def test_a_failed_operation_fails_the_batch_and_rolls_it_back() -> None:
    fleet, cr = _five(), rollout(spec())
    step(fleet, cr, at(0))
    (canary,) = names(_batches(cr)[0]["pods"])
    fleet.finish(canary, phase="Failed")
    d = step(fleet, cr, at(1))
    status = cr["status"]
    assert (status["phase"], status["step"], status["reason"]) == ("Failed", "RollingBack", "OperationFailed")
    assert canary in status["message"] and "crash-loops" in status["message"]
    assert d.aborted == "operation"
    assert [w.rollback for w in d.writes] == [True]
    assert fleet.target(canary)["sidecars"]["rpc-mesh"] == {"version": "1.8.0"}
    assert fleet.target(canary)["generation"] == 2
    fleet.finish(canary)
    d = step(fleet, cr, at(2))
    assert cr["status"]["step"] == "RolledBack" and "1 pods on their previous version" in cr["status"]["message"]
    # Nothing further starts.
    assert step(fleet, cr, at(100)).writes == () and len(_batches(cr)) == 1


def test_a_regressed_canary_is_stopped_with_the_check_value_threshold_and_pods() -> None:
    fleet, cr = _five(), rollout(spec(analysis={"interval": "5s", "count": 2, "prometheus": PROM}))
    step(fleet, cr, at(0))
    (canary,) = names(_batches(cr)[0]["pods"])
    fleet.finish(canary)
    step(fleet, cr, at(1))
    d = step(fleet, cr, at(11))
    assert d.measure is not None and [v.key for v in d.measure.batch_pods] == [canary]
    assert len(d.measure.baseline_pods) == 4 and canary not in [v.key for v in d.measure.baseline_pods]
    d = plan(cr, fleet.views(), at(11), readings={"error-rate": (Reading(0.25), Reading(0.01))})
    fleet.apply(d)
    cr["status"] = d.status
    assert cr["status"]["phase"] == "Failed" and d.aborted == "error-rate"
    message = cr["status"]["message"]
    for part in ("error-rate", "value 0.25", "baseline 0.01", "maxRatio 2", canary.split("/")[1]):
        assert part in message, message
    aborted = [e for e in d.events if e[1] == "RolloutAborted"]
    assert aborted and aborted[0][0] == "Warning" and "value 0.25" in aborted[0][2]


def test_no_data_pauses_as_inconclusive_and_fails_at_the_deadline() -> None:
    fleet = _five()
    cr = rollout(spec(analysis={"interval": "5s", "count": 2, "inconclusiveDeadline": "20s", "prometheus": PROM}))
    step(fleet, cr, at(0))
    fleet.finish_all()
    step(fleet, cr, at(1))
    nothing = {"error-rate": (Reading(None), Reading(0.01))}
    cr["status"] = plan(cr, fleet.views(), at(11), readings=nothing).status
    assert (cr["status"]["phase"], cr["status"]["reason"]) == ("Paused", "Inconclusive")
    assert cr["status"]["deadline"].startswith("2026-12-07T12:00:31")
    assert "no data for the batch's pods" in cr["status"]["message"]
    cr["status"] = plan(cr, fleet.views(), at(30.9), readings=nothing).status
    assert cr["status"]["phase"] == "Paused"
    d = plan(cr, fleet.views(), at(31), readings=nothing)
    assert d.status["phase"] == "Failed" and d.aborted == "inconclusive"
    assert "inconclusive past the deadline" in d.status["message"]


def test_a_leader_change_after_the_writes_but_before_the_status_adopts_them() -> None:
    fleet, cr = _five(), rollout(spec())
    step(fleet, cr, at(0))
    (canary,) = names(_batches(cr)[0]["pods"])
    fleet.finish(canary)
    step(fleet, cr, at(1))
    step(fleet, cr, at(11))
    before = copy.deepcopy(cr)
    d = plan(before, fleet.views(), at(16))  # batch 2's targets are written...
    fleet.apply(d)
    assert len(d.writes) == 4  # ... and the leader dies before its status update lands
    resumed = plan(before, fleet.views(), at(17))  # the next leader, from the status it finds
    assert resumed.writes == ()
    assert all(p["gen"] == 1 for p in resumed.status["batches"][1]["pods"])
    assert fleet.writes == 5


def test_a_write_that_never_landed_is_made_again() -> None:
    fleet, cr = _five(), rollout(spec())
    d = plan(cr, fleet.views(), at(0))
    cr["status"] = d.status  # the status says written; the pod was changed meanwhile and the write refused
    fleet.touch(d.writes[0].pod)
    assert fleet.apply(d) == [d.writes[0].pod]
    again = step(fleet, cr, at(1))
    assert [w.pod for w in again.writes] == [d.writes[0].pod]
    assert fleet.target(d.writes[0].pod)["generation"] == 1


def test_max_unavailable_changes_one_pod_of_a_workload_at_a_time() -> None:
    fleet = Fleet([meshed(f"web-{i}", owner="web-5d8") for i in range(4)])
    cr = rollout(spec(batches=[{"percent": 100}], maxUnavailable=1))
    assert len(step(fleet, cr, at(0)).writes) == 1
    assert step(fleet, cr, at(1)).writes == ()
    fleet.finish_all()
    assert len(step(fleet, cr, at(2)).writes) == 1


def test_a_freeze_window_holds_a_rollout_and_says_until_when() -> None:
    fleet, cr = _five(), rollout(spec())
    window = FreezeWindow(frozenset(range(7)), dt.time(11), dt.time(13), "UTC", "peak hours")
    d = step(fleet, cr, at(0), windows=[window])
    assert d.writes == () and cr["status"]["phase"] == "Paused" and cr["status"]["reason"] == "FreezeWindow"
    assert "peak hours" in cr["status"]["message"] and cr["status"]["deadline"].startswith("2026-12-07T13:00:00")
    assert d.requeue_after == 3600
    assert len(step(fleet, cr, at(1)).writes) == 1  # the window gone from the policy
    assert cr["status"]["phase"] == "Progressing"


def test_a_manual_gate_waits_for_promote() -> None:
    fleet, cr = _five(), rollout(spec(batches=[{"count": 1, "pause": True}, {"percent": 100}]))
    step(fleet, cr, at(0))
    fleet.finish_all()
    step(fleet, cr, at(1))
    step(fleet, cr, at(6))
    assert cr["status"]["reason"] == "ManualGate" and cr["status"]["phase"] == "Paused"
    assert step(fleet, cr, at(60)).writes == ()
    cr["spec"]["promotedBatch"] = 0
    assert len(step(fleet, cr, at(61)).writes) == 4


def test_paused_holds_new_targets() -> None:
    fleet, cr = _five(), rollout(spec(paused=True))
    assert step(fleet, cr, at(0)).writes == () and cr["status"]["reason"] == "Paused"
    cr["spec"]["paused"] = False
    assert len(step(fleet, cr, at(1)).writes) == 1


def test_abort_rolls_the_current_batch_back() -> None:
    fleet, cr = _five(), rollout(spec())
    step(fleet, cr, at(0))
    (canary,) = names(_batches(cr)[0]["pods"])
    fleet.finish(canary)
    cr["spec"]["abort"] = True
    d = step(fleet, cr, at(1))
    assert cr["status"]["phase"] == "Aborted" and d.aborted == "user"
    assert fleet.target(canary)["sidecars"]["rpc-mesh"]["version"] == "1.8.0"


def test_a_broken_spec_keeps_the_last_good_one_and_says_why() -> None:
    fleet, cr = _five(), rollout(spec())
    step(fleet, cr, at(0))
    cr["spec"]["batches"] = [{"count": 1, "bake": "forever"}, {"percent": 100}]
    d = step(fleet, cr, at(1))
    condition = next(c for c in cr["status"]["conditions"] if c["type"] == "SpecValid")
    assert condition["status"] == "False" and "spec.batches[0].bake" in condition["message"]
    assert "last good spec" in condition["message"]
    assert cr["status"]["phase"] == "Progressing" and d.spec is not None and d.spec.batches[0].bake == 10.0
    assert "RolloutSpecInvalid" in [e[1] for e in d.events]


def test_a_broken_spec_from_the_start_does_nothing() -> None:
    fleet = _five()
    d = plan(rollout(spec(batches=[{"count": 1}])), fleet.views(), at(0))
    assert d.writes == () and d.status["phase"] == "Pending" and d.status["reason"] == "SpecInvalid"


def test_pods_already_on_the_version_are_not_picked_and_an_all_done_fleet_succeeds_at_once() -> None:
    fleet = Fleet([meshed("a", version="1.8.1"), meshed("b")])
    cr = rollout(spec())
    d = step(fleet, cr, at(0))
    assert [w.pod for w in d.writes] == ["shop/b"]
    done = Fleet([meshed("a", version="1.8.1")])
    cr2 = rollout(spec())
    step(done, cr2, at(0))
    assert cr2["status"]["phase"] == "Succeeded"


def test_the_status_round_trips_through_json() -> None:
    fleet, cr = _five(), rollout(spec())
    step(fleet, cr, at(0))
    fleet.finish_all()
    step(fleet, cr, at(1))
    step(fleet, cr, at(11))
    again = orjson.loads(orjson.dumps(cr))
    assert plan(again, fleet.views(), at(12)).status == plan(cr, fleet.views(), at(12)).status


def test_a_refused_write_is_forgotten_so_that_it_is_made_again() -> None:
    from controller.rollout_plan import forget_writes

    fleet, cr = _five(), rollout(spec())
    d = plan(cr, fleet.views(), at(0))
    (written,) = d.writes
    forgotten = forget_writes(d.status, {written.pod})
    assert forgotten["batches"][0]["pods"][0].get("gen") is None
    assert d.status["batches"][0]["pods"][0]["gen"] == 1  # the decision itself is not changed
    cr["status"] = forgotten
    again = plan(cr, fleet.views(), at(1))
    assert [w.pod for w in again.writes] == [written.pod]


def test_a_long_inconclusive_pause_keeps_a_bounded_status_and_its_first_deadline() -> None:
    fleet = _five()
    cr = rollout(spec(analysis={"interval": "1s", "count": 2, "inconclusiveDeadline": "60s", "prometheus": PROM}))
    step(fleet, cr, at(0))
    fleet.finish_all()
    step(fleet, cr, at(1))
    nothing = {"error-rate": (Reading(None), Reading(0.01))}
    deadlines = set()
    for second in range(11, 60):
        cr["status"] = plan(cr, fleet.views(), at(second), readings=nothing).status
        deadlines.add(cr["status"]["deadline"])
    assert deadlines == {"2026-12-07T12:01:11.000Z"}  # the first unclear round (+11 s) plus 60 s, throughout
    rounds = {m["round"] for m in cr["status"]["batches"][0]["measurements"]}
    assert len(rounds) == 10 and max(rounds) == 48
    assert plan(cr, fleet.views(), at(71), readings=nothing).status["phase"] == "Failed"
