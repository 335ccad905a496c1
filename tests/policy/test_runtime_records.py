"""The runtime parameters' records, written out whole: what the pod, the ConfigMap, the store and the audit say."""

from __future__ import annotations

import hashlib
from datetime import datetime, time, timedelta, timezone

import orjson
import pytest
from local_zone import local_zone
from runtime_policies import RUNTIME, document, runtime_policy

from policy.degradations import (
    Degradation,
    DegradationError,
    audit_line,
    expired,
    new_id,
    parse_duration,
    read_store,
    write_store,
)
from policy.fields import PolicyError
from policy.freeze import FreezeWindow
from policy.load import parse_policy
from policy.runtime import (
    Group,
    Parameter,
    Setting,
    WindowValue,
    configmap,
    configmap_name,
    group_annotation,
    group_from_annotation,
    group_of,
    resolve,
    sources_of,
    window_values,
)

AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
UNTIL = AT + timedelta(hours=2)


def _d(**kw: object) -> Degradation:
    fields: dict[str, object] = {"id": "d-1", "parameter": "traceLog", "value": "off", "reason": "INC-7", "by": "alice",
                                 "at": AT, "until": UNTIL}
    fields.update(kw)
    return Degradation(**fields)  # type: ignore[arg-type]


# -- the group a pod reads -----------------------------------------------------------
def test_group_of_reads_the_app_and_zone_labels() -> None:
    labels = {"app": "a", "zone": "z", "other": "o"}
    assert group_of(labels, "ns", "app", "zone") == Group("ns", "a", "z")
    assert group_of(None, "ns", "app", "zone") == Group("ns", "", "")
    assert group_of({"app": ""}, "ns", "app", "zone") == Group("ns", "", "")


def test_group_annotation_round_trip_and_refusals() -> None:
    group = Group("pay", "checkout", "")
    text = group_annotation(group)
    assert text == '{"configMap":"meshfit-runtime-checkout","app":"checkout","zone":""}'
    assert group_from_annotation("pay", text) == group
    assert group_from_annotation("pay", '{"configMap":"meshfit-runtime"}') == Group("pay")
    for bad in (None, 7, "{", "[]", '{"configMap":"meshfit-runtime","app":1}',
                '{"configMap":"meshfit-runtime-other","app":"checkout","zone":""}',
                '{"app":"checkout","zone":""}', '{"configMap":"meshfit-runtime","zone":1}',
                '{"configMap":5}'):
        assert group_from_annotation("pay", bad) is None, bad


def test_a_zoned_group_round_trips_through_its_annotation() -> None:
    group = Group("pay", "checkout", "eu-1")
    text = group_annotation(group)
    assert '"zone":"eu-1"' in text
    assert group_from_annotation("pay", text) == group
    assert group_from_annotation("pay", text.replace('"zone":"eu-1"', '"zone":"eu-2"')) is None


def test_group_describe() -> None:
    assert Group("pay").describe() == "namespace pay"
    assert Group("pay", "a").describe() == "namespace pay, app a"
    assert Group("pay", "a", "z").describe() == "namespace pay, app a, zone z"
    assert Group("pay", "", "z").describe() == "namespace pay, zone z"
    assert Group("pay", "a", "z").configmap == configmap_name("a", "z")


def test_cleaned_names_carry_the_hash_of_the_pair() -> None:
    digest = hashlib.sha256(b"Check_Out\x00").hexdigest()[:8]
    assert configmap_name("Check_Out", "") == f"meshfit-runtime-check-out-{digest}"
    digest = hashlib.sha256(b"web\x00eu-1a").hexdigest()[:8]
    assert configmap_name("web", "eu-1a") == f"meshfit-runtime-web-eu-1a-{digest}"
    digest = hashlib.sha256(b"a..b\x00").hexdigest()[:8]
    assert configmap_name("a..b", "") == f"meshfit-runtime-a-b-{digest}"
    long_app = "a" * 240
    name = configmap_name(long_app, "")
    assert len(name) == 253 and name.endswith("-" + hashlib.sha256(f"{long_app}\0".encode()).hexdigest()[:8])


