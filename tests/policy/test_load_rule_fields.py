"""The policy reader's header, injection, versions, rules, scheduling and fleet fields.

Each field left out takes the default docs/policy.md documents; each bad field is
refused with its exact path and message (what a platform engineer fixing a
ConfigMap reads); every bound is tried at the value, one below and one above.
Expected values are written out by hand, never computed with the reader.
"""

from __future__ import annotations

import copy
import hashlib
from fractions import Fraction
from typing import Any

import pytest

from policy.fields import PolicyError
from policy.load import parse_policy, revision_of
from policy.model import InjectionPolicy, Policy, Scheduling, SidecarVersions, VersionRule

#: The smallest valid policy: two sidecars, each with its versions (a: 1.0 and 1.1, b: 2.0).
_BASE: dict[str, Any] = {
    "apiVersion": "meshfit.io/v1alpha1",
    "kind": "MeshPolicy",
    "sidecars": [{"name": "a", "image": "reg/a"}, {"name": "b", "image": "reg/b"}],
    "versions": {"sidecars": {"a": {"baseline": "1.0", "allowed": ["1.0", "1.1"]}, "b": {"baseline": "2.0"}}},
}


def _doc(**sections: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_BASE)
    for key, value in sections.items():
        doc[key] = value
    return doc


def _errors(doc: Any, source: str | None = None) -> list[tuple[str, str]]:
    """The (path, message) of every error, checking the refusal names its source ("policy" unless given)."""
    with pytest.raises(PolicyError) as info:
        parse_policy(doc) if source is None else parse_policy(doc, source=source)
    assert info.value.source == (source or "policy")
    return [(e.path, e.message) for e in info.value.errors]


def _versions(**extra: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_BASE["versions"]), **extra}


def _rule(**fields: Any) -> dict[str, Any]:
    return _doc(versions=_versions(rules=[fields]))


# -- header and revision ---------------------------------------------------
def test_a_wrong_header_names_the_field_and_the_value_found() -> None:
    doc = _doc(apiVersion="v1", kind="Policy")
    assert _errors(doc) == [
        ("apiVersion", "must be meshfit.io/v1alpha1, got 'v1'"),
        ("kind", "must be MeshPolicy, got 'Policy'"),
    ]


def test_a_declared_revision_is_kept_as_written() -> None:
    assert parse_policy(_doc(revision="r-42")).revision == "r-42"


def test_an_unforeseen_failure_is_a_refusal_naming_the_exception_and_the_source() -> None:
    # A non-string key at the top cannot be sorted among the others: refused, not a crash.
    doc = {**_doc(), 1: 2}
    expected = [("", "cannot be read: TypeError: '<' not supported between instances of 'int' and 'str'")]
    assert _errors(doc, source="ConfigMap ns/p") == expected
    assert _errors(doc) == expected  # the default source is "policy"


def test_revision_hashes_the_sorted_compact_json_with_unknown_values_as_text() -> None:
    # orjson cannot encode bytes: written as str(b"x") == "b'x'"; keys sorted, no spaces.
    expected = hashlib.sha256(b'{"a":"b\'x\'","z":1}').hexdigest()[:12]
    assert revision_of({"z": 1, "a": b"x"}) == expected


def test_revision_of_integers_beyond_64_bits_uses_the_sorted_json_text() -> None:
    # 2**70 = 1180591620717411303424; the fallback encoder writes ", " and ": ".
    expected = hashlib.sha256(b'{"a": "b\'x\'", "z": 1180591620717411303424}').hexdigest()[:12]
    assert revision_of({"z": 2**70, "a": b"x"}) == expected


# -- injection -------------------------------------------------------------
def test_injection_fields_left_out_take_the_documented_defaults() -> None:
    assert parse_policy(_doc()).injection == InjectionPolicy(
        namespace_label="meshfit.io/inject",
        namespace_label_value="enabled",
        pod_override_key="meshfit.io/inject",
        excluded_namespaces=("kube-system", "kube-public", "kube-node-lease", "meshfit-system"),
        host_network="skip",
        fail_closed=False,
        scheduler_name="",
    )


def test_injection_fields_are_read_as_written() -> None:
    injection = parse_policy(_doc(injection={"hostNetwork": "inject", "schedulerName": "meshfit-scheduler",
                                             "failClosed": True})).injection
    assert (injection.host_network, injection.scheduler_name, injection.fail_closed) == \
        ("inject", "meshfit-scheduler", True)


