"""Filter verdicts and scores, exactly; the worked example of docs/scheduling.md."""

from __future__ import annotations

from fractions import Fraction

import pytest
from extender_shapes import app_pod, meshed, policy_with
from hypothesis import given
from hypothesis import strategies as st

from extender.accounting import NodeState
from extender.scoring import MAX_PRIORITY, Scorer
from policy.model import Scheduling
from policy.pod_accounting import account_pod
from policy.pod_entry import PodEntry, reduce_pod
from policy.quantity import Quantity

CORE = 10**9
MI = 2**20 * 10**9
GI = 2**30 * 10**9


def n(name: str, cpu: str, memory: str, req: tuple[str, str] = ("0", "0"), exp: tuple[str, str] = ("0", "0")) -> NodeState:
    s = NodeState(name)
    s.known = True
    s.alloc_cpu, s.alloc_memory = Quantity.parse(cpu).nanos, Quantity.parse(memory).nanos
    s.req_cpu, s.req_memory = Quantity.parse(req[0]).nanos, Quantity.parse(req[1]).nanos
    s.exp_cpu, s.exp_memory = Quantity.parse(exp[0]).nanos, Quantity.parse(exp[1]).nanos
    return s


def p(cpu: str, memory: str, exp: tuple[str, str] = ("0", "0")) -> PodEntry:
    return PodEntry(None, "shop", Quantity.parse(cpu).nanos, Quantity.parse(memory).nanos,
                    Quantity.parse(exp[0]).nanos, Quantity.parse(exp[1]).nanos)


DEFAULT = Scorer(Scheduling())  # ceilings cpu 25%, memory 10%; weights 1:1; exposure weight 1


# -- the worked example (docs/scheduling.md) ------------------------------------
POD = p("1", "4Gi", ("500m", "512Mi"))
NODE_1 = n("node-1", "8", "32Gi", req=("4", "16Gi"), exp=("1", "2Gi"))
NODE_2 = n("node-2", "16", "64Gi", req=("4", "16Gi"))
NODE_3 = n("node-3", "4", "8Gi", req=("1", "2Gi"), exp=("200m", "400Mi"))


def test_worked_example() -> None:
    assert DEFAULT.check(POD, NODE_1) is None
    assert DEFAULT.check(POD, NODE_2) is None
    failure = DEFAULT.check(POD, NODE_3)
    assert failure is not None and failure.unresolvable and failure.reason == "exposure"
    assert failure.message == (
        "memory exposure would reach 11.1% of allocatable (ceiling 10%): "
        "400Mi already exposed + 512Mi for this pod, of 8Gi allocatable"
    )
    # node-1: cpu (8 − 4 − 1 − 1.5)/8 = 0.1875, memory (32 − 16 − 4 − 2.5)/32 = 0.296875
    assert DEFAULT.score(POD, NODE_1) == 2  # floor(10 × 0.2421875)
    # node-2: cpu (16 − 4 − 1 − 0.5)/16 = 0.65625, memory (64 − 16 − 4 − 0.5)/64 = 0.6796875
    assert DEFAULT.score(POD, NODE_2) == 6  # floor(10 × 0.66796875)


def test_exposure_message_of_the_issue() -> None:
    node = n("a", "8", "10000Mi", exp=("0", "1000Mi"))
    failure = DEFAULT.check(p("100m", "100Mi", ("0", "310Mi")), node)
    assert failure is not None
    assert failure.message.startswith("memory exposure would reach 13.1% of allocatable (ceiling 10%)")


def test_cpu_exposure_is_checked_first_and_named() -> None:
    failure = DEFAULT.check(p("100m", "100Mi", ("2", "1Mi")), n("a", "4", "8Gi", exp=("500m", "0")))
    assert failure is not None
    assert failure.message == (
        "cpu exposure would reach 62.5% of allocatable (ceiling 25%): "
        "500m already exposed + 2 for this pod, of 4 allocatable"
    )


def test_reaching_the_ceiling_exactly_passes_one_nano_more_fails() -> None:
    node = n("a", "4", "10Gi", exp=("0", "0"))
    at = PodEntry(None, "shop", 0, 0, 0, GI)  # exactly 10% of 10Gi
    assert DEFAULT.check(at, node) is None
    over = PodEntry(None, "shop", 0, 0, 0, GI + 1)
    assert DEFAULT.check(over, node) is not None


def test_ceiling_in_thirds_is_exact() -> None:
    scorer = Scorer(policy_with(ceiling={"cpu": Fraction(1, 3)}).scheduling)
    node = n("a", "3", "8Gi")
    assert scorer.check(PodEntry(None, "s", 0, 0, CORE, 0), node) is None
    failure = scorer.check(PodEntry(None, "s", 0, 0, CORE + 1, 0), node)
    assert failure is not None and "(ceiling 33.3%)" in failure.message


