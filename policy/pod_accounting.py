"""What one pod costs its node and its namespace's quota, from the pod dict alone.

The extender sums these figures per node and ``meshfit leak`` sums them per
namespace; both must agree, so both call :func:`account_pod`. It is a pure
function of the pod as the API serves it:

* ``requests`` is ``R(pod)`` (:func:`policy.resources.pod_requests`), what the
  scheduler charges the node and ResourceQuota charges the namespace;
* ``exposure`` is the node-level exposure recorded in ``meshfit.io/accounting``
  (the swap variant's ``Σ S_i``), zero for pods that carry no record: a pod
  meshfit did not inject put nothing beyond its limits on the node on
  meshfit's account;
* ``leak`` is what sidecars added on top of what the app asked for. For
  meshfit pods it is the recorded leak (additive mode, BestEffort pods given a
  sidecar request). For pods injected by other meshes (Istio, Linkerd) there
  is no record, so it is derived from the spec: ``R(pod)`` minus ``R`` of the
  same pod without the mesh's containers. That marginal is exactly the
  "sidecar requests added on top" for a sidecar in ``containers``, and it is
  right in the cases a plain sum would get wrong: a mesh's *init* container
  (``istio-init``) adds nothing unless it is the heaviest init phase, and a
  pod with pod-level requests pays nothing extra whatever its containers ask.

A record that does not parse is treated as absent and reported in
``record_error``: a pod edited by hand must not make its node unschedulable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import orjson

from policy.annotations import ACCOUNTING
from policy.quantity import ZERO, Quantity
from policy.record import AccountingRecord, parse_record
from policy.resources import RESOURCES, Resources, pod_requests, requests_nanos

Pod = Mapping[str, Any]
Mesh = Literal["meshfit", "istio", "linkerd"]

#: Phases after which a pod holds nothing on its node (the kubelet released it).
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

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


def zero_resources() -> Resources:
    return {name: ZERO for name in RESOURCES}


@dataclass(frozen=True, slots=True)
class PodAccounting:
    """A pod's figures; every resource map has all of :data:`RESOURCES`."""

    uid: str
    namespace: str
    name: str
    node: str | None
    phase: str
    requests: Resources
    exposure: Resources
    leak: Resources
    #: Who injected sidecars into it, ``None`` for a pod without a mesh.
    mesh: Mesh | None = None
    #: Why the ``meshfit.io/accounting`` annotation was ignored, if it was.
    record_error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def holds_node(self) -> bool:
        """Bound and not finished: the pod counts against its node."""
        return self.node is not None and self.phase not in TERMINAL_PHASES

    @property
    def has_exposure(self) -> bool:
        return any(v.nanos for v in self.exposure.values())

    @property
    def has_leak(self) -> bool:
        return any(v.nanos for v in self.leak.values())


@lru_cache(maxsize=16384)
def _cached_record(text: str) -> AccountingRecord | str:
    """Records repeat across a workload's replicas; parse each distinct text once.

    Returns the error message instead of raising so a bad record is cached too.
    """
    try:
        return parse_record(text)
    except ValueError as exc:
        return str(exc)


def read_record(pod: Pod) -> tuple[AccountingRecord | None, str | None]:
    """The pod's accounting record, or ``(None, reason)`` when it has a bad one."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(ACCOUNTING)
    if text is None:
        return None, None
    if not isinstance(text, str):
        return None, "accounting record is not a string"
    parsed = _cached_record(text)
    if isinstance(parsed, str):
        return None, parsed
    return parsed, None


def _full(values: Mapping[str, Quantity]) -> Resources:
    return {name: values.get(name, ZERO) for name in RESOURCES}


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


def pod_uid(pod: Pod) -> str:
    """The pod's uid; ``namespace/name`` for a manifest that has none yet (offline use)."""
    meta = pod.get("metadata") or {}
    uid = meta.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or meta.get('generateName') or ''}"


