"""The extender's entry of one pod: moving it between nodes keeps everything else, and it shows itself whole."""

from __future__ import annotations

import pytest

from policy import pod_entry
from policy.annotations import ACCOUNTING
from policy.pod_entry import PodEntry, reduce_pod

SLOTS = ("node", "namespace", "cpu", "memory", "exp_cpu", "exp_memory", "leak_cpu", "leak_memory",
         "uid", "mesh", "terminal", "record_error", "error")


def _fields(e: PodEntry) -> tuple[object, ...]:
    return tuple(getattr(e, name) for name in SLOTS)


# Every field set, and each to a value no other field has, so a field lost or moved shows.
FULL = PodEntry("node-a", "shop", 11, 12, 13, 14, 15, 16, "uid-1", "istio", True, "record is not JSON", "bad cpu")
FULL_FIELDS = ("node-a", "shop", 11, 12, 13, 14, 15, 16, "uid-1", "istio", True, "record is not JSON", "bad cpu")


def test_the_entry_holds_what_it_was_given() -> None:
    assert _fields(FULL) == FULL_FIELDS
    assert _fields(PodEntry(None, "default", 1, 2)) == (
        None, "default", 1, 2, 0, 0, 0, 0, "", None, False, None, None)


def test_placed_moves_the_pod_and_keeps_everything_else() -> None:
    moved = FULL.placed("node-b")
    assert _fields(moved) == ("node-b", *FULL_FIELDS[1:])
    assert _fields(FULL) == FULL_FIELDS  # a new entry; the old one is unchanged


def test_unplaced_holds_no_node_and_keeps_everything_else() -> None:
    assert _fields(FULL.unplaced()) == (None, *FULL_FIELDS[1:])
    assert _fields(FULL) == FULL_FIELDS


def test_settled() -> None:
    assert PodEntry("n", "s", 0, 0).settled
    assert PodEntry(None, "s", 0, 0, terminal=True).settled
    assert not PodEntry(None, "s", 0, 0).settled
    assert not PodEntry("n", "s", 0, 0, error="bad").settled


def test_repr_names_every_figure_and_the_error_only_when_there_is_one() -> None:
    assert repr(FULL) == (
        "PodEntry(uid='uid-1', node='node-a', namespace='shop', cpu=11, memory=12, exposure=(13, 14), "
        "leak=(15, 16), mesh='istio', error='bad cpu')"
    )
    assert repr(PodEntry(None, "default", 1, 2)) == (
        "PodEntry(uid='', node=None, namespace='default', cpu=1, memory=2, exposure=(0, 0), "
        "leak=(0, 0), mesh=None)"
    )


def _bad_cpu(**meta: object) -> dict[str, object]:
    return {"metadata": meta, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "lots"}}}]}}


@pytest.mark.parametrize(("pod", "namespace", "uid", "error"), [
    ([], "default", "", "not an object: list"),
    ("pod", "default", "", "not an object: str"),
    (None, "default", "", "not an object: NoneType"),
    (_bad_cpu(namespace="shop", name="web", uid="u-1"), "shop", "u-1", "lots"),
    (_bad_cpu(name="web"), "default", "default/web", "lots"),
    ({"metadata": "web", "spec": {}}, "default", "", "str"),  # a LIST must not fail on it either
    ({"metadata": ["web"], "spec": {}}, "default", "", "list"),
])
def test_an_unreadable_pod_comes_back_with_its_error_and_no_figures(pod: object, namespace: str, uid: str,
                                                                      error: str) -> None:
    e = reduce_pod(pod)  # type: ignore[arg-type]
    assert e.error is not None and error in e.error, e.error
    assert _fields(e)[:-1] == (None, namespace, 0, 0, 0, 0, 0, 0, uid, None, False, None)
    assert not e.settled


def test_a_pod_without_namespace_is_in_default() -> None:
    e = reduce_pod({"metadata": {"name": "web", "uid": "u-1"}, "spec": {}})
    assert (e.namespace, e.uid, e.error) == ("default", "u-1", None)


def test_an_accounting_record_that_is_not_a_string_is_ignored_and_said_so() -> None:
    e = reduce_pod({"metadata": {"name": "web", "annotations": {ACCOUNTING: 5}}, "spec": {}})
    assert (e.record_error, e.mesh, e.error) == ("accounting record is not a string", None, None)
    plain = reduce_pod({"metadata": {"name": "web", "annotations": {"a": "b"}}, "spec": {}})
    assert plain.record_error is None


@pytest.fixture
def fresh_ints(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """The module's table of shared ints, empty: what earlier tests reduced must not be found in it."""
    table: dict[int, int] = {}
    monkeypatch.setattr(pod_entry, "_ints", table)
    return table


@pytest.mark.parametrize(("value", "kept"), [
    (-6, True), (-5, False), (0, False), (4, False), (5, False), (256, False), (257, True), (10**9, True),
])
def test_ints_python_already_shares_take_no_entry(fresh_ints: dict[int, int], value: int, kept: bool) -> None:
    assert pod_entry._shared(value) == value
    assert (value in fresh_ints) is kept


def test_equal_figures_are_one_object(fresh_ints: dict[int, int]) -> None:
    first, second = int("1000000007"), int("1000000007")
    assert first is not second
    assert pod_entry._shared(first) is first
    assert pod_entry._shared(second) is first
    assert pod_entry._shared(int("1000000007")) is first
    assert fresh_ints == {10**9 + 7: 10**9 + 7}


def test_sharing_stops_past_200000_distinct_figures(fresh_ints: dict[int, int]) -> None:
    fresh_ints.update((v, v) for v in range(1000, 201_000))  # 200,000 figures
    pod_entry._shared(10**12)
    assert len(fresh_ints) == 200_001 and 10**12 in fresh_ints
    late = int("1000000000001")
    assert pod_entry._shared(late) is late and late not in fresh_ints
    assert len(fresh_ints) == 200_001