# -- the ConfigMap ---------------------------------------------------------------------
def test_the_configmap_written_out() -> None:
    settings = {"rpc-mesh": {"logLevel": Setting("debug", "rule", "checkout-debug", "app rule"),
                             "traceLog": Setting(False, "default")}}
    assert configmap(Group("pay", "checkout"), settings) == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "meshfit-runtime-checkout", "namespace": "pay",
                     "labels": {"meshfit.io/runtime": "v1", "app.kubernetes.io/managed-by": "meshfit"},
                     "annotations": {
                         "meshfit.io/runtime-group": '{"configMap":"meshfit-runtime-checkout","app":"checkout","zone":""}',
                         "meshfit.io/runtime-sources": '{"rpc-mesh.logLevel":"rule checkout-debug (app rule)",'
                                                       '"rpc-mesh.traceLog":"default"}'}},
        "data": {"rpc-mesh.json": '{"logLevel":"debug","traceLog":false}'},
    }


def test_setting_describe() -> None:
    assert Setting("x", "default").describe() == "default"
    assert Setting("x", "rule", "r").describe() == "rule r"
    assert Setting("x", "degradation", "d-1", "namespace pay").describe() == "degradation d-1 (namespace pay)"
    assert sources_of({}) == "{}"


# -- parameters judge every value -----------------------------------------------------------
def test_parameter_messages() -> None:
    assert Parameter("b", "bool", True).check("TRUE") == (True, None)
    assert Parameter("b", "bool", True).check("false") == (False, None)
    assert Parameter("b", "bool", True).check("yes") == (None, "must be true or false, got 'yes'")
    assert Parameter("b", "bool", True).check(1) == (None, "must be true or false, got 1")
    n = Parameter("n", "int", 1, minimum=-5, maximum=5)
    assert n.check(" -5 ") == (-5, None)
    assert n.check("x") == (None, "must be an integer, got 'x'")
    assert n.check(6) == (None, "must be within -5..5, got 6")
    assert Parameter("n", "int", 1, maximum=5).check(6) == (None, "must be within ..5, got 6")
    assert Parameter("n", "int", 1).check(10**12) == (10**12, None)
    tf = Parameter("e", "enum", "true", values=("true", "false"))
    assert tf.check(True) == ("true", None) and tf.check(False) == ("false", None)
    numbers = Parameter("e", "enum", "1", values=("1", "2"))
    assert numbers.check(2) == ("2", None)
    assert numbers.check(3) == (None, "must be one of 1, 2, got 3")
    s = Parameter("s", "string", "")
    assert s.check(True) == (None, "must be a string, got True")
    assert s.check("a\rb")[1] == "must be one line of at most 256 characters"
    assert s.check("a\0b")[1] is not None


def test_declaration_fields_read() -> None:
    runtime = dict(RUNTIME)
    runtime["sidecars"] = {"rpc-mesh": {"x": {"type": "string", "default": "v", "description": "why",
                                              "namespaceOverride": False}}}
    runtime["rules"] = []
    param = parse_policy(document(runtime)).runtime.parameters["rpc-mesh"]["x"]
    assert param == Parameter("x", "string", "v", (), None, None, False, "why")


@pytest.mark.parametrize(("param", "error"), [
    ({"type": "enum", "values": ["a", "a"], "default": "a"}, "runtime.sidecars.rpc-mesh.x.values: has duplicates"),
    ({"type": "enum", "values": ["a", {}], "default": "a"}, "runtime.sidecars.rpc-mesh.x.values[1]: must be a string, got {}"),
    ({"type": "enum", "values": ["a", ""], "default": "a"}, "runtime.sidecars.rpc-mesh.x.values[1]: must be a string, got ''"),
    ({"type": "string", "default": "a", "minimum": 1}, "runtime.sidecars.rpc-mesh.x.minimum: is for type int only, not string"),
    ({"type": "bool", "default": True, "maximum": 1}, "runtime.sidecars.rpc-mesh.x.maximum: is for type int only, not bool"),
    ({"type": "int", "default": 1, "minimum": "1"}, "runtime.sidecars.rpc-mesh.x.minimum: must be an integer, got '1'"),
])
def test_more_declaration_mistakes(param: dict[str, object], error: str) -> None:
    runtime = {"sidecars": {"rpc-mesh": {"x": param}}}
    with pytest.raises(PolicyError) as info:
        parse_policy(document(runtime))
    assert [str(e) for e in info.value.errors] == [error]


