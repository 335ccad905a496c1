"""Every sidecar's versions across a fleet: desired, recorded and running, per pod and per group.

The field's version chaos (docs/design.md#lesson-8) was found through
inspections long after the fact: the metadata said one version, the node ran
another, and the policy meant a third. Three readings of each sidecar of each
pod are compared here:

* **desired**: what the current policy would inject now
  (:func:`policy.versions.resolve_version`, the webhook's own choice);
* **recorded**: what ``meshfit.io/status`` says the pod was given;
* **spec** and **running**: the container's image in the spec, and the image
  and imageID its container status reports (what the kubelet runs).

A sidecar may own two containers (a hot-upgrade sidecar's slots) and may be
dormant (:mod:`policy.slots`); the record says which slot is live and whether
it is active. The live slot is the one compared: an idle slot legitimately runs
the empty image (and, mid-upgrade, the next version), and a dormant sidecar's
live slot runs the empty image until it is activated, so for it the spec and
the running image are compared with ``emptyImage``, and only the recorded
version (what activation will start) with the policy's choice.

A pod disagrees when any two that should match do not. :class:`FleetView`
folds pods into cells keyed by any of ``namespace``, ``app``, ``zone``
(from the node's labels), ``node`` and ``rule`` (the version rule that
chose the desired version), keeping counts and a bounded list of the pods that
disagree, so a LIST of 250,000 pods can be folded page by page in flat memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from policy.annotations import STATUS, VERSION_PIN
from policy.model import NamespacePolicy, Policy
from policy.sidecar_status import SidecarStatus, StatusError, parse_status
from policy.versions import VersionChoice, resolve_version, workload_of

Pod = Mapping[str, Any]

DIMENSIONS: tuple[str, ...] = ("namespace", "app", "zone", "node", "rule")

#: The most choices (and image versions) :class:`DesiredVersions` remembers: bare pods are each their
#: own workload, so past this it stops remembering and keeps answering.
MEMO_CAP = 65536

#: What a disagreement means, and the one line that says what to do about it.
PROBLEMS: dict[str, str] = {
    "stale": "the policy now chooses another version: upgrade the sidecar (meshfit.io/target) or roll the workload",
    "spec_differs_from_record": "the sidecar's image was changed outside meshfit: restore it, or roll the workload "
                                "so the webhook injects it afresh",
    "running_differs_from_spec": "the kubelet runs another image than the spec asks for: look at the pod's events "
                                 "and the container's restarts (kubectl describe pod)",
    "sidecar_missing": "the record lists a sidecar the pod has no container for: roll the workload",
    "not_in_policy": "the policy no longer has this sidecar (or the namespace disables it): roll the workload to "
                     "remove it, or restore the sidecar in the policy",
    "bad_status": "meshfit.io/status does not parse: roll the workload so the webhook writes it afresh",
}


@dataclass(frozen=True, slots=True)
class SidecarState:
    """One sidecar of one pod, read four ways."""

    sidecar: str
    desired_version: str | None
    desired_image: str | None
    #: ``baseline``, ``bugfix:NAME``, ``pin``, ... (``-`` when the policy has no such sidecar).
    desired_rule: str
    recorded_version: str | None
    recorded_image: str | None
    spec_image: str | None
    running_image: str | None
    running_image_id: str | None
    running_version: str | None
    problems: tuple[str, ...] = ()
    #: The container that runs the version (a hot sidecar's live slot; else the sidecar's name).
    live: str = ""
    #: ``False`` for a dormant sidecar, whose live slot runs the empty image until activated.
    active: bool = True
    #: The sidecar's containers the pod lacks (``sidecar_missing``).
    missing: tuple[str, ...] = ()


@lru_cache(maxsize=8192)
def normalise_image(image: str) -> str:
    """``nginx:1`` and ``docker.io/library/nginx:1`` are one image (the kubelet reports the long form)."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if image.startswith(prefix):
            image = image[len(prefix):]
            break
    if "/" not in image.split(":", 1)[0] and image.startswith("library/"):
        image = image[len("library/"):]
    return image


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``repo:tag`` or ``repo:tag@sha256:...``), ``None`` without one."""
    ref = image.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[colon + 1:] if colon > slash else None


@lru_cache(maxsize=4096)
def _status_sidecars(text: str) -> tuple[SidecarStatus, ...] | None:
    """The sidecars of a ``meshfit.io/status`` text (:func:`policy.sidecar_status.parse_status`); ``None`` when it does not parse."""
    try:
        return parse_status(text).sidecars
    except StatusError:
        return None


def recorded_sidecars(pod: Pod) -> tuple[SidecarStatus, ...] | None:
    """The sidecars ``meshfit.io/status`` records (``()`` without a record, ``None`` when it does not parse)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(STATUS)
    if text is None:
        return ()
    if not isinstance(text, str):
        return None
    return _status_sidecars(text)


