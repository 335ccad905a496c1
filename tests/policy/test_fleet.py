"""policy/fleet.py on hand-written pods: each sidecar read four ways, the policy's memoised choice, the cells.

The expected states, rules, counts and references are written out; the pods
come from :mod:`fleet_pods`, where every image of the record, the spec and the
kubelet's report is set by hand.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from typing import Any

import pytest
from fleet_pods import (APP_LABEL, EMPTY, MSG, MSG_ID, NOW, RC_IMAGE, RPC, RPC_ID, ZONE_LABEL, container,
                        container_status, fleet_policy, meshed, record, set_record)

import policy.fleet
from policy.fleet import DesiredVersions, FleetCell, FleetView, SidecarState, sidecar_states
from policy.model import NamespacePolicy, SidecarOverride
from policy.versions import VersionChoice, experiment_bucket

POLICY = fleet_policy()


def desired(namespace_policies: dict[str, NamespacePolicy] | None = None) -> DesiredVersions:
    return DesiredVersions(POLICY, namespace_policies or {}, NOW)


def rpc_state(pod: dict[str, Any], versions: DesiredVersions | None = None) -> SidecarState:
    states = sidecar_states(pod, versions or desired())
    assert states is not None
    return next(s for s in states if s.sidecar == "rpc-mesh")


def pinned(namespace: str, version: str) -> dict[str, NamespacePolicy]:
    return {namespace: NamespacePolicy(namespace, "r1", {"rpc-mesh": SidecarOverride(version=version)})}


# -- sidecar_states -----------------------------------------------------------------------------------------
def test_a_fresh_pod_is_read_four_ways_and_agrees() -> None:
    assert sidecar_states(meshed(), desired()) == [
        SidecarState("rpc-mesh", "1.8.0", RPC + ":1.8.0", "baseline", "1.8.0", RPC + ":1.8.0", RPC + ":1.8.0",
                     RPC + ":1.8.0", RPC_ID, "1.8.0", (), live="rpc-mesh", active=True, missing=()),
        SidecarState("msg-mesh", "2.3.0", MSG + ":2.3.0", "baseline", "2.3.0", MSG + ":2.3.0", MSG + ":2.3.0",
                     MSG + ":2.3.0", MSG_ID, "2.3.0", (), live="msg-mesh", active=True, missing=()),
    ]


def test_a_pod_without_a_record_has_no_states_and_an_unreadable_record_none() -> None:
    plain = meshed()
    del plain["metadata"]["annotations"]["meshfit.io/status"]
    assert sidecar_states(plain, desired()) == []
    broken = meshed()
    broken["metadata"]["annotations"]["meshfit.io/status"] = "{not json"
    assert sidecar_states(broken, desired()) is None
    not_text = meshed()
    not_text["metadata"]["annotations"]["meshfit.io/status"] = {"v": 1}
    assert sidecar_states(not_text, desired()) is None


def _edit(pod: dict[str, Any], *, spec: str | None = None, running: str | None = None,
          recorded: tuple[str, str] | None = None, no_status: bool = False) -> dict[str, Any]:
    if spec is not None:
        container(pod, "rpc-mesh")["image"] = spec
    if running is not None:
        container_status(pod, "rpc-mesh")["image"] = running
    if no_status:
        pod["status"]["initContainerStatuses"] = [s for s in pod["status"]["initContainerStatuses"]
                                                  if s["name"] != "rpc-mesh"]
    if recorded is not None:
        set_record(pod, record("rpc-mesh", recorded[0], recorded[1]), record("msg-mesh", "2.3.0", MSG + ":2.3.0"))
    return pod


# (pod, the problems of its rpc-mesh, the version it runs)
PROBLEM_CASES = {
    "the policy now chooses 1.8.1": (_edit(meshed(app="payments")), ("stale",), "1.8.0"),
    "the spec was changed to what the policy chooses, the record was not":
        (_edit(meshed(app="payments"), spec=RPC + ":1.8.1", running=RPC + ":1.8.1"),
         ("spec_differs_from_record", "stale"), "1.8.1"),
    "the spec was changed away from the choice": (_edit(meshed(), spec=RPC + ":1.8.1", running=RPC + ":1.8.1"),
                                                  ("spec_differs_from_record", "stale"), "1.8.1"),
    "the kubelet runs another image": (_edit(meshed(), running=RPC + ":1.8.1"),
                                       ("running_differs_from_spec", "stale"), "1.8.1"),
    "not started yet: the spec's version is judged":
        (_edit(meshed(app="payments"), recorded=("1.8.1", RPC + ":1.8.1"), no_status=True),
         ("spec_differs_from_record", "stale"), None),
    "not started yet, the spec's image by digest: the policy's table names its version":
        (_edit(meshed(), spec=RC_IMAGE, no_status=True), ("spec_differs_from_record", "stale"), None),
    "not started yet, as recorded": (_edit(meshed(), no_status=True), (), None),
    "running the policy's image by digest": (_edit(meshed(), spec=RC_IMAGE, running=RC_IMAGE,
                                                   recorded=("1.9.0-rc.1", RC_IMAGE)), ("stale",), "1.9.0-rc.1"),
}


@pytest.mark.parametrize("case", PROBLEM_CASES)
def test_problems_name_the_readings_that_disagree(case: str) -> None:
    pod, problems, running_version = PROBLEM_CASES[case]
    state = rpc_state(copy.deepcopy(pod))
    assert (state.problems, state.running_version) == (problems, running_version)


def test_a_sidecar_without_its_container_is_missing_and_not_stale() -> None:
    pod = meshed()
    pod["spec"]["initContainers"] = [c for c in pod["spec"]["initContainers"] if c["name"] != "rpc-mesh"]
    pod["status"]["initContainerStatuses"] = [s for s in pod["status"]["initContainerStatuses"]
                                              if s["name"] != "rpc-mesh"]
    assert rpc_state(pod) == SidecarState("rpc-mesh", "1.8.0", RPC + ":1.8.0", "baseline", "1.8.0", RPC + ":1.8.0",
                                          None, None, None, None, ("sidecar_missing",), live="rpc-mesh",
                                          missing=("rpc-mesh",))


def test_a_sidecar_in_the_regular_containers_is_read_there() -> None:
    """A legacy-placed sidecar is a regular container, its status among the containers' statuses."""
    pod = meshed()
    rpc = container(pod, "rpc-mesh")
    pod["spec"]["initContainers"].remove(rpc)
    pod["spec"]["containers"].append(rpc)
    rpc_status = container_status(pod, "rpc-mesh")
    pod["status"]["initContainerStatuses"].remove(rpc_status)
    pod["status"]["containerStatuses"].append(rpc_status)
    state = rpc_state(pod)
    assert (state.problems, state.spec_image, state.running_image, state.running_image_id) == (
        (), RPC + ":1.8.0", RPC + ":1.8.0", RPC_ID)


