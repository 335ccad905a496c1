"""Hot-upgrade and dormant slots: the containers one sidecar owns, placed and accounted at creation.

The fleet controller changes running pods in place, and in place it can change a
container's image, never add a container or change what the pod requests. So
every container a later upgrade or activation will use is placed by the webhook,
sized as it will be used, and paid for out of the pod's budget at creation: no
in-place action ever changes ``R(pod)``.

* A **hot** sidecar (``upgrade.hot``) owns two containers, adjacent and placed
  alike: ``NAME``, the live slot on the version's image, and ``NAME-alt``, idle
  on ``upgrade.emptyImage``. An upgrade starts the next version in the idle slot,
  the two hand the traffic over through the socket in their shared ``emptyDir``
  (``meshfit-NAME-handoff`` at ``/var/run/meshfit/handoff``), and the old slot
  goes back to the empty image.
* A **dormant** sidecar (``upgrade.dormant``) has its slot(s) on the empty image
  until the controller activates it with an image change; they carry the size
  and requests an active sidecar would get, so activation costs nothing.

Requests: the sidecar's one fitted request ``s`` is split between its slots so
``R(pod)``, the donation and the accounting are exactly a single sidecar's: the
live slot gets ``s − ⌊s/2⌋``, the alt slot ``⌊s/2⌋``, in whole millicores (CPU)
and whole bytes (memory). Both keep the sidecar's full limit ``S``: whichever
is live may use all of it. Every slot keeps at least 1m of CPU, so a hot
sidecar needs at least 2m of CPU request from the budget.

Each slot tells its process who it is: ``MESHFIT_SLOT`` (its container name)
and ``MESHFIT_SLOT_VERSION``, read by the downward API from the annotation
``meshfit.io/slot-<container>``, which holds the version the slot runs and is
empty while it idles or is dormant. The controller rewrites the annotation with
each image it sets.

Slots carry **no probes** (startup, readiness, liveness), whatever the policy
gives the sidecar: an idle or dormant slot runs the empty image, which serves no
port; two slots share one network namespace, so a probe on the mesh port could
not tell them apart; and a native sidecar whose startupProbe never passes
blocks the app's containers forever. The sidecar's own handoff decides when a
new slot has taken over — typically a ``postStart`` hook that returns once the
mesh serves (the kubelet reports a container Running, and starts the next init
container or the app, only after postStart returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy.annotations import PREFIX, SLOT_VERSION_PREFIX
from policy.model import SidecarSpec
from policy.quantity import CPU_GRANULE, NANO, SIZE_GRANULE, Quantity
from policy.sidecar_status import ALT_SUFFIX, SidecarStatus
from policy.sizing import SidecarSize
from policy.versions import VersionChoice

ENV_SLOT = "MESHFIT_SLOT"
ENV_SLOT_VERSION = "MESHFIT_SLOT_VERSION"
ENV_HANDOFF_DIR = "MESHFIT_HANDOFF_DIR"
#: Where both slots of a hot sidecar see their shared handoff directory (the migration socket).
HANDOFF_MOUNT_PATH = "/var/run/meshfit/handoff"
#: Environment variables meshfit sets on slots; a policy may not set them itself.
RESERVED_ENV = (ENV_SLOT, ENV_SLOT_VERSION, ENV_HANDOFF_DIR)
#: The step a sidecar's request is split in between its slots: whole millicores, whole bytes.
SPLIT_STEP = {"cpu": CPU_GRANULE, "memory": NANO}
#: The least request one slot keeps, per resource, when a small pod's budget is cut (1m, 1Mi).
SLOT_MINIMUM = SIZE_GRANULE
#: Kubernetes' limits on the names meshfit derives from a sidecar's name.
DNS_LABEL_MAX = 63
ANNOTATION_NAME_MAX = 63


def alt_name(name: str) -> str:
    """The container name of a hot sidecar's second slot."""
    return name + ALT_SUFFIX


def handoff_volume_name(name: str) -> str:
    """The ``emptyDir`` volume a hot sidecar's two slots share."""
    return f"meshfit-{name}-handoff"


def slot_annotation(container: str) -> str:
    """``meshfit.io/slot-<container>``: the version that slot runs, ``""`` while idle or dormant."""
    return SLOT_VERSION_PREFIX + container


def slot_names(spec: SidecarSpec) -> tuple[str, ...]:
    """The containers sidecar ``spec`` owns: its name, and ``NAME-alt`` when hot."""
    return (spec.name, alt_name(spec.name)) if spec.upgrade.hot else (spec.name,)