def _present(value: object) -> str | None:
    """A label's or annotation's value as part of a memo key: ``None`` when absent or empty, as
    :func:`resolve_version` reads both, so no value can be taken for a missing one."""
    return str(value) if value else None


class DesiredVersions:
    """The policy's current choice per sidecar, memoised on exactly what :func:`resolve_version` reads.

    A fleet has a few hundred workloads and hundreds of thousands of pods; the
    choice depends on the namespace, the app and zone labels, the pod's pin and
    its workload only, so each distinct combination is resolved once.
    """

    def __init__(self, policy: Policy, namespace_policies: Mapping[str, NamespacePolicy], now: datetime) -> None:
        self.policy = policy
        self.namespace_policies = namespace_policies
        self.now = now
        self._memo: dict[tuple[str | None, ...], VersionChoice | None] = {}
        self._images: dict[str, dict[str, str]] = {}
        self._image_versions: dict[tuple[str, str], str | None] = {}
        for spec in policy.sidecars:
            versions = policy.versions.sidecars.get(spec.name)
            if versions is None:
                continue
            table = {normalise_image(f"{spec.image}:{v}"): v for v in versions.allowed}
            table.update({normalise_image(image): v for v, image in versions.images.items()})
            self._images[spec.name] = table

    def pod_key(self, pod: Pod, namespace: str) -> tuple[str | None, ...]:
        """Everything :func:`resolve_version` reads of a pod, as a key."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        versions = self.policy.versions
        pin = (meta.get("annotations") or {}).get(VERSION_PIN)
        return (namespace, _present(labels.get(versions.app_label) or labels.get("app")),
                _present(labels.get(versions.zone_label)), _present(pin), workload_of(pod, namespace))

    def choose(self, pod: Pod, namespace: str, sidecar: str, key: tuple[str | None, ...]) -> VersionChoice | None:
        """What the policy would give ``sidecar`` in ``pod`` now; ``None`` if it would not inject that sidecar.

        ``key`` is the pod's :meth:`pod_key`, read once for all its sidecars.
        """
        memo_key = (sidecar, *key)
        try:
            return self._memo[memo_key]
        except KeyError:
            pass
        choice: VersionChoice | None = None
        versions = self.policy.versions
        spec = self.policy.sidecar(sidecar)
        ns_policy = self.namespace_policies.get(namespace)
        override = ns_policy.sidecars.get(sidecar) if ns_policy is not None else None
        if spec is not None and spec.name in versions.sidecars and (override is None or override.enabled):
            choice = resolve_version(pod, namespace, spec, versions, override.version if override else None, self.now)
        if len(self._memo) < MEMO_CAP:
            self._memo[memo_key] = choice
        return choice

    def version_of_image(self, sidecar: str, image: str | None) -> str | None:
        """The version an image is of: the policy's own table first, else its tag."""
        if not image:
            return None
        key = (sidecar, image)
        try:
            return self._image_versions[key]
        except KeyError:
            pass
        version = self._images.get(sidecar, {}).get(normalise_image(image)) or image_tag(image)
        if len(self._image_versions) < MEMO_CAP:
            self._image_versions[key] = version
        return version


def _text(value: object) -> str | None:
    """A field that should hold a string: a malformed pod reads as one without it, rather than failing the fold."""
    return value if isinstance(value, str) else None