def test_enum_values_may_be_numbers_read_as_words() -> None:
    runtime = {"sidecars": {"rpc-mesh": {"x": {"type": "enum", "values": [1, 2], "default": 1}}}}
    assert parse_policy(document(runtime)).runtime.parameters["rpc-mesh"]["x"] == Parameter("x", "enum", "1", ("1", "2"))


def test_rule_read_whole() -> None:
    rule = runtime_policy().runtime.rules[0]
    assert (rule.name, rule.values, rule.sidecar, rule.apps, rule.namespaces, rule.zones, rule.expires, rule.reason) == (
        "checkout-debug", (("logLevel", "debug"),), None, ("checkout",), (), (), None, "INC-1")
    runtime = {**RUNTIME, "rules": [{"name": "r", "sidecar": "msg-mesh", "zones": ["z"], "namespaces": ["n"],
                                     "set": {"traceLog": "on"}, "expires": "2027-01-01T00:00:00Z"}]}
    (rule,) = runtime_policy(runtime).runtime.rules
    assert (rule.sidecar, rule.zones, rule.namespaces, rule.level, rule.expires) == (
        "msg-mesh", ("z",), ("n",), "zone", datetime(2027, 1, 1, tzinfo=timezone.utc))


def test_rule_matches_says_why_not() -> None:
    (rule,) = runtime_policy({**RUNTIME, "rules": [
        {"name": "r", "sidecar": "rpc-mesh", "namespaces": ["pay"], "apps": ["web"], "zones": ["z"],
         "set": {"logLevel": "debug"}, "expires": "2027-01-01T00:00:00Z"}]}).runtime.rules
    now = AT
    assert rule.matches("msg-mesh", Group("pay", "web", "z"), now) == "for sidecar rpc-mesh"
    assert rule.matches("rpc-mesh", Group("shop", "web", "z"), now) == "namespace shop not in ['pay']"
    assert rule.matches("rpc-mesh", Group("pay", "", "z"), now) == "app (no app label) not in ['web']"
    assert rule.matches("rpc-mesh", Group("pay", "web", ""), now) == "zone (no zone label) not in ['z']"
    assert rule.matches("rpc-mesh", Group("pay", "web", "z"), now) is None
    assert rule.matches("rpc-mesh", Group("pay", "web", "z"), datetime(2027, 1, 1, tzinfo=timezone.utc)) == \
        "expired 2027-01-01T00:00:00+00:00"


def test_rule_level_is_its_most_specific_dimension() -> None:
    runtime = {**RUNTIME, "rules": [{"name": "a", "apps": ["x"], "zones": ["z"], "namespaces": ["n"], "set": {"logLevel": "warn"}},
                                    {"name": "n", "namespaces": ["n"], "set": {"logLevel": "warn"}}]}
    assert [r.level for r in runtime_policy(runtime).runtime.rules] == ["app", "namespace"]


def test_namespace_and_window_sources_described() -> None:
    s = resolve(runtime_policy().runtime, Group("shop"), now=AT, namespace_values={"rpc-mesh": {"traceLog": "off"}},
                windows=[WindowValue("peak", "logLevel", "warn"), WindowValue("peak", "logLevel", "loud")])["rpc-mesh"]
    assert (s["traceLog"].value, s["traceLog"].describe()) == ("off", "namespace-policy shop")
    assert (s["logLevel"].value, s["logLevel"].describe(), s["logLevel"].shadowed) == ("warn", "freeze-window peak", ())


def test_window_values_only_inside_the_window() -> None:
    window = FreezeWindow(frozenset(range(7)), time(9, 0), time(18, 0), "UTC", "peak", (("lbLongPolling", False),))
    quiet = FreezeWindow(frozenset(range(7)), time(20, 0), time(21, 0), "UTC", "", (("traceLog", "off"),))
    inside = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    assert window_values([window, quiet], inside) == (WindowValue(window.describe(), "lbLongPolling", False),)
    assert window_values([window], inside - timedelta(seconds=1)) == ()
    assert window_values([window], datetime(2026, 12, 1, 18, 0, tzinfo=timezone.utc)) == ()


