"""What one pod costs its node and its namespace's quota, from the pod dict alone.

The extender sums these figures per node and ``meshfit leak`` sums them per
namespace; both must agree, so both come from here: ``meshfit leak`` calls
:func:`account_pod`, and the extender's integer fast path is tested against it.
It is a pure function of the pod as the API serves it:

* ``requests`` is ``R(pod)`` (:func:`policy.resources.pod_requests`), what the
  scheduler charges the node and ResourceQuota charges the namespace;
* ``exposure`` is the node-level exposure recorded in ``meshfit.io/accounting``
  (the swap variant's ``Σ S_i``), zero for pods that carry no record: a pod
  meshfit did not inject put nothing beyond its limits on the node on
  meshfit's account;
* ``leak`` is what sidecars added on top of what the app asked for. For
  meshfit pods it is the recorded leak (additive mode, BestEffort pods given a
  sidecar request). For pods injected by other meshes (Istio, Linkerd) there
  is no record, so it is derived from the spec (:mod:`policy.foreign_mesh`).

A record that does not parse is treated as absent and reported in
``record_error``: a pod edited by hand must not make its node unschedulable.

This is the reference, in exact :class:`~policy.quantity.Quantity` values.
The extender keeps the same figures in plain ints (:mod:`policy.pod_entry`),
and ``meshfit leak`` sums them per namespace (:mod:`policy.namespace_leak`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from policy.annotations import ACCOUNTING
from policy.foreign_mesh import Mesh, foreign_leak, foreign_mesh
from policy.quantity import ZERO, Quantity
from policy.record import AccountingRecord, parse_record
from policy.resources import RESOURCES, Resources, pod_requests

Pod = Mapping[str, Any]

#: Phases after which a pod holds nothing on its node (the kubelet released it).
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def zero_resources() -> Resources:
    """A resource map of zeros, one per :data:`~policy.resources.RESOURCES`."""
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
        """Finished: the pod holds nothing on its node any more."""
        return self.phase in TERMINAL_PHASES

    @property
    def holds_node(self) -> bool:
        """Bound and not finished: the pod counts against its node."""
        return self.node is not None and self.phase not in TERMINAL_PHASES

    @property
    def has_exposure(self) -> bool:
        """Some node-level exposure is recorded."""
        return any(v.nanos for v in self.exposure.values())

    @property
    def has_leak(self) -> bool:
        """Sidecars add requests on top of what the app asked for."""
        return any(v.nanos for v in self.leak.values())


@lru_cache(maxsize=16384)
def cached_record(text: str) -> AccountingRecord | str:
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
    parsed = cached_record(text)
    if isinstance(parsed, str):
        return None, parsed
    return parsed, None


def _full(values: Mapping[str, Quantity]) -> Resources:
    return {name: values.get(name, ZERO) for name in RESOURCES}


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