# -- versions --------------------------------------------------------------
def test_version_fields_left_out_take_the_documented_defaults() -> None:
    versions = parse_policy(_doc()).versions
    assert (versions.allow_pod_pin, versions.app_label, versions.zone_label, versions.rules) == \
        (True, "app.kubernetes.io/name", "topology.kubernetes.io/zone", ())
    assert versions.sidecars == {
        "a": SidecarVersions(baseline="1.0", allowed=("1.0", "1.1"), images={}),
        "b": SidecarVersions(baseline="2.0", allowed=("2.0",), images={}),
    }


def test_images_per_version_are_read() -> None:
    versions = _versions()
    versions["sidecars"]["a"]["images"] = {"1.1": "mirror/a:1.1"}
    assert parse_policy(_doc(versions=versions)).versions.sidecars["a"].images == {"1.1": "mirror/a:1.1"}


def _version_errors(**sidecar_a: Any) -> list[tuple[str, str]]:
    versions = _versions()
    versions["sidecars"]["a"] = sidecar_a
    return _errors(_doc(versions=versions))


@pytest.mark.parametrize(("sidecar_a", "expected"), [
    ({"allowed": ["1.0"]}, [("versions.sidecars.a.baseline", "is required")]),
    ({"baseline": "2.0", "allowed": ["1.0", "1.1"]},
     [("versions.sidecars.a.baseline", "'2.0' is not in allowed ['1.0', '1.1']")]),
    ({"baseline": "1.0", "images": {"1.0": "m/a:1.0", "3.0": "m/a:3.0"}},
     [("versions.sidecars.a.images.3.0", "version '3.0' is not in allowed ['1.0']")]),
])
def test_a_bad_sidecar_version_entry_is_refused_with_its_path(sidecar_a: dict[str, Any],
                                                              expected: list[tuple[str, str]]) -> None:
    assert _version_errors(**sidecar_a) == expected


def test_versions_for_an_unknown_sidecar_list_the_known_ones() -> None:
    versions = _versions()
    versions["sidecars"]["zz"] = {"baseline": "1"}
    assert _errors(_doc(versions=versions)) == [("versions.sidecars.zz", "names no sidecar (known: a, b)")]


def test_versions_with_no_sidecar_declared_say_none_is_known() -> None:
    doc = _doc(sidecars=[], versions={"sidecars": {"zz": {"baseline": "1"}}})
    assert ("versions.sidecars.zz", "names no sidecar (known: none)") in _errors(doc)


def test_a_sidecar_without_versions_is_refused() -> None:
    versions = _versions()
    del versions["sidecars"]["b"]
    assert _errors(_doc(versions=versions)) == [
        ("versions.sidecars.b", "is required: every sidecar needs a baseline version")]


# -- rules -----------------------------------------------------------------
def test_a_rule_read_in_full() -> None:
    rule = parse_policy(_rule(name="r", type="zone", version="1.1", sidecar="a", namespaces=["shop"],
                              zones=["z1"], apps=["web"])).versions.rules
    assert rule == (VersionRule(name="r", type="zone", version="1.1", sidecar="a", apps=("web",),
                                namespaces=("shop",), zones=("z1",), percent=Fraction(0)),)


def test_a_rule_without_type_is_an_app_rule_with_no_percent() -> None:
    (rule,) = parse_policy(_rule(name="r", version="1.1", apps=["web"])).versions.rules
    assert (rule.type, rule.sidecar, rule.percent) == ("app", None, Fraction(0))


