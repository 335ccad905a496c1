"""Policy validation: every error named by its path, never a stack trace."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

from pathlib import Path

import pytest
import yaml
from policies import DEFAULT_POLICY_FILE, default_policy

from policy.fields import PolicyError
from policy.load import (
    load_policy_file,
    namespace_policy_from_configmap,
    parse_policy,
    parse_policy_text,
    policy_from_configmap,
)
from policy.model import Policy, SidecarOverride


def _document() -> dict:
    cm = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    return yaml.safe_load(cm["data"]["policy.yaml"])


def test_the_shipped_default_is_valid_and_complete() -> None:
    policy = default_policy()
    assert [s.name for s in policy.sidecars] == ["rpc-mesh", "msg-mesh"]
    assert policy.resources.mode == "overcommit"
    assert policy.sidecars[0].sizing.ratio == {"cpu": Fraction(1, 4), "memory": Fraction(1, 16)}
    assert policy.injection.excluded_namespaces == ("kube-system", "kube-public", "kube-node-lease", "meshfit-system")
    assert policy.versions.sidecars["rpc-mesh"].baseline == "1.8.0"


def test_revision_is_a_stable_content_hash() -> None:
    a, b = parse_policy(_document()), parse_policy(_document())
    assert a.revision == b.revision and len(a.revision) == 12
    doc = _document()
    doc["emergency"]["stopInjection"] = True
    assert parse_policy(doc).revision != a.revision


def test_every_error_is_reported_with_its_path() -> None:
    doc = _document()
    doc["sidecars"][1]["sizing"]["ratio"] = {"cpu": "1.5"}
    doc["sidecars"][0]["sizing"]["min"]["memory"] = "lots"
    doc["resources"]["mode"] = "squeeze"
    doc["emergency"]["stopInjecton"] = True
    doc["versions"]["rules"][0]["version"] = "9.9.9"
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    messages = [str(e) for e in info.value.errors]
    assert "sidecars[1].sizing.ratio.cpu: must be between 0 and 1, got 1.5" in messages
    assert "sidecars[0].sizing.min.memory: invalid quantity 'lots'" in messages
    assert "resources.mode: must be one of overcommit, additive, carve, got 'squeeze'" in messages
    assert "emergency.stopInjecton: unknown field" in messages
    assert any(m.startswith("versions.rules[0].version: '9.9.9' is not an allowed version") for m in messages)
    assert len(messages) == 5


def test_structural_mistakes_do_not_raise_anything_but_policy_error() -> None:
    for doc in (None, [], "text", {"apiVersion": "meshfit.io/v1alpha1", "kind": "MeshPolicy", "sidecars": "x"},
                {"apiVersion": "meshfit.io/v1alpha1", "kind": "MeshPolicy", "sidecars": [None, 3]}):
        with pytest.raises(PolicyError):
            parse_policy(doc)


def test_fixed_sizing_needs_both_resources_and_respects_the_floor() -> None:
    doc = _document()
    doc["sidecars"][1]["sizing"] = {"mode": "fixed", "fixed": {"cpu": "10m"}}
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    messages = [str(e) for e in info.value.errors]
    assert "sidecars[1].sizing.fixed.memory: is required when mode is fixed" in messages
    assert "sidecars[1].sizing.fixed.cpu: must be at least cpuRequestFloor (50m), got 10m" in messages


def test_image_must_be_a_repository_and_names_unique() -> None:
    doc = _document()
    doc["sidecars"][0]["image"] = "mosn:1.0"
    doc["sidecars"][1]["name"] = "rpc-mesh"
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    text = str(info.value)
    assert "sidecars[0].image: is the repository only" in text
    assert "sidecars[1].name: duplicate sidecar name 'rpc-mesh'" in text


def test_yaml_errors_name_the_line() -> None:
    with pytest.raises(PolicyError, match="line 2"):
        parse_policy_text("a: b\n  c: : d\n")


def test_configmap_without_the_key() -> None:
    with pytest.raises(PolicyError, match="data.policy.yaml: is required"):
        policy_from_configmap({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}})


def _ns_cm(body: str) -> dict:
    return {"kind": "ConfigMap", "metadata": {"name": "meshfit-policy", "namespace": "shop"}, "data": {"policy.yaml": body}}


def test_namespace_policy_whitelist() -> None:
    ns = namespace_policy_from_configmap(_ns_cm("""
apiVersion: meshfit.io/v1alpha1
kind: NamespacePolicy
sidecars:
  msg-mesh: {enabled: false}
  rpc-mesh:
    version: "1.8.1"
    sizing: {ratio: {cpu: "1/2"}, max: {cpu: "1"}}
"""), default_policy())
    assert ns.sidecars["msg-mesh"].enabled is False
    assert ns.sidecars["rpc-mesh"].version == "1.8.1"
    assert ns.sidecars["rpc-mesh"].sizing.ratio["cpu"] == Fraction(1, 2)


def test_namespace_policy_rejects_anything_outside_the_whitelist() -> None:
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm("""
apiVersion: meshfit.io/v1alpha1
kind: NamespacePolicy
emergency: {stopInjection: true}
sidecars:
  rpc-mesh:
    version: "2.0.0"
    image: evil/mosn
    sizing: {max: {memory: 8Gi}}
  nope: {enabled: false}
