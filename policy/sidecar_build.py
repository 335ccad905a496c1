"""What injecting a policy's sidecars adds to a pod: their containers, their volumes, the app's env.

This is the one place a sidecar's container is built. Everything in it but the
image (the version chosen for the pod) and the resources (sized for the pod)
is the same for every pod a policy sidecar is injected into, so it is built
and serialised once per sidecar of a policy object (:func:`templates`), and a
pod's container is that JSON with its image and resources written in, parsed
in one ``orjson.loads``: a fresh copy that shares nothing with the policy or
with another pod. Building the container field by field, with a deep copy of
each fragment (ports, env, probes), was a tenth of the engine's time.

The key order of the container is the one the patch has always carried:
``name, image, imagePullPolicy, restartPolicy, command, args, ports, env,
volumeMounts, resources, startupProbe, readinessProbe, livenessProbe,
securityContext, lifecycle``. Something every injected sidecar gets (an env
var, a volume mount) goes into :func:`_slot_template`; a pod volume the
sidecars need goes into :func:`policy.slots.pod_volumes`, which the decision
also reads to refuse a clashing volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import orjson

from policy.edits import PodEditor, json_copy
from policy.model import SidecarSpec
from policy.sizing import SidecarSize
from policy.slots import Slot, handoff_mount, layout, pod_volumes, slot_env, slot_names
from policy.versions import VersionChoice

#: Templates are kept for this many sidecar objects at most (a policy edit makes new ones).
_MAX_TEMPLATES = 256


@dataclass(frozen=True, slots=True)
class SlotTemplate:
    """One slot's container as JSON, cut where the per-pod image and resources go."""

    #: ``{"name":...,"image":``
    head: bytes
    #: ``,"imagePullPolicy":...,"resources":``
    middle: bytes
    #: ``,"startupProbe":...}``
    tail: bytes

    def container(self, image: str, resources: Mapping[str, Any]) -> dict[str, Any]:
        """The slot's container for one pod: a new object, nested values included."""
        text = self.head + orjson.dumps(image) + self.middle + orjson.dumps(resources) + self.tail
        container: dict[str, Any] = orjson.loads(text)
        return container


_TEMPLATES: dict[int, tuple[SidecarSpec, dict[str, SlotTemplate]]] = {}


def templates(spec: SidecarSpec) -> dict[str, SlotTemplate]:
    """``{slot container: template}`` for one policy sidecar, built on first use.

    Keyed on the sidecar object itself (policies are frozen and replaced whole
    when edited), held beside it so a reused ``id`` can never find another's.
    """
    entry = _TEMPLATES.get(id(spec))
    if entry is None or entry[0] is not spec:
        if len(_TEMPLATES) >= _MAX_TEMPLATES:
            _TEMPLATES.clear()
        entry = (spec, {name: _slot_template(spec, name) for name in slot_names(spec)})
        _TEMPLATES[id(spec)] = entry
    return entry[1]


def _members(fields: Mapping[str, Any]) -> bytes:
    """``,"k":v,...`` — an object's members, to splice into another object."""
    return b"," + orjson.dumps(fields)[1:-1] if fields else b""