def account_pod(pod: Pod) -> PodAccounting:
    """The accounting of one pod dict as the API serves it (or as a manifest writes it)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    requests = pod_requests(pod)  # type: ignore[arg-type]
    record, record_error = read_record(pod)
    mesh: Mesh | None = None
    if record is not None:
        mesh = "meshfit"
        exposure = _full(record.node_exposure())
        leak = _full(record.leak)
    else:
        exposure = zero_resources()
        leak = zero_resources()
        foreign, containers = foreign_mesh(pod)
        if foreign is not None:
            mesh = foreign
            leak = foreign_leak(pod, containers, requests)
    name = str(meta.get("name") or meta.get("generateName") or "")
    namespace = str(meta.get("namespace") or "default")
    return PodAccounting(
        uid=pod_uid(pod),
        namespace=namespace,
        name=name,
        node=spec.get("nodeName") or None,
        phase=str(status.get("phase") or "Pending"),
        requests=requests,
        exposure=exposure,
        leak=leak,
        mesh=mesh,
        record_error=record_error,
    )


# -- the same figures in plain ints, for a fleet ------------------------------------
#
# The extender accounts every pod of a fleet on each (re)list: 250,000 pods, where
# the Quantity-based reference above costs about 20 µs a pod. The functions below
# (with policy.resources.requests_nanos) compute the very same figures in
# nano-unit ints at a fraction of that;
# tests/policy/test_pod_accounting.py checks on random pods that they agree with
# ``account_pod`` exactly. Pods of other meshes take the reference path (their leak
# needs the pod without the mesh's containers).


@lru_cache(maxsize=16384)
def _record_nanos(text: str) -> tuple[int, int, int, int] | str:
    """(exposure cpu, exposure memory, leak cpu, leak memory) of a record text, or why it is bad."""
    parsed = _cached_record(text)
    if isinstance(parsed, str):
        return parsed
    exposure = parsed.node_exposure()
    leak = parsed.leak
    return (
        exposure["cpu"].nanos if "cpu" in exposure else 0,
        exposure["memory"].nanos if "memory" in exposure else 0,
        leak["cpu"].nanos if "cpu" in leak else 0,
        leak["memory"].nanos if "memory" in leak else 0,
    )


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs a fifth of the whole
class PodFigures:
    """:class:`PodAccounting` in nano-unit ints, as the extender keeps it."""

    uid: str
    namespace: str
    node: str | None
    terminal: bool
    cpu: int
    memory: int
    exp_cpu: int
    exp_memory: int
    leak_cpu: int
    leak_memory: int
    mesh: Mesh | None
    record_error: str | None


def _maybe_foreign(pod: Pod, annotations: Mapping[str, Any]) -> bool:
    if ISTIO_STATUS in annotations or LINKERD_VERSION in annotations:
        return True
    spec = pod.get("spec") or {}
    for part in ("containers", "initContainers"):
        for c in spec.get(part) or ():
            if c.get("name") in FOREIGN_PROXIES:
                return True
    return False


def pod_figures(pod: Pod) -> PodFigures:
    """:func:`account_pod`'s figures in ints; raises ``ValueError`` on unreadable quantities."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    text = annotations.get(ACCOUNTING)
    record = _record_nanos(text) if isinstance(text, str) else None
    if record is None or isinstance(record, str):
        record_error = record if isinstance(record, str) else (
            "accounting record is not a string" if text is not None else None)
        if _maybe_foreign(pod, annotations):
            return _figures_of(account_pod(pod))
        record = (0, 0, 0, 0)
        mesh: Mesh | None = None
    else:
        record_error = None
        mesh = "meshfit"
    spec = pod.get("spec") or {}
    cpu, mem = requests_nanos(spec)
    phase = (pod.get("status") or {}).get("phase")
    return PodFigures(
        uid=pod_uid(pod),
        namespace=str(meta.get("namespace") or "default"),
        node=spec.get("nodeName") or None,
        terminal=phase in TERMINAL_PHASES,
        cpu=cpu,
        memory=mem,
        exp_cpu=record[0],
        exp_memory=record[1],
        leak_cpu=record[2],
        leak_memory=record[3],
        mesh=mesh,
        record_error=record_error,
    )


def _figures_of(acc: PodAccounting) -> PodFigures:
    return PodFigures(
        uid=acc.uid,
        namespace=acc.namespace,
        node=acc.node,
        terminal=acc.terminal,
        cpu=acc.requests["cpu"].nanos,
        memory=acc.requests["memory"].nanos,
        exp_cpu=acc.exposure["cpu"].nanos,
        exp_memory=acc.exposure["memory"].nanos,
        leak_cpu=acc.leak["cpu"].nanos,
        leak_memory=acc.leak["memory"].nanos,
        mesh=acc.mesh,
        record_error=acc.record_error,
    )


@dataclass(slots=True)
class NamespaceLeak:
    """What sidecars add on top of the apps' requests in one namespace (``meshfit leak``)."""

    namespace: str
    pods: int = 0
    #: Pods whose sidecars add requests on top, by who injected them.
    leaking: dict[str, int] = field(default_factory=dict)
    leak: Resources = field(default_factory=zero_resources)
    #: ``Σ R(pod)``: what the namespace's quota is charged, leak included.
    requests: Resources = field(default_factory=zero_resources)

    def add(self, pod: PodAccounting) -> None:
        self.pods += 1
        for name in RESOURCES:
            self.requests[name] = self.requests[name] + pod.requests[name]
        if pod.has_leak:
            mesh = pod.mesh or "unknown"
            self.leaking[mesh] = self.leaking.get(mesh, 0) + 1
            for name in RESOURCES:
                self.leak[name] = self.leak[name] + pod.leak[name]

    def merge(self, other: NamespaceLeak) -> None:
        self.pods += other.pods
        for mesh, count in other.leaking.items():
            self.leaking[mesh] = self.leaking.get(mesh, 0) + count
        for name in RESOURCES:
            self.leak[name] = self.leak[name] + other.leak[name]
            self.requests[name] = self.requests[name] + other.requests[name]


def leak_by_namespace(pods: Iterable[Pod]) -> tuple[list[NamespaceLeak], NamespaceLeak]:
    """Per-namespace leak over the pods quota still charges (not finished), sorted; and the total."""
    by_ns: dict[str, NamespaceLeak] = {}
    for pod in pods:
        acc = account_pod(pod)
        if acc.terminal:
            continue
        entry = by_ns.get(acc.namespace)
        if entry is None:
            entry = by_ns[acc.namespace] = NamespaceLeak(acc.namespace)
        entry.add(acc)
    rows = [by_ns[ns] for ns in sorted(by_ns)]
    total = NamespaceLeak("TOTAL")
    for row in rows:
        total.merge(row)
    return rows, total