def test_fit_is_rechecked_with_pod_level_requests() -> None:
    failure = DEFAULT.check(p("1", "1Gi"), n("a", "4", "8Gi", req=("3500m", "1Gi")))
    assert failure is not None and not failure.unresolvable and failure.reason == "fit"
    assert failure.message == (
        "pod does not fit: cpu requests 3500m of 4 allocatable already requested, this pod needs 1 (500m free)"
    )
    failure = DEFAULT.check(p("100m", "2Gi"), n("a", "4", "8Gi", req=("0", "8Gi")))
    assert failure is not None and failure.message.endswith("this pod needs 2Gi (nothing free)")
    assert DEFAULT.check(p("500m", "7Gi"), n("a", "4", "8Gi", req=("3500m", "1Gi"))) is None  # exactly full


def test_who_is_judged() -> None:
    assert DEFAULT.judged(p("1", "1Gi"), meshfit=True)
    assert DEFAULT.judged(p("1", "1Gi", ("0", "1Mi")), meshfit=False)
    assert not DEFAULT.judged(p("1", "1Gi"), meshfit=False)


def test_an_injected_pod_is_judged_by_its_record() -> None:
    pod = meshed(app_pod("web-1", "2", "4Gi"))
    acc = account_pod(pod)
    entry = reduce_pod(pod)
    assert DEFAULT.judged(entry, acc.mesh == "meshfit")
    assert (entry.exp_cpu, entry.exp_memory) == (acc.exposure["cpu"].nanos, acc.exposure["memory"].nanos)
    # 384Mi of exposure on a 3Gi node is 12.5%: over the 10% memory ceiling.
    failure = DEFAULT.check(entry, n("small", "8", "3Gi"))
    assert failure is not None and failure.message.startswith("memory exposure would reach")


def test_more_headroom_scores_higher_and_exposure_counts_against_it() -> None:
    pod = p("1", "1Gi")
    empty = n("empty", "8", "16Gi")
    busy = n("busy", "8", "16Gi", req=("4", "8Gi"))
    exposed = n("exposed", "8", "16Gi", req=("4", "8Gi"), exp=("2", "4Gi"))
    scores = [DEFAULT.score(pod, x) for x in (empty, busy, exposed)]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[2]
    assert scores == [9, 4, 1]
    # A pod without exposure gets the same kind of score as one with.
    assert DEFAULT.score(p("1", "1Gi", ("500m", "512Mi")), empty) <= scores[0]


def test_exposure_weight_and_resource_weights() -> None:
    node = n("a", "8", "16Gi", exp=("4", "0"))
    pod = p("0", "0")
    assert Scorer(policy_with(exposure_weight=Fraction(0)).scheduling).score(pod, node) == 10
    assert Scorer(policy_with(exposure_weight=Fraction(1, 2)).scheduling).score(pod, node) == 8  # cpu 0.75, mem 1
    assert Scorer(policy_with(exposure_weight=Fraction(2)).scheduling).score(pod, node) == 5  # cpu 0, mem 1
    assert Scorer(policy_with(weights={"cpu": 0, "memory": 1}).scheduling).score(pod, node) == 10
    assert Scorer(policy_with(weights={"cpu": 3, "memory": 1}).scheduling).score(pod, node) == 6  # (3×.5+1)/4


def test_a_node_without_memory_allocatable_has_no_memory_headroom() -> None:
    assert DEFAULT.score(p("0", "0"), n("odd", "8", "0")) == 5


resources = st.integers(0, 64 * CORE)


@given(st.tuples(resources, resources, resources, resources, resources, resources),
       st.integers(1, 100), st.integers(0, 100),
       st.fractions(min_value=0, max_value=10, max_denominator=16))
