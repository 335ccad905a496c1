"""The fleet controller's schema: ``sidecars[].upgrade`` and ``fleet``, every error named by its path."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from policies import DEFAULT_POLICY_FILE

from policy.fields import PolicyError
from policy.load import parse_policy
from policy.model import FleetPolicy, Policy, UpgradeSpec

EMPTY = "registry.example.com/mesh/empty:1"


def _document() -> dict[str, Any]:
    cm = yaml.safe_load(DEFAULT_POLICY_FILE.read_text())
    return yaml.safe_load(cm["data"]["policy.yaml"])


def _errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    return [str(e) for e in info.value.errors]


def _upgrade(upgrade: dict[str, Any], **sidecar: Any) -> dict[str, Any]:
    doc = _document()
    doc["sidecars"][0]["upgrade"] = upgrade
    doc["sidecars"][0].update(sidecar)
    return doc


def _rename(doc: dict[str, Any], name: str) -> dict[str, Any]:
    old = doc["sidecars"][0]["name"]
    doc["sidecars"][0]["name"] = name
    doc["versions"]["sidecars"][name] = doc["versions"]["sidecars"].pop(old)
    for rule in doc["versions"]["rules"]:
        if rule.get("sidecar") == old:
            rule["sidecar"] = name
    return doc


# -- upgrade -------------------------------------------------------------------------
def test_defaults_are_all_off() -> None:
    policy = parse_policy(_document())
    assert all(s.upgrade == UpgradeSpec() for s in policy.sidecars)
    assert UpgradeSpec() == UpgradeSpec(hot=False, dormant=False, empty_image=None)
    assert not UpgradeSpec().slotted
    assert policy.fleet == FleetPolicy()


def test_hot_and_dormant_read_with_their_empty_image() -> None:
    policy = parse_policy(_upgrade({"hot": True, "dormant": True, "emptyImage": EMPTY}))
    assert policy.sidecars[0].upgrade == UpgradeSpec(hot=True, dormant=True, empty_image=EMPTY)
    assert policy.sidecars[0].upgrade.slotted
    assert parse_policy(_upgrade({"dormant": True, "emptyImage": EMPTY})).sidecars[0].upgrade.slotted
    # an empty image may be named ahead of switching the slots on
    assert parse_policy(_upgrade({"emptyImage": EMPTY})).sidecars[0].upgrade == UpgradeSpec(empty_image=EMPTY)


@pytest.mark.parametrize("upgrade", [{"hot": True}, {"dormant": True}, {"hot": True, "emptyImage": ""}])
def test_the_empty_image_is_required_when_hot_or_dormant(upgrade: dict[str, Any]) -> None:
    assert _errors(_upgrade(upgrade)) == [
        "sidecars[0].upgrade.emptyImage: is required when hot or dormant: the image an idle or dormant slot runs"]


def test_upgrade_field_mistakes_are_named_by_path() -> None:
    errors = _errors(_upgrade({"hot": "yes", "dormant": 1, "emptyImage": "a b", "warm": True}))
    assert errors == [
        "sidecars[0].upgrade.hot: must be true or false, got 'yes'",
        "sidecars[0].upgrade.dormant: must be true or false, got 1",
        "sidecars[0].upgrade.emptyImage: must be an image reference without spaces, got 'a b'",
        "sidecars[0].upgrade.warm: unknown field",
    ]
    assert _errors(_upgrade(["hot"])) == ["sidecars[0].upgrade: must be a mapping, got a list"]  # type: ignore[arg-type]


def test_a_hot_sidecar_name_must_leave_room_for_its_slot_names() -> None:
    # meshfit-NAME-handoff (a volume name, a DNS label of at most 63) is the tightest: 63 - 16 = 47
    hot = {"hot": True, "emptyImage": EMPTY}
    assert parse_policy(_rename(_upgrade(hot), "a" * 47)).sidecars[0].name == "a" * 47
    errors = _errors(_rename(_upgrade(hot), "a" * 48))
    assert errors == [f"sidecars[0].name: must be at most 47 characters for a hot-upgrade sidecar: its volume name "
                      f"'meshfit-{'a' * 48}-handoff' would exceed 63 characters"]
    # meshfit.io/slot-NAME-alt and NAME-alt are within it: 54 and 59 would be their own bounds
    assert len("slot-" + "a" * 47 + "-alt") <= 63 and len("a" * 47 + "-alt") <= 63


def test_a_dormant_sidecar_name_must_fit_its_slot_annotation() -> None:
    # meshfit.io/slot-NAME: the key's name part has at most 63 characters, so NAME at most 58
    dormant = {"dormant": True, "emptyImage": EMPTY}
    assert parse_policy(_rename(_upgrade(dormant), "d" * 58)).sidecars[0].name == "d" * 58
    assert _errors(_rename(_upgrade(dormant), "d" * 59)) == [
        f"sidecars[0].name: must be at most 58 characters for a dormant sidecar: its annotation key's name part "
        f"'slot-{'d' * 59}' would exceed 63 characters"]
    # an ordinary sidecar derives no names: only the DNS label rule applies
    parse_policy(_rename(_document(), "o" * 59))


def test_a_hot_sidecar_needs_a_floor_of_two_millicores() -> None:
    hot = {"hot": True, "emptyImage": EMPTY}
    assert parse_policy(_upgrade(hot, cpuRequestFloor="2m")).sidecars[0].cpu_request_floor.format() == "2m"
    assert _errors(_upgrade(hot, cpuRequestFloor="1m")) == [
        "sidecars[0].cpuRequestFloor: must be at least 2m for a hot-upgrade sidecar (each of its two slots keeps 1m), "
        "got 1m"]
    parse_policy(_upgrade({"dormant": True, "emptyImage": EMPTY}, cpuRequestFloor="1m"))


def test_meshfit_slot_names_are_reserved() -> None:
    doc = _upgrade({"hot": True, "emptyImage": EMPTY},
                   env=[{"name": "MESHFIT_SLOT", "value": "x"}, {"name": "MESHFIT_HANDOFF_DIR", "value": "/x"}],
                   volumeMounts=[{"name": "data", "mountPath": "/var/run/meshfit/handoff"}],
                   volumes=[{"name": "meshfit-rpc-mesh-handoff", "emptyDir": {}}])
    assert _errors(doc) == [
        "sidecars[0].env[0].name: MESHFIT_SLOT is set by meshfit on every slot",
        "sidecars[0].env[1].name: MESHFIT_HANDOFF_DIR is set by meshfit on every slot",
        "sidecars[0].volumeMounts[0]: meshfit-rpc-mesh-handoff at /var/run/meshfit/handoff is meshfit's handoff volume",
        "sidecars[0].volumes[0].name: meshfit-rpc-mesh-handoff is meshfit's handoff volume",
    ]
    # a dormant sidecar has no handoff directory: only the slot variables are meshfit's
    dormant = _upgrade({"dormant": True, "emptyImage": EMPTY}, env=[{"name": "MESHFIT_HANDOFF_DIR", "value": "/x"},
                                                                     {"name": "MESHFIT_SLOT_VERSION", "value": "1"}])
    assert _errors(dormant) == ["sidecars[0].env[1].name: MESHFIT_SLOT_VERSION is set by meshfit on every slot"]
    # ordinary sidecars may set them (nothing of meshfit's is there to collide with)
    parse_policy(_upgrade({}, env=[{"name": "MESHFIT_SLOT", "value": "x"}]))


def test_another_sidecar_may_not_take_a_hot_sidecars_second_slot() -> None:
    doc = _upgrade({"hot": True, "emptyImage": EMPTY})
    doc["sidecars"][1]["name"] = "rpc-mesh-alt"
    doc["versions"]["sidecars"]["rpc-mesh-alt"] = doc["versions"]["sidecars"].pop("msg-mesh")
    assert _errors(doc) == ["sidecars[1].name: 'rpc-mesh-alt' is the second slot of hot-upgrade sidecar sidecars[0] "
                            "('rpc-mesh')"]


def test_lifecycle_is_copied_as_given() -> None:
    hook = {"postStart": {"exec": {"command": ["/mesh", "handoff"]}}}
    assert parse_policy(_upgrade({}, lifecycle=hook)).sidecars[0].lifecycle == hook
    assert _errors(_upgrade({}, lifecycle="now")) == ["sidecars[0].lifecycle: must be a mapping, got 'now'"]


# -- fleet ---------------------------------------------------------------------------
def _fleet(**fields: Any) -> dict[str, Any]:
    doc = _document()
    doc["fleet"] = fields
    return doc


def test_fleet_defaults_and_values() -> None:
    assert FleetPolicy() == FleetPolicy(rollback=True, timeout_seconds=300, crash_restarts=2,
                                        sidecar_image_change_kubelet="1.32")
    assert FleetPolicy().sidecar_image_change_minor() == (1, 32)
    policy: Policy = parse_policy(_fleet(rollback=False, timeoutSeconds=60, crashRestarts=0,
                                         sidecarImageChangeKubelet="1.33"))
    assert policy.fleet == FleetPolicy(False, 60, 0, "1.33")
    assert parse_policy(_fleet()).fleet == FleetPolicy()


@pytest.mark.parametrize(("key", "good", "bad", "message"), [
    ("timeoutSeconds", 1, 0, "must be between 1 and 86400, got 0"),
    ("timeoutSeconds", 86400, 86401, "must be between 1 and 86400, got 86401"),
    ("crashRestarts", 0, -1, "must be between 0 and 100, got -1"),
    ("crashRestarts", 100, 101, "must be between 0 and 100, got 101"),
])
def test_fleet_integer_boundaries(key: str, good: int, bad: int, message: str) -> None:
    assert getattr(parse_policy(_fleet(**{key: good})).fleet,
                   {"timeoutSeconds": "timeout_seconds", "crashRestarts": "crash_restarts"}[key]) == good
    assert _errors(_fleet(**{key: bad})) == [f"fleet.{key}: {message}"]


@pytest.mark.parametrize("value", ["1.32", "1.30", "2.0", "1.100"])
def test_kubelet_version_is_major_minor(value: str) -> None:
    assert parse_policy(_fleet(sidecarImageChangeKubelet=value)).fleet.sidecar_image_change_kubelet == value


@pytest.mark.parametrize(("value", "message"), [
    (1.3, 'must be a MAJOR.MINOR string such as "1.32" (quote it: YAML reads 1.30 as the number 1.3), got 1.3'),
    (1, 'must be a MAJOR.MINOR string such as "1.32" (quote it: YAML reads 1.30 as the number 1.3), got 1'),
    ("v1.32", "must be a MAJOR.MINOR string such as \"1.32\", got 'v1.32'"),
    ("1.32.0", "must be a MAJOR.MINOR string such as \"1.32\", got '1.32.0'"),
    ("1", "must be a MAJOR.MINOR string such as \"1.32\", got '1'"),
    ("01.32", "must be a MAJOR.MINOR string such as \"1.32\", got '01.32'"),
    (True, 'must be a MAJOR.MINOR string such as "1.32", got True'),
])
def test_kubelet_version_mistakes(value: Any, message: str) -> None:
    assert _errors(_fleet(sidecarImageChangeKubelet=value)) == [f"fleet.sidecarImageChangeKubelet: {message}"]


def test_yaml_unquoted_kubelet_version_is_caught() -> None:
    text = DEFAULT_POLICY_FILE.read_text()
    doc = yaml.safe_load(yaml.safe_load(text)["data"]["policy.yaml"] + "\nfleet:\n  sidecarImageChangeKubelet: 1.30\n")
    assert _errors(doc)[0].startswith("fleet.sidecarImageChangeKubelet: must be a MAJOR.MINOR string")


def test_fleet_field_mistakes_all_reported() -> None:
    errors = _errors(_fleet(rollback="yes", timeoutSeconds="5m", crashRestarts=2.5, retries=3))
    assert errors == [
        "fleet.rollback: must be true or false, got 'yes'",
        "fleet.timeoutSeconds: must be an integer, got '5m'",
        "fleet.crashRestarts: must be an integer, got 2.5",
        "fleet.retries: unknown field",
    ]
    assert _errors({**_document(), "fleet": [1]}) == ["fleet: must be a mapping, got a list"]