def test_images_that_are_not_strings_read_as_none() -> None:
    pod = meshed()
    container(pod, "rpc-mesh")["image"] = 180
    container_status(pod, "rpc-mesh").update(image=["1.8.0"], imageID=7)
    state = rpc_state(pod)
    assert (state.spec_image, state.running_image, state.running_image_id, state.running_version) == (
        None, None, None, None)
    assert state.problems == ()


def test_a_dormant_sidecar_runs_the_empty_image_and_is_judged_by_its_record() -> None:
    pod = meshed(rpc=EMPTY)
    container_status(pod, "rpc-mesh")["imageID"] = "empty-id"
    dormant = record("rpc-mesh", "1.8.0", RPC + ":1.8.0", active=False, emptyImage=EMPTY)
    set_record(pod, dormant, record("msg-mesh", "2.3.0", MSG + ":2.3.0"))
    assert rpc_state(pod) == SidecarState("rpc-mesh", "1.8.0", RPC + ":1.8.0", "baseline", "1.8.0",
                                          RPC + ":1.8.0", EMPTY, EMPTY, "empty-id", None, (), live="rpc-mesh",
                                          active=False)
    pod["metadata"]["labels"][APP_LABEL] = "payments"
    assert rpc_state(pod).problems == ("stale",)
    container(pod, "rpc-mesh")["image"] = container_status(pod, "rpc-mesh")["image"] = RPC + ":1.8.0"
    assert rpc_state(pod).problems == ("spec_differs_from_record", "stale")


# -- the rule that chose, and the namespace ---------------------------------------------------------------------
def _labelled(**labels: str) -> dict[str, Any]:
    pod = meshed()
    pod["metadata"]["labels"] = labels
    return pod


def _pinned_pod(pin: str) -> dict[str, Any]:
    pod = meshed()
    pod["metadata"]["annotations"]["meshfit.io/version"] = pin
    return pod