"""), default_policy())
    text = str(info.value)
    assert "emergency: unknown field" in text
    assert "sidecars.rpc-mesh.version: '2.0.0' is not allowed" in text
    assert "sidecars.rpc-mesh.image: unknown field" in text
    assert "sidecars.rpc-mesh.sizing.max.memory: must be within the global bounds 64Mi..1Gi, got 8Gi" in text
    assert "sidecars.nope: names no sidecar of the global policy" in text


NS_HEADER = "apiVersion: meshfit.io/v1alpha1\nkind: NamespacePolicy\n"


def test_a_namespace_policy_is_read_for_the_configmaps_namespace() -> None:
    ns = namespace_policy_from_configmap(_ns_cm(NS_HEADER + "sidecars:\n  msg-mesh: {enabled: false}\n"),
                                         default_policy())
    assert (ns.namespace, ns.sidecars) == ("shop", {"msg-mesh": SidecarOverride(enabled=False)})


def test_a_namespace_configmap_without_the_key_names_itself() -> None:
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap({"metadata": {"name": "x", "namespace": "ads"}, "data": {}}, default_policy())
    assert str(info.value) == "invalid ConfigMap ads/x (1 error):\n  data.policy.yaml: is required"
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap({}, default_policy())
    assert str(info.value) == "invalid ConfigMap / (1 error):\n  data.policy.yaml: is required"


def test_a_namespace_sizing_outside_the_global_bounds_says_which_bound_on_each_side() -> None:
    body = NS_HEADER + "sidecars:\n  rpc-mesh:\n    sizing: {min: {cpu: 50m}, max: {memory: 2Gi}, mode: fixed, " \
                       "fixed: {cpu: 3, memory: 32Mi}}\n"
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm(body), default_policy())
    assert str(info.value) == (
        "invalid ConfigMap shop/meshfit-policy (4 errors):\n"
        "  sidecars.rpc-mesh.sizing.min.cpu: must be within the global bounds 100m..2, got 50m\n"
        "  sidecars.rpc-mesh.sizing.fixed.cpu: must be within the global bounds 100m..2, got 3\n"
        "  sidecars.rpc-mesh.sizing.max.memory: must be within the global bounds 64Mi..1Gi, got 2Gi\n"
        "  sidecars.rpc-mesh.sizing.fixed.memory: must be within the global bounds 64Mi..1Gi, got 32Mi")


def _bounded(min_: dict, max_: dict) -> Policy:
    policy = default_policy()
    sidecars = tuple(dataclasses.replace(s, sizing=dataclasses.replace(s.sizing, min=min_, max=max_))
                     if s.name == "rpc-mesh" else s for s in policy.sidecars)
    return dataclasses.replace(policy, sidecars=sidecars)


def test_a_global_bound_on_one_side_only_is_shown_open_on_the_other() -> None:
    from policy.quantity import Quantity

    body = NS_HEADER + "sidecars:\n  rpc-mesh:\n    sizing: {min: {cpu: 50m}, max: {cpu: 3}}\n"
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm(body), _bounded({"cpu": Quantity.parse("100m")}, {}))
    assert str(info.value).splitlines()[1:] == [
        "  sidecars.rpc-mesh.sizing.min.cpu: must be within the global bounds 100m..unbounded, got 50m"]
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm(body), _bounded({}, {"cpu": Quantity.parse("2")}))
    assert str(info.value).splitlines()[1:] == [
        "  sidecars.rpc-mesh.sizing.max.cpu: must be within the global bounds 0..2, got 3"]


def test_a_namespace_override_inherits_what_it_does_not_say_from_the_global_sidecar() -> None:
    from policy.load import parse_namespace_policy
    from policy.quantity import Quantity

    doc = yaml.safe_load(NS_HEADER + "revision: r9\nsidecars:\n  rpc-mesh: {version: \"1.8.1\"}\n"
                         "  msg-mesh:\n    sizing: {max: {cpu: 500m}}\n")
    ns = parse_namespace_policy(doc, default_policy(), "shop")
    assert ns.sidecars["rpc-mesh"] == SidecarOverride(enabled=True, sizing=None, version="1.8.1")
    msg = ns.sidecars["msg-mesh"]
    assert (msg.enabled, msg.version) == (True, None)
    assert msg.sizing is not None
    assert (msg.sizing.mode, msg.sizing.fixed, msg.sizing.min, msg.sizing.max) == (
        "fixed", {"cpu": Quantity.parse("200m"), "memory": Quantity.parse("128Mi")},
        {"cpu": Quantity.parse("100m"), "memory": Quantity.parse("64Mi")},
        {"cpu": Quantity.parse("500m"), "memory": Quantity.parse("512Mi")})
    # The revision is a content hash of the document: another document, another revision.
    other = parse_namespace_policy({**doc, "sidecars": {"rpc-mesh": {"version": "1.8.0"}}}, default_policy(), "shop")
    assert len(ns.revision) == 12 and ns.revision != other.revision


def test_a_namespace_policy_names_what_it_refuses_exactly() -> None:
    from policy.load import parse_namespace_policy

    doc = yaml.safe_load(NS_HEADER + "sidecars:\n  rpc-mesh: {version: \"2.0.0\"}\n  nope: {enabled: false}\n")
    with pytest.raises(PolicyError) as info:
        parse_namespace_policy(doc, default_policy(), "shop")
    assert str(info.value) == (
        "invalid namespace policy (2 errors):\n"
        "  sidecars.rpc-mesh.version: '2.0.0' is not allowed (allowed: 1.8.0, 1.8.1, 1.9.0-rc.1)\n"
        "  sidecars.nope: names no sidecar of the global policy (known: rpc-mesh, msg-mesh)")


def test_a_namespace_sizing_with_only_a_maximum_is_still_bounded() -> None:
    from policy.quantity import Quantity

    body = NS_HEADER + "sidecars:\n  rpc-mesh:\n    sizing: {max: {cpu: 3}}\n"
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm(body), _bounded({"cpu": Quantity.parse("100m")},
                                                               {"cpu": Quantity.parse("2")}))
    assert str(info.value).splitlines()[1:] == [
        "  sidecars.rpc-mesh.sizing.max.cpu: must be within the global bounds 100m..2, got 3"]


def test_a_namespace_configmap_that_is_not_yaml_names_the_configmap() -> None:
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm("a: b\n  c: : d\n"), default_policy())
    assert str(info.value).startswith("invalid ConfigMap shop/meshfit-policy (1 error):")


def test_a_namespace_maximum_is_checked_where_the_global_sidecar_has_no_minimum() -> None:
    from policy.quantity import Quantity

    body = NS_HEADER + "sidecars:\n  rpc-mesh:\n    sizing: {max: {cpu: 3}}\n"
    with pytest.raises(PolicyError) as info:
        namespace_policy_from_configmap(_ns_cm(body), _bounded({}, {"cpu": Quantity.parse("2")}))
    assert str(info.value).splitlines()[1:] == [
        "  sidecars.rpc-mesh.sizing.max.cpu: must be within the global bounds 0..2, got 3"]


def test_a_namespace_policy_the_reader_cannot_handle_is_a_refusal_naming_the_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard of last resort: whatever goes wrong inside becomes a PolicyError, never a crash of the caller."""
    import policy.load as load

    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(load, "_parse_namespace_policy", broken)
    with pytest.raises(PolicyError) as info:
        load.parse_namespace_policy({}, default_policy(), "shop", "ConfigMap shop/meshfit-policy")
    assert info.value.source == "ConfigMap shop/meshfit-policy"
    assert [(e.path, e.message) for e in info.value.errors] == [("", "cannot be read: RuntimeError: boom")]


