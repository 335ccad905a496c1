"""How many pods each batch changes, which ones, and how many of one workload may be mid-change at once.

Batch sizes are **cumulative**, as Argo's ``setWeight`` and Kruise's
``replicas`` are: ``percent: 25`` means a quarter of the pods have changed by
the end of the batch, so a list reads as a schedule and its last entry,
``percent: 100``, is the whole selection. A percent is rounded **up** (1% of
50 pods is one pod, never none: a canary always exists).

The pick spreads each batch over apps, then zones, then nodes, round-robin,
so a canary of five pods is five apps' pods, not five replicas of one app on
one node: a regression that shows only in one app, one zone or on one kernel
is seen early, and a bad batch never takes a whole app, zone or node down at
once. Within a group pods are ordered by a hash of their UID, so the pick is
the same on every replica and after every leader change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from controller.rollout_pods import PodView

T = TypeVar("T")


def cumulative(count: int | None, percent: int | None, total: int) -> int:
    """How many of ``total`` pods have changed by the end of a batch of ``count`` or ``percent`` (rounded up)."""
    if count is not None:
        return min(count, total)
    assert percent is not None
    return min(total, (percent * total + 99) // 100)


def interleave(groups: Sequence[Sequence[T]]) -> list[T]:
    """Round-robin: the first of each group, then the second of each, ... (groups keep their order)."""
    out: list[T] = []
    depth = max((len(g) for g in groups), default=0)
    for i in range(depth):
        for group in groups:
            if i < len(group):
                out.append(group[i])
    return out


def _by_hash(items: Iterable[str]) -> list[str]:
    import hashlib

    return sorted(items, key=lambda s: (hashlib.blake2b(s.encode(), digest_size=8).digest(), s))


def spread(pods: Iterable[PodView]) -> list[PodView]:
    """Every pod, ordered so that any prefix is spread as evenly as it can be over apps, then zones, then nodes."""
    tree: dict[str, dict[str, dict[str, list[PodView]]]] = {}
    for pod in pods:
        tree.setdefault(pod.app, {}).setdefault(pod.zone, {}).setdefault(pod.node, []).append(pod)
    per_app = []
    for app in _by_hash(tree):
        zones = tree[app]
        per_zone = []
        for zone in _by_hash(zones):
            nodes = zones[zone]
            per_zone.append(interleave([sorted(nodes[n], key=lambda p: (p.order, p.key)) for n in _by_hash(nodes)]))
        per_app.append(interleave(per_zone))
    return interleave(per_app)


def pick(eligible: Iterable[PodView], size: int) -> list[PodView]:
    """The first ``size`` pods of :func:`spread`."""
    return spread(eligible)[:max(0, size)] if size > 0 else []


def writable(waiting: Sequence[PodView], in_flight: Mapping[str, int], workload_pods: Mapping[str, int],
             allowed: Callable[[int], int]) -> list[PodView]:
    """Of ``waiting`` (in batch order), those whose target may be written now.

    ``in_flight``: per workload, pods whose target is written and not yet
    settled; ``allowed(n)``: how many of a workload of ``n`` selected pods may
    be mid-change at once (``maxUnavailable``).
    """
    busy = dict(in_flight)
    out = []
    for pod in waiting:
        cap = allowed(workload_pods.get(pod.workload, 1))
        if busy.get(pod.workload, 0) < cap:
            busy[pod.workload] = busy.get(pod.workload, 0) + 1
            out.append(pod)
    return out
