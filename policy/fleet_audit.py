"""The pod inspections folded over one LIST: what ``meshfit check`` prints and the controller exports.

:mod:`policy.inspections` judges one pod or one node; this folds them over a
fleet read page by page (:mod:`serving.cluster_facts`), keeping counts of
everything and a capped list of findings, so 250,000 pods cost a few counters.
It also keeps the pods that escaped injection (capped), with their owners, for
the controller's audit to report and, where the policy says so, repair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy.annotations import ACCOUNTING
from policy.fleet import DesiredVersions, sidecar_states
from policy.inspections import (
    Finding,
    NodeExposure,
    accounting_findings,
    count_exposure,
    exposure_findings,
    missed_injection,
    runtime_unmounted,
    node_allocatable,
    version_findings,
)
from policy.model import NamespacePolicy, Policy
from policy.pod_entry import reduce_pod

POD_CHECKS = ("versions", "accounting", "exposure", "missed-injections", "runtime")


@dataclass(frozen=True, slots=True)
class MissedPod:
    """A pod admitted without the webhook: where it is, and the workload that could mesh it."""

    namespace: str
    name: str
    uid: str
    owner: Mapping[str, Any] | None


@dataclass
class Results:
    """Findings by check, listed up to a cap per (check, code), all counted."""

    checks: list[str]
    cap: int
    findings: list[Finding] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        key = (finding.check, finding.code)
        self.counts[key] += 1
        if self.counts[key] <= self.cap:
            self.findings.append(finding)

    def failures(self, check: str) -> int:
        return sum(n for (c, _), n in self.counts.items() if c == check)


def _missed_pod(namespace: str, meta: Mapping[str, Any]) -> MissedPod:
    owners = [o for o in meta.get("ownerReferences") or () if isinstance(o, Mapping) and o.get("controller") is True]
    return MissedPod(namespace, str(meta.get("name")), str(meta.get("uid") or ""), owners[0] if owners else None)


class FleetAudit:
    """The pod inspections of ``checks`` over the pods handed to :meth:`add`.

    Exposure counts every pod (a node's exposure is everyone's); the other
    checks judge only the pods of ``namespaces`` (all when empty).
    """

    def __init__(self, policy: Policy, checks: Iterable[str], *, cap: int = 100,
                 namespaces: Iterable[str] = (), missed_cap: int = 1000) -> None:
        self.policy = policy
        self.results = Results([c for c in checks], cap)
        self._checks = set(self.results.checks)
        self.namespaces = set(namespaces)
        self.missed_cap = missed_cap
        self.missed: list[MissedPod] = []
        #: Missed injections per namespace, all counted.
        self.missed_by_namespace: Counter[str] = Counter()
        #: Pods that mount no runtime parameters though their sidecars have some (listed to ``missed_cap``).
        self.unmounted: list[MissedPod] = []
        self.unmounted_by_namespace: Counter[str] = Counter()
        self._nodes: dict[str, NodeExposure] = {}
        self._selected_nodes: set[str] = set()
        self._desired: DesiredVersions | None = None
        self._namespace_labels: Mapping[str, Mapping[str, str]] = {}
        self._namespace_policies: Mapping[str, NamespacePolicy] = {}

    def start(self, *, namespace_policies: Mapping[str, NamespacePolicy],
              namespace_labels: Mapping[str, Mapping[str, str]], node_allocatable_: Mapping[str, Mapping[str, str]],
              now: datetime) -> None:
        """What the fold needs before the first pod: the namespaces and the nodes."""
        self._namespace_policies = namespace_policies
        self._namespace_labels = namespace_labels
        self._desired = DesiredVersions(self.policy, dict(namespace_policies), now)
        for name, alloc in node_allocatable_.items():
            cpu, memory = node_allocatable({"status": {"allocatable": dict(alloc)}})
            self._nodes[name] = NodeExposure(name, cpu, memory, known=True)

    @property
    def desired(self) -> DesiredVersions:
        assert self._desired is not None, "start() first"
        return self._desired

    def add(self, pod: Mapping[str, Any]) -> None:
        """Fold one pod in."""
        results, checks = self.results, self._checks
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        if "exposure" in checks:
            count_exposure(self._nodes, reduce_pod(dict(pod)))
        if self.namespaces and ns not in self.namespaces:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._selected_nodes.add(node)
        if "versions" in checks:
            states = sidecar_states(pod, self.desired)
            if states != []:
                results.checked["versions"] += 1
                for f in version_findings(pod, states):
                    results.add(f)
        if "accounting" in checks:
            # a pod is checked when it carries a record (without one there is nothing to recompute)
            if (meta.get("annotations") or {}).get(ACCOUNTING) is not None:
                results.checked["accounting"] += 1
            for f in accounting_findings(pod):
                results.add(f)
        if "missed-injections" in checks:
            results.checked["missed-injections"] += 1
            missed = missed_injection(pod, self._namespace_labels.get(ns), self.policy,
                                      self._namespace_policies.get(ns))
            if missed is not None:
                results.add(missed)
                self.missed_by_namespace[ns] += 1
                if len(self.missed) < self.missed_cap:
                    self.missed.append(_missed_pod(ns, meta))
        if "runtime" in checks and self.policy.runtime.parameters:
            results.checked["runtime"] += 1
            unmounted = runtime_unmounted(pod, self.policy)
            if unmounted is not None:
                results.add(unmounted)
                self.unmounted_by_namespace[ns] += 1
                if len(self.unmounted) < self.missed_cap:
                    self.unmounted.append(_missed_pod(ns, meta))

    def finish(self) -> Results:
        """The node checks, once every pod is in; the results."""
        if "exposure" in self._checks:
            nodes = [n for n in self._nodes.values() if not self.namespaces or n.name in self._selected_nodes]
            self.results.checked["exposure"] = sum(1 for n in nodes if n.known)
            for f in exposure_findings(nodes, self.policy):
                self.results.add(f)
        return self.results

    @property
    def node_exposure(self) -> list[NodeExposure]:
        return [n for n in self._nodes.values() if n.known]
