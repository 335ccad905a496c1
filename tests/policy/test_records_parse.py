"""The controller's records read back: ``meshfit.io/operation`` and ``meshfit.io/status``, and a target's progress.

The controller resumes from what it wrote, so a record must read back as
exactly what was written, and a record it cannot read must be refused with a
message naming the field (it ends up in a Blocked operation's reason). The
expected messages are written out from the code's contract, by hand.
"""

from __future__ import annotations

import orjson
import pytest

from policy.quantity import Quantity
from policy.sidecar_status import PodStatus, SidecarStatus, StatusError, parse_status
from policy.targets import Operation, TargetError, parse_operation, progress_of


def text(data: object) -> str:
    return orjson.dumps(data).decode()


OP = {"generation": 3, "sidecar": "rpc-mesh", "action": "in-place", "phase": "InProgress", "reason": "",
      "from": "1.8.0", "to": "1.8.1", "started": "2026-12-01T12:00:00Z"}


# -- meshfit.io/operation ------------------------------------------------------------------------------


def test_an_operation_with_every_field_reads_back_as_written() -> None:
    op = Operation(3, "rpc-mesh", "hot", "Failed", reason="crash", from_="1.8.0", to="1.8.1",
                   started="2026-12-01T12:00:00Z", finished="2026-12-01T12:05:00Z", step="start",
                   container="rpc-mesh-alt", restarts_before=2, image_id_before="m@sha256:1", image="m:1.8.1",
                   image_before="e:1", resources_before={"limits": {"cpu": "1"}}, resources={"limits": {"cpu": "2"}},
                   suggest="recreate", rolled_back=True, settled={"rpc-mesh": "Failed", "other": "Blocked"})
    assert parse_operation(op.to_json()) == op


def test_an_operation_without_its_optional_fields_reads_back_with_none_and_false() -> None:
    op = parse_operation(text({**OP, "rolledBack": False}))
    assert op == Operation(3, "rpc-mesh", "in-place", "InProgress", from_="1.8.0", to="1.8.1",
                           started="2026-12-01T12:00:00Z")
    assert (op.finished, op.suggest, op.rolled_back) == (None, None, False)
    # rolledBack counts only when it is true itself.
    assert parse_operation(text({**OP, "rolledBack": "yes"})).rolled_back is False
    assert parse_operation(text({**OP, "rolledBack": True})).rolled_back is True


