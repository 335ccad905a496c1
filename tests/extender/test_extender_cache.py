"""The cache's rules: pods count from binding to deletion or completion; assumed bindings; relists."""

from __future__ import annotations

from extender_shapes import app_pod, bound, meshed, node, uid

from extender.cache import ClusterCache
from policy.pod_accounting import account_pod
from policy.pod_entry import PodEntry, reduce_pod

GI = 2**30 * 10**9
CORE = 10**9


def cache_with(*nodes: dict) -> ClusterCache:
    cache = ClusterCache(assume_ttl=30)
    cache.sync_nodes(list(nodes))
    cache.sync_pods([])
    return cache


def test_a_pod_counts_from_binding_until_it_finishes_or_goes() -> None:
    cache = cache_with(node("a"))
    pod = app_pod("web-1", "1", "1Gi")
    cache.apply_pod("ADDED", pod)  # pending
    assert cache.nodes["a"].pods == 0
    cache.apply_pod("MODIFIED", bound(pod, "a"))
    assert (cache.nodes["a"].pods, cache.nodes["a"].req_cpu) == (1, CORE)
    cache.apply_pod("MODIFIED", bound(pod, "a", phase="Succeeded"))
    assert cache.nodes["a"].pods == 0
    assert uid(pod) not in cache.accounting.pods  # finished pods are not kept
    other = bound(app_pod("web-2"), "a")
    cache.apply_pod("ADDED", other)
    cache.apply_pod("DELETED", other)
    assert cache.nodes["a"].pods == 0


def test_nodes_come_and_go() -> None:
    cache = cache_with(node("a", "4", "8Gi"), node("b"))
    assert (cache.nodes["a"].alloc_cpu, cache.nodes["a"].alloc_memory) == (4 * CORE, 8 * GI)
    cache.apply_node("MODIFIED", node("a", "6", "8Gi"))
    assert cache.nodes["a"].alloc_cpu == 6 * CORE
    cache.apply_node("DELETED", node("b"))
    assert "b" not in cache.nodes
    cache.sync_nodes([node("c")])  # a relist: a vanished
    assert set(cache.nodes) == {"c"}


def test_exposure_comes_from_the_record() -> None:
    cache = cache_with(node("a"))
    pod = bound(meshed(app_pod("web-1", "2", "4Gi")), "a")
    acc = account_pod(pod)
    cache.apply_pod("ADDED", pod)
    assert cache.nodes["a"].exp_cpu == acc.exposure["cpu"].nanos > 0
    assert cache.nodes["a"].exp_memory == acc.exposure["memory"].nanos > 0


def test_a_bad_record_is_counted_and_ignored() -> None:
    cache = cache_with(node("a"))
    pod = bound(app_pod("web-1", annotations={"meshfit.io/accounting": "{broken"}), "a")
    cache.apply_pod("ADDED", pod)
    assert cache.stats.bad_records == 1
    assert cache.nodes["a"].pods == 1 and cache.nodes["a"].exp_cpu == 0


def test_assumed_binding_is_confirmed_by_the_watch() -> None:
    cache = cache_with(node("a"), node("b"))
    pod = app_pod("web-1", "1", "1Gi")
    cache.remember(uid(pod), reduce_pod(pod), True)
    assert cache.assume(uid(pod), "a", now=100.0)
    assert cache.nodes["a"].pods == 1
    # A watch event older than the binding (the pod still pending) does not undo it.
    cache.apply_pod("MODIFIED", pod)
    assert cache.nodes["a"].pods == 1 and uid(pod) in cache.assumed
    cache.apply_pod("MODIFIED", bound(pod, "a"))
    assert uid(pod) not in cache.assumed
    assert cache.nodes["a"].pods == 1 and cache.nodes["a"].req_cpu == CORE
    assert (cache.stats.confirmed, cache.stats.corrected) == (1, 0)
    assert cache.expire(now=1000.0) == 0  # nothing left to expire


def test_assumed_binding_is_corrected_by_the_watch() -> None:
    cache = cache_with(node("a"), node("b"))
    pod = app_pod("web-1")
    cache.apply_pod("ADDED", pod)  # the watch knows it pending: enough for bind to count it
    assert cache.assume(uid(pod), "a", now=0.0)
    cache.apply_pod("MODIFIED", bound(pod, "b"))
    assert (cache.nodes["a"].pods, cache.nodes["b"].pods) == (0, 1)
    assert cache.stats.corrected == 1