# -- degradations --------------------------------------------------------------------------
def test_scope_and_level_of_each_shape() -> None:
    assert (_d().scope(), _d().level) == ("every namespace", "fleet")
    assert (_d(namespace="pay").scope(), _d(namespace="pay").level) == ("namespace pay", "namespace")
    assert (_d(zone="z").level, _d(zone="z", namespace="pay").level) == ("zone", "zone")
    d = _d(sidecar="rpc-mesh", namespace="pay", app="web", zone="z")
    assert (d.scope(), d.level) == ("sidecar rpc-mesh, namespace pay, app web, zone z", "app")


def test_applies_says_why_not() -> None:
    d = _d(sidecar="rpc-mesh", namespace="pay", app="web", zone="z")
    group = Group("pay", "web", "z")
    assert d.applies("rpc-mesh", "traceLog", group, AT) is None
    assert d.applies("rpc-mesh", "logLevel", group, AT) == "another parameter"
    assert d.applies("rpc-mesh", "traceLog", group, UNTIL) == "expired 2026-12-01T14:00:00+00:00"
    assert d.applies("rpc-mesh", "traceLog", group, AT - timedelta(seconds=1)) == "starts 2026-12-01T12:00:00+00:00"
    assert d.applies("msg-mesh", "traceLog", group, AT) == "sidecar msg-mesh is not rpc-mesh"
    assert d.applies("rpc-mesh", "traceLog", Group("shop", "web", "z"), AT) == "namespace shop is not pay"
    assert d.applies("rpc-mesh", "traceLog", Group("pay", "", "z"), AT) == "app (none) is not web"
    assert d.applies("rpc-mesh", "traceLog", Group("pay", "web", "y"), AT) == "zone y is not z"


def test_record_json_and_audit_line_written_out() -> None:
    d = _d(namespace="pay", value=False)
    assert d.to_json() == {"id": "d-1", "parameter": "traceLog", "value": False, "reason": "INC-7", "by": "alice",
                           "at": "2026-12-01T12:00:00Z", "until": "2026-12-01T14:00:00Z", "namespace": "pay"}
    line = audit_line("cleared", d, by="bob", at=AT + timedelta(minutes=5), reason="fixed")
    assert orjson.loads(line) == {"action": "cleared", "by": "bob", "at": "2026-12-01T12:05:00Z", "reason": "fixed",
                                  "until": "2026-12-01T14:00:00Z", "degradation": d.to_json()}
    assert orjson.loads(audit_line("set", d, by="alice", at=AT))["reason"] == "INC-7"
    berlin = timezone(timedelta(hours=1))
    assert _d(at=AT.astimezone(berlin)).to_json()["at"] == "2026-12-01T12:00:00Z"


@pytest.mark.parametrize(("item", "error"), [
    ("x", "must be a mapping"),
    ({}, "id: must be a non-empty string"),
    ({"id": ""}, "id: must be a non-empty string"),
    ({"id": "d", "parameter": "p"}, "value: must be a string, boolean or integer"),
    ({"id": "d", "parameter": "p", "value": 1.5}, "value: must be a string, boolean or integer"),
    ({"id": "d", "parameter": "p", "value": "v", "reason": "r", "by": "b", "at": "never"},
     "at: 'never' is not an RFC 3339 time"),
    ({"id": "d", "parameter": "p", "value": "v", "reason": "r", "by": "b", "at": "2026-12-01T12:00:00"},
     "at: '2026-12-01T12:00:00' has no time zone"),
    ({"id": "d", "parameter": "p", "value": "v", "reason": "r", "by": "b", "at": "2026-12-01T12:00:00Z",
      "until": "2026-12-01T13:00:00Z", "sidecar": 3}, "sidecar: must be a string"),
    ({"id": "d", "parameter": "", "value": "v"}, "parameter: must be a non-empty string"),
    ({"id": "d", "parameter": "p", "value": "v", "reason": "", "by": "b"}, "reason: must be a non-empty string"),
    ({"id": "d", "parameter": "p", "value": "v", "reason": "r", "by": ""}, "by: must be a non-empty string"),
    ({"id": "d", "parameter": "p", "value": "v", "reason": "r", "by": "b", "at": "2026-12-01T12:00:00Z",
      "until": "2026-12-01T13:00:00Z", "zone": ["z"]}, "zone: must be a string"),
])
def test_record_mistakes(item: object, error: str) -> None:
    store = read_store({"degradations.json": orjson.dumps([item]).decode()})
    assert store.broken == (f"degradations.json[0]: {error}",)
    assert not store.unreadable