def name_too_long(spec: SidecarSpec) -> str | None:
    """Why the sidecar's name is too long for the names its slots need, or ``None``.

    A slotted sidecar's slots are named in annotation keys (``meshfit.io/slot-<container>``,
    whose name part has at most 63 characters); a hot one also gets ``meshfit-NAME-handoff``
    (a volume name, a DNS label of at most 63). The tightest of them bounds the name. A hot
    sidecar's ``NAME-alt`` is a container name, a DNS label too, but shorter than the volume
    name under the same bound, so it never is the tightest and is not listed.
    """
    if not spec.upgrade.slotted:
        return None
    derived = [(slot_annotation(c)[len(PREFIX):], ANNOTATION_NAME_MAX, "annotation key's name part") for c in slot_names(spec)]
    if spec.upgrade.hot:
        derived.append((handoff_volume_name(spec.name), DNS_LABEL_MAX, "volume name"))
    text, most, what = min(derived, key=lambda d: d[1] - len(d[0]))
    room = most - (len(text) - len(spec.name))
    if len(spec.name) <= room:
        return None
    kind = "hot-upgrade" if spec.upgrade.hot else "dormant"
    return (f"must be at most {room} characters for a {kind} sidecar: its {what} {text!r} "
            f"would exceed {most} characters")


def split_request(value: Quantity, resource: str) -> tuple[Quantity, Quantity]:
    """``(live, alt)``: ``s − ⌊s/2⌋`` and ``⌊s/2⌋`` in whole millicores or bytes; exact, they add up to ``s``."""
    step = SPLIT_STEP[resource]
    alt = value.nanos // 2 // step * step
    return Quantity(value.nanos - alt, value.fmt), Quantity(alt, value.fmt)


@dataclass(frozen=True, slots=True)
class Slot:
    """One container of a sidecar: what it runs and what it is given."""

    container: str
    image: str
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]


def layout(spec: SidecarSpec, choice: VersionChoice, size: SidecarSize) -> tuple[Slot, ...]:
    """The sidecar's slots in placement order, with its fitted size split between them.

    The first is the live slot (the one that runs, or dormant will run, the version).
    """
    upgrade = spec.upgrade
    if not upgrade.slotted:
        return (Slot(spec.name, choice.image, dict(size.requests), dict(size.limits)),)
    empty = upgrade.empty_image or ""
    live_image = empty if upgrade.dormant else choice.image
    if not upgrade.hot:
        return (Slot(spec.name, live_image, dict(size.requests), dict(size.limits)),)
    live_req: dict[str, Quantity] = {}
    alt_req: dict[str, Quantity] = {}
    for resource, value in size.requests.items():
        live_req[resource], alt_req[resource] = split_request(value, resource)
    return (Slot(spec.name, live_image, live_req, dict(size.limits)),
            Slot(alt_name(spec.name), empty, alt_req, dict(size.limits)))


def slot_env(slot: Slot, hot: bool) -> list[dict[str, Any]]:
    """What a slot is told about itself: its name, its version (downward API) and, hot, the handoff directory."""
    env: list[dict[str, Any]] = [
        {"name": ENV_SLOT, "value": slot.container},
        {"name": ENV_SLOT_VERSION,
         "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{slot_annotation(slot.container)}']"}}},
    ]
    if hot:
        env.append({"name": ENV_HANDOFF_DIR, "value": HANDOFF_MOUNT_PATH})
    return env


def handoff_mount(spec: SidecarSpec) -> dict[str, Any]:
    return {"name": handoff_volume_name(spec.name), "mountPath": HANDOFF_MOUNT_PATH}


def pod_volumes(spec: SidecarSpec) -> tuple[Mapping[str, Any], ...]:
    """The pod volumes sidecar ``spec`` needs: the policy's, and a hot sidecar's handoff ``emptyDir``."""
    if not spec.upgrade.hot:
        return spec.volumes
    return (*spec.volumes, {"name": handoff_volume_name(spec.name), "emptyDir": {}})


def slot_versions(spec: SidecarSpec, choice: VersionChoice) -> dict[str, str]:
    """The ``meshfit.io/slot-<container>`` annotations of a slotted sidecar (``{}`` for an ordinary one)."""
    if not spec.upgrade.slotted:
        return {}
    return {slot_annotation(name): (choice.version if i == 0 and not spec.upgrade.dormant else "")
            for i, name in enumerate(slot_names(spec))}


def status_of(spec: SidecarSpec, choice: VersionChoice) -> SidecarStatus:
    """The sidecar's entry in ``meshfit.io/status`` as the webhook writes it at creation."""
    upgrade = spec.upgrade
    return SidecarStatus(
        name=spec.name,
        version=choice.version,
        image=choice.image,
        source=choice.source,
        slots=slot_names(spec),  # the first, the sidecar's own name, is the live slot
        active=not upgrade.dormant,
        empty_image=upgrade.empty_image if upgrade.slotted else None,
    )
