"""Filter verdicts and scores: pure functions of a pod's figures, a node's sums and the policy.

Filter, for a pod meshfit injected (one with a record) or any pod with node-level exposure:

* **exposure**: for each resource the pod exposes, fail the node if
  ``exposure(node) + exposure(pod) > ceiling × allocatable``. Such a failure
  is *unresolvable*: evicting pods (preemption) cannot be shown to help,
  because the scheduler's preemption simulation knows nothing of exposure.
* **fit**: ``R(pod)`` against ``allocatable − Σ R``, with the pod-level
  requests the scheduler may not apply itself (an older or differently
  configured scheduler) and the pods this extender bound a moment ago that
  the scheduler's own cache already knows but its watch may not yet show.
  A fit failure is ordinary: preemption can free requests.

Any other pod (no meshfit record, no exposure) passes untouched: the extender
has nothing to add to the stock scheduler's judgement of it.

Score, for every pod alike, is the weighted mean headroom after placement,
scaled to ``0..MAX_PRIORITY`` and rounded down::

    used_r     = Σ R_r(node) + R_r(pod) + w_e × (exposure_r(node) + exposure_r(pod))
    headroom_r = max(0, allocatable_r − used_r) / allocatable_r
    score      = floor(MAX_PRIORITY × Σ_r w_r × headroom_r / Σ_r w_r)

computed exactly in integers (``w_e`` is a ``Fraction``; the two resources are
cross-multiplied instead of divided). A pod with no exposure still gets a
score that ranks nodes by their requests and their existing exposure, so it
is comparable with the scores of pods that have some. docs/scheduling.md has
a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from extender.accounting import (
    MEMO_CAP_CPU,
    MEMO_CAP_MEMORY,
    MEMO_FREE_CPU,
    MEMO_FREE_MEMORY,
    MEMO_ROOM_CPU,
    MEMO_ROOM_MEMORY,
    NodeMemo,
    NodeState,
)
from policy.model import Scheduling
from policy.pod_entry import PodEntry
from policy.quantity import Quantity, format_ratio

#: ``k8s.io/kube-scheduler/extender/v1.MaxExtenderPriority``.
MAX_PRIORITY = 10
#: What a node the extender cannot judge (not in its cache yet) gets: the middle.
NEUTRAL_SCORE = MAX_PRIORITY // 2

#: Failing nodes up to which each gets a message with its own figures (see :meth:`Scorer.filter`).
DETAILED_FAILURES = 50

#: Failure reasons, the label of the ``nodes failed`` metric.
REASON_EXPOSURE = "exposure"
REASON_FIT = "fit"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one node fails one pod, in words a person can act on."""

    reason: str
    message: str
    #: True when preemption cannot help (``FailedAndUnresolvableNodes``).
    unresolvable: bool


@lru_cache(maxsize=16384)
def _cpu(nanos: int) -> str:
    return Quantity(nanos).format()


@lru_cache(maxsize=16384)
def _memory(nanos: int) -> str:
    # Whole bytes print in binary SI (``1536Mi``), as kubectl shows memory.
    return Quantity(nanos, "BinarySI").format()


#: Cached: a fleet's allocatable and sums repeat, and a cycle can fail thousands of nodes.
_FORMAT = {"cpu": _cpu, "memory": _memory}


def percent_text(part: int, whole: int) -> str:
    """``part / whole`` with one decimal, rounded half up, in integers (cheap on a failing fleet)."""
    if whole <= 0:
        return "inf%"
    tenths = (part * 2000 + whole) // (2 * whole)
    return f"{tenths // 10}.{tenths % 10}%"


def _ceiling_percent(ceiling: Fraction) -> str:
    """The policy's ceiling as a person wrote it: ``10%``, ``12.5%``, else one decimal."""
    pct = ceiling * 100
    if pct.denominator == 1:
        return f"{pct.numerator}%"
    text = format_ratio(pct)
    if "/" not in text:
        return f"{text}%"
    return percent_text(ceiling.numerator, ceiling.denominator)