RULE_CASES = {
    "baseline": (meshed(), {}, "1.8.0", RPC + ":1.8.0", "baseline"),
    "bugfix": (meshed(app="payments"), {}, "1.8.1", RPC + ":1.8.1", "bugfix:mosn-1.8.1-conn-leak-fix"),
    "zone": (_labelled(**{ZONE_LABEL: "eu-1b"}), {}, "1.9.0-rc.1", RC_IMAGE, "zone:eu-1b-rc"),
    "pod pin": (_pinned_pod("rpc-mesh=1.8.1"), {}, "1.8.1", RPC + ":1.8.1", "pin"),
    "namespace pin": (meshed(), pinned("shop", "1.8.1"), "1.8.1", RPC + ":1.8.1", "namespace:shop/meshfit-policy"),
}


@pytest.mark.parametrize("case", RULE_CASES)
def test_the_desired_version_says_which_rule_chose_it(case: str) -> None:
    pod, namespace_policies, version, image, rule = RULE_CASES[case]
    state = rpc_state(copy.deepcopy(pod), desired(namespace_policies))
    assert (state.desired_version, state.desired_image, state.desired_rule) == (version, image, rule)


def test_a_sidecar_the_namespace_disables_is_not_in_policy() -> None:
    disabled = {"shop": NamespacePolicy("shop", "r1", {"rpc-mesh": SidecarOverride(enabled=False)})}
    state = rpc_state(meshed(), desired(disabled))
    assert (state.desired_version, state.desired_image, state.desired_rule, state.problems) == (
        None, None, "-", ("not_in_policy",))
    versions = desired(disabled)
    key = versions.pod_key(meshed(), "shop")
    assert versions.choose(meshed(), "shop", "rpc-mesh", key) is None
    assert versions.choose(meshed(), "shop", "msg-mesh", key) is not None


def test_a_pod_without_a_namespace_is_judged_in_default() -> None:
    versions = desired({**pinned("default", "1.8.1"), **pinned("elsewhere", "1.9.0-rc.1")})
    assert rpc_state(meshed(namespace=None), versions).desired_rule == "namespace:default/meshfit-policy"
    assert rpc_state(meshed(namespace="shop"), versions).desired_rule == "baseline"
    assert rpc_state(meshed(namespace="elsewhere"), versions).desired_version == "1.9.0-rc.1"


def test_one_workload_name_in_two_namespaces_gets_each_namespace_s_choice() -> None:
    versions = desired(pinned("a", "1.8.1"))
    assert rpc_state(meshed(namespace="a"), versions).desired_version == "1.8.1"
    assert rpc_state(meshed(namespace="b"), versions).desired_version == "1.8.0"


# -- DesiredVersions ---------------------------------------------------------------------------------------
def _owned(owner: str, namespace: str = "canary") -> dict[str, Any]:
    return meshed(namespace=namespace, owner=owner)


def test_pods_that_differ_in_anything_the_choice_reads_do_not_share_a_remembered_choice() -> None:
    """One DesiredVersions answers a sequence of pods, each differing from the last in one thing only."""
    assert experiment_bucket("mosn-1.9-canary", "canary/ReplicaSet/w-4") < 10 <= \
        experiment_bucket("mosn-1.9-canary", "canary/ReplicaSet/w-2")
    sequence = [
        (_labelled(), "1.8.0"),
        (_labelled(**{APP_LABEL: "payments"}), "1.8.1"),
        (_labelled(**{APP_LABEL: "web"}), "1.8.0"),
        (_labelled(app="payments"), "1.8.1"),
        (_labelled(app="web"), "1.8.0"),
        (_labelled(), "1.8.0"),
        (_labelled(**{ZONE_LABEL: "eu-1b"}), "1.9.0-rc.1"),
        (_labelled(**{ZONE_LABEL: "eu-1a"}), "1.8.0"),
        (_pinned_pod("rpc-mesh=1.8.1"), "1.8.1"),
        (_pinned_pod("rpc-mesh=1.9.0-rc.1"), "1.9.0-rc.1"),
        (_owned("w-2"), "1.8.0"),
        (_owned("w-4"), "1.9.0-rc.1"),
    ]
    versions = desired()
    for pod, version in sequence:
        namespace = pod["metadata"]["namespace"]
        assert rpc_state(pod, versions).desired_version == version
        assert choose(versions, pod, namespace).version == version  # type: ignore[union-attr]


def choose(versions: DesiredVersions, pod: dict[str, Any], namespace: str = "shop") -> VersionChoice | None:
    return versions.choose(pod, namespace, "rpc-mesh", versions.pod_key(pod, namespace))


