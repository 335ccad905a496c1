"""Per-node sums: incremental updates agree with a recount from scratch, whatever the event order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from extender.accounting import Accounting
from policy.pod_entry import PodEntry

GI = 2**30 * 10**9
CORE = 10**9


def entry(node: str | None, cpu: int = CORE, memory: int = GI, exp: tuple[int, int] = (0, 0),
          leak: tuple[int, int] = (0, 0), namespace: str = "shop") -> PodEntry:
    return PodEntry(node, namespace, cpu, memory, exp[0], exp[1], leak[0], leak[1])


def test_add_modify_delete() -> None:
    acc = Accounting()
    acc.set_node("a", 8 * CORE, 16 * GI)
    acc.put("p1", entry("a", exp=(CORE // 2, GI // 4)))
    acc.put("p2", entry("a", cpu=2 * CORE))
    a = acc.nodes["a"]
    assert (a.req_cpu, a.req_memory, a.exp_cpu, a.exp_memory, a.pods) == (3 * CORE, 2 * GI, CORE // 2, GI // 4, 2)
    # MODIFIED: the old entry goes, the new one comes.
    acc.put("p1", entry("a", cpu=CORE, exp=(0, 0)))
    assert (a.req_cpu, a.exp_cpu, a.exp_memory, a.pods) == (3 * CORE, 0, 0, 2)
    acc.put("p2", None)
    assert (a.req_cpu, a.pods) == (CORE, 1)
    assert acc.totals.placed == 1


def test_pending_pods_are_known_but_hold_no_node() -> None:
    acc = Accounting()
    acc.put("p", entry(None))
    assert acc.get("p") is not None
    assert acc.nodes == {}
    assert acc.totals.placed == 0


def test_pods_before_their_node_and_after_it() -> None:
    acc = Accounting()
    acc.put("p", entry("late"))
    assert not acc.nodes["late"].known
    acc.set_node("late", 4 * CORE, 8 * GI)
    assert acc.nodes["late"].known and acc.nodes["late"].req_cpu == CORE
    acc.drop_node("late")
    # Its pod still holds it until the pod goes too.
    assert not acc.nodes["late"].known and acc.nodes["late"].pods == 1
    acc.put("p", None)
    assert "late" not in acc.nodes


def test_leak_is_kept_per_namespace_and_cleared() -> None:
    acc = Accounting()
    acc.put("a", entry("n", leak=(100, 200), namespace="x"))
    acc.put("b", entry("n", leak=(1, 2), namespace="y"))
    acc.put("c", entry("n", leak=(10, 20), namespace="x"))
    assert acc.nodes["n"].leak == {"x": [110, 220], "y": [1, 2]}
    acc.put("a", None)
    acc.put("c", None)
    assert acc.nodes["n"].leak == {"y": [1, 2]}
    assert (acc.totals.leak_cpu, acc.totals.leak_memory) == (1, 2)


def test_to_dict_prints_canonical_quantities() -> None:
    acc = Accounting()
    acc.set_node("n", 8 * CORE, 16 * GI)
    acc.put("a", entry("n", cpu=1500 * CORE // 1000, memory=3 * GI // 2, exp=(CORE // 4, GI // 8)))
    d = acc.nodes["n"].to_dict()
    assert d["allocatable"] == {"cpu": "8", "memory": "16Gi"}
    assert d["requested"] == {"cpu": "1500m", "memory": "1536Mi"}
    assert d["exposure"] == {"cpu": "250m", "memory": "128Mi"}


events = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
        st.one_of(
            st.none(),
            st.builds(
                entry,
                st.sampled_from([None, "a", "b", "c"]),
                st.integers(0, 4 * CORE),
                st.integers(0, 8 * GI),
                st.tuples(st.integers(0, CORE), st.integers(0, GI)),
                st.tuples(st.integers(0, 3), st.integers(0, 3)),
                st.sampled_from(["x", "y"]),
            ),
        ),
    ),
    max_size=60,
)


@given(events)
def test_incremental_sums_equal_a_recount(sequence: list[tuple[str, PodEntry | None]]) -> None:
    acc = Accounting()
    for name in ("a", "b"):
        acc.set_node(name, 8 * CORE, 16 * GI)
    final: dict[str, PodEntry] = {}
    for uid, e in sequence:
        acc.put(uid, e)
        if e is None:
            final.pop(uid, None)
        else:
            final[uid] = e
    placed = [e for e in final.values() if e.node is not None]
    for name in ("a", "b", "c"):
        mine = [e for e in placed if e.node == name]
        state = acc.nodes.get(name)
        if not mine:
            assert state is None or (state.known and state.pods == 0 and state.req_cpu == 0 and not state.leak)
            continue
        assert state is not None
        assert state.pods == len(mine)
        assert state.req_cpu == sum(e.cpu for e in mine)
        assert state.req_memory == sum(e.memory for e in mine)
        assert state.exp_cpu == sum(e.exp_cpu for e in mine)
        assert state.exp_memory == sum(e.exp_memory for e in mine)
        leak: dict[str, list[int]] = {}
        for e in mine:
            if e.leak_cpu or e.leak_memory:
                sums = leak.setdefault(e.namespace, [0, 0])
                sums[0] += e.leak_cpu
                sums[1] += e.leak_memory
        assert (state.leak or {}) == {k: v for k, v in leak.items() if v != [0, 0]}
    assert acc.totals.placed == len(placed)
    assert acc.totals.exp_memory == sum(e.exp_memory for e in placed)
    assert acc.totals.leak_cpu == sum(e.leak_cpu for e in placed)


def test_to_dict_is_the_whole_node_with_its_leak_per_namespace() -> None:
    acc = Accounting()
    acc.set_node("n", 8 * CORE, 16 * GI)
    acc.put("a", entry("n", cpu=CORE, memory=GI, leak=(CORE // 10, GI // 16), namespace="shop"))
    acc.put("b", entry("n", cpu=CORE, memory=GI, leak=(CORE // 20, 0), namespace="ads"))
    assert acc.nodes["n"].to_dict() == {
        "name": "n", "known": True, "pods": 2,
        "allocatable": {"cpu": "8", "memory": "16Gi"},
        "requested": {"cpu": "2", "memory": "2Gi"},
        "exposure": {"cpu": "0", "memory": "0"},
        "leak": {"ads": {"cpu": "50m", "memory": "0"}, "shop": {"cpu": "100m", "memory": "64Mi"}},
    }


def test_a_dropped_node_keeps_its_pods_and_forgets_its_allocatable_and_what_was_derived() -> None:
    acc = Accounting()
    acc.set_node("n", 8 * CORE, 16 * GI)
    acc.put("a", entry("n"))
    acc.nodes["n"].memo = ("derived",)  # type: ignore[assignment]
    acc.drop_node("n")
    state = acc.nodes["n"]
    assert state.known is False and state.memo is None
    assert (state.alloc_cpu, state.alloc_memory) == (0, 0)
    assert state.to_dict()["allocatable"] == {"cpu": "0", "memory": "0"}


def test_every_change_of_a_node_forgets_what_was_derived_from_it() -> None:
    acc = Accounting()
    acc.set_node("n", 8 * CORE, 16 * GI)
    state = acc.nodes["n"]
    for change in (lambda: acc.put("a", entry("n")), lambda: acc.put("a", entry("n", cpu=2 * CORE)),
                   lambda: acc.put("a", None), lambda: acc.set_node("n", 4 * CORE, 8 * GI)):
        acc.put("keep", entry("n"))  # the node stays in the accounting
        state.memo = ("derived",)  # type: ignore[assignment]
        change()
        assert state.memo is None


def test_a_pod_without_leak_leaves_the_leak_of_other_namespaces_alone() -> None:
    acc = Accounting()
    acc.put("leaky", entry("n", leak=(100, 200), namespace="x"))
    acc.put("plain", entry("n", namespace="y"))
    acc.put("plain", None)
    assert acc.nodes["n"].leak == {"x": [100, 200]}
    acc.put("leaky", None)
    assert acc.nodes == {}


def test_totals_follow_each_pod_in_and_out() -> None:
    acc = Accounting()
    acc.put("a", entry("n", exp=(300, 3000), leak=(30, 300)))
    acc.put("b", entry("m", exp=(200, 2000), leak=(20, 200)))
    acc.put("pending", entry(None, exp=(7, 7), leak=(7, 7)))
    t = acc.totals
    assert (t.exp_cpu, t.exp_memory, t.leak_cpu, t.leak_memory, t.placed) == (500, 5000, 50, 500, 2)
    acc.put("a", None)
    assert (t.exp_cpu, t.exp_memory, t.leak_cpu, t.leak_memory, t.placed) == (200, 2000, 20, 200, 1)
    acc.put("b", entry(None, exp=(200, 2000), leak=(20, 200)))  # unbound again
    assert (t.exp_cpu, t.exp_memory, t.leak_cpu, t.leak_memory, t.placed) == (0, 0, 0, 0, 0)


def test_removing_a_pod_takes_off_each_of_its_figures() -> None:
    acc = Accounting()
    acc.set_node("n", 8 * CORE, 16 * GI)
    acc.put("a", entry("n", cpu=3, memory=30, exp=(300, 3000)))
    acc.put("b", entry("n", cpu=2, memory=20, exp=(200, 2000)))
    state = acc.nodes["n"]
    assert (state.req_cpu, state.req_memory, state.exp_cpu, state.exp_memory, state.pods) == (5, 50, 500, 5000, 2)
    acc.put("a", None)
    assert (state.req_cpu, state.req_memory, state.exp_cpu, state.exp_memory, state.pods) == (2, 20, 200, 2000, 1)


def test_a_namespace_leaking_one_resource_only_is_kept_until_both_are_zero() -> None:
    acc = Accounting()
    acc.set_node("n", 8 * CORE, 16 * GI)
    acc.put("cpu-only", entry("n", leak=(100, 0), namespace="x"))
    acc.put("both", entry("n", leak=(50, 200), namespace="x"))
    acc.put("memory-only", entry("n", leak=(0, 7), namespace="y"))
    acc.put("memory-too", entry("n", leak=(9, 8), namespace="y"))
    assert acc.nodes["n"].leak == {"x": [150, 200], "y": [9, 15]}
    acc.put("both", None)
    acc.put("memory-too", None)
    assert acc.nodes["n"].leak == {"x": [100, 0], "y": [0, 7]}
    acc.put("cpu-only", None)
    acc.put("memory-only", None)
    assert acc.nodes["n"].leak == {}


def test_a_node_only_its_pods_name_is_unknown_with_nothing_allocatable() -> None:
    acc = Accounting()
    acc.put("a", entry("early", cpu=CORE, memory=GI))
    assert acc.nodes["early"].to_dict() == {
        "name": "early", "known": False, "pods": 1,
        "allocatable": {"cpu": "0", "memory": "0"},
        "requested": {"cpu": "1", "memory": "1Gi"},
        "exposure": {"cpu": "0", "memory": "0"},
        "leak": {},
    }
    assert list(acc.known_nodes()) == []
