"""Pods injected by another mesh (Istio, Linkerd): how to recognise them and what their sidecars add.

Such pods carry no ``meshfit.io/accounting`` record, so what their mesh
added on top of the app is derived from the spec: ``R(pod)`` minus ``R`` of
the same pod without the mesh's containers. That marginal is exactly the
"sidecar requests added on top" for a sidecar in ``containers``, and it is
right in the cases a plain sum would get wrong: a mesh's *init* container
(``istio-init``) adds nothing unless it is the heaviest init phase, and a
pod with pod-level requests pays nothing extra whatever its containers ask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson

from policy.resources import RESOURCES, Resources, pod_requests

Pod = Mapping[str, Any]
#: Who injected a pod's sidecars.
Mesh = Literal["meshfit", "istio", "linkerd"]

ISTIO_STATUS = "sidecar.istio.io/status"
LINKERD_VERSION = "linkerd.io/proxy-version"

#: Containers other meshes inject, by mesh. Their names are fixed by the
#: injectors (``istio-proxy`` and ``linkerd-proxy`` run beside the app, the
#: ``-init`` and validator containers set up iptables before it).
FOREIGN_CONTAINERS: dict[str, Mesh] = {
    "istio-proxy": "istio",
    "istio-init": "istio",
    "istio-validation": "istio",
    "linkerd-proxy": "linkerd",
    "linkerd-init": "linkerd",
    "linkerd-network-validator": "linkerd",
}
#: The names that alone identify a pod as injected by another mesh.
FOREIGN_PROXIES = frozenset({"istio-proxy", "linkerd-proxy"})


def _istio_status_names(text: object) -> set[str]:
    """Container names Istio lists in its status annotation (its injector's own record)."""
    if not isinstance(text, str):
        return set()
    try:
        status = orjson.loads(text)
    except orjson.JSONDecodeError:
        return set()
    names: set[str] = set()
    if isinstance(status, Mapping):
        for key in ("containers", "initContainers"):
            listed = status.get(key)
            if isinstance(listed, list):
                names.update(n for n in listed if isinstance(n, str))
    return names


def foreign_mesh(pod: Pod) -> tuple[Mesh | None, frozenset[str]]:
    """Which other mesh injected this pod, and the names of its containers in it."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = pod.get("spec") or {}
    present = {
        c.get("name")
        for part in ("containers", "initContainers")
        for c in (spec.get(part) or ())
        if isinstance(c, Mapping)
    }
    mesh: Mesh | None = None
    if ISTIO_STATUS in annotations:
        mesh = "istio"
    elif LINKERD_VERSION in annotations:
        mesh = "linkerd"
    else:
        for name in FOREIGN_PROXIES & present:
            mesh = FOREIGN_CONTAINERS[name]
            break
    if mesh is None:
        return None, frozenset()
    names = {n for n, m in FOREIGN_CONTAINERS.items() if m == mesh}
    if mesh == "istio":
        names |= _istio_status_names(annotations.get(ISTIO_STATUS))
    return mesh, frozenset(names & present)


def maybe_foreign(pod: Pod, annotations: Mapping[str, Any]) -> bool:
    """A cheap first look: could another mesh have injected this pod? (:func:`foreign_mesh` decides.)"""
    if ISTIO_STATUS in annotations or LINKERD_VERSION in annotations:
        return True
    spec = pod.get("spec") or {}
    for part in ("containers", "initContainers"):
        for c in spec.get(part) or ():
            if c.get("name") in FOREIGN_PROXIES:
                return True
    return False


def foreign_leak(pod: Pod, containers: frozenset[str], requests: Resources | None = None) -> Resources:
    """``R(pod) − R(pod without the mesh's containers)``: what the mesh added on top."""
    spec = pod.get("spec") or {}
    stripped_spec = dict(spec)
    for part in ("containers", "initContainers"):
        if part in spec:
            stripped_spec[part] = [c for c in spec.get(part) or () if c.get("name") not in containers]
    with_mesh = requests if requests is not None else pod_requests(dict(pod))
    without = pod_requests({"spec": stripped_spec})
    return {name: with_mesh[name] - without[name] for name in RESOURCES}