def test_scores_stay_within_0_and_max(values: tuple[int, ...], wc: int, wm: int, ew: Fraction) -> None:
    ac, am, rc, rm, ec, em = values
    scorer = Scorer(Scheduling(weights={"cpu": wc, "memory": wm}, exposure_weight=ew))
    node = NodeState("x")
    node.known = True
    node.alloc_cpu, node.alloc_memory = ac, am * 1000
    node.req_cpu, node.req_memory, node.exp_cpu, node.exp_memory = rc, rm, ec, em
    score = scorer.score(PodEntry(None, "s", rc // 3, rm // 5, ec // 7, em // 2), node)
    assert 0 <= score <= MAX_PRIORITY
    if ac and am:
        exact = Fraction(0)
        for w, a, used in ((wc, ac, rc + rc // 3 + ew * (ec + ec // 7)), (wm, am * 1000, rm + rm // 5 + ew * (em + em // 2))):
            exact += w * max(Fraction(0), Fraction(a) - used) / a
        assert score == int(MAX_PRIORITY * exact / (wc + wm))


@pytest.mark.parametrize("ceiling,text", [(Fraction(1, 10), "10%"), (Fraction(1, 8), "12.5%"), (Fraction(0), "0%")])
def test_ceiling_text(ceiling: Fraction, text: str) -> None:
    scorer = Scorer(Scheduling(exposure_ceiling={"cpu": ceiling, "memory": ceiling}))
    failure = scorer.check(p("0", "0", ("1m", "0")), n("a", "1", "1Gi", exp=("200m", "0")))
    assert failure is not None and f"(ceiling {text})" in failure.message


def test_many_failing_nodes_get_messages_that_aggregate() -> None:
    from extender.scoring import DETAILED_FAILURES

    pod = p("1", "1Gi", ("500m", "512Mi"))
    # Every node a little different, all over the memory ceiling; some also short of cpu.
    nodes = {f"n{i}": n(f"n{i}", "8", "16Gi", req=(f"{7500 + i}m", "1Gi"), exp=("0", f"{1600 + i}Mi"))
             for i in range(DETAILED_FAILURES + 10)}
    fit_only = {f"f{i}": n(f"f{i}", "8", "16Gi", req=(f"{7500 + i}m", "1Gi")) for i in range(5)}
    everything = {**nodes, **fit_only, "ok": n("ok", "8", "16Gi")}
    passed, failures, unknown = DEFAULT.filter(pod, everything, [*everything, "ghost"], judged=True)
    assert passed == ["ok", "ghost"] and unknown == 1
    messages = {f.message for _, f in failures}
    assert messages == {
        "memory exposure over the ceiling (10% of allocatable): this pod adds 512Mi",
        "pod does not fit: not enough cpu left for this pod's 1",
    }
    # A few failing nodes keep their own figures.
    few = dict(list(nodes.items())[:3])
    _, failures, _ = DEFAULT.filter(pod, few, list(few), judged=True)
    assert [f.message for _, f in failures] == [DEFAULT.check(pod, s).message for s in few.values()]  # type: ignore[union-attr]
    assert failures[0][1].message.startswith("memory exposure would reach 12.9% of allocatable (ceiling 10%)")


@pytest.mark.parametrize(("part", "whole", "text"), [
    (0, 0, "inf%"), (5, 0, "inf%"), (5, -1, "inf%"),  # a node with nothing allocatable
    (1, 1, "100.0%"), (0, 1, "0.0%"), (3, 2, "150.0%"),
    (1, 3, "33.3%"), (2, 3, "66.7%"),
    (1, 2000, "0.1%"), (1, 2001, "0.0%"),  # 0.05% rounds half up; a hair less rounds down
])
def test_percent_text(part: int, whole: int, text: str) -> None:
    from extender.scoring import percent_text

    assert percent_text(part, whole) == text


def test_headroom_down_to_one_nano_unit_allocatable() -> None:
    from extender.scoring import headroom_fractions

    tiny = NodeState("tiny")
    tiny.known = True
    tiny.alloc_cpu, tiny.alloc_memory = 1, 2
    assert headroom_fractions(DEFAULT, p("0", "0"), tiny) == {"cpu": Fraction(1), "memory": Fraction(1)}
    tiny.req_memory = 1
    assert headroom_fractions(DEFAULT, p("0", "0"), tiny) == {"cpu": Fraction(1), "memory": Fraction(1, 2)}
    nothing = NodeState("nothing")
    nothing.known = True
    assert headroom_fractions(DEFAULT, p("0", "0"), nothing) == {"cpu": Fraction(0), "memory": Fraction(0)}


@pytest.mark.parametrize(("alloc", "req", "exp", "weights", "score"), [
    ((1, 0), (0, 0), (0, 0), (1, 1), 5),  # one nanocore, all of it free: full cpu headroom, none in memory
    ((0, 1), (0, 0), (0, 0), (1, 1), 5),
    ((1, 1), (0, 0), (0, 0), (1, 1), 10),
    ((1, 0), (1, 0), (0, 0), (1, 1), 0),
    ((8 * CORE, 0), (2 * CORE, 0), (0, 0), (3, 1), 5),  # floor(10 × 3 × 6/8 / 4) = floor(5.625)
    ((0, 16 * GI), (0, 4 * GI), (0, 0), (1, 3), 5),  # floor(10 × 3 × 12/16 / 4)
    # exposure weight 1/2: cpu (8 − 2 − 4/2)/8 = 1/2, memory (16 − 4 − 8/2)/16 = 1/2
    ((8 * CORE, 0), (2 * CORE, 0), (4 * CORE, 0), (1, 1), 2),  # floor(10 × 1/2 / 2)
    ((0, 16 * GI), (0, 4 * GI), (0, 8 * GI), (1, 1), 2),
    ((0, 0), (0, 0), (0, 0), (1, 1), 0),
])
def test_a_node_with_nothing_allocatable_of_a_resource_has_no_headroom_in_it(
        alloc: tuple[int, int], req: tuple[int, int], exp: tuple[int, int], weights: tuple[int, int],
        score: int) -> None:
    scorer = Scorer(Scheduling(weights={"cpu": weights[0], "memory": weights[1]}, exposure_weight=Fraction(1, 2)))
    node = NodeState("x")
    node.known = True
    node.alloc_cpu, node.alloc_memory = alloc
    node.req_cpu, node.req_memory = req
    node.exp_cpu, node.exp_memory = exp
    got = scorer.score(PodEntry(None, "s", 0, 0), node)
    assert got == score and type(got) is int  # the scheduler decodes an int64


def test_the_exposure_weight_applies_to_the_pod_and_not_to_its_requests() -> None:
    scorer = Scorer(Scheduling(exposure_weight=Fraction(1, 2)))
    node = n("a", "8", "16Gi", exp=("2", "4Gi"))
    # cpu: (8 − 2 − ½ × (2 + 2))/8 = 1/2; memory: (16 − 4 − ½ × (4 + 4))/16 = 1/2
    assert scorer.score(p("2", "4Gi", ("2", "4Gi")), node) == 5
    # cpu: (8 − 2 − ½ × 2)/8 = 5/8; memory: (16 − 4 − ½ × 4)/16 = 5/8
    assert scorer.score(p("2", "4Gi"), node) == 6


def test_negative_figures_leave_no_headroom_and_the_score_in_range() -> None:
    """A Node may report a negative allocatable and a hand-made request a negative size: nothing is allocatable."""
    node = n("odd", "8", "-1Gi")
    assert DEFAULT.score(PodEntry(None, "s", 0, -2 * GI), node) == 5  # cpu: all free; memory: nothing allocatable
    assert DEFAULT.score(PodEntry(None, "s", -CORE, -2 * GI), n("odder", "-1", "-1Gi")) == 0


def test_the_ceiling_is_exact_on_a_node_too_big_for_floating_point() -> None:
    scorer = Scorer(Scheduling(exposure_ceiling={"cpu": Fraction(1, 3), "memory": Fraction(1, 10)}))
    node = NodeState("huge")
    node.known = True
    node.alloc_cpu, node.alloc_memory = 3 * 10**18 + 300, 16 * GI  # floor(alloc / 3) = 10**18 + 100
    assert scorer.check(PodEntry(None, "s", 0, 0, 10**18 + 100, 0), node) is None
    assert scorer.check(PodEntry(None, "s", 0, 0, 10**18 + 101, 0), node) is not None
    assert scorer.filter(PodEntry(None, "s", 0, 0, 10**18 + 101, 0), {"huge": node}, ["huge"], True)[0] == []


def test_a_scorer_names_its_own_policy_s_ceilings() -> None:
    from extender.scoring import DETAILED_FAILURES

    scorer = Scorer(Scheduling(exposure_ceiling={"cpu": Fraction(3, 10), "memory": Fraction(1, 5)}))
    pod = p("0", "0", ("1", "1Gi"))
    failure = scorer.check(pod, n("a", "4", "10Gi", exp=("1", "2Gi")))
    assert failure is not None and failure.message == (
        "cpu exposure would reach 50.0% of allocatable (ceiling 30%): 1 already exposed + 1 for this pod, "
        "of 4 allocatable; memory exposure would reach 30.0% of allocatable (ceiling 20%): 2Gi already exposed "
        "+ 1Gi for this pod, of 10Gi allocatable"
    )
    nodes = {f"n{i}": n(f"n{i}", "4", "10Gi", exp=("1", "2Gi")) for i in range(DETAILED_FAILURES + 1)}
    _, failures, _ = scorer.filter(pod, nodes, list(nodes), True)
    assert {f.message for _, f in failures} == {
        "cpu exposure over the ceiling (30% of allocatable): this pod adds 1; "
        "memory exposure over the ceiling (20% of allocatable): this pod adds 1Gi"
    }