def _containers(pod: Pod) -> dict[str, Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    return {str(c.get("name")): c for kind in ("initContainers", "containers") for c in spec.get(kind) or ()
            if isinstance(c, Mapping)}


def _statuses(pod: Pod) -> dict[str, Mapping[str, Any]]:
    status = pod.get("status") or {}
    return {str(s.get("name")): s for kind in ("initContainerStatuses", "containerStatuses") for s in status.get(kind) or ()
            if isinstance(s, Mapping)}


def sidecar_states(pod: Pod, desired: DesiredVersions) -> list[SidecarState] | None:
    """Each recorded sidecar of ``pod`` read four ways; ``[]`` for a pod meshfit did not inject, ``None`` if its status is unreadable."""
    recorded = recorded_sidecars(pod)
    if not recorded:
        return [] if recorded is not None else None
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    containers = _containers(pod)
    statuses = _statuses(pod)
    out: list[SidecarState] = []
    key = desired.pod_key(pod, namespace)
    for record in recorded:
        name, rec_version = record.name, record.version
        choice = desired.choose(pod, namespace, name, key)
        container = containers.get(record.live) or {}
        spec_image = _text(container.get("image"))
        status = statuses.get(record.live) or {}
        running_image = _text(status.get("image"))
        running_id = _text(status.get("imageID"))
        # what the live slot should run: the version's image, or the empty image while dormant
        expected_image = record.image if record.active else record.empty_image
        missing = tuple(c for c in record.slots if c not in containers)
        problems: list[str] = []
        if choice is None:
            problems.append("not_in_policy")
        if missing:
            problems.append("sidecar_missing")
        elif expected_image and spec_image and normalise_image(expected_image) != normalise_image(spec_image):
            problems.append("spec_differs_from_record")
        if spec_image and running_image and normalise_image(spec_image) != normalise_image(running_image):
            problems.append("running_differs_from_spec")
        running_version = desired.version_of_image(name, running_image) if running_image and record.active else None
        if choice is not None:
            if record.active:
                have = running_version or desired.version_of_image(name, spec_image) or rec_version
            else:
                have = rec_version  # nothing runs yet: what activation would start is the recorded version
            if have != choice.version or (rec_version is not None and rec_version != choice.version):
                problems.append("stale")
        rule = "-" if choice is None else (choice.source if choice.rule is None or choice.source == "pin"
                                           else f"{choice.source}:{choice.rule}")
        out.append(SidecarState(
            name,
            choice.version if choice else None,
            choice.image if choice else None,
            rule,
            rec_version,
            record.image,
            spec_image,
            running_image,
            running_id,
            running_version,
            tuple(problems),
            live=record.live,
            active=record.active,
            missing=missing,
        ))
    return out


@dataclass(slots=True)
class FleetCell:
    """One sidecar in one group of pods: what is desired, recorded and running, and who disagrees."""

    sidecar: str
    group: tuple[str, ...]
    pods: int = 0
    desired: Counter[str] = field(default_factory=Counter)
    recorded: Counter[str] = field(default_factory=Counter)
    running: Counter[str] = field(default_factory=Counter)
    running_image_ids: Counter[str] = field(default_factory=Counter)
    disagreeing: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    #: Up to :attr:`FleetView.examples` of the pods that disagree: ``(namespace/name, problems)``.
    examples: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)


class FleetView:
    """Pods folded into cells as they arrive; nothing of a pod is kept but its counts (and a few names)."""

    def __init__(self, desired: DesiredVersions, by: Iterable[str] = ("namespace",),
                 node_zones: Mapping[str, str] | None = None, examples: int = 20) -> None:
        self.by = tuple(by)
        unknown = [d for d in self.by if d not in DIMENSIONS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}")
        self.desired = desired
        self.node_zones = node_zones or {}
        self.examples = examples
        self.cells: dict[tuple[str, tuple[str, ...]], FleetCell] = {}
        self.pods_seen = 0
        self.pods_meshed = 0
        self.pods_disagreeing = 0
        self.bad_status: list[str] = []
        self.bad_status_count = 0

    def _group(self, pod: Pod, state: SidecarState) -> tuple[str, ...]:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        values: list[str] = []
        for dim in self.by:
            if dim == "namespace":
                values.append(str(meta.get("namespace") or "default"))
            elif dim == "app":
                labels = meta.get("labels") or {}
                values.append(str(labels.get(self.desired.policy.versions.app_label) or labels.get("app") or "-"))
            elif dim == "zone":
                node = spec.get("nodeName")
                values.append(self.node_zones.get(node, "-") if node else "-")
            elif dim == "node":
                values.append(str(spec.get("nodeName") or "-"))
            else:
                values.append(state.desired_rule)
        return tuple(values)

    def add(self, pod: Pod) -> list[SidecarState] | None:
        """Fold one pod in; returns its states (``None`` for an unreadable status)."""
        self.pods_seen += 1
        states = sidecar_states(pod, self.desired)
        meta = pod.get("metadata") or {}
        ref = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        if states is None:
            self.bad_status_count += 1
            if len(self.bad_status) < self.examples:
                self.bad_status.append(ref)
            return None
        if not states:
            return states
        self.pods_meshed += 1
        for state in states:
            group = self._group(pod, state)
            key = (state.sidecar, group)
            cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = FleetCell(state.sidecar, group)
            cell.pods += 1
            cell.desired[state.desired_version or "-"] += 1
            cell.recorded[state.recorded_version or "-"] += 1
            cell.running[state.running_version or ("-" if state.active else "dormant")] += 1
            if state.running_image_id:
                cell.running_image_ids[state.running_image_id] += 1
            if state.problems:
                cell.disagreeing += 1
                cell.problems.update(state.problems)
                if len(cell.examples) < self.examples:
                    cell.examples.append((ref, state.problems))
        if any(state.problems for state in states):
            self.pods_disagreeing += 1
        return states

    def sorted_cells(self) -> list[FleetCell]:
        return [self.cells[k] for k in sorted(self.cells)]
