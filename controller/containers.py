"""What the kubelet says about a pod's containers, and what a kubelet version can do.

The fleet controller judges every operation by the kubelet's answer, never by
its own write: an image change is done when the container's status reports the
new image, a new imageID or one more restart, and readiness; a crash loop is
``CrashLoopBackOff`` or restarts piling up. These are the readings, as plain
functions of the pod dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy.fleet import normalise_image

Pod = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container's status, reduced to what an operation is judged by."""

    name: str
    image: str
    image_id: str
    restarts: int
    ready: bool
    running: bool
    waiting_reason: str
    resources: Mapping[str, Any] | None

    @property
    def crash_looping(self) -> bool:
        return self.waiting_reason in ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName")


def container_state(pod: Pod, name: str) -> ContainerState | None:
    """The status the kubelet reports for container ``name`` (init or regular), or ``None``."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in status.get(key) or ():
            if isinstance(item, Mapping) and item.get("name") == name:
                state = item.get("state") or {}
                waiting = state.get("waiting") or {}
                restarts = item.get("restartCount")
                return ContainerState(
                    name=name,
                    image=str(item.get("image") or ""),
                    image_id=str(item.get("imageID") or ""),
                    restarts=restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else 0,
                    ready=item.get("ready") is True,
                    running="running" in state,
                    waiting_reason=str(waiting.get("reason") or "") if isinstance(waiting, Mapping) else "",
                    resources=item.get("resources") if isinstance(item.get("resources"), Mapping) else None,
                )
    return None


@dataclass(frozen=True, slots=True)
class SpecContainer:
    """Where a container sits in the spec: ``initContainers`` (native sidecar or not) or ``containers``."""

    field: str
    index: int
    container: Mapping[str, Any]

    @property
    def native_sidecar(self) -> bool:
        return self.field == "initContainers" and self.container.get("restartPolicy") == "Always"

    @property
    def image(self) -> str:
        return str(self.container.get("image") or "")


def spec_container(pod: Pod, name: str) -> SpecContainer | None:
    """Container ``name`` of the pod's spec, with its place."""
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers"):
        for i, item in enumerate(spec.get(key) or ()):
            if isinstance(item, Mapping) and item.get("name") == name:
                return SpecContainer(key, i, item)
    return None


def same_image(a: str, b: str) -> bool:
    """Whether two references name one image as the kubelet reports it (``nginx:1`` is ``docker.io/library/nginx:1``)."""
    return normalise_image(a) == normalise_image(b)


def reports_image(state: ContainerState, image: str) -> bool:
    """Whether the kubelet runs ``image`` in this container (a digest-pinned spec runs its tag's image)."""
    if same_image(state.image, image):
        return True
    # A digest-pinned reference: the kubelet reports either form.
    return "@" in image and same_image(state.image, image.split("@", 1)[0])


_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


def kubelet_at_least(kubelet_version: str | None, minimum: tuple[int, int]) -> bool | None:
    """Whether ``kubelet_version`` (``v1.36.3``, ``v1.32.0-eks-1``) is at least ``minimum`` (``(1, 32)``); ``None`` if unknown."""
    if not kubelet_version:
        return None
    found = _VERSION.match(kubelet_version)
    if found is None:
        return None
    return (int(found[1]), int(found[2])) >= minimum


def digest_of(image_id: str) -> str | None:
    """The ``sha256:...`` digest an imageID carries (``docker-pullable://repo@sha256:...``), or ``None``."""
    if "@" not in image_id:
        return None
    digest = image_id.rsplit("@", 1)[1]
    return digest if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else None


def alternate_reference(image: str, image_id: str) -> str | None:
    """The same image under the other reference form: ``repo:tag`` <-> ``repo:tag@sha256:...``.

    A restart of one sidecar alone needs a spec change the kubelet answers by
    restarting that container and nothing else; the image is the only mutable
    container field, and the same bytes under another reference is a change of
    the spec hash without a change of what runs. ``None`` when the running
    digest is unknown, or the image is pinned by digest alone (no tag to return to).
    """
    if "@" in image:
        name = image.split("@", 1)[0]
        slash, colon = name.rfind("/"), name.rfind(":")
        return name if colon > slash else None
    digest = digest_of(image_id)
    return f"{image}@{digest}" if digest is not None else None
