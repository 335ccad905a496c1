"""Namespace labels for the request path, without an API call on it.

Whether a pod is injected depends on its namespace's opt-in label, but an
admission webhook that GETs the Namespace per request doubles its latency
and puts the apiserver in a loop with itself. So a list/watch keeps every
Namespace's labels in memory and the handler does a dict lookup.

A namespace the cache does not know yet (created a moment ago, the event
still in flight) counts as *not opted in* and is counted as a miss: the pod
is admitted unchanged rather than stalled or fetched. Readiness waits for the
first complete list, so a fresh replica never answers from an empty cache.

With no cluster at all (``--policy FILE`` and no kubeconfig) there is no
knowledge to cache: :class:`NoCluster` answers ``None`` for every namespace,
which the engine reads as opted in, exactly as ``meshfit inject`` does
without ``--namespace``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

EMPTY: Mapping[str, str] = {}


class NamespaceLabels(Protocol):
    """Where the request path reads namespace labels from."""

    @property
    def synced(self) -> bool:
        """Whether the labels are known (the initial list has arrived)."""
        ...

    def labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of namespace ``name``, ``None`` when unknown."""
        ...


class NoCluster:
    """No cluster: every namespace's labels are unknown (``None``), so opted in."""

    synced = True
    misses = 0
    size = 0

    def labels(self, name: str) -> Mapping[str, str] | None:
        """Always ``None``: without a cluster every namespace counts as opted in."""
        return None


class NamespaceCache:
    """Labels of every Namespace, fed by a list/watch."""

    def __init__(self) -> None:
        self._labels: dict[str, Mapping[str, str]] = {}
        self.synced = False
        #: Lookups of a namespace the cache did not hold (answered as not opted in).
        self.misses = 0
        self._reported: set[str] = set()

    @property
    def size(self) -> int:
        """Namespaces known."""
        return len(self._labels)

    def labels(self, name: str) -> Mapping[str, str] | None:
        """The labels of namespace ``name`` from the watch, ``None`` when unknown."""
        labels = self._labels.get(name)
        if labels is None:
            self.misses += 1
            if name not in self._reported and len(self._reported) < 1000:
                self._reported.add(name)
                log.warning("namespace %s not in the cache yet: treated as not opted in", name)
            return EMPTY
        return labels

    # -- list/watch callbacks --------------------------------------------
    def on_sync(self, items: Iterable[Mapping[str, Any]], resource_version: str = "") -> None:
        """A (re)list of every Namespace."""
        fresh: dict[str, Mapping[str, str]] = {}
        for item in items:
            name, labels = _entry(item)
            if name:
                fresh[name] = labels
        self._labels = fresh
        if not self.synced:
            log.info("namespace cache synced: %d namespaces", len(fresh))
        self.synced = True

    def on_event(self, kind: str, namespace: Mapping[str, Any]) -> None:
        """One watch event of a Namespace."""
        name, labels = _entry(namespace)
        if not name:
            return
        if kind in ("ADDED", "MODIFIED"):
            self._labels[name] = labels
        elif kind == "DELETED":
            self._labels.pop(name, None)


def _entry(namespace: Mapping[str, Any]) -> tuple[str, Mapping[str, str]]:
    meta = namespace.get("metadata") or {}
    labels = meta.get("labels") or {}
    # Keep only string pairs: the engine compares values, and a stray
    # non-string must not turn into a crash on the request path.
    clean = {str(k): v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, Mapping) else {}
    return str(meta.get("name") or ""), clean