class Scorer:
    """The policy's scheduling section, turned into integers once per policy."""

    __slots__ = (
        "ceil_cpu_num", "ceil_cpu_den", "ceil_mem_num", "ceil_mem_den",
        "ceil_cpu_text", "ceil_mem_text", "w_cpu", "w_mem", "w_sum", "ew_num", "ew_den",
    )

    def __init__(self, scheduling: Scheduling) -> None:
        c, m = scheduling.exposure_ceiling["cpu"], scheduling.exposure_ceiling["memory"]
        self.ceil_cpu_num, self.ceil_cpu_den = c.numerator, c.denominator
        self.ceil_mem_num, self.ceil_mem_den = m.numerator, m.denominator
        self.ceil_cpu_text = _ceiling_percent(c)
        self.ceil_mem_text = _ceiling_percent(m)
        self.w_cpu = scheduling.weights["cpu"]
        self.w_mem = scheduling.weights["memory"]
        self.w_sum = self.w_cpu + self.w_mem
        ew = scheduling.exposure_weight
        self.ew_num, self.ew_den = ew.numerator, ew.denominator

    # -- filter --------------------------------------------------------------
    def judged(self, pod: PodEntry, meshfit: bool) -> bool:
        """Whether filter looks at this pod at all (see the module docstring)."""
        return meshfit or bool(pod.exp_cpu or pod.exp_memory)

    def memo(self, node: NodeState) -> NodeMemo:
        """The node's values that do not depend on the pod, cached on it until it changes.

        :data:`~extender.accounting.NodeMemo` ``(scorer, base_cpu, base_memory, a, b, den, cap_cpu,
        cap_memory, room_cpu, room_memory, free_cpu, free_memory)``: with
        ``u_r = R_r(pod)·q + p·exposure_r(pod)`` (``w_e = p/q``), the score is
        ``(a·max(0, base_cpu − u_cpu) + b·max(0, base_memory − u_memory)) // den``, and
        a pod's exposure fits under the ceiling while ``exposure(node) + exposure(pod) ≤ cap``
        (``floor(allocatable × ceiling)``: exposures are integers, so this is exact), i.e.
        while ``exposure(pod) ≤ room = cap − exposure(node)``; its requests fit while
        ``R(pod) ≤ free = allocatable − Σ R(node)``. Filter compares the pod's figures with
        the room and free of thousands of nodes a cycle: one subtraction saved per node and
        resource, and no attribute of the node read.
        """
        memo = node.memo
        if memo is not None and memo[0] is self:
            return memo
        q, p = self.ew_den, self.ew_num
        ac, am = node.alloc_cpu, node.alloc_memory
        if ac > 0 and am > 0:
            # Σ_r w_r n_r / (q a_r) = (w_cpu n_cpu a_mem + w_mem n_mem a_cpu) / (q a_cpu a_mem)
            a, b, den = MAX_PRIORITY * self.w_cpu * am, MAX_PRIORITY * self.w_mem * ac, self.w_sum * q * ac * am
        else:
            a = b = den = 0  # see _score_slow
        cap_cpu = ac * self.ceil_cpu_num // self.ceil_cpu_den
        cap_mem = am * self.ceil_mem_num // self.ceil_mem_den
        memo = node.memo = (
            self,
            (ac - node.req_cpu) * q - p * node.exp_cpu,
            (am - node.req_memory) * q - p * node.exp_memory,
            a, b, den,
            cap_cpu, cap_mem,
            cap_cpu - node.exp_cpu, cap_mem - node.exp_memory,
            ac - node.req_cpu, am - node.req_memory,
        )
        return memo

    def check(self, pod: PodEntry, node: NodeState) -> Failure | None:
        """Why ``node`` cannot take ``pod``, or ``None``. The node must be ``known``.

        Every resource over its ceiling is named, so one message says all a
        person must change; fit is reported only when the ceilings hold.
        """
        memo = self.memo(node)  # one node, for a message or a person: not the hot path of filter_groups
        if (
            (pod.exp_cpu and node.exp_cpu + pod.exp_cpu > memo[MEMO_CAP_CPU])
            or (pod.exp_memory and node.exp_memory + pod.exp_memory > memo[MEMO_CAP_MEMORY])
            or (pod.cpu and node.req_cpu + pod.cpu > node.alloc_cpu)
            or (pod.memory and node.req_memory + pod.memory > node.alloc_memory)
        ):
            return self._failure(pod, node, memo)
        return None

    def filter(
        self, pod: PodEntry, nodes: dict[str, NodeState], names: list[str], judged: bool
    ) -> tuple[list[str], list[tuple[str, Failure]], int]:
        """``(passed, failures, unknown)``: :meth:`filter_groups` with a ``(name, failure)`` per failing node.

        In the order of ``names``; for people and tests (``simulate``), not the hot path.
        """
        passed, groups, unknown = self.filter_groups(pod, nodes, names, judged)
        of: dict[str, Failure] = {}
        for failure, group in groups:
            of.update(dict.fromkeys(group, failure))
        return passed, [(name, of[name]) for name in names if name in of], unknown

    def filter_groups(
        self, pod: PodEntry, nodes: dict[str, NodeState], names: list[str], judged: bool
    ) -> tuple[list[str], list[tuple[Failure, list[str]]], int]:
        """``(passed, failures, unknown)`` for ``names``; :meth:`check` for thousands of nodes.

        ``failures`` groups the failing nodes by their message: ``(failure, names)``.
        Nodes not ``known`` pass (and are counted); an unjudged pod passes everywhere.
        When more than :data:`DETAILED_FAILURES` nodes fail, they get the messages of
        :meth:`_summary` instead of their own figures: kube-scheduler puts one line per
        *distinct* message into the pod's condition and event, so thousands of per-node
        figures would make a message of hundreds of kilobytes on the pod, while a few
        summary messages aggregate into "3839 memory exposure over the ceiling ...".

        One pass: each node's verdict is a 4-bit key (cpu, memory exposure over the
        ceiling; cpu, memory short) computed once, and failing nodes are grouped by it
        as they come, so a cycle that fails thousands of nodes (a pod too big for most
        of the fleet, the costliest filter there is) judges each node once and hands
        back a handful of groups instead of a pair per node.
        """
        get = nodes.get
        if not judged:
            unknown = 0
            for node in map(get, names):
                if node is None or not node.known:
                    unknown += 1
            return list(names), [], unknown
        passed: list[str] = []
        keep = passed.append
        detailed: list[tuple[str, NodeState, NodeMemo]] = []
        by_key: dict[int, list[str]] = {}
        unknown = 0
        memo_of = self.memo
        exp_cpu, exp_mem, cpu, mem = pod.exp_cpu, pod.exp_memory, pod.cpu, pod.memory
        # map(): the lookups in C, not a bytecode call each (5,000 a cycle).
        for name, node in zip(names, map(get, names)):
            if node is None or not node.known:
                unknown += 1
                keep(name)
                continue
            memo = node.memo
            if memo is None or memo[0] is not self:
                memo = memo_of(node)
            key = 0
            if exp_cpu and exp_cpu > memo[MEMO_ROOM_CPU]:
                key = 1
            if exp_mem and exp_mem > memo[MEMO_ROOM_MEMORY]:
                key |= 2
            if cpu and cpu > memo[MEMO_FREE_CPU]:
                key |= 4
            if mem and mem > memo[MEMO_FREE_MEMORY]:
                key |= 8
            if not key:
                keep(name)
                continue
            group = by_key.get(key)
            if group is None:
                group = by_key[key] = []
            group.append(name)
            if len(detailed) <= DETAILED_FAILURES:
                detailed.append((name, node, memo))
        if len(detailed) <= DETAILED_FAILURES:
            return passed, [(self._failure(pod, node, memo), [name]) for name, node, memo in detailed], unknown
        return passed, [(self._summary(pod, bool(k & 1), bool(k & 2), bool(k & 4), bool(k & 8)), group)
                        for k, group in by_key.items()], unknown

    def _summary(self, pod: PodEntry, over_cpu: bool, over_mem: bool, short_cpu: bool, short_mem: bool) -> Failure:
        """The same verdict as :meth:`_failure` without the node's own figures, so it aggregates."""
        if over_cpu or over_mem:
            parts = []
            if over_cpu:
                parts.append(f"cpu exposure over the ceiling ({self.ceil_cpu_text} of allocatable): "
                             f"this pod adds {_cpu(pod.exp_cpu)}")
            if over_mem:
                parts.append(f"memory exposure over the ceiling ({self.ceil_mem_text} of allocatable): "
                             f"this pod adds {_memory(pod.exp_memory)}")
            return Failure(REASON_EXPOSURE, "; ".join(parts), True)
        parts = []
        if short_cpu:
            parts.append(f"not enough cpu left for this pod's {_cpu(pod.cpu)}")
        if short_mem:
            parts.append(f"not enough memory left for this pod's {_memory(pod.memory)}")
        return Failure(REASON_FIT, "pod does not fit: " + "; ".join(parts), False)

    def _failure(self, pod: PodEntry, node: NodeState, memo: NodeMemo) -> Failure:
        failed: list[str] = []
        if pod.exp_cpu and node.exp_cpu + pod.exp_cpu > memo[MEMO_CAP_CPU]:
            failed.append(self._exposure_message("cpu", node.exp_cpu, pod.exp_cpu, node.alloc_cpu, self.ceil_cpu_text))
        if pod.exp_memory and node.exp_memory + pod.exp_memory > memo[MEMO_CAP_MEMORY]:
            failed.append(self._exposure_message(
                "memory", node.exp_memory, pod.exp_memory, node.alloc_memory, self.ceil_mem_text
            ))
        if failed:
            return Failure(REASON_EXPOSURE, "; ".join(failed), True)
        if pod.cpu and node.req_cpu + pod.cpu > node.alloc_cpu:
            failed.append(self._fit_message("cpu", node.req_cpu, pod.cpu, node.alloc_cpu))
        if pod.memory and node.req_memory + pod.memory > node.alloc_memory:
            failed.append(self._fit_message("memory", node.req_memory, pod.memory, node.alloc_memory))
        return Failure(REASON_FIT, "pod does not fit: " + "; ".join(failed), False)

    @staticmethod
    def _exposure_message(resource: str, exposed: int, adds: int, alloc: int, ceiling: str) -> str:
        fmt = _FORMAT[resource]
        return (
            f"{resource} exposure would reach {percent_text(exposed + adds, alloc)} of allocatable "
            f"(ceiling {ceiling}): {fmt(exposed)} already exposed + {fmt(adds)} for this pod, "
            f"of {fmt(alloc)} allocatable"
        )

    @staticmethod
    def _fit_message(resource: str, requested: int, needs: int, alloc: int) -> str:
        fmt = _FORMAT[resource]
        free = alloc - requested
        free_text = f"{fmt(free)} free" if free > 0 else "nothing free"
        return (
            f"{resource} requests {fmt(requested)} of {fmt(alloc)} allocatable already requested, "
            f"this pod needs {fmt(needs)} ({free_text})"
        )

    # -- score ---------------------------------------------------------------
    def score(self, pod: PodEntry, node: NodeState) -> int:
        """``0..MAX_PRIORITY``; the node must be ``known``."""
        return self.scores(pod, {node.name: node}, [node.name])[0][0]

    def scores(self, pod: PodEntry, nodes: dict[str, NodeState], names: list[str]) -> tuple[list[int], int]:
        """Scores of ``names`` in order (neutral for nodes not ``known``), and how many were unknown.

        One loop with everything pod-specific hoisted out of it: this is the
        hot path of prioritize, thousands of nodes per cycle.
        """
        q, p = self.ew_den, self.ew_num
        use_cpu = pod.cpu * q + p * pod.exp_cpu
        use_mem = pod.memory * q + p * pod.exp_memory
        memo_of = self.memo
        out: list[int] = []
        append = out.append
        unknown = 0
        for node in map(nodes.get, names):
            if node is None or not node.known:
                unknown += 1
                append(NEUTRAL_SCORE)
                continue
            memo = node.memo
            if memo is None or memo[0] is not self:
                memo = memo_of(node)
            _, base_cpu, base_mem, a, b, den, _, _, _, _, _, _ = memo
            nc = base_cpu - use_cpu
            nm = base_mem - use_mem
            if nc < 0:
                nc = 0
            if nm < 0:
                nm = 0
            if den:
                append((a * nc + b * nm) // den)
            else:
                append(self._score_slow(node, nc, nm))
        return out, unknown

    def _score_slow(self, node: NodeState, nc: int, nm: int) -> int:
        """The score of a node without the fast path's ``den``: one resource at most has something allocatable.

        A resource with nothing allocatable (zero, or a negative figure) has no
        headroom in it; the other keeps its own, ``w_r·n_r / (q·a_r)``.
        """
        q = self.ew_den
        if node.alloc_cpu > 0:
            return MAX_PRIORITY * self.w_cpu * nc // (self.w_sum * q * node.alloc_cpu)
        if node.alloc_memory > 0:
            return MAX_PRIORITY * self.w_mem * nm // (self.w_sum * q * node.alloc_memory)
        return 0


def headroom_fractions(scorer: Scorer, pod: PodEntry, node: NodeState) -> dict[str, Fraction]:
    """Per-resource headroom after placement, for people (``simulate``, docs); not the hot path."""
    q, p = scorer.ew_den, scorer.ew_num
    out: dict[str, Fraction] = {}
    for name, alloc, req, exp, preq, pexp in (
        ("cpu", node.alloc_cpu, node.req_cpu, node.exp_cpu, pod.cpu, pod.exp_cpu),
        ("memory", node.alloc_memory, node.req_memory, node.exp_memory, pod.memory, pod.exp_memory),
    ):
        if alloc <= 0:
            out[name] = Fraction(0)
            continue
        n = (alloc - req - preq) * q - p * (exp + pexp)
        out[name] = Fraction(max(0, n), q * alloc)
    return out
