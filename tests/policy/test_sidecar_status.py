"""``meshfit.io/status`` entries as written: the defaults an old record reads with, and the exact JSON."""

from __future__ import annotations

from typing import Any

import pytest

from policy.sidecar_status import PodStatus, SidecarStatus


def test_an_entry_without_slots_has_one_named_after_the_sidecar_and_it_is_live() -> None:
    s = SidecarStatus("mesh")
    assert (s.slots, s.live, s.hot, s.idle) == (("mesh",), "mesh", False, None)


def test_the_first_slot_is_live_unless_the_record_names_another() -> None:
    first = SidecarStatus("mesh", slots=("mesh", "mesh-alt"))
    assert (first.live, first.idle, first.hot) == ("mesh", "mesh-alt", True)
    second = SidecarStatus("mesh", slots=("mesh", "mesh-alt"), live="mesh-alt")
    assert (second.slots, second.live, second.idle) == (("mesh", "mesh-alt"), "mesh-alt", "mesh")


@pytest.mark.parametrize(("status", "expected"), [
    (SidecarStatus("mesh"), {"name": "mesh", "version": None, "image": None, "source": None}),
    (SidecarStatus("mesh", "1.2", "mesh:1.2", "default"),
     {"name": "mesh", "version": "1.2", "image": "mesh:1.2", "source": "default"}),
    (SidecarStatus("mesh", slots=("other",)),
     {"name": "mesh", "version": None, "image": None, "source": None, "slots": ["other"]}),
    (SidecarStatus("mesh", "1.2", "mesh:1.2", "default", slots=("mesh", "mesh-alt"), live="mesh-alt",
                   active=False, empty_image="pause:3", previous="1.1", restart="r7"),
     {"name": "mesh", "version": "1.2", "image": "mesh:1.2", "source": "default", "slots": ["mesh", "mesh-alt"],
      "live": "mesh-alt", "active": False, "emptyImage": "pause:3", "previous": "1.1", "restart": "r7"}),
    (SidecarStatus("mesh", slots=("mesh", "mesh-alt")),
     {"name": "mesh", "version": None, "image": None, "source": None, "slots": ["mesh", "mesh-alt"], "live": "mesh"}),
])
def test_an_entry_leaves_out_what_holds_its_default(status: SidecarStatus, expected: dict[str, Any]) -> None:
    assert status.to_dict() == expected


def test_the_annotation_text_is_compact_json_with_its_version_first() -> None:
    status = PodStatus("prod/mesh", (SidecarStatus("mesh", "1.2", "mesh:1.2", "default"),), {"note": 1})
    assert status.to_json() == ('{"v":1,"policy":"prod/mesh","note":1,"sidecars":'
                                '[{"name":"mesh","version":"1.2","image":"mesh:1.2","source":"default"}]}')