@pytest.mark.parametrize("pin", ["9.9.9", "None"])
def test_a_pin_the_policy_ignores_is_still_the_pod_s_own_and_so_is_its_warning(pin: str) -> None:
    versions = desired()
    assert choose(versions, meshed()).warnings == ()  # type: ignore[union-attr]
    choice = choose(versions, _pinned_pod(pin))  # the same pod, pinned
    assert choice is not None and choice.version == "1.8.0"
    assert choice.warnings == (
        f"rpc-mesh: pod pin '{pin}' ignored: not an allowed version (1.8.0, 1.8.1, 1.9.0-rc.1)",)


def test_past_the_cap_choices_are_answered_but_no_longer_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy.fleet, "MEMO_CAP", 2)
    versions = desired()
    pods = [_labelled(), _labelled(**{APP_LABEL: "payments"}), _labelled(**{ZONE_LABEL: "eu-1b"})]
    assert [choose(versions, p).version for p in pods] == ["1.8.0", "1.8.1", "1.9.0-rc.1"]  # type: ignore[union-attr]
    assert len(versions._memo) == 2
    assert [versions.version_of_image("rpc-mesh", f"{RPC}:{v}") for v in ("1.8.0", "1.8.1", "1.9.0")] == [
        "1.8.0", "1.8.1", "1.9.0"]
    assert len(versions._image_versions) == 2
    # and what is remembered is answered again
    assert choose(versions, pods[1]).version == "1.8.1"  # type: ignore[union-attr]
    assert versions.version_of_image("rpc-mesh", f"{RPC}:1.8.1") == "1.8.1"


def test_the_version_of_an_image_is_the_policy_s_own_first_else_its_tag() -> None:
    versions = desired()
    assert versions.version_of_image("rpc-mesh", RC_IMAGE) == "1.9.0-rc.1"
    assert versions.version_of_image("rpc-mesh", "docker.io/registry.example.com/mesh/mosn-rc@sha256:" + "9" * 64) \
        == "1.9.0-rc.1"
    assert versions.version_of_image("msg-mesh", RC_IMAGE) is None  # another sidecar's table
    assert versions.version_of_image("no-such-sidecar", "mosn:1.7.0") == "1.7.0"
    assert versions.version_of_image("rpc-mesh", RPC + ":1.8.1@sha256:" + "1" * 64) == "1.8.1"
    assert versions.version_of_image("rpc-mesh", "") is None
    assert versions.version_of_image("rpc-mesh", None) is None


def test_a_sidecar_the_versions_do_not_cover_leaves_the_others_read() -> None:
    """A policy built without versions for its first sidecar (the loader refuses one; code may build it)."""
    sidecars = {"rpc-mesh": POLICY.versions.sidecars["rpc-mesh"]}
    partial = dataclasses.replace(POLICY, sidecars=tuple(reversed(POLICY.sidecars)),
                                  versions=dataclasses.replace(POLICY.versions, sidecars=sidecars))
    assert [s.name for s in partial.sidecars] == ["msg-mesh", "rpc-mesh"]
    versions = DesiredVersions(partial, {}, NOW)
    assert versions.version_of_image("rpc-mesh", RC_IMAGE) == "1.9.0-rc.1"
    states = sidecar_states(meshed(), versions) or []
    assert {s.sidecar: s.problems for s in states} == {"rpc-mesh": (), "msg-mesh": ("not_in_policy",)}


# -- FleetView ------------------------------------------------------------------------------------------
def test_a_view_groups_by_namespace_and_lists_twenty_examples_by_default() -> None:
    view = FleetView(desired())
    assert (view.by, view.examples) == (("namespace",), 20)
    for i in range(22):
        view.add(meshed(f"p-{i}", app="payments"))
    cell = view.cells[("rpc-mesh", ("shop",))]
    assert (cell.pods, cell.disagreeing, len(cell.examples)) == (22, 22, 20)
    assert cell.examples[:2] == [("shop/p-0", ("stale",)), ("shop/p-1", ("stale",))]


def test_an_unknown_dimension_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError) as raised:
        FleetView(desired(), ("namespace", "pod", "cluster"))
    assert str(raised.value) == "unknown dimension(s) pod, cluster; known: namespace, app, zone, node, rule"


