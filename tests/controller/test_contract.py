"""The three annotations of the fleet contract: they parse, round-trip, and name the bad field."""

from __future__ import annotations

import orjson
import pytest

from policy.sidecar_status import PodStatus, SidecarStatus, StatusError, parse_status
from policy.targets import (
    MAX_TEXT,
    Operation,
    SidecarTarget,
    Target,
    TargetError,
    next_target,
    parse_operation,
    parse_target,
    progress_of,
)


def test_an_old_record_reads_as_one_active_slot() -> None:
    status = parse_status('{"v":1,"policy":"r","sidecars":[{"name":"rpc","version":"1","image":"i:1",'
                          '"source":"baseline"}]}')
    record = status.sidecars[0]
    assert (record.slots, record.live, record.active, record.hot, record.idle) == (("rpc",), "rpc", True, False, None)
    # ... and is written back byte for byte as the webhook wrote it.
    assert status.to_json() == '{"v":1,"policy":"r","sidecars":[{"name":"rpc","version":"1","image":"i:1",' \
                               '"source":"baseline"}]}'


def test_a_hot_dormant_record_round_trips() -> None:
    record = SidecarStatus("rpc", "1", "i:1", "pin", slots=("rpc", "rpc-alt"), live="rpc-alt", active=False,
                           empty_image="e:1", previous="0.9", restart="t")
    status = PodStatus("r", (record,))
    assert parse_status(status.to_json()) == status
    assert record.idle == "rpc"