def test_a_whole_record_read_back() -> None:
    d = _d(sidecar="rpc-mesh", namespace="pay", app="web", zone="z", value=3)
    assert read_store(write_store([d], [])).records == (d,)


def test_a_record_with_only_the_required_fields_has_no_scope() -> None:
    item = {"id": "d", "parameter": "p", "value": "v", "reason": "r", "by": "b",
            "at": "2026-12-01T12:00:00Z", "until": "2026-12-01T13:00:00+00:00"}
    (d,) = read_store({"degradations.json": orjson.dumps([item]).decode()}).records
    assert (d.sidecar, d.namespace, d.app, d.zone) == (None, None, None, None)
    assert (d.at, d.until) == (AT, AT + timedelta(hours=1))


def test_the_store_is_indented_for_people_who_read_it_with_kubectl() -> None:
    text = write_store([_d(namespace="pay")], [])["degradations.json"]
    assert text.startswith('[\n  {\n    "id": "d-1",\n    "parameter": "traceLog",\n')


def test_stamps_and_ids_are_utc_whatever_the_machine_zone() -> None:
    with local_zone():
        line = orjson.loads(audit_line("set", _d(), by="alice", at=AT))
        assert (line["at"], line["until"]) == ("2026-12-01T12:00:00Z", "2026-12-01T14:00:00Z")
        assert new_id("traceLog", "namespace pay", AT).startswith("d-20261201120000-")


def test_store_shapes() -> None:
    assert read_store(None) == read_store({}) == read_store({"degradations.json": ""})
    assert read_store({"degradations.json": "{}"}).broken == ("degradations.json: must be a list of degradations",)
    assert read_store({"degradations.json": "{}"}).unreadable
    assert read_store({"degradations.json": "{"}).unreadable
    assert read_store({"audit.jsonl": "a\n\n  \nb\n"}).audit == ("a", "b")
    assert read_store({"degradations.json": "[]"}).audit == ()
    assert write_store([], ["x"]) == {"degradations.json": "[]", "audit.jsonl": "x\n"}
    assert write_store([], []) == {"degradations.json": "[]", "audit.jsonl": ""}


def test_expired_at_until() -> None:
    d = _d()
    assert expired([d], UNTIL - timedelta(seconds=1)) == ()
    assert expired([d], UNTIL) == (d,)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1d12h", 129600),
                                               ("1d2h3m4s", 93784), (" 5m ", 300), ("1s", 1)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0s", "0m", "5", "2x", "h", "1h1d", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DegradationError) as info:
        parse_duration(text)
    assert str(info.value).startswith("--for: ")
    if text == "0s":
        assert str(info.value) == "--for: '0s' must be longer than 0s"
    if text == "2x":
        assert str(info.value) == "--for: '2x' is not a duration such as 30m, 2h or 1d"


def test_new_id_names_the_second_and_hashes_the_rest() -> None:
    digest = hashlib.sha256(f"traceLog\0scope\0{AT.isoformat()}".encode()).hexdigest()[:6]
    assert new_id("traceLog", "scope", AT) == f"d-20261201120000-{digest}"
    assert new_id("traceLog", "other", AT) != new_id("traceLog", "scope", AT)


def test_max_degradation_read_and_refused_with_its_path() -> None:
    assert runtime_policy().runtime.max_degradation_seconds == 86400
    assert runtime_policy({**RUNTIME, "maxDegradation": None}).runtime.max_degradation_seconds == 7 * 86400
    with pytest.raises(PolicyError) as info:
        runtime_policy({**RUNTIME, "maxDegradation": "forever"})
    assert [str(e) for e in info.value.errors] == [
        "runtime.maxDegradation: 'forever' is not a duration such as 30m, 2h or 1d"]


# -- every branch of the loaders, and the order of the levels ---------------------------------
def _errors(runtime: dict[str, object], **top: object) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(document(runtime, **top))
    return [str(e) for e in info.value.errors]