@pytest.mark.parametrize(("rule", "expected"), [
    ({"version": "1.1", "apps": ["web"]}, [("versions.rules[0].name", "is required")]),
    ({"name": "r", "apps": ["web"]}, [("versions.rules[0].version", "is required")]),
    ({"name": "r", "version": "1.1", "sidecar": "zz", "apps": ["web"]},
     [("versions.rules[0].sidecar", "names no sidecar with versions, got 'zz'")]),
    # 2.0 is allowed for b, but the rule names a: only a's versions count.
    ({"name": "r", "version": "2.0", "sidecar": "a", "apps": ["web"]},
     [("versions.rules[0].version", "'2.0' is not an allowed version of a")]),
    ({"name": "r", "version": "9", "apps": ["web"]},
     [("versions.rules[0].version", "'9' is not an allowed version of a, b")]),
    ({"name": "r", "version": "1.1", "type": "experiment"},
     [("versions.rules[0].percent", "is required for an experiment")]),
    ({"name": "r", "version": "1.1"}, [("versions.rules[0].apps", "is required for an app rule")]),
    ({"name": "r", "version": "1.1", "type": "zone"}, [("versions.rules[0].zones", "is required for a zone rule")]),
])
def test_a_bad_rule_is_refused_with_its_path(rule: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _errors(_rule(**rule)) == expected


def test_an_experiment_with_a_percent_needs_nothing_else() -> None:
    (rule,) = parse_policy(_rule(name="r", version="1.1", type="experiment", percent=0)).versions.rules
    assert (rule.type, rule.percent) == ("experiment", Fraction(0))


# -- scheduling ------------------------------------------------------------
def test_scheduling_fields_left_out_take_the_documented_defaults() -> None:
    assert parse_policy(_doc()).scheduling == Scheduling(
        exposure_ceiling={"cpu": Fraction(1, 4), "memory": Fraction(1, 10)},
        weights={"cpu": 1, "memory": 1},
        exposure_weight=Fraction(1),
    )


def _scheduling(**fields: Any) -> Policy:
    return parse_policy(_doc(scheduling=fields))


def test_scheduling_bounds_are_inclusive_at_both_ends() -> None:
    low = _scheduling(exposureCeiling={"cpu": 0, "memory": 10}, weights={"cpu": 0, "memory": 100},
                      exposureWeight=0).scheduling
    assert low == Scheduling(exposure_ceiling={"cpu": Fraction(0), "memory": Fraction(10)},
                             weights={"cpu": 0, "memory": 100}, exposure_weight=Fraction(0))
    assert _scheduling(exposureWeight=100).scheduling.exposure_weight == Fraction(100)
    assert _scheduling(exposureWeight=99).scheduling.exposure_weight == Fraction(99)
    assert _scheduling(weights={"cpu": 1, "memory": 99}).scheduling.weights == {"cpu": 1, "memory": 99}


@pytest.mark.parametrize(("fields", "expected"), [
    ({"exposureCeiling": {"cpu": -1}}, [("scheduling.exposureCeiling.cpu", "must be between 0 and 10, got -1")]),
    ({"exposureCeiling": {"memory": 11}},
     [("scheduling.exposureCeiling.memory", "must be between 0 and 10, got 11")]),
    ({"weights": {"cpu": -1}}, [("scheduling.weights.cpu", "must be between 0 and 100, got -1")]),
    ({"weights": {"memory": 101}}, [("scheduling.weights.memory", "must be between 0 and 100, got 101")]),
    ({"weights": {"cpu": 0, "memory": 0}}, [("scheduling.weights", "at least one resource weight must be positive")]),
    ({"exposureWeight": -1}, [("scheduling.exposureWeight", "must be between 0 and 100, got -1")]),
    ({"exposureWeight": 101}, [("scheduling.exposureWeight", "must be between 0 and 100, got 101")]),
])
def test_a_scheduling_value_out_of_bounds_is_refused(fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _errors(_doc(scheduling=fields)) == expected


# -- fleet -----------------------------------------------------------------
def _fleet(**fields: Any) -> Policy:
    return parse_policy(_doc(fleet=fields))


def test_fleet_repairs_are_read_as_written() -> None:
    fleet = _fleet(missedInjections="repair", runtimeVolumes="repair", repairsPerRun=0).fleet
    assert (fleet.missed_injections, fleet.runtime_volumes, fleet.repairs_per_run) == ("repair", "repair", 0)
    assert _fleet(repairsPerRun=1000).fleet.repairs_per_run == 1000
    assert _fleet(repairsPerRun=1).fleet.repairs_per_run == 1
    assert _fleet(repairsPerRun=999).fleet.repairs_per_run == 999


@pytest.mark.parametrize(("fields", "expected"), [
    ({"repairsPerRun": -1}, [("fleet.repairsPerRun", "must be between 0 and 1000, got -1")]),
    ({"repairsPerRun": 1001}, [("fleet.repairsPerRun", "must be between 0 and 1000, got 1001")]),
    ({"missedInjections": "fix"}, [("fleet.missedInjections", "must be one of report, repair, got 'fix'")]),
    ({"runtimeVolumes": "fix"}, [("fleet.runtimeVolumes", "must be one of report, repair, got 'fix'")]),
])
def test_a_bad_fleet_value_is_refused(fields: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _errors(_doc(fleet=fields)) == expected

