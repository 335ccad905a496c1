"""A sidecar's slots, built directly: their names, images, split requests, volumes and status entry."""

from __future__ import annotations

import pytest

from policy.model import SidecarSpec, UpgradeSpec
from policy.quantity import Quantity
from policy.sidecar_status import SidecarStatus
from policy.sizing import SidecarSize
from policy.slots import layout, pod_volumes, slot_names, status_of
from policy.versions import VersionChoice

_CHOICE = VersionChoice("mesh", "1.2", "mesh:1.2", "baseline", None, ())
_SIZE = SidecarSize(limits={"cpu": Quantity.parse("101m"), "memory": Quantity.parse("129Mi")},
                    requests={"cpu": Quantity.parse("51m"), "memory": Quantity.parse("65Mi")})
_VOLUME = {"name": "certs", "secret": {"secretName": "mesh-certs"}}


def _spec(hot: bool = False, dormant: bool = False) -> SidecarSpec:
    return SidecarSpec("mesh", "mesh:1.2", volumes=(_VOLUME,),
                       upgrade=UpgradeSpec(hot, dormant, "pause:3" if hot or dormant else None))


@pytest.mark.parametrize(("upgrade", "names"), [
    ({}, ("mesh",)), ({"dormant": True}, ("mesh",)), ({"hot": True}, ("mesh", "mesh-alt")),
    ({"hot": True, "dormant": True}, ("mesh", "mesh-alt")),
])
def test_a_hot_sidecar_owns_two_containers_any_other_one(upgrade: dict[str, bool], names: tuple[str, ...]) -> None:
    assert slot_names(_spec(**upgrade)) == names
    assert tuple(s.container for s in layout(_spec(**upgrade), _CHOICE, _SIZE)) == names


@pytest.mark.parametrize(("upgrade", "images"), [
    ({}, ("mesh:1.2",)), ({"dormant": True}, ("pause:3",)), ({"hot": True}, ("mesh:1.2", "pause:3")),
    ({"hot": True, "dormant": True}, ("pause:3", "pause:3")),
])
def test_slots_run_the_version_or_the_empty_image(upgrade: dict[str, bool], images: tuple[str, ...]) -> None:
    assert tuple(s.image for s in layout(_spec(**upgrade), _CHOICE, _SIZE)) == images


def test_a_hot_sidecars_request_is_split_and_both_slots_keep_the_whole_limit() -> None:
    live, alt = layout(_spec(hot=True), _CHOICE, _SIZE)
    # 51m: 26m live, 25m idle; 65Mi = 68157440 bytes: 34078720 (33280Ki) each.
    assert ({r: q.format() for r, q in live.requests.items()}, {r: q.format() for r, q in alt.requests.items()}) == (
        {"cpu": "26m", "memory": "33280Ki"}, {"cpu": "25m", "memory": "33280Ki"})
    assert live.limits == alt.limits == _SIZE.limits


def test_only_a_hot_sidecar_adds_its_handoff_volume_after_the_policys_own() -> None:
    assert pod_volumes(_spec()) == (_VOLUME,)
    assert pod_volumes(_spec(dormant=True)) == (_VOLUME,)
    assert pod_volumes(_spec(hot=True)) == (_VOLUME, {"name": "meshfit-mesh-handoff", "emptyDir": {}})


def test_the_status_entry_names_the_first_slot_live() -> None:
    assert status_of(_spec(hot=True), _CHOICE) == SidecarStatus(
        "mesh", "1.2", "mesh:1.2", "baseline", slots=("mesh", "mesh-alt"), live="mesh", empty_image="pause:3")
    assert status_of(_spec(), _CHOICE) == SidecarStatus("mesh", "1.2", "mesh:1.2", "baseline")