def test_a_rule_needs_a_name_and_names_what_is_declared() -> None:
    assert _errors({**RUNTIME, "rules": [{"apps": ["a"], "set": {"logLevel": "debug"}}]}) == [
        "runtime.rules[0].name: is required"]
    assert _errors({"rules": [{"name": "r", "sidecar": "rpc-mesh", "apps": ["a"], "set": {"x": 1}}]}) == [
        "runtime.rules[0].sidecar: declares no runtime parameters (declared: none)",
        "runtime.rules[0].set.x: is not a runtime parameter of sidecar rpc-mesh"]


def test_every_key_of_a_set_is_judged_after_a_bad_one() -> None:
    runtime = {**RUNTIME, "rules": [{"name": "r", "apps": ["a"], "set": {"colour": "red", "logLevel": "loud",
                                                                          "traceLog": "off"}}]}
    assert _errors(runtime) == ["runtime.rules[0].set.colour: is not a runtime parameter of any sidecar",
                                "runtime.rules[0].set.logLevel: must be one of debug, info, warn, error, got 'loud'"]
    ok = {**RUNTIME, "rules": [{"name": "r", "apps": ["a"], "set": {"traceLog": "off", "maxConnections": "7"}}]}
    assert runtime_policy(ok).runtime.rules[0].values == (("traceLog", "off"), ("maxConnections", 7))


def test_the_global_policy_sets_what_a_namespace_may_not() -> None:
    runtime = {**RUNTIME, "rules": [{"name": "r", "namespaces": ["pay"], "set": {"controlPlane": "degraded"}}]}
    assert runtime_policy(runtime).runtime.rules[0].values == (("controlPlane", "degraded"),)


def test_a_window_degrade_value_of_no_scalar_kind() -> None:
    broken = {"start": "09:00", "end": "18:00", "degrade": {"x": [1], "y": {}}}
    judged = {"start": "20:00", "end": "21:00", "degrade": {"traceLog": "of"}}
    assert _errors(RUNTIME, fleet={"freezeWindows": [broken, judged]}) == [
        "fleet.freezeWindows[0].degrade.x: must be a string, boolean or integer, got [1]",
        "fleet.freezeWindows[0].degrade.y: must be a string, boolean or integer, got {}",
        "fleet.freezeWindows[1].degrade.traceLog: must be one of on, off, got 'of' (runtime.sidecars.rpc-mesh.traceLog)"]


def test_a_namespace_policy_is_read_per_sidecar_after_a_bad_one() -> None:
    from policy.load import parse_namespace_policy

    doc = {"apiVersion": "meshfit.io/v1alpha1", "kind": "NamespacePolicy",
           "runtime": {"other": {"x": 1}, "rpc-mesh": {"traceLog": "off"}, "msg-mesh": {"logLevel": "debug"}}}
    with pytest.raises(PolicyError) as info:
        parse_namespace_policy(doc, runtime_policy(), "pay")
    assert [str(e) for e in info.value.errors] == [
        "runtime.other: declares no runtime parameters in the global policy (declared: rpc-mesh, msg-mesh)",
        "runtime.msg-mesh.logLevel: is not a runtime parameter of sidecar msg-mesh"]
    plain = parse_policy(document({}))
    with pytest.raises(PolicyError) as info:
        parse_namespace_policy({**doc, "runtime": {"rpc-mesh": {}}}, plain, "pay")
    assert [str(e) for e in info.value.errors] == [
        "runtime.rpc-mesh: declares no runtime parameters in the global policy (declared: none)"]


def test_check_with_nothing_declared_and_an_empty_span() -> None:
    from policy.degradations import check

    assert check(parse_policy(document({})).runtime, _d())[1] == \
        "runtime: no sidecar declares parameter 'traceLog' (declared: none)"
    assert check(runtime_policy().runtime, _d(until=AT))[1] == "until: must be after at"


def test_an_unreadable_store_keeps_its_audit() -> None:
    for text in ("{", "{}"):
        assert read_store({"degradations.json": text, "audit.jsonl": "a\n"}).audit == ("a",)