@pytest.mark.parametrize(("fields", "message"), [
    ({"reason": 5}, "operation.reason: a string"),
    ({"phase": 5}, "operation.phase: a string is required"),
    ({"sidecar": ""}, "operation.sidecar: a string is required"),
    ({"settled": {"rpc-mesh": "Succeeded"}}, "operation.settled: an object of sidecar name to Failed or Blocked"),
    ({"restartsBefore": -1}, "operation.restartsBefore: a whole number from 0"),
])
def test_an_operation_that_does_not_read_names_the_field(fields: dict, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_operation(text({**OP, **fields}))
    assert str(caught.value) == message


def test_an_optional_string_may_be_null() -> None:
    assert parse_operation(text({**OP, "reason": None, "step": None})).reason == ""


# -- progress of a target -------------------------------------------------------------------------------


def op_text(**fields: object) -> str:
    return text({**OP, **fields})


@pytest.mark.parametrize(("operation", "matches", "expected"), [
    # Nothing written, or nothing readable: the record decides.
    (None, False, ("pending", "waiting for the controller")),
    ("{garbled", False, ("pending", "waiting for the controller")),
    ("{garbled", True, ("done", "")),
    # This sidecar's operation in flight, with its step when it has one.
    (op_text(), False, ("pending", "in-place in progress")),
    (op_text(action="hot", step="retire"), True, ("pending", "hot retire in progress")),
    # Another sidecar's operation in flight does not hold this one, done or not.
    (op_text(sidecar="msg-mesh"), True, ("done", "")),
    (op_text(sidecar="msg-mesh"), False, ("pending", "waiting for the controller")),
    # Settled for this generation: its own reason, or another operation's note.
    (op_text(phase="Failed", reason="crash", settled={"rpc-mesh": "Failed"}), False, ("failed", "crash")),
    (op_text(sidecar="msg-mesh", phase="Blocked", reason="x", settled={"rpc-mesh": "Failed", "msg-mesh": "Blocked"}),
     False, ("failed", "Failed earlier for this generation")),
    (op_text(sidecar="*", phase="Blocked", reason="no status", settled={"*": "Blocked"}), False,
     ("blocked", "no status")),
    # Done, with the reason of this sidecar's own operation of this generation only.
    (op_text(phase="Succeeded", reason="rpc-mesh runs m:1.8.1"), True, ("done", "rpc-mesh runs m:1.8.1")),
    (op_text(sidecar="msg-mesh", phase="Succeeded", reason="other"), True, ("done", "")),
    (op_text(generation=2, phase="Succeeded", reason="older"), True, ("done", "")),
    # An older generation's operation still in flight for this sidecar holds it.
    (op_text(generation=2), True, ("pending", "waiting for the controller")),
])
def test_the_progress_of_a_target_for_one_sidecar(operation: str | None, matches: bool,
                                                  expected: tuple[str, str]) -> None:
    assert progress_of(operation, matches, "rpc-mesh", 3) == expected


# -- meshfit.io/status ----------------------------------------------------------------------------------


def test_a_record_reads_back_with_its_policy_revision_or_none() -> None:
    assert parse_status(text({"v": 1, "policy": "r7", "sidecars": []})) == PodStatus("r7", (), {})
    assert parse_status(text({"v": 1, "sidecars": []})).policy == ""
    assert parse_status(text({"v": 1, "policy": None, "sidecars": []})).policy == ""
    assert parse_status(text({"v": 1, "policy": 12, "sidecars": [], "x": 1})) == PodStatus("12", (), {"x": 1})


def test_a_record_with_slots_reads_back() -> None:
    record = {"name": "rpc-mesh", "version": "1", "image": "m:1", "source": "baseline", "slots": ["a", "b"],
              "live": "b", "active": False, "emptyImage": "e:1", "previous": "0", "restart": "t"}
    assert parse_status(text({"sidecars": [record]})).sidecars == (SidecarStatus(
        "rpc-mesh", "1", "m:1", "baseline", ("a", "b"), "b", False, "e:1", "0", "t"),)


@pytest.mark.parametrize(("data", "message"), [
    ([], "not a JSON object"),
    ({"sidecars": ["rpc-mesh"]}, "sidecars[0].name: a non-empty string is required"),
    ({"sidecars": [{"name": ""}]}, "sidecars[0].name: a non-empty string is required"),
    ({"sidecars": [{"name": "m", "slots": "ab"}]}, "sidecars[0].slots: one or two distinct container names"),
    ({"sidecars": [{"name": "m", "slots": ["a", 5]}]}, "sidecars[0].slots: one or two distinct container names"),
    ({"sidecars": [{"name": "m", "slots": ["a", ""]}]}, "sidecars[0].slots: one or two distinct container names"),
    ({"sidecars": [{"name": "m", "slots": []}]}, "sidecars[0].slots: one or two distinct container names"),
    ({"sidecars": [{"name": "m", "slots": ["a", "a"]}]}, "sidecars[0].slots: one or two distinct container names"),
    ({"sidecars": [{"name": "m"}, {"name": "m", "slots": ["x"]}]}, "sidecars: a sidecar is listed twice"),
    ({"sidecars": [{"name": "m"}, {"name": "n", "slots": ["m"]}]}, "sidecars: two sidecars claim one container"),
    ({"sidecars": [{"name": "m", "version": 5}]}, "sidecars[0].version: a string, not int"),
    ({"sidecars": [{"name": "m"}, {"name": "n", "image": ["x"]}]}, "sidecars[1].image: a string, not list"),
    ({"sidecars": [{"name": "m", "source": 1.5}]}, "sidecars[0].source: a string, not float"),
    ({"sidecars": [{"name": "m", "emptyImage": True}]}, "sidecars[0].emptyImage: a string, not bool"),
    ({"sidecars": [{"name": "m", "previous": {}}]}, "sidecars[0].previous: a string, not dict"),
    ({"sidecars": [{"name": "m", "restart": 1}]}, "sidecars[0].restart: a string, not int"),
])
def test_a_record_that_does_not_read_names_the_field(data: object, message: str) -> None:
    with pytest.raises(StatusError) as caught:
        parse_status(text(data))
    assert str(caught.value) == message


# -- the accounting record: each shape it refuses, with its message -------------------
_RECORD = {"v": 1, "mode": "overcommit", "original": {"cpu": "1"}, "requests": {"cpu": "1"}, "sidecars": []}
_SIDECAR = {"name": "rpc-mesh", "requests": {"cpu": "100m"}, "limits": {"cpu": "1"}}
_SLOT = {"requests": {}, "limits": {}}
_SLOTS_MESSAGE = "accounting record is invalid: sidecar 'rpc-mesh': slots must name two or more distinct containers"


@pytest.mark.parametrize(("fields", "message"), [
    ({"original": [1]}, "expected a mapping of quantities"),
    ({"qos": {"before": "Burstable"}}, "qos must be an object with before and after"),
    ({"qos": {"after": "Burstable"}}, "qos must be an object with before and after"),
    ({"qos": "Burstable"}, "qos must be an object with before and after"),
    ({"sidecars": [{**_SIDECAR, "slots": [{"name": "a", **_SLOT}]}]}, _SLOTS_MESSAGE),
    ({"sidecars": [{**_SIDECAR, "slots": [{"name": "a", **_SLOT}, {"name": "a", **_SLOT}]}]}, _SLOTS_MESSAGE),
    ({"mode": None}, "accounting record is incomplete or invalid: 'mode'"),
    ({"requests": None}, "accounting record is incomplete or invalid: 'requests'"),
    ({"original": {"cpu": "1x"}}, "accounting record is incomplete or invalid: invalid quantity '1x'"),
])
def test_an_accounting_record_of_the_wrong_shape_says_what(fields: dict, message: str) -> None:
    from policy.record import parse_record

    with pytest.raises(ValueError) as info:
        parse_record(text({k: v for k, v in {**_RECORD, **fields}.items() if v is not None}))  # None: left out
    assert str(info.value) == message


def test_an_accounting_record_reads_its_optional_parts_as_written() -> None:
    from policy.record import parse_record

    record = parse_record(text({**_RECORD, "qos": {"before": "Burstable", "after": "Guaranteed"}, "sidecars": [
        _SIDECAR, {**_SIDECAR, "name": "msg-mesh", "slots": [{"name": "a", **_SLOT}, {"name": "b", **_SLOT}]}]}))
    assert record.qos == ("Burstable", "Guaranteed")
    assert [(s.name, s.version, len(s.slots)) for s in record.sidecars] == [("rpc-mesh", "", 0), ("msg-mesh", "", 2)]


def test_an_accounting_record_without_its_optional_parts_reads_as_their_defaults() -> None:
    from policy.record import parse_record

    r = parse_record(text({"v": 1, "mode": "overcommit", "original": {"cpu": "1"}, "requests": {"cpu": "1"}}))
    assert (r.exposure, r.variant, r.sidecars, r.qos) == ("none", "", (), None)
    assert r.limits == {"cpu": None, "memory": None}
    assert r.overcommit == r.drift == r.leak == r.reduced == {}
    with pytest.raises(ValueError) as info:
        parse_record(text({**_RECORD, "exposure": "all"}))
    assert str(info.value) == "unknown exposure 'all'"
    r = parse_record(text({**_RECORD, "drift": {"cpu": "100m"}, "overcommit": {"memory": "1Gi"},
                           "limits": {"cpu": "2"}, "variant": "java", "exposure": "node"}))
    assert (r.drift, r.overcommit, r.variant, r.exposure) == ({"cpu": Quantity.parse("100m")},
                                                             {"memory": Quantity.parse("1Gi")}, "java", "node")
    assert r.limits == {"cpu": Quantity.parse("2"), "memory": None}


def test_an_accounting_records_drift_is_written_only_when_there_is_some() -> None:
    from policy.record import parse_record

    with_drift = parse_record(text({**_RECORD, "drift": {"cpu": "100m", "memory": "0"}}))
    assert with_drift.to_dict()["drift"] == {"cpu": "100m", "memory": "0"}
    assert orjson.loads(with_drift.to_json())["drift"] == {"cpu": "100m", "memory": "0"}
    assert "drift" not in parse_record(text({**_RECORD, "drift": {"cpu": "0"}})).to_dict()
    assert "drift" not in parse_record(text(_RECORD)).to_dict()