def test_assumed_binding_of_a_deleted_pod_goes() -> None:
    cache = cache_with(node("a"))
    pod = app_pod("web-1")
    cache.apply_pod("ADDED", pod)
    cache.assume(uid(pod), "a", now=0.0)
    cache.apply_pod("DELETED", pod)
    assert cache.nodes["a"].pods == 0 and not cache.assumed


def test_unconfirmed_assumption_expires_and_the_pod_is_pending_again() -> None:
    cache = cache_with(node("a"))
    pod = app_pod("web-1")
    cache.apply_pod("ADDED", pod)
    cache.assume(uid(pod), "a", now=10.0)
    assert cache.expire(now=39.9) == 0
    assert cache.expire(now=40.0) == 1
    assert cache.nodes["a"].pods == 0
    assert cache.accounting.get(uid(pod)) is not None  # still known, for its next bind
    assert cache.stats.expired == 1


def test_bind_of_an_unknown_pod_counts_nothing() -> None:
    cache = cache_with(node("a"))
    assert not cache.assume("nobody", "a", now=0.0)
    assert cache.nodes["a"].pods == 0


def test_forget_undoes_an_assumption() -> None:
    cache = cache_with(node("a"))
    pod = app_pod("web-1")
    cache.apply_pod("ADDED", pod)
    cache.assume(uid(pod), "a", now=0.0)
    cache.forget(uid(pod))
    assert cache.nodes["a"].pods == 0 and not cache.assumed


def test_relist_replaces_the_pods_but_keeps_newer_bindings() -> None:
    cache = cache_with(node("a"))
    old = bound(app_pod("old"), "a")
    kept = bound(app_pod("kept", "2"), "a")
    fresh = app_pod("fresh")
    cache.sync_pods([old, kept, fresh])
    cache.assume(uid(fresh), "a", now=0.0)
    assert cache.nodes["a"].pods == 3
    # After a 410 the relist no longer has `old` (deleted meanwhile) and was taken
    # before `fresh` was bound, and before it existed at all.
    cache.sync_pods([kept])
    assert uid(old) not in cache.accounting.pods
    assert cache.nodes["a"].pods == 2
    assert cache.nodes["a"].req_cpu == 3 * CORE


def test_recent_pods_are_bounded() -> None:
    from extender import cache as cache_module

    cache = cache_with(node("a"))
    entry = PodEntry(None, "shop", CORE, GI)
    for i in range(cache_module.RECENT_PODS + 10):
        cache.remember(f"u{i}", entry, True)
    assert len(cache.recent) == cache_module.RECENT_PODS
    assert "u0" not in cache.recent and f"u{cache_module.RECENT_PODS + 9}" in cache.recent


def test_reduced_pods_count_as_the_pods_they_came_from() -> None:
    """The feed's watch hands the cache ``reduce_pod(pod)``, never the pod itself."""
    plain, reduced = cache_with(node("a")), cache_with(node("a"))
    pod = meshed(app_pod("web-1", "2", "4Gi"))
    other = bound(app_pod("web-2", "1", "1Gi"), "a")
    for event, obj in (("ADDED", pod), ("MODIFIED", bound(pod, "a")), ("ADDED", other), ("DELETED", other)):
        plain.apply_pod(event, obj)
        reduced.apply(event, reduce_pod(obj))
        assert reduced.nodes["a"].to_dict() == plain.nodes["a"].to_dict()
        assert set(reduced.accounting.pods) == set(plain.accounting.pods)
    assert not reduce_pod(pod).settled, "pending: its bind is still to come"
    assert reduce_pod(bound(pod, "a")).settled
    assert reduce_pod(bound(pod, "a", phase="Succeeded")).settled, "finished: no bind will come"
    bad = app_pod("bad", "lots")
    assert not reduce_pod(bad).settled and reduce_pod(bad).uid == uid(bad), "unreadable, but still known by its uid"


def test_a_pod_no_cluster_can_hold_is_skipped_counted_and_logged_once(caplog) -> None:
    cache = cache_with(node("a"))
    poison = bound(app_pod("huge", "1e1000000", "1Gi"), "a")
    fine = bound(app_pod("web-1", "1", "1Gi"), "a")
    with caplog.at_level("WARNING", logger="extender.cache"):
        for _ in range(3):
            cache.apply_pod("ADDED", poison)
        cache.apply_pod("ADDED", fine)
    assert cache.stats.skipped == 3
    assert cache.nodes["a"].pods == 1 and cache.nodes["a"].req_cpu == 10**9, "the other pod is counted as ever"
    assert sum("beyond what Kubernetes can hold" in r.getMessage() for r in caplog.records) == 1