def test_pods_with_an_unreadable_record_are_counted_and_the_first_named() -> None:
    view = FleetView(desired(), examples=2)
    for i, namespace in enumerate(("shop", None, "shop")):
        pod = meshed(f"bad-{i}", namespace=namespace)
        pod["metadata"]["annotations"]["meshfit.io/status"] = "[]"
        assert view.add(pod) is None
    assert (view.bad_status_count, view.bad_status) == (3, ["shop/bad-0", "default/bad-1"])
    assert (view.pods_seen, view.pods_meshed, view.pods_disagreeing, view.cells) == (3, 0, 0, {})


def test_every_dimension_of_a_group_and_its_placeholder() -> None:
    view = FleetView(desired(), ("namespace", "app", "zone", "node", "rule"), {"n1": "eu-1a"})
    view.add(meshed(namespace="shop", app="payments", node="n1"))
    bare = meshed("bare", namespace=None, app=None, node=None)
    view.add(bare)
    fallback = meshed("fallback", app=None, node="n9")
    fallback["metadata"]["labels"] = {"app": "legacy"}
    view.add(fallback)
    assert sorted(k for k in view.cells if k[0] == "rpc-mesh") == [
        ("rpc-mesh", ("default", "-", "-", "-", "baseline")),
        ("rpc-mesh", ("shop", "legacy", "-", "n9", "baseline")),
        ("rpc-mesh", ("shop", "payments", "eu-1a", "n1", "bugfix:mosn-1.8.1-conn-leak-fix")),
    ]


def test_a_cell_counts_each_reading_and_who_disagrees() -> None:
    view = FleetView(desired(), ("namespace",), examples=1)
    view.add(meshed("fresh-0"))
    view.add(meshed("fresh-1"))
    drifted = _edit(meshed("drifted"), running=RPC + ":1.8.1")
    container_status(drifted, "rpc-mesh")["imageID"] = "other-id"
    view.add(drifted)
    pending = _edit(meshed("pending"), no_status=True)
    view.add(pending)
    unversioned = set_record(meshed("unversioned"), record("rpc-mesh", None, RPC + ":1.8.0"),
                             record("msg-mesh", "2.3.0", MSG + ":2.3.0"))
    view.add(unversioned)
    dormant = set_record(meshed("dormant", rpc=EMPTY), record("rpc-mesh", "1.8.0", RPC + ":1.8.0", active=False,
                                                              emptyImage=EMPTY),
                         record("msg-mesh", "2.3.0", MSG + ":2.3.0"))
    container_status(dormant, "rpc-mesh")["imageID"] = ""
    view.add(dormant)
    view.add(meshed("plain") | {"metadata": {"name": "plain", "namespace": "shop"}})
    assert (view.pods_seen, view.pods_meshed, view.pods_disagreeing) == (7, 6, 1)
    assert view.cells[("rpc-mesh", ("shop",))] == FleetCell(
        "rpc-mesh", ("shop",), pods=6,
        desired=Counter({"1.8.0": 6}),
        recorded=Counter({"1.8.0": 5, "-": 1}),
        running=Counter({"1.8.0": 3, "1.8.1": 1, "-": 1, "dormant": 1}),
        running_image_ids=Counter({RPC_ID: 3, "other-id": 1}),
        disagreeing=1, problems=Counter({"running_differs_from_spec": 1, "stale": 1}),
        examples=[("shop/drifted", ("running_differs_from_spec", "stale"))])
    assert view.cells[("msg-mesh", ("shop",))].disagreeing == 0


def test_a_sidecar_not_in_policy_is_counted_under_a_dash() -> None:
    disabled = {"shop": NamespacePolicy("shop", "r1", {"rpc-mesh": SidecarOverride(enabled=False)})}
    view = FleetView(desired(disabled), ("rule",))
    view.add(meshed())
    cell = view.cells[("rpc-mesh", ("-",))]
    assert (cell.desired, cell.problems, cell.examples) == (
        Counter({"-": 1}), Counter({"not_in_policy": 1}), [("shop/web-0", ("not_in_policy",))])


def test_cells_are_listed_by_sidecar_then_group() -> None:
    view = FleetView(desired(), ("namespace",))
    for namespace in ("b", "a", "c"):
        view.add(meshed(namespace=namespace))
    assert [(c.sidecar, c.group) for c in view.sorted_cells()] == [
        ("msg-mesh", ("a",)), ("msg-mesh", ("b",)), ("msg-mesh", ("c",)),
        ("rpc-mesh", ("a",)), ("rpc-mesh", ("b",)), ("rpc-mesh", ("c",))]