@pytest.mark.parametrize(("text", "field"), [
    ("nope", "not JSON"),
    ("[]", "not a JSON object"),
    ('{"sidecars":{}}', "sidecars: a list"),
    ('{"sidecars":[{"name":""}]}', "sidecars[0].name"),
    ('{"sidecars":[{"name":"a","slots":["a","a"]}]}', "sidecars[0].slots"),
    ('{"sidecars":[{"name":"a","slots":["a","b","c"]}]}', "sidecars[0].slots"),
    ('{"sidecars":[{"name":"a","live":"b"}]}', "sidecars[0].live"),
    ('{"sidecars":[{"name":"a","active":"no"}]}', "sidecars[0].active"),
    ('{"sidecars":[{"name":"a","version":1}]}', "sidecars[0].version"),
    ('{"sidecars":[{"name":"a"},{"name":"a"}]}', "listed twice"),
    ('{"sidecars":[{"name":"a","slots":["a","x"]},{"name":"x"}]}', "claim one container"),
])
def test_a_bad_record_names_its_field(text: str, field: str) -> None:
    with pytest.raises(StatusError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_status(text)


def test_a_target_parses_with_quantities() -> None:
    target = parse_target('{"generation":3,"sidecars":{"rpc":{"version":"1.9","active":true,"restart":"t",'
                          '"resources":{"limits":{"cpu":"500m"}},"action":"hot"}}}')
    want = target.sidecars["rpc"]
    assert target.generation == 3
    assert (want.version, want.active, want.restart, want.action) == ("1.9", True, "t", "hot")
    assert want.resources is not None and want.resources["limits"]["cpu"].nanos == 500_000_000
    assert parse_target(target.to_json()) == target


@pytest.mark.parametrize(("text", "field"), [
    ('{"generation":-1,"sidecars":{}}', "target.generation"),
    ('{"generation":true,"sidecars":{}}', "target.generation"),
    ('{"generation":1.5,"sidecars":{}}', "target.generation"),
    ('{"generation":1}', "target.sidecars"),
    ('{"sidecars":{"rpc":[]}}', "target.sidecars.rpc"),
    ('{"sidecars":{"rpc":{"versoin":"1"}}}', "unknown field"),
    ('{"sidecars":{"rpc":{"version":""}}}', "target.sidecars.rpc.version"),
    ('{"sidecars":{"rpc":{"active":"yes"}}}', "target.sidecars.rpc.active"),
    ('{"sidecars":{"rpc":{"action":"teleport"}}}', "target.sidecars.rpc.action"),
    ('{"sidecars":{"rpc":{"resources":{"limits":{"cpu":"lots"}}}}}', "target.sidecars.rpc.resources.limits.cpu"),
    ('{"sidecars":{"rpc":{"resources":{"limits":{"gpu":"1"}}}}}', "target.sidecars.rpc.resources.limits"),
    ('{"sidecars":{"rpc":{"resources":{}}}}', "target.sidecars.rpc.resources"),
])
def test_a_bad_target_names_its_field(text: str, field: str) -> None:
    with pytest.raises(TargetError, match=field.replace(".", r"\.")):
        parse_target(text)


def test_generation_zero_is_accepted_and_the_size_limit_is_exact() -> None:
    assert parse_target('{"generation":0,"sidecars":{}}').generation == 0
    filler = '{"generation":0,"sidecars":{},"x":"' + "a" * (MAX_TEXT - 37) + '"}'
    assert len(filler) == MAX_TEXT
    parse_target(filler)
    with pytest.raises(TargetError, match="more than"):
        parse_target(filler[:-2] + 'a"}')


def test_an_operation_round_trips_and_remembers_failures_per_generation() -> None:
    op = Operation(4, "rpc", "in-place", "InProgress", from_="1", to="2", started="t0", container="rpc",
                   restarts_before=3, image="i:2", image_before="i:1", image_id_before="id")
    assert parse_operation(op.to_json()) == op
    failed = op.finish("Failed", "crash", "t1")
    assert failed.settled == {"rpc": "Failed"} and failed.settled_for(4) == {"rpc": "Failed"}
    assert failed.settled_for(5) == {}
    assert op.finish("Succeeded", "ok", "t1").settled == {}


@pytest.mark.parametrize(("text", "field"), [
    ('{"sidecar":"a","action":"in-place"}', "operation.phase"),
    ('{"sidecar":"a","action":"in-place","phase":"Done"}', "operation.phase"),
    ('{"sidecar":"a","action":"fly","phase":"Failed"}', "operation.action"),
    ('{"action":"in-place","phase":"Failed"}', "operation.sidecar"),
    ('{"sidecar":"a","action":"in-place","phase":"Failed","restartsBefore":-1}', "operation.restartsBefore"),
    ('{"sidecar":"a","action":"in-place","phase":"Failed","settled":{"a":"Succeeded"}}', "operation.settled"),
])
def test_a_bad_operation_names_its_field(text: str, field: str) -> None:
    with pytest.raises(TargetError, match=field.replace(".", r"\.")):
        parse_operation(text)


def test_next_target_keeps_the_other_sidecars_and_moves_the_generation() -> None:
    current = Target(6, {"msg": SidecarTarget(active=False), "rpc": SidecarTarget(version="1")})
    nxt = next_target(current, "rpc", SidecarTarget(version="2"))
    assert nxt.generation == 7
    assert nxt.sidecars == {"msg": SidecarTarget(active=False), "rpc": SidecarTarget(version="2")}
    assert next_target(None, "rpc", SidecarTarget(restart="t")).generation == 1


def test_progress_reads_the_operation_for_the_generation_asked() -> None:
    running = Operation(2, "rpc", "in-place", "InProgress").to_json()
    assert progress_of(running, False, "rpc", 2)[0] == "pending"
    assert progress_of(running, True, "rpc", 2)[0] == "pending"  # still being judged
    failed = Operation(2, "rpc", "in-place", "InProgress").finish("Failed", "crash", "t").to_json()
    assert progress_of(failed, False, "rpc", 2) == ("failed", "crash")
    assert progress_of(failed, False, "rpc", 3)[0] == "pending"  # an older generation's failure
    done = Operation(2, "rpc", "in-place", "InProgress").finish("Succeeded", "ok", "t").to_json()
    assert progress_of(done, True, "rpc", 2) == ("done", "ok")
    assert progress_of(None, True, "rpc", 2)[0] == "done"
    whole = Operation(2, "*", "auto", "Blocked", reason="bad", settled={"*": "Blocked"}).to_json()
    assert progress_of(whole, False, "rpc", 2) == ("blocked", "bad")


@pytest.mark.parametrize(("text", "message"), [
    (None, "target: the annotation must be a string"),
    ("{x", "target: not JSON"),
    ("[1]", "target: a JSON object is required"),
    ('{"generation":1}', "target.sidecars: an object of sidecar name to target is required"),
    ('{"sidecars":{"rpc":{"b":1,"a":2}}}', "target.sidecars.rpc: unknown field(s) a, b"),
    ('{"sidecars":{"rpc":{"restart":""}}}', "target.sidecars.rpc.restart: a non-empty token"),
    ('{"sidecars":{"rpc":{"restart":5}}}', "target.sidecars.rpc.restart: a non-empty token"),
    ('{"sidecars":{"rpc":{"action":"x"}}}',
     "target.sidecars.rpc.action: one of auto, in-place, hot, recreate, resize, restart, not 'x'"),
    ('{"sidecars":{"rpc":{"resources":{"limits":{"memory":"1Gi","gpu":"1"}}}}}',
     "target.sidecars.rpc.resources.limits: an object of cpu and/or memory quantities"),
    ('{"generation":9007199254740993,"sidecars":{}}', "target.generation: a whole number from 0"),
])
def test_target_errors_say_exactly_what_is_wrong(text: object, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target(text)
    assert str(caught.value).startswith(message)


def test_a_memory_only_resize_target_is_accepted() -> None:
    target = parse_target('{"sidecars":{"rpc":{"resources":{"requests":{"memory":"64Mi"}}}}}')
    resources = target.sidecars["rpc"].resources
    assert resources is not None and resources["requests"]["memory"].nanos == 64 * 2**20 * 10**9
    assert target.generation == 0


@pytest.mark.parametrize(("generation", "ok"), [(2**53, True), (2**53 + 1, False)])
def test_the_largest_generation_is_exact(generation: int, ok: bool) -> None:
    text = '{"generation":%d,"sidecars":{}}' % generation
    if ok:
        assert parse_target(text).generation == generation
    else:
        with pytest.raises(TargetError, match="target.generation"):
            parse_target(text)


def test_an_action_of_auto_is_left_out_and_others_are_written() -> None:
    assert SidecarTarget(version="1").to_dict() == {"version": "1"}
    assert SidecarTarget(version="1", action="hot").to_dict() == {"version": "1", "action": "hot"}


@pytest.mark.parametrize(("text", "message"), [
    (None, "operation: the annotation must be a string"),
    ('{"sidecar":"a","action":"in-place"}', "operation.phase: a string is required"),
    ('{"sidecar":"a","phase":"Failed"}', "operation.action: a string is required"),
    ('{"sidecar":"a","action":"in-place","phase":"Done"}',
     "operation.phase: one of InProgress, Succeeded, Failed, Blocked, not 'Done'"),
    ('{"sidecar":"a","action":"fly","phase":"Failed"}',
     "operation.action: one of auto, in-place, hot, activate, deactivate, restart, resize, recreate, not 'fly'"),
    ('{"sidecar":"a","action":"in-place","phase":"Failed","reason":5}', "operation.reason: a string"),
    ('{"sidecar":"a","action":"in-place","phase":"Failed","restartsBefore":true}',
     "operation.restartsBefore: a whole number from 0"),
    ('{"sidecar":"a","action":"in-place","phase":"Failed","resources":[]}',
     "operation.resourcesBefore and .resources: objects"),
    ('{"generation":-2,"sidecar":"a","action":"in-place","phase":"Failed"}', "operation.generation"),
])
def test_operation_errors_say_exactly_what_is_wrong(text: object, message: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_operation(text)
    assert str(caught.value).startswith(message)


def test_an_operation_with_optional_fields_left_out_reads_their_defaults() -> None:
    op = parse_operation('{"sidecar":"a","action":"resize","phase":"InProgress","reason":null,'
                         '"resources":{"limits":{"cpu":"1"}}}')
    assert (op.generation, op.reason, op.restarts_before, op.from_, op.finished, op.suggest) == (
        0, "", 0, None, None, None)
    assert op.resources == {"limits": {"cpu": "1"}}
    written = orjson.loads(Operation(1, "a", "resize", "Blocked", suggest="recreate",
                                     resources={"limits": {"cpu": "1"}}).to_json())
    assert written["suggest"] == "recreate" and written["resources"] == {"limits": {"cpu": "1"}}
