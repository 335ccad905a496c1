"""The ``runtime`` section's schema: every mistake named by its path, the sidecars' mounts added once."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from runtime_policies import RUNTIME, document, runtime_policy

from policy.degradations import Degradation, check, read_store, write_store
from policy.fields import FieldError, Fields, PolicyError
from policy.load import parse_namespace_policy, parse_policy
from policy.runtime import FILE_ENV, MOUNT_PATH, VOLUME_NAME, Parameter
from policy.runtime_load import values_for


def _errors(runtime: dict[str, Any], **top: Any) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(document(runtime, **top))
    return [str(e) for e in info.value.errors]


def _changed(**params: Any) -> dict[str, Any]:
    runtime = copy.deepcopy(RUNTIME)
    runtime["sidecars"]["rpc-mesh"].update(params)
    return runtime


def test_a_sidecar_with_parameters_mounts_them_once_per_policy() -> None:
    policy = runtime_policy()
    spec = policy.sidecar("rpc-mesh")
    assert spec is not None
    assert {"name": FILE_ENV, "value": f"{MOUNT_PATH}/rpc-mesh.json"} in spec.env
    assert {"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True} in spec.volume_mounts
    plain = runtime_policy({"sidecars": {"msg-mesh": RUNTIME["sidecars"]["msg-mesh"]}}).sidecar("rpc-mesh")
    assert plain is not None and all(e.get("name") != FILE_ENV for e in plain.env)


@pytest.mark.parametrize(("param", "error"), [
    ({"type": "enum", "values": ["on", False], "default": "on"},
     "runtime.sidecars.rpc-mesh.x.values[1]: is a boolean (False); quote it (\"on\", \"off\")"),
    ({"type": "enum", "default": "on"}, "runtime.sidecars.rpc-mesh.x.values: is required for an enum: the list of allowed values"),
    ({"type": "enum", "values": ["a"], "default": "b"}, "runtime.sidecars.rpc-mesh.x.default: must be one of a, got 'b'"),
    ({"type": "int", "minimum": 5, "maximum": 4, "default": 4}, "runtime.sidecars.rpc-mesh.x.minimum: must not exceed maximum (4), got 5"),
    ({"type": "bool"}, "runtime.sidecars.rpc-mesh.x.default: is required: the value every pod has until something overrides it"),
    ({"type": "float", "default": 1}, "runtime.sidecars.rpc-mesh.x.type: must be one of enum, bool, int, string, got 'float'"),
    ({"type": "bool", "default": True, "values": ["a"]}, "runtime.sidecars.rpc-mesh.x.values: is for type enum only, not bool"),
    ({"type": "bool", "default": True, "colour": 1}, "runtime.sidecars.rpc-mesh.x.colour: unknown field"),
])
def test_declaration_mistakes(param: dict[str, Any], error: str) -> None:
    assert _errors(_changed(x=param)) == [error]


def test_int_default_below_minimum_names_the_bounds() -> None:
    assert _errors(_changed(x={"type": "int", "minimum": 5, "default": 4})) == [
        "runtime.sidecars.rpc-mesh.x.default: must be within 5.., got 4"]


def test_int_default_above_maximum_names_the_bounds() -> None:
    assert _errors(_changed(x={"type": "int", "maximum": 4, "default": 5})) == [
        "runtime.sidecars.rpc-mesh.x.default: must be within ..4, got 5"]


@pytest.mark.parametrize(("bounds", "error"), [
    ({"minimum": "x", "maximum": 0}, "runtime.sidecars.rpc-mesh.x.minimum: must be an integer, got 'x'"),
    ({"minimum": 1, "maximum": "x"}, "runtime.sidecars.rpc-mesh.x.maximum: must be an integer, got 'x'"),
])
def test_a_bound_that_is_no_integer_is_the_only_error(bounds: dict[str, Any], error: str) -> None:
    """Not also "minimum must not exceed maximum" against the stand-in of the bound that was refused."""
    assert _errors(_changed(x={"type": "int", "default": 1, **bounds})) == [error]


def test_a_declaration_is_read_whole() -> None:
    declared = {"type": "int", "minimum": 1, "maximum": 9, "default": "3", "namespaceOverride": False,
                "description": "how many"}
    param = runtime_policy(_changed(x=declared)).runtime.parameters["rpc-mesh"]["x"]
    assert param == Parameter("x", "int", 3, (), 1, 9, False, "how many")


@pytest.mark.parametrize(("mounts", "volumes", "errors"), [
    ([{"name": "meshfit-runtime", "mountPath": "/x"}], [],
     ["sidecars[0].volumeMounts[0]: meshfit-runtime at /etc/meshfit/runtime is meshfit's runtime volume"]),
    ([{"name": "cfg", "mountPath": "/etc/meshfit/runtime"}], [],
     ["sidecars[0].volumeMounts[0]: meshfit-runtime at /etc/meshfit/runtime is meshfit's runtime volume"]),
    ([{"name": "cfg", "mountPath": "/etc/cfg"}], [{"name": "meshfit-runtime", "emptyDir": {}}],
     ["sidecars[0].volumes[0].name: meshfit-runtime is meshfit's runtime volume"]),
    ([{"name": "cfg", "mountPath": "/etc/cfg"}], [{"name": "cfg", "emptyDir": {}}], []),
])
def test_a_sidecar_with_parameters_may_not_take_meshfits_volume_name_or_path(
        mounts: list[dict[str, Any]], volumes: list[dict[str, Any]], errors: list[str]) -> None:
    doc = document()
    doc["sidecars"][0]["volumeMounts"], doc["sidecars"][0]["volumes"] = mounts, volumes
    if errors:
        with pytest.raises(PolicyError) as info:
            parse_policy(doc)
        assert [str(e) for e in info.value.errors] == errors
    else:
        spec = parse_policy(doc).sidecar("rpc-mesh")
        assert spec is not None and spec.volume_mounts[0] == {"name": "cfg", "mountPath": "/etc/cfg"}


def test_unknown_sidecar_and_bad_parameter_name() -> None:
    runtime = copy.deepcopy(RUNTIME)
    runtime["sidecars"]["nope"] = {}
    runtime["sidecars"]["rpc-mesh"]["9lives"] = {"type": "bool", "default": True}
    assert _errors(runtime) == [
        "runtime.sidecars.rpc-mesh.9lives: a parameter name is a letter then letters, digits or '_' (at most 63)",
        "runtime.sidecars.nope: names no sidecar of this policy (known: rpc-mesh, msg-mesh)",
    ]


def test_rule_mistakes() -> None:
    runtime = copy.deepcopy(RUNTIME)
    runtime["rules"] = [
        {"name": "all", "set": {"logLevel": "debug"}},
        {"name": "bad", "apps": ["a"], "set": {"logLevel": "verbose", "colour": "red"}},
        {"name": "bad", "apps": ["b"], "set": {"traceLog": "off"}},
        {"name": "other", "sidecar": "nope", "apps": ["c"], "set": {"traceLog": "off"}},
        {"name": "empty", "apps": ["d"], "set": {}},
    ]
    assert _errors(runtime) == [
        "runtime.rules[0]: must name namespaces, apps or zones (for every pod, change the parameter's default)",
        "runtime.rules[1].set.logLevel: must be one of debug, info, warn, error, got 'verbose'",
        "runtime.rules[1].set.colour: is not a runtime parameter of any sidecar",
        "runtime.rules[2].name: duplicate rule name 'bad'",
        "runtime.rules[3].sidecar: declares no runtime parameters (declared: rpc-mesh, msg-mesh)",
        "runtime.rules[3].set.traceLog: is not a runtime parameter of sidecar nope",
        "runtime.rules[4].set: must set at least one parameter",
    ]


def test_a_value_must_suit_every_sidecar_that_declares_it() -> None:
    runtime = copy.deepcopy(RUNTIME)
    runtime["sidecars"]["msg-mesh"]["traceLog"] = {"type": "enum", "values": ["full", "none"], "default": "none"}
    runtime["rules"] = [{"name": "r", "apps": ["a"], "set": {"traceLog": "off"}}]
    assert _errors(runtime) == ["runtime.rules[0].set.traceLog: must be one of full, none, got 'off'"]


def test_freeze_window_degrade_is_judged_by_the_declarations() -> None:
    windows = [{"start": "09:00", "end": "18:00", "degrade": {"lbLongPolling": "sometimes", "nope": 1}}]
    assert _errors(RUNTIME, fleet={"freezeWindows": windows}) == [
        "fleet.freezeWindows[0].degrade.lbLongPolling: must be true or false, got 'sometimes' "
        "(runtime.sidecars.rpc-mesh.lbLongPolling)",
        "fleet.freezeWindows[0].degrade.nope: is not a runtime parameter of any sidecar",
    ]
    ok = runtime_policy(RUNTIME, fleet={"freezeWindows": [{"start": "09:00", "end": "18:00",
                                                           "degrade": {"lbLongPolling": False}}]})
    assert ok.fleet.freeze_windows[0].degrade == (("lbLongPolling", False),)


def test_runtime_env_and_volume_are_meshfits() -> None:
    doc = document()
    doc["sidecars"][0].setdefault("env", []).append({"name": FILE_ENV, "value": "x"})
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    assert any(e.message == f"{FILE_ENV} is set by meshfit (runtime parameters)" for e in info.value.errors)


def test_namespace_policy_sets_only_overridable_parameters_to_allowed_values() -> None:
    policy = runtime_policy()
    ns = parse_namespace_policy({"apiVersion": "meshfit.io/v1alpha1", "kind": "NamespacePolicy",
                                 "runtime": {"rpc-mesh": {"logLevel": "debug", "traceLog": False}}}, policy, "pay")
    assert ns.runtime == {"rpc-mesh": {"logLevel": "debug", "traceLog": "off"}}
    with pytest.raises(PolicyError) as info:
        parse_namespace_policy({"apiVersion": "meshfit.io/v1alpha1", "kind": "NamespacePolicy",
                                "runtime": {"rpc-mesh": {"controlPlane": "degraded", "logLevel": "loud"},
                                            "other": {}}}, policy, "pay")
    assert [str(e) for e in info.value.errors] == [
        "runtime.rpc-mesh.controlPlane: runtime.sidecars.rpc-mesh.controlPlane is not namespaceOverride: "
        "only the global policy sets it",
        "runtime.rpc-mesh.logLevel: must be one of debug, info, warn, error, got 'loud'",
        "runtime.other: declares no runtime parameters in the global policy (declared: rpc-mesh, msg-mesh)",
    ]


def test_a_namespace_policy_may_name_a_sidecar_and_set_nothing() -> None:
    ns = parse_namespace_policy({"apiVersion": "meshfit.io/v1alpha1", "kind": "NamespacePolicy",
                                 "runtime": {"rpc-mesh": {}}}, runtime_policy(), "pay")
    assert ns.runtime == {"rpc-mesh": {}}


def test_values_for_returns_only_the_values_the_declarations_take() -> None:
    errors: list[FieldError] = []
    out = values_for(Fields({"logLevel": "loud", "traceLog": False, "nope": 1}, "set", errors),
                     runtime_policy().runtime, None)
    assert out == {"traceLog": "off"}
    assert [str(e) for e in errors] == ["set.logLevel: must be one of debug, info, warn, error, got 'loud'",
                                        "set.nope: is not a runtime parameter of any sidecar"]


# -- degradations: checked against the policy, stored leniently ---------------------
AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _d(parameter: str = "traceLog", value: object = "off", hours: float = 2, **scope: str) -> Degradation:
    return Degradation(id="d-1", parameter=parameter, value=value, reason="INC-7", by="alice", at=AT,  # type: ignore[arg-type]
                       until=AT + timedelta(hours=hours), **scope)  # type: ignore[arg-type]


def test_check_names_the_declaration_that_refuses() -> None:
    runtime = runtime_policy().runtime
    assert check(runtime, _d(value="of"))[1] == \
        "runtime.sidecars.rpc-mesh.parameters.traceLog: must be one of on, off, got 'of'"
    assert check(runtime, _d(parameter="colour"))[1] == (
        "runtime: no sidecar declares parameter 'colour' (declared: controlPlane, lbLongPolling, logLevel, "
        "maxConnections, traceLog)")
    assert check(runtime, _d(parameter="logLevel", value="debug", sidecar="msg-mesh"))[1] == \
        "runtime.sidecars.msg-mesh.parameters: has no 'logLevel'"
    assert check(runtime, _d(value=False))[0] == _d(value="off")


@pytest.mark.parametrize(("hours", "ok"), [(24, True), (24 + 1 / 3600, False), (0, False)])
def test_check_bounds_the_span_by_max_degradation(hours: float, ok: bool) -> None:
    assert (check(runtime_policy().runtime, _d(hours=hours))[1] is None) is ok


def test_store_round_trip_and_a_broken_record_skipped_with_its_reason() -> None:
    d = _d(namespace="pay")
    data = write_store([d], ["line 1"])
    store = read_store(data)
    assert store.records == (d,)
    assert store.audit == ("line 1",)
    broken = data["degradations.json"].replace('"until"', '"untl"')
    store = read_store({"degradations.json": broken[:-1] + ',{"id": 1}]'})
    assert store.records == ()
    assert store.broken == ("degradations.json[0]: until: must be a non-empty string",
                            "degradations.json[1]: id: must be a non-empty string")
    assert read_store({"degradations.json": "{"}).broken[0].startswith("degradations.json: not JSON")


def test_audit_keeps_the_last_500() -> None:
    data = write_store([], (f"l{i}" for i in range(600)))
    lines = read_store(data).audit
    assert (len(lines), lines[0], lines[-1]) == (500, "l100", "l599")
