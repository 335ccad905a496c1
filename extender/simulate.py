"""What the extender would say about pods that are not there yet: ``meshfit extender simulate``.

Each pending pod is judged against every node of a snapshot, as one
scheduling cycle would judge it, and then placed on its best node before the
next pod is judged, so a list of pods shows how a rollout fills the fleet
and where the exposure ceilings start to bite. The stock scheduler's own
fit check is applied to every pod (a real cycle would have run it before
the extender); meshfit's exposure ceilings apply to pods with exposure.
Ties in score go to the node whose name sorts first, so runs are repeatable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from extender.accounting import NodeState
from extender.cache import ClusterCache
from extender.scoring import Scorer, headroom_fractions, percent_text
from policy.pod_accounting import account_pod
from policy.pod_entry import PodEntry, reduce_pod
from policy.resources import format_resources


@dataclass(frozen=True)
class NodeVerdict:
    """One node's verdict and score for one simulated pod."""

    node: str
    passed: bool
    reason: str | None
    message: str
    score: int | None
    #: Figures after placing the pod there, as percentages of allocatable.
    requested: dict[str, str]
    exposure: dict[str, str]
    headroom: dict[str, str]


@dataclass
class PodOutcome:
    """One simulated pod: its figures, every node's verdict, and where it went."""

    namespace: str
    name: str
    mesh: str | None
    requests: dict[str, str]
    exposure: dict[str, str]
    judged_by_extender: bool
    chosen: str | None = None
    score: int | None = None
    verdicts: list[NodeVerdict] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """How many nodes failed the pod."""
        return sum(1 for v in self.verdicts if not v.passed)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as ``-o json`` prints it."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "mesh": self.mesh,
            "requests": self.requests,
            "exposure": self.exposure,
            "judgedByExtender": self.judged_by_extender,
            "node": self.chosen,
            "score": self.score,
            "nodes": [
                {
                    "node": v.node,
                    "passed": v.passed,
                    "reason": v.reason,
                    "message": v.message,
                    "score": v.score,
                    "after": {"requested": v.requested, "exposure": v.exposure, "headroom": v.headroom},
                }
                for v in self.verdicts
            ],
        }


def _after(state: NodeState, entry: PodEntry, scorer: Scorer) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    requested = {
        "cpu": percent_text(state.req_cpu + entry.cpu, state.alloc_cpu),
        "memory": percent_text(state.req_memory + entry.memory, state.alloc_memory),
    }
    exposure = {
        "cpu": percent_text(state.exp_cpu + entry.exp_cpu, state.alloc_cpu),
        "memory": percent_text(state.exp_memory + entry.exp_memory, state.alloc_memory),
    }
    headroom = {
        name: percent_text(h.numerator, h.denominator)
        for name, h in headroom_fractions(scorer, entry, state).items()
    }
    return requested, exposure, headroom


def simulate(
    cache: ClusterCache, scorer: Scorer, pods: Iterable[Mapping[str, Any]], *, observe_only: bool = False
) -> list[PodOutcome]:
    """Judge and place ``pods`` one after another; ``cache`` is modified (the placements stay)."""
    outcomes: list[PodOutcome] = []
    nodes = sorted((s for s in cache.accounting.nodes.values() if s.known), key=lambda s: s.name)
    for i, pod in enumerate(pods):
        acc = account_pod(pod)  # the figures people read, in quantities
        entry = reduce_pod(pod).unplaced()  # the same figures, as the scorer reads them
        judged = scorer.judged(entry, entry.mesh == "meshfit")
        outcome = PodOutcome(
            namespace=acc.namespace,
            name=acc.name,
            mesh=acc.mesh,
            requests=format_resources(acc.requests),
            exposure=format_resources(acc.exposure),
            judged_by_extender=judged,
        )
        best: tuple[int, str] | None = None
        for state in nodes:
            failure = scorer.check(entry, state)
            if failure is not None and failure.reason != "fit" and observe_only:
                failure = None
            score = scorer.score(entry, state) if failure is None else None
            requested, exposure, headroom = _after(state, entry, scorer)
            outcome.verdicts.append(
                NodeVerdict(
                    node=state.name,
                    passed=failure is None,
                    reason=failure.reason if failure else None,
                    message=failure.message if failure else "",
                    score=score,
                    requested=requested,
                    exposure=exposure,
                    headroom=headroom,
                )
            )
            if score is not None and (best is None or score > best[0]):
                best = (score, state.name)
        if best is not None:
            outcome.score, outcome.chosen = best
            cache.place(f"simulate/{i}/{acc.uid}", entry, best[1])
        outcomes.append(outcome)
    return outcomes
