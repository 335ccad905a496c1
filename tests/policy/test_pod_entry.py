"""The extender's entry of one pod: moving it between nodes keeps everything else, and it shows itself whole."""

from __future__ import annotations

from policy.pod_entry import PodEntry

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
