"""One pod as the extender keeps it: :class:`PodEntry`, made by :func:`reduce_pod` and nothing else.

The extender accounts every pod of a fleet on each (re)list, 250,000 pods,
where the :class:`~policy.quantity.Quantity`-based reference
(:func:`policy.pod_accounting.account_pod`) costs about 20 µs a pod. The
reduction here computes the very same figures in nano-unit ints (with
:func:`policy.resources.requests_nanos`) at a fraction of that, straight into
the ``__slots__`` object the cache stores, the scorer reads and the watch
hands over, so a pod has one shape from the moment it is decoded.
tests/policy/test_pod_accounting.py checks on random pods that the figures
agree with ``account_pod`` exactly. Pods of other meshes take the reference
path (their leak needs the pod without the mesh's containers).

A pod whose quantities cannot be read is not an exception here: it comes back
with :attr:`PodEntry.error` set and zero figures, so a watch's transform never
fails a LIST, and each caller decides once what an unreadable pod means (the
cache skips it, a scheduler request is a 400).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from policy.annotations import ACCOUNTING
from policy.foreign_mesh import Mesh, maybe_foreign
from policy.pod_accounting import TERMINAL_PHASES, PodAccounting, account_pod, cached_record, pod_uid
from policy.resources import requests_nanos

Pod = Mapping[str, Any]

_ints: dict[int, int] = {}


def _shared(value: int) -> int:
    """One int object per distinct value: a fleet repeats the same few hundred sizes."""
    if -5 <= value <= 256:
        return value
    got = _ints.get(value)
    if got is None:
        if len(_ints) > 200_000:  # a pathological fleet: stop sharing rather than grow
            return value
        _ints[value] = value
        return value
    return got


def _intern(text: str | None) -> str | None:
    return sys.intern(text) if text else None


class PodEntry:
    """What a pod holds on its node: requests, node-level exposure and leak in nano-units, and who it is.

    The figures are those of :class:`~policy.pod_accounting.PodAccounting`;
    ``error`` says why they could not be read (they are then zero).
    """

    __slots__ = (
        "node", "namespace", "cpu", "memory", "exp_cpu", "exp_memory", "leak_cpu", "leak_memory",
        "uid", "mesh", "terminal", "record_error", "error",
    )

    def __init__(
        self,
        node: str | None,
        namespace: str,
        cpu: int,
        memory: int,
        exp_cpu: int = 0,
        exp_memory: int = 0,
        leak_cpu: int = 0,
        leak_memory: int = 0,
        uid: str = "",
        mesh: Mesh | None = None,
        terminal: bool = False,
        record_error: str | None = None,
        error: str | None = None,
    ) -> None:
        self.node = node
        self.namespace = namespace
        self.cpu = cpu
        self.memory = memory
        self.exp_cpu = exp_cpu
        self.exp_memory = exp_memory
        self.leak_cpu = leak_cpu
        self.leak_memory = leak_memory
        self.uid = uid
        #: Who injected sidecars into the pod, ``None`` for a pod without a mesh.
        self.mesh = mesh
        #: Finished (``Succeeded``/``Failed``): the pod holds nothing on any node.
        self.terminal = terminal
        #: Why the ``meshfit.io/accounting`` annotation was ignored, if it was.
        self.record_error = record_error
        #: Why the pod could not be accounted at all; ``None`` when it could.
        self.error = error

    @property
    def settled(self) -> bool:
        """Bound, or finished: no bind of it is still to come."""
        return self.error is None and (self.terminal or self.node is not None)

    def placed(self, node: str) -> PodEntry:
        """The same pod counted on ``node`` (an assumed binding)."""
        return PodEntry(
            sys.intern(node), self.namespace, self.cpu, self.memory,
            self.exp_cpu, self.exp_memory, self.leak_cpu, self.leak_memory,
            self.uid, self.mesh, self.terminal, self.record_error, self.error,
        )

    def unplaced(self) -> PodEntry:
        """The same pod, holding no node (a binding undone, or a pod being scheduled)."""
        return PodEntry(
            None, self.namespace, self.cpu, self.memory,
            self.exp_cpu, self.exp_memory, self.leak_cpu, self.leak_memory,
            self.uid, self.mesh, self.terminal, self.record_error, self.error,
        )

    def __repr__(self) -> str:
        return (
            f"PodEntry(uid={self.uid!r}, node={self.node!r}, namespace={self.namespace!r}, cpu={self.cpu}, "
            f"memory={self.memory}, exposure=({self.exp_cpu}, {self.exp_memory}), "
            f"leak=({self.leak_cpu}, {self.leak_memory}), mesh={self.mesh!r}"
            + (f", error={self.error!r}" if self.error is not None else "")
            + ")"
        )


@lru_cache(maxsize=16384)
def _record_nanos(text: str) -> tuple[int, int, int, int] | str:
    """(exposure cpu, exposure memory, leak cpu, leak memory) of a record text, or why it is bad."""
    parsed = cached_record(text)
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


def _of_accounting(acc: PodAccounting) -> PodEntry:
    """The entry of a pod the reference accounted (the pods of other meshes)."""
    return PodEntry(
        _intern(acc.node),
        sys.intern(acc.namespace),
        _shared(acc.requests["cpu"].nanos),
        _shared(acc.requests["memory"].nanos),
        _shared(acc.exposure["cpu"].nanos),
        _shared(acc.exposure["memory"].nanos),
        _shared(acc.leak["cpu"].nanos),
        _shared(acc.leak["memory"].nanos),
        acc.uid,
        acc.mesh,
        acc.terminal,
        acc.record_error,
    )


def _reduce(pod: Pod) -> PodEntry:
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    text = annotations.get(ACCOUNTING)
    record = _record_nanos(text) if isinstance(text, str) else None
    mesh: Mesh | None
    if record is None or isinstance(record, str):
        record_error = record if isinstance(record, str) else (
            "accounting record is not a string" if text is not None else None)
        if maybe_foreign(pod, annotations):
            return _of_accounting(account_pod(pod))
        record = (0, 0, 0, 0)
        mesh = None
    else:
        record_error = None
        mesh = "meshfit"
    spec = pod.get("spec") or {}
    cpu, mem = requests_nanos(spec)
    phase = (pod.get("status") or {}).get("phase")
    return PodEntry(
        _intern(spec.get("nodeName") or None),
        sys.intern(str(meta.get("namespace") or "default")),
        _shared(cpu),
        _shared(mem),
        _shared(record[0]),
        _shared(record[1]),
        _shared(record[2]),
        _shared(record[3]),
        pod_uid(pod),
        mesh,
        phase in TERMINAL_PHASES,
        record_error,
    )


def reduce_pod(pod: Pod) -> PodEntry:
    """A pod dict, accounted in ints; an unreadable one comes back with ``error`` set instead of raising.

    The transform of the extender's pod list/watch, applied as each object
    arrives, and the first step of every scheduler verb.
    """
    try:
        return _reduce(pod)
    except Exception as exc:  # one bad object must never fail a LIST, nor another object's accounting
        if not isinstance(pod, Mapping):
            return PodEntry(None, "default", 0, 0, error=f"not an object: {type(pod).__name__}")
        meta = pod.get("metadata") or {}
        if not isinstance(meta, Mapping):  # nor can pod_uid read it
            return PodEntry(None, "default", 0, 0, error=str(exc))
        return PodEntry(None, str(meta.get("namespace") or "default"), 0, 0, uid=pod_uid(pod), error=str(exc))
