"""Scores against the formula of docs/scheduling.md written out with exact fractions.

    used_r     = Σ R_r(node) + R_r(pod) + w_e × (exposure_r(node) + exposure_r(pod))
    headroom_r = max(0, allocatable_r − used_r) / allocatable_r     (0 where allocatable_r is 0)
    score      = floor(10 × Σ_r w_r × headroom_r / Σ_r w_r)

over random nodes (zero allocatable included), pods, weights and exposure weights;
the scorer's integer fast path, its slow path and ``headroom_fractions`` all agree.
"""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from extender.accounting import NodeState
from extender.scoring import MAX_PRIORITY, NEUTRAL_SCORE, Scorer, headroom_fractions
from policy.model import Scheduling
from policy.pod_entry import PodEntry

AMOUNT = st.integers(min_value=0, max_value=64 * 10**9)


def _reference(scheduling: Scheduling, pod: PodEntry, n: NodeState) -> tuple[int, dict[str, Fraction]]:
    we = scheduling.exposure_weight
    heads = {}
    for r, alloc, req, exp, preq, pexp in (("cpu", n.alloc_cpu, n.req_cpu, n.exp_cpu, pod.cpu, pod.exp_cpu),
                                           ("memory", n.alloc_memory, n.req_memory, n.exp_memory, pod.memory,
                                            pod.exp_memory)):
        if alloc == 0:
            heads[r] = Fraction(0)
            continue
        used = req + preq + we * (exp + pexp)
        heads[r] = max(Fraction(0), alloc - used) / alloc
    w = scheduling.weights
    score = math.floor(MAX_PRIORITY * (w["cpu"] * heads["cpu"] + w["memory"] * heads["memory"]) / (w["cpu"] + w["memory"]))
    return score, heads


@st.composite
def cases(draw: st.DrawFn) -> tuple[Scheduling, PodEntry, NodeState]:
    weights = {"cpu": draw(st.integers(0, 5)), "memory": draw(st.integers(0, 5))}
    if not any(weights.values()):
        weights["cpu"] = 1
    scheduling = Scheduling(weights=weights, exposure_weight=Fraction(draw(st.integers(0, 6)), draw(st.integers(1, 4))))
    pod = PodEntry(None, "shop", draw(AMOUNT), draw(AMOUNT), draw(AMOUNT), draw(AMOUNT))
    n = NodeState("n")
    n.known = True
    n.alloc_cpu = draw(st.one_of(st.just(0), AMOUNT))
    n.alloc_memory = draw(st.one_of(st.just(0), AMOUNT))
    n.req_cpu, n.req_memory, n.exp_cpu, n.exp_memory = draw(AMOUNT), draw(AMOUNT), draw(AMOUNT), draw(AMOUNT)
    return scheduling, pod, n


@given(cases())
def test_scores_and_headroom_equal_the_formula(case: tuple[Scheduling, PodEntry, NodeState]) -> None:
    scheduling, pod, n = case
    scorer = Scorer(scheduling)
    expected, heads = _reference(scheduling, pod, n)
    scores, unknown = scorer.scores(pod, {"n": n}, ["n"])
    assert scores == [expected] and unknown == 0
    assert 0 <= expected <= MAX_PRIORITY
    assert headroom_fractions(scorer, pod, n) == heads


def test_unknown_nodes_score_neutral_and_are_counted() -> None:
    scorer = Scorer(Scheduling())
    n = NodeState("known")
    n.known, n.alloc_cpu, n.alloc_memory = True, 8 * 10**9, 8 * 2**30 * 10**9
    scores, unknown = scorer.scores(PodEntry(None, "shop", 10**9, 0), {"known": n}, ["ghost", "known", "ghost2"])
    assert scores[0] == scores[2] == NEUTRAL_SCORE and unknown == 2
    assert scores[1] == 9  # (7/8 + 1) / 2 × 10 = 9.375


def test_a_node_memo_is_dropped_when_the_policy_changes() -> None:
    n = NodeState("n")
    n.known, n.alloc_cpu, n.alloc_memory = True, 10 * 10**9, 10 * 10**9
    n.exp_cpu = 4 * 10**9
    pod = PodEntry(None, "shop", 0, 0)
    light, heavy = Scorer(Scheduling(exposure_weight=Fraction(0))), Scorer(Scheduling(exposure_weight=Fraction(1)))
    assert light.scores(pod, {"n": n}, ["n"])[0] == [10]
    assert heavy.scores(pod, {"n": n}, ["n"])[0] == [8], "the other scorer's memo is not reused"
    assert light.scores(pod, {"n": n}, ["n"])[0] == [10]