def test_a_parameter_without_a_type_is_an_enum() -> None:
    runtime = {"sidecars": {"rpc-mesh": {"x": {"values": ["a"], "default": "a"}}}}
    assert parse_policy(document(runtime)).runtime.parameters["rpc-mesh"]["x"].type == "enum"
    assert _errors({"sidecars": {"rpc-mesh": {"x": {"values": [], "default": "a"}}}}) == [
        "runtime.sidecars.rpc-mesh.x.values: is required for an enum: the list of allowed values"]
    assert _errors({"sidecars": {"rpc-mesh": {"x": {"values": "a", "default": "a"}}}}) == [
        "runtime.sidecars.rpc-mesh.x.values: is required for an enum: the list of allowed values"]


@pytest.mark.parametrize(("bounds", "value", "ok"), [({"minimum": 5, "maximum": 5}, 5, True),
                                                     ({"minimum": 5}, 10**9, True), ({"maximum": 5}, -10**9, True),
                                                     ({"maximum": 5}, 6, False)])
def test_int_bounds_read(bounds: dict[str, int], value: int, ok: bool) -> None:
    runtime = {"sidecars": {"rpc-mesh": {"x": {"type": "int", "default": 5, **bounds}}}}
    param = parse_policy(document(runtime)).runtime.parameters["rpc-mesh"]["x"]
    assert (param.minimum, param.maximum) == (bounds.get("minimum"), bounds.get("maximum"))
    assert (param.check(value)[1] is None) is ok


def test_a_zone_rule_written_first_still_loses_to_an_app_rule() -> None:
    runtime = {**RUNTIME, "rules": [{"name": "z", "zones": ["eu"], "set": {"logLevel": "warn"}},
                                    {"name": "a", "apps": ["web"], "set": {"logLevel": "debug"}},
                                    {"name": "n", "namespaces": ["pay"], "set": {"logLevel": "error"}}]}
    policy = runtime_policy(runtime)
    assert resolve(policy.runtime, Group("pay", "web", "eu"), now=AT)["rpc-mesh"]["logLevel"].origin == "a"
    assert resolve(policy.runtime, Group("pay", "shop", "eu"), now=AT)["rpc-mesh"]["logLevel"].origin == "z"


def test_a_rule_for_one_sidecar_leaves_the_other() -> None:
    runtime = {**RUNTIME, "rules": [{"name": "m", "sidecar": "msg-mesh", "namespaces": ["pay"], "set": {"traceLog": "on"}}]}
    settings = resolve(runtime_policy(runtime).runtime, Group("pay"), now=AT)
    assert (settings["msg-mesh"]["traceLog"].value, settings["rpc-mesh"]["traceLog"].value) == ("on", "on")
    assert (settings["msg-mesh"]["traceLog"].source, settings["rpc-mesh"]["traceLog"].source) == ("rule", "default")


def test_a_degradation_winner_says_its_scope_until_and_reason() -> None:
    d = _d(namespace="pay")
    s = resolve(runtime_policy().runtime, Group("pay"), now=AT, degradations=[d])["rpc-mesh"]["traceLog"]
    assert s.describe() == "degradation d-1 (namespace pay, until 2026-12-01T14:00:00+00:00: INC-7)"


def test_a_later_window_loses_to_an_app_rule_only_by_level() -> None:
    windows = [WindowValue("w0", "traceLog", "on"), WindowValue("w1", "logLevel", "warn")]
    s = resolve(runtime_policy().runtime, Group("pay", "checkout"), now=AT, windows=windows)["rpc-mesh"]["logLevel"]
    assert (s.source, s.origin) == ("freeze-window", "w1")


@pytest.mark.parametrize(("app", "expected"), [
    ("a" * 237, "meshfit-runtime-" + "a" * 237),
    ("-a-", "meshfit-runtime-a-" + hashlib.sha256(b"-a-\x00").hexdigest()[:8]),
    ("A--B", "meshfit-runtime-a-b-" + hashlib.sha256(b"A--B\x00").hexdigest()[:8]),
])
def test_names_at_their_edges(app: str, expected: str) -> None:
    assert configmap_name(app, "") == expected


def test_a_long_name_is_cut_without_a_dangling_dash() -> None:
    app = "a" * 227 + "-b" + "c" * 30  # the cut at 244 characters falls right after the dash
    name = configmap_name(app, "Z")
    assert "--" not in name and len(name) <= 253
    assert name == "meshfit-runtime-" + "a" * 227 + "-" + hashlib.sha256(f"{app}\0Z".encode()).hexdigest()[:8]
