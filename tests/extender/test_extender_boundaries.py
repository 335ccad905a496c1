"""Every comparison the extender makes on input, at the value, one below and one above.

The scheduler calls ``filter`` (not ``check``) and, past DETAILED_FAILURES failing
nodes, its summarising branch: both are tested at each edge. Expected verdicts
come from the numbers themselves — the ceiling is ``floor(allocatable × ceiling)``
written out here, not taken from the scorer.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from extender.accounting import NodeState
from extender.scoring import DETAILED_FAILURES, Scorer
from policy.model import Scheduling
from policy.pod_entry import PodEntry

GIB = 2**30 * 10**9  # nano-bytes
CORE = 10**9
SCORER = Scorer(Scheduling(exposure_ceiling={"cpu": Fraction(1, 4), "memory": Fraction(1, 10)}))


def node(name: str, *, alloc_cpu: int = 8 * CORE, alloc_mem: int = 10 * GIB, req_cpu: int = 0, req_mem: int = 0,
         exp_cpu: int = 0, exp_mem: int = 0) -> NodeState:
    s = NodeState(name)
    s.known = True
    s.alloc_cpu, s.alloc_memory = alloc_cpu, alloc_mem
    s.req_cpu, s.req_memory = req_cpu, req_mem
    s.exp_cpu, s.exp_memory = exp_cpu, exp_mem
    return s


def pod(cpu: int = 0, mem: int = 0, exp_cpu: int = 0, exp_mem: int = 0) -> PodEntry:
    return PodEntry(None, "shop", cpu, mem, exp_cpu, exp_mem)


CPU_CAP = 8 * CORE // 4           # 25% of 8 cores, in nano-cores
MEM_CAP = 10 * GIB // 10          # 10% of 10Gi

# (what is compared, node fields, pod fields at exactly the edge)
EDGES = [
    ("cpu exposure", dict(exp_cpu=CPU_CAP - CORE // 2), dict(exp_cpu=CORE // 2)),
    ("memory exposure", dict(exp_mem=MEM_CAP - GIB // 4), dict(exp_mem=GIB // 4)),
    ("cpu fit", dict(req_cpu=6 * CORE), dict(cpu=2 * CORE)),
    ("memory fit", dict(req_mem=9 * GIB), dict(mem=GIB)),
]


def _bump(fields: dict[str, int], by: int) -> dict[str, int]:
    return {k: v + by for k, v in fields.items()}


@pytest.mark.parametrize(("what", "node_fields", "pod_fields"), EDGES, ids=[e[0] for e in EDGES])
@pytest.mark.parametrize(("delta", "passes"), [(-1, True), (0, True), (1, False)], ids=["below", "at", "above"])
def test_filter_at_each_edge(what: str, node_fields: dict[str, int], pod_fields: dict[str, int], delta: int,
                             passes: bool) -> None:
    nodes = {"n": node("n", **node_fields)}
    passed, failures, unknown = SCORER.filter(pod(**_bump(pod_fields, delta)), nodes, ["n"], True)
    assert (passed == ["n"]) is passes, (what, delta, failures)
    assert unknown == 0
    failure = SCORER.check(pod(**_bump(pod_fields, delta)), nodes["n"])
    assert (failure is None) is passes, "check and filter agree"


@pytest.mark.parametrize(("what", "node_fields", "pod_fields"), EDGES, ids=[e[0] for e in EDGES])
def test_the_summarising_filter_keeps_the_same_edges(what: str, node_fields: dict[str, int],
                                                     pod_fields: dict[str, int]) -> None:
    """Past DETAILED_FAILURES failing nodes the messages aggregate; the verdicts must not move."""
    count = DETAILED_FAILURES + 5
    nodes = {f"over-{i}": node(f"over-{i}", **_bump(node_fields, 1)) for i in range(count)}
    nodes["at"] = node("at", **node_fields)
    nodes["below"] = node("below", **_bump(node_fields, -1))
    passed, failures, _ = SCORER.filter(pod(**pod_fields), nodes, sorted(nodes), True)
    assert sorted(passed) == ["at", "below"], what
    assert len(failures) == count


def test_an_unjudged_pod_passes_every_known_node_and_unknown_nodes_are_counted() -> None:
    full = node("full", req_cpu=8 * CORE, req_mem=10 * GIB, exp_cpu=CPU_CAP, exp_mem=MEM_CAP)
    passed, failures, unknown = SCORER.filter(pod(CORE, GIB, CORE, GIB), {"full": full}, ["full", "ghost"], False)
    assert passed == ["full", "ghost"] and failures == [] and unknown == 1


def test_a_zero_pod_resource_is_never_compared() -> None:
    """A pod with no exposure fits a node already past its ceiling (the comparison is skipped, not `>= 0`)."""
    past = node("past", exp_cpu=CPU_CAP + 1, exp_mem=MEM_CAP + 1)
    assert SCORER.filter(pod(cpu=CORE), {"past": past}, ["past"], True)[0] == ["past"]
    assert SCORER.filter(pod(cpu=CORE, exp_cpu=1), {"past": past}, ["past"], True)[0] == []


def test_detailed_messages_up_to_the_limit_then_summaries() -> None:
    """At DETAILED_FAILURES failing nodes each keeps its own figures; one more and they aggregate."""
    over = dict(exp_cpu=CPU_CAP)  # any exposure from the pod tips it over
    def failing(count: int) -> list:
        nodes = {f"n{i}": node(f"n{i}", **over) for i in range(count)}
        return SCORER.filter(pod(exp_cpu=1), nodes, sorted(nodes), True)[1]
    at = failing(DETAILED_FAILURES)
    assert all("already exposed" in f.message for _, f in at), "per-node figures"
    beyond = failing(DETAILED_FAILURES + 1)
    assert len({f.message for _, f in beyond}) == 1 and "already exposed" not in beyond[0][1].message


@pytest.mark.parametrize(("node_fields", "pod_fields", "words", "unresolvable"), [
    (dict(exp_cpu=CPU_CAP), dict(exp_cpu=1), ["cpu exposure over the ceiling (25% of allocatable)"], True),
    (dict(exp_mem=MEM_CAP), dict(exp_mem=1), ["memory exposure over the ceiling (10% of allocatable)"], True),
    (dict(exp_cpu=CPU_CAP, exp_mem=MEM_CAP), dict(exp_cpu=1, exp_mem=1),
     ["cpu exposure over the ceiling", "; memory exposure over the ceiling"], True),
    (dict(req_cpu=8 * CORE), dict(cpu=1), ["pod does not fit: not enough cpu left"], False),
    (dict(req_mem=10 * GIB), dict(mem=1), ["pod does not fit: not enough memory left"], False),
    (dict(req_cpu=8 * CORE, req_mem=10 * GIB), dict(cpu=1, mem=1),
     ["not enough cpu left", "; not enough memory left"], False),
])
def test_summary_messages_name_every_resource_that_failed(node_fields: dict[str, int], pod_fields: dict[str, int],
                                                          words: list[str], unresolvable: bool) -> None:
    nodes = {f"n{i}": node(f"n{i}", **node_fields) for i in range(DETAILED_FAILURES + 1)}
    _, failures, _ = SCORER.filter(pod(**pod_fields), nodes, sorted(nodes), True)
    message = failures[0][1].message
    for w in words:
        assert w in message, message
    assert failures[0][1].unresolvable is unresolvable
    assert failures[0][1].reason == ("exposure" if unresolvable else "fit")  # the label of the nodes-failed metric
    other = {"cpu exposure": "memory exposure", "memory exposure": "cpu exposure"}
    if len(words) == 1:  # a single failing resource names only that one
        for a, b in other.items():
            if a in words[0]:
                assert b not in message


def test_unknown_nodes_are_each_counted() -> None:
    nodes = {"known": node("known")}
    passed, _, unknown = SCORER.filter(pod(cpu=1), nodes, ["ghost-1", "known", "ghost-2", "ghost-3"], True)
    assert unknown == 3 and passed == ["ghost-1", "known", "ghost-2", "ghost-3"]


# A resource exactly at its edge while the other one fails: the message names only the one that fails.
# (node fields, pod fields, what the message starts with, a word it must not hold)
ONE_FAILS = [
    ("cpu exposure at the ceiling, memory exposure one byte over",
     dict(exp_cpu=CPU_CAP - CORE // 2, exp_mem=MEM_CAP - GIB // 4), dict(exp_cpu=CORE // 2, exp_mem=GIB // 4 + 10**9),
     "memory exposure would reach", "cpu"),
    ("memory exposure at the ceiling, cpu exposure one millicore over",
     dict(exp_cpu=CPU_CAP - CORE // 2, exp_mem=MEM_CAP - GIB // 4), dict(exp_cpu=CORE // 2 + CORE // 1000, exp_mem=GIB // 4),
     "cpu exposure would reach", "memory"),
    ("cpu exactly full, memory one byte short",
     dict(req_cpu=6 * CORE, req_mem=9 * GIB), dict(cpu=2 * CORE, mem=GIB + 10**9),
     "pod does not fit: memory requests", "cpu"),
    ("memory exactly full, cpu one millicore short",
     dict(req_cpu=6 * CORE, req_mem=9 * GIB), dict(cpu=2 * CORE + CORE // 1000, mem=GIB),
     "pod does not fit: cpu requests", "memory"),
    ("no cpu asked of a node whose cpu is overcommitted, memory short",
     dict(req_cpu=9 * CORE, req_mem=10 * GIB), dict(cpu=0, mem=GIB),
     "pod does not fit: memory requests", "cpu"),
    ("no memory asked of a node whose memory is overcommitted, cpu short",
     dict(req_cpu=8 * CORE, req_mem=11 * GIB), dict(cpu=CORE, mem=0),
     "pod does not fit: cpu requests", "memory"),
]


@pytest.mark.parametrize(("what", "node_fields", "pod_fields", "start", "absent"), ONE_FAILS,
                         ids=[c[0] for c in ONE_FAILS])
def test_a_resource_at_its_edge_is_not_named_when_the_other_fails(what: str, node_fields: dict[str, int],
                                                                  pod_fields: dict[str, int], start: str,
                                                                  absent: str) -> None:
    nodes = {"n": node("n", **node_fields)}
    failure = SCORER.check(pod(**pod_fields), nodes["n"])
    assert failure is not None and failure.message.startswith(start), failure
    assert absent not in failure.message, failure.message
    _, failures, _ = SCORER.filter(pod(**pod_fields), nodes, ["n"], True)
    assert failures == [("n", failure)]


def test_both_exposures_over_are_named_in_one_message() -> None:
    failure = SCORER.check(pod(exp_cpu=CORE // 2, exp_mem=GIB // 4), node("n", exp_cpu=CPU_CAP, exp_mem=MEM_CAP))
    assert failure is not None
    assert (failure.reason, failure.unresolvable) == ("exposure", True)
    assert failure.message == (
        "cpu exposure would reach 31.3% of allocatable (ceiling 25%): 2 already exposed + 500m for this pod, "
        "of 8 allocatable; "
        "memory exposure would reach 12.5% of allocatable (ceiling 10%): 1Gi already exposed + 256Mi for this pod, "
        "of 10Gi allocatable"
    )


def test_both_resources_short_are_named_in_one_message() -> None:
    failure = SCORER.check(pod(cpu=2 * CORE, mem=GIB), node("n", req_cpu=7 * CORE, req_mem=19 * GIB // 2))
    assert failure is not None
    assert failure.reason == "fit" and failure.unresolvable is False
    assert failure.message == (
        "pod does not fit: cpu requests 7 of 8 allocatable already requested, this pod needs 2 (1 free); "
        "memory requests 9728Mi of 10Gi allocatable already requested, this pod needs 1Gi (512Mi free)"
    )


@pytest.mark.parametrize(("req_cpu", "free_text"), [
    (8 * CORE - 2, "(2n free)"), (8 * CORE - 1, "(1n free)"), (8 * CORE, "(nothing free)"),
    (8 * CORE + 1, "(nothing free)"),
], ids=["two-nanocores", "one-nanocore", "none", "overcommitted"])
def test_what_is_left_free_is_shown_down_to_one_nanocore(req_cpu: int, free_text: str) -> None:
    failure = SCORER.check(pod(cpu=CORE), node("n", req_cpu=req_cpu))
    assert failure is not None and failure.message.endswith(f"this pod needs 1 {free_text}"), failure


def test_a_node_judged_by_another_policy_is_judged_again() -> None:
    """A node keeps what one scorer derived from it; a scorer of another policy must not read that."""
    loose = Scorer(Scheduling(exposure_ceiling={"cpu": Fraction(1, 2), "memory": Fraction(1, 2)}))
    full = node("full", exp_cpu=CPU_CAP)
    nodes = {"full": full}
    one_more = pod(exp_cpu=1)
    assert SCORER.filter(one_more, nodes, ["full"], True)[0] == []  # derived for SCORER's 25%
    assert loose.check(one_more, full) is None
    assert SCORER.check(one_more, full) is not None  # and back
    assert loose.filter(one_more, nodes, ["full"], True)[0] == ["full"]
    assert SCORER.filter(one_more, nodes, ["full"], True)[0] == []


def test_an_unjudged_pod_counts_every_unknown_node() -> None:
    gone = node("gone")
    gone.known = False
    nodes = {"known": node("known"), "gone": gone}
    passed, failures, unknown = SCORER.filter(pod(cpu=CORE), nodes, ["ghost-1", "known", "gone", "ghost-2"], False)
    assert unknown == 3 and failures == []
    assert passed == ["ghost-1", "known", "gone", "ghost-2"]