def _slot_template(spec: SidecarSpec, container: str) -> SlotTemplate:
    """One slot's container. An ordinary sidecar's is the policy's fragment as given.

    A slotted sidecar's (hot or dormant) also learns its slot (:func:`policy.slots.slot_env`),
    and carries no probes: an idle or dormant slot runs the empty image, which serves no
    port; two slots share one network namespace, so a probe port cannot tell them apart;
    and a native sidecar whose startupProbe never passes blocks the app forever. Only the
    first slot declares the ports (whichever slot is live serves them). The sidecar's own
    handoff (a postStart hook) decides when a new slot has taken over.
    """
    slotted = spec.upgrade.slotted
    before: dict[str, Any] = {"imagePullPolicy": spec.image_pull_policy}
    if spec.placement == "native":
        before["restartPolicy"] = "Always"
    if spec.command:
        before["command"] = spec.command
    if spec.args:
        before["args"] = spec.args
    if spec.ports and container == spec.name:
        before["ports"] = spec.ports
    env: list[Any] = list(spec.env)
    mounts: list[Any] = list(spec.volume_mounts)
    if slotted:
        env.extend(slot_env(_named(container), spec.upgrade.hot))
        if spec.upgrade.hot:
            mounts.append(handoff_mount(spec))
    if env:
        before["env"] = env
    if mounts:
        before["volumeMounts"] = mounts
    after: dict[str, Any] = {}
    probes = () if slotted else (("startupProbe", spec.startup_probe), ("readinessProbe", spec.readiness_probe),
                                 ("livenessProbe", spec.liveness_probe))
    for key, fragment in (*probes, ("securityContext", spec.security_context), ("lifecycle", spec.lifecycle)):
        if fragment is not None:
            after[key] = fragment
    return SlotTemplate(
        head=b'{"name":' + orjson.dumps(container) + b',"image":',
        middle=_members(before) + b',"resources":',
        tail=_members(after) + b"}",
    )


def _named(container: str) -> Slot:
    """A slot that only names its container: all :func:`policy.slots.slot_env` reads."""
    return Slot(container, "", {}, {})


def slot_resources(slot: Slot) -> dict[str, Any]:
    """A slot's ``resources`` as the container carries it (canonical quantity strings)."""
    resources: dict[str, Any] = {}
    if slot.requests:
        resources["requests"] = {r: v.format() for r, v in slot.requests.items()}
    if slot.limits:
        resources["limits"] = {r: v.format() for r, v in slot.limits.items()}
    return resources


def place_sidecars(editor: PodEditor, sidecars: tuple[SidecarSpec, ...], versions: Mapping[str, VersionChoice],
                   sizes: Mapping[str, SidecarSize]) -> set[str]:
    """Native sidecars go to initContainers (before the app's init containers when ``first``).

    A sidecar's slots go side by side, in the order of :func:`policy.slots.layout`.
    Returns the names of every container placed (none of them donates).
    """
    placed = {"initContainers": 0, "containers": 0}
    names: set[str] = set()
    for sidecar in sidecars:
        kind = "initContainers" if sidecar.placement == "native" else "containers"
        slot_templates = templates(sidecar)
        for slot in layout(sidecar, versions[sidecar.name], sizes[sidecar.name]):
            index = placed[kind] if sidecar.position == "first" else None
            editor.insert(("spec", kind), index, slot_templates[slot.container].container(slot.image, slot_resources(slot)))
            if sidecar.position == "first":
                placed[kind] += 1
            names.add(slot.container)
    return names


def add_volumes(editor: PodEditor, sidecars: tuple[SidecarSpec, ...]) -> None:
    """The pod volumes the sidecars need, unless the pod already has one of that name."""
    present = {v.get("name") for v in editor.get(("spec", "volumes"), ()) if isinstance(v, Mapping)}
    for sidecar in sidecars:
        for volume in pod_volumes(sidecar):
            if volume.get("name") not in present:
                editor.insert(("spec", "volumes"), None, json_copy(volume))
                present.add(volume.get("name"))


def add_app_env(editor: PodEditor, sidecars: tuple[SidecarSpec, ...]) -> None:
    """Tell app containers where the mesh is; a variable the app already sets wins.

    Only the names of the app's own variables are read, in one pass at C speed,
    so a pod with 1,500 of them costs little more than one with three.
    """
    wanted = [e for s in sidecars for e in s.app_env]
    if not wanted:
        return
    for i, container in enumerate(editor.pod["spec"]["containers"]):
        present = _env_names(container.get("env"))
        for env in wanted:
            if env["name"] not in present:
                editor.insert(("spec", "containers", i, "env"), None, json_copy(env))
                present.add(env["name"])


def _env_names(env: Any) -> set[Any]:
    """The names an app container's ``env`` sets (entries that are not objects name nothing)."""
    if not env:
        return set()
    try:
        return set(map(dict.get, env, repeat("name")))
    except TypeError:  # an entry that is not a dict (a hand-written pod): the slow, careful way
        return {e.get("name") for e in env if isinstance(e, Mapping)}
