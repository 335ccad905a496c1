"""A pod as a rollout sees it: where it runs, which version it has, where its operation stands, how it is.

A rollout never reads a pod's spec to decide anything: the version comes from
``meshfit.io/status``, the request from ``meshfit.io/target``, the answer from
``meshfit.io/operation`` (:func:`policy.targets.progress_of`), and its health
from the kubelet's container statuses. One small frozen view per pod, made
once per reconcile, so that batches of thousands of pods are judged without
walking their dicts again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy.annotations import OPERATION, STATUS, TARGET
from policy.sidecar_status import StatusError, parse_status
from policy.targets import Target, TargetError, parse_target, progress_of
from policy.versions import workload_of

APP_LABEL = "app.kubernetes.io/name"
CRASH_REASONS = ("CrashLoopBackOff",)


@dataclass(frozen=True, slots=True)
class PodView:
    key: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: Mapping[str, str]
    node: str
    zone: str
    #: ``namespace/app.kubernetes.io/name``, else the owning workload: what a batch spreads over.
    app: str
    #: ``namespace/Kind/name`` of the owning workload: what ``maxUnavailable`` counts against.
    workload: str
    #: The sidecar's version in ``meshfit.io/status`` (``None``: the pod has no such sidecar).
    version: str | None
    target: Target | None
    operation: str | None
    ready: bool
    #: Restarts of every container, summed.
    restarts: int
    #: A container's last termination was an OOM kill.
    oom_killed: bool
    crash_looping: bool
    deleting: bool

    @property
    def order(self) -> bytes:
        """A stable position among its peers: a hash of the UID, the same on every replica and every run."""
        return hashlib.blake2b(self.uid.encode() or self.key.encode(), digest_size=8).digest()

    def asks(self, sidecar: str) -> tuple[int, str | None]:
        """The target's generation and the version it asks for ``sidecar`` (``(0, None)`` without one)."""
        if self.target is None:
            return 0, None
        entry = self.target.sidecars.get(sidecar)
        return self.target.generation, entry.version if entry is not None else None

    def progress(self, sidecar: str, generation: int, version: str) -> tuple[str, str]:
        """``done``, ``failed``, ``blocked`` or ``pending`` for ``generation`` asking ``version``."""
        return progress_of(self.operation, self.version == version, sidecar, generation)


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def view_pod(pod: Mapping[str, Any], sidecar: str, node_zones: Mapping[str, str]) -> PodView | None:
    """The view of ``pod`` for a rollout of ``sidecar``; ``None`` when the pod does not carry that sidecar."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    try:
        record = parse_status(annotations[STATUS]) if STATUS in annotations else None
    except StatusError:
        record = None
    entry = record.sidecar(sidecar) if record is not None else None
    if entry is None:
        return None
    try:
        target = parse_target(annotations[TARGET]) if TARGET in annotations else None
    except TargetError:
        target = None
    namespace = str(meta.get("namespace") or "")
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    workload = workload_of(pod, namespace)
    app = f"{namespace}/{labels[APP_LABEL]}" if labels.get(APP_LABEL) else workload
    status = pod.get("status") or {}
    statuses = [s for k in ("initContainerStatuses", "containerStatuses") for s in status.get(k) or ()
                if isinstance(s, Mapping)]
    restarts = sum(s["restartCount"] for s in statuses
                   if isinstance(s.get("restartCount"), int) and not isinstance(s.get("restartCount"), bool))
    oom = any(((s.get("lastState") or {}).get("terminated") or {}).get("reason") == "OOMKilled" for s in statuses)
    crash = any(((s.get("state") or {}).get("waiting") or {}).get("reason") in CRASH_REASONS for s in statuses)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    node = str((pod.get("spec") or {}).get("nodeName") or "")
    return PodView(
        key=f"{namespace}/{meta.get('name', '')}", namespace=namespace, name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""), resource_version=str(meta.get("resourceVersion") or ""), labels=labels,
        node=node, zone=node_zones.get(node, ""), app=app, workload=workload, version=entry.version,
        target=target, operation=annotations.get(OPERATION), ready=ready, restarts=restarts, oom_killed=oom,
        crash_looping=crash, deleting=meta.get("deletionTimestamp") is not None,
    )