@pytest.mark.parametrize("reader", ["global", "namespace"])
def test_a_configmap_without_the_policy_key_is_refused_under_its_name(reader: str) -> None:
    def read(cm: dict) -> object:
        return policy_from_configmap(cm) if reader == "global" else namespace_policy_from_configmap(cm, default_policy())

    with pytest.raises(PolicyError) as info:
        read({"metadata": {"namespace": "meshfit-system", "name": "meshfit-policy"}, "data": {"other": "x"}})
    assert info.value.source == "ConfigMap meshfit-system/meshfit-policy"
    assert [(e.path, e.message) for e in info.value.errors] == [("data.policy.yaml", "is required")]
    with pytest.raises(PolicyError) as info:
        read({"data": {"policy.yaml": 7}})
    assert info.value.source == "ConfigMap /"


def test_a_bad_policy_in_a_configmap_or_a_file_is_refused_under_its_source(tmp_path: Path) -> None:
    cm = {"metadata": {"namespace": "ops", "name": "p"}, "data": {"policy.yaml": "kind: Nope\n"}}
    with pytest.raises(PolicyError) as info:
        policy_from_configmap(cm)
    assert info.value.source == "ConfigMap ops/p"
    with pytest.raises(PolicyError) as info:
        policy_from_configmap(cm, source="the flag")
    assert info.value.source == "the flag"
    path = tmp_path / "policy.yaml"
    path.write_text("kind: Nope\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert info.value.source == str(path)


def test_the_shipped_configmap_and_a_namespace_configmap_are_read() -> None:
    import yaml

    cm = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    assert policy_from_configmap(cm).sidecar("rpc-mesh") is not None
    ns_cm = {"metadata": {"namespace": "shop", "name": "meshfit-policy"}, "data": {
        "policy.yaml": "apiVersion: meshfit.io/v1alpha1\nkind: NamespacePolicy\nsidecars:\n  msg-mesh:\n    enabled: false\n"}}
    ns = namespace_policy_from_configmap(ns_cm, default_policy())
    assert ns.namespace == "shop" and ns.sidecars["msg-mesh"].enabled is False
