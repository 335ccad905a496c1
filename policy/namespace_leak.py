"""What sidecars add on top of the apps' requests, per namespace: the figures of ``meshfit leak``.

A quota owner pays for ``Σ R(pod)`` over the namespace's unfinished pods; the
leak is the part of it no app asked for (additive mode, BestEffort pods given
a sidecar request, other meshes' sidecars). Each pod's share comes from
:func:`policy.pod_accounting.account_pod`, the same figures the extender sums
per node, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from policy.pod_accounting import Pod, PodAccounting, account_pod, zero_resources
from policy.resources import RESOURCES, Resources


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
        """Count one pod of this namespace."""
        self.pods += 1
        for name in RESOURCES:
            self.requests[name] = self.requests[name] + pod.requests[name]
        if pod.has_leak:
            mesh = pod.mesh or "unknown"
            self.leaking[mesh] = self.leaking.get(mesh, 0) + 1
            for name in RESOURCES:
                self.leak[name] = self.leak[name] + pod.leak[name]

    def merge(self, other: NamespaceLeak) -> None:
        """Add another namespace's figures (for the total)."""
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
