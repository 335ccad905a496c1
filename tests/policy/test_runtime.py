"""Runtime parameters: one precedence, every value judged by its declaration, names that never collide."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from runtime_policies import runtime_policy

from policy.degradations import Degradation
from policy.runtime import Group, Parameter, WindowValue, configmap_data, configmap_name, resolve

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _degradation(parameter: str, value: object, *, minutes_ago: int = 1, **scope: str) -> Degradation:
    at = NOW - timedelta(minutes=minutes_ago)
    return Degradation(id=f"d-{parameter}-{minutes_ago}-{'-'.join(scope.values())}", parameter=parameter,
                       value=value, reason="incident", by="oncall", at=at, until=NOW + timedelta(hours=1),
                       **scope)  # type: ignore[arg-type]


# -- each value judged by its declaration, at its boundaries -------------------------
INT = Parameter("maxConnections", "int", 1000, minimum=1, maximum=100000)


@pytest.mark.parametrize(("value", "ok"), [(0, False), (1, True), (2, True), (99999, True), (100000, True),
                                           (100001, False), ("1", True), ("0", False), (True, False), (1.5, False)])
def test_int_bounds_inclusive(value: object, ok: bool) -> None:
    checked, why = INT.check(value)
    assert (why is None) is ok
    if ok:
        assert checked == int(str(value))


def test_enum_takes_yaml_booleans_as_the_words_it_offers() -> None:
    on_off = Parameter("traceLog", "enum", "on", values=("on", "off"))
    assert on_off.check(False) == ("off", None)
    assert on_off.check(True) == ("on", None)
    assert on_off.check("of")[1] == "must be one of on, off, got 'of'"
    level = Parameter("logLevel", "enum", "info", values=("debug", "info"))
    assert level.check(False)[1] == "must be one of debug, info, got False"


@pytest.mark.parametrize(("length", "ok"), [(255, True), (256, True), (257, False)])
def test_string_length_limit(length: int, ok: bool) -> None:
    assert (Parameter("s", "string", "").check("x" * length)[1] is None) is ok


def test_string_is_one_line() -> None:
    assert Parameter("s", "string", "").check("a\nb")[1] is not None


# -- one precedence, most specific first -------------------------------------------
def _winner(group: Group, sidecar: str = "rpc-mesh", parameter: str = "logLevel", **inputs: object) -> tuple[object, str, str]:
    s = resolve(runtime_policy().runtime, group, now=NOW, **inputs)[sidecar][parameter]  # type: ignore[arg-type]
    return s.value, s.source, s.origin


def test_default_when_nothing_matches() -> None:
    assert _winner(Group("shop", "web", "us-1")) == ("info", "default", "")


def test_namespace_rule_then_namespace_policy_then_zone_then_app() -> None:
    assert _winner(Group("pay", "web", "us-1")) == ("error", "rule", "pay-warn")
    ns = {"rpc-mesh": {"logLevel": "debug"}}
    assert _winner(Group("pay", "web", "us-1"), namespace_values=ns) == ("debug", "namespace-policy", "pay")
    assert _winner(Group("pay", "web", "eu-1a"), namespace_values=ns) == ("warn", "rule", "eu-quiet")
    assert _winner(Group("pay", "checkout", "eu-1a"), namespace_values=ns) == ("debug", "rule", "checkout-debug")


def test_shadowed_candidates_are_listed_most_specific_first() -> None:
    s = resolve(runtime_policy().runtime, Group("pay", "checkout", "eu-1a"), now=NOW)["rpc-mesh"]["logLevel"]
    assert s.shadowed == ("rule eu-quiet (zone rule) = warn", "rule pay-warn (namespace rule) = error")


def test_namespace_policy_cannot_set_a_parameter_not_declared_overridable() -> None:
    ns = {"rpc-mesh": {"controlPlane": "degraded"}}
    assert _winner(Group("shop"), parameter="controlPlane", namespace_values=ns) == ("normal", "default", "")


def test_window_beats_rules_and_degradation_beats_window() -> None:
    window = [WindowValue("peak", "logLevel", "warn")]
    group = Group("pay", "checkout", "")
    assert _winner(group, windows=window) == ("warn", "freeze-window", "peak")
    d = _degradation("logLevel", "error")
    assert _winner(group, windows=window, degradations=[d]) == ("error", "degradation", d.id)


def test_degradation_scope_most_specific_wins_then_latest() -> None:
    group = Group("pay", "checkout", "eu-1a")
    fleet = _degradation("traceLog", "off", minutes_ago=1)
    ns_old = _degradation("traceLog", "on", minutes_ago=5, namespace="pay")
    app = _degradation("traceLog", "on", minutes_ago=9, app="checkout")
    assert _winner(group, parameter="traceLog", degradations=[fleet])[0] == "off"
    assert _winner(group, parameter="traceLog", degradations=[fleet, ns_old])[2] == ns_old.id
    assert _winner(group, parameter="traceLog", degradations=[fleet, ns_old, app])[2] == app.id
    ns_new = _degradation("traceLog", "off", minutes_ago=2, namespace="pay")
    assert _winner(group, parameter="traceLog", degradations=[ns_old, ns_new])[2] == ns_new.id


def test_degradation_for_another_namespace_or_sidecar_does_not_apply() -> None:
    group = Group("shop", "checkout", "")
    other_ns = _degradation("traceLog", "off", namespace="pay")
    assert _winner(group, parameter="traceLog", degradations=[other_ns]) == ("on", "default", "")
    msg_only = _degradation("traceLog", "off", sidecar="msg-mesh")
    assert _winner(group, parameter="traceLog", degradations=[msg_only]) == ("on", "default", "")
    assert _winner(group, sidecar="msg-mesh", parameter="traceLog", degradations=[msg_only])[1] == "degradation"


@pytest.mark.parametrize(("offset", "active"), [(-1, True), (0, False), (1, False)])
def test_degradation_expires_at_until(offset: int, active: bool) -> None:
    d = _degradation("traceLog", "off")
    at = d.until + timedelta(seconds=offset)
    assert d.active(at) is active
    s = resolve(runtime_policy().runtime, Group("shop"), now=at, degradations=[d])["rpc-mesh"]["traceLog"]
    assert s.value == ("off" if active else "on")


@pytest.mark.parametrize(("offset", "active"), [(-1, False), (0, True), (1, True)])
def test_degradation_starts_at_its_time(offset: int, active: bool) -> None:
    d = _degradation("traceLog", "off")
    assert d.active(d.at + timedelta(seconds=offset)) is active


def test_a_degradation_value_the_declaration_refuses_is_never_applied() -> None:
    bad = _degradation("maxConnections", 0)
    assert _winner(Group("shop"), parameter="maxConnections", degradations=[bad]) == (1000, "default", "")


def test_expired_rule_does_not_apply() -> None:
    policy = runtime_policy({**_runtime_rules([{"name": "old", "namespaces": ["shop"], "set": {"logLevel": "debug"},
                                                "expires": "2026-12-01T12:00:00Z"}])})
    at = resolve(policy.runtime, Group("shop"), now=NOW)["rpc-mesh"]["logLevel"]
    before = resolve(policy.runtime, Group("shop"), now=NOW - timedelta(seconds=1))["rpc-mesh"]["logLevel"]
    assert (at.value, before.value) == ("info", "debug")


def _runtime_rules(rules: list[dict[str, object]]) -> dict[str, object]:
    from runtime_policies import RUNTIME

    return {**RUNTIME, "rules": rules}


def test_configmap_data_is_one_json_file_per_sidecar_in_declaration_order() -> None:
    settings = resolve(runtime_policy().runtime, Group("pay", "checkout"), now=NOW)
    assert configmap_data(settings) == {
        "rpc-mesh.json": '{"logLevel":"debug","traceLog":"on","controlPlane":"normal","maxConnections":1000,'
                         '"lbLongPolling":true}',
        "msg-mesh.json": '{"traceLog":"off"}',
    }


# -- ConfigMap names -----------------------------------------------------------------
def test_names_readable_where_the_labels_allow() -> None:
    assert configmap_name("", "") == "meshfit-runtime"
    assert configmap_name("checkout", "") == "meshfit-runtime-checkout"


@pytest.mark.parametrize(("a", "b"), [(("a-b", ""), ("a", "b")), (("Checkout", ""), ("checkout", "")),
                                      (("a_b", ""), ("a-b", "")), (("", "eu"), ("eu", ""))])
def test_two_groups_never_share_a_name(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert configmap_name(*a) != configmap_name(*b)


def test_a_label_cleaned_up_leaves_no_dash_before_the_hash() -> None:
    import hashlib

    digest = hashlib.sha256(b"a_.\0").hexdigest()[:8]
    assert configmap_name("a_.", "") == f"meshfit-runtime-a-{digest}"
    digest = hashlib.sha256(b"Shop\0EU_").hexdigest()[:8]
    assert configmap_name("Shop", "EU_") == f"meshfit-runtime-shop-eu-{digest}"


def test_names_are_dns_subdomains_at_the_longest_labels() -> None:
    import re

    name = configmap_name("A" * 63, "z." * 31 + "z")
    assert len(name) <= 253
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)


def test_a_degradation_that_does_not_apply_does_not_hide_the_next_one() -> None:
    group = Group("shop", "checkout", "")
    other_ns = _degradation("traceLog", "on", namespace="pay")
    mine = _degradation("traceLog", "off", minutes_ago=2, namespace="shop")
    assert _winner(group, parameter="traceLog", degradations=[other_ns, mine]) == ("off", "degradation", mine.id)


def test_a_window_value_sets_only_its_own_parameter() -> None:
    # False would pass traceLog's declaration too (as "off"): it must not reach it
    window = [WindowValue("peak", "lbLongPolling", False)]
    assert _winner(Group("shop"), parameter="lbLongPolling", windows=window) == (False, "freeze-window", "peak")
    assert _winner(Group("shop"), parameter="traceLog", windows=window) == ("on", "default", "")


def test_a_rules_detail_carries_its_reason_when_it_has_one() -> None:
    runtime = runtime_policy().runtime
    with_reason = resolve(runtime, Group("shop", "checkout", ""), now=NOW)["rpc-mesh"]["logLevel"]
    assert (with_reason.origin, with_reason.detail) == ("checkout-debug", "app rule: INC-1")
    without = resolve(runtime, Group("shop", "web", "eu-1a"), now=NOW)["rpc-mesh"]["logLevel"]
    assert (without.origin, without.detail) == ("eu-quiet", "zone rule")


def test_enum_takes_true_and_false_when_it_offers_those_words() -> None:
    words = Parameter("mode", "enum", "true", values=("true", "false"))
    assert words.check(True) == ("true", None)
    assert words.check(False) == ("false", None)
    mixed = Parameter("mode", "enum", "off", values=("off", "true"))
    assert mixed.check(True) == ("true", None)
    assert mixed.check(False) == ("off", None)
    # only the lower-case words stand for a YAML boolean
    capital = Parameter("mode", "enum", "True", values=("True", "False"))
    assert capital.check(True) == (None, "must be one of True, False, got True")
    numbers = Parameter("n", "enum", "1", values=("1", "2"))
    assert numbers.check(2) == ("2", None)


@pytest.mark.parametrize(("value", "ok"), [("X-Ray", True), ("a\rb", False), ("a\0b", False), ("a\nb", False)])
def test_a_string_is_refused_only_for_a_line_break_or_nul(value: str, ok: bool) -> None:
    checked, why = Parameter("s", "string", "").check(value)
    assert (checked, why) == ((value, None) if ok else (None, "must be one line of at most 256 characters"))


def test_text_of_writes_booleans_as_yaml_does() -> None:
    from policy.runtime import text_of

    assert (text_of(True), text_of(False), text_of(3), text_of("off")) == ("true", "false", "3", "off")
