"""Keeping the cache (and the policy) current from the apiserver: list, then watch.

Three :class:`kube.watch.ListWatch` es, independent of each other:

* Nodes, for allocatable;
* Pods, all namespaces, with ``status.phase!=Succeeded,status.phase!=Failed``
  (what kube-scheduler itself watches: a pod that finishes leaves the
  selection and arrives as DELETED, so finished pods never fill the cache);
* optionally the policy ConfigMap, selected by ``metadata.name``
  (:func:`serving.policy_source.global_configmap_handlers`).

Pods are reduced to accounting entries the moment they are decoded, LIST
pages included (:func:`policy.pod_entry.reduce_pod` as the watch's
``transform``); nothing else of them is kept, but for a Pending, unbound pod
who it is (namespace, name, scheduler: :func:`extender.guard.pending_identity`),
which the bind checks need.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from extender.collector import Settler, settle
from extender.guard import PodIdentity, pending_identity
from extender.policy_source import LivePolicy
from extender.service import ExtenderService
from kube.client import ApiClient
from kube.watch import ListWatch
from policy.pod_entry import PodEntry, reduce_pod
from serving.policy_source import settling_configmap_handlers

POD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"

#: What the pod watch keeps of a pod: its entry, with its identity while it is Pending and unbound.
Watched = PodEntry | tuple[PodEntry, PodIdentity]


def reduce_watched(pod: dict[str, Any]) -> Watched:
    """The pod watch's transform: the accounting entry, and for a pod still to be scheduled who it is."""
    entry = reduce_pod(pod)
    if entry.node is not None or entry.terminal:
        return entry
    identity = pending_identity(pod)
    return entry if identity is None else (entry, identity)


class ClusterFeed:
    """The list+watches of Nodes, Pods and the policy ConfigMap that keep a service current."""

    def __init__(
        self,
        client: ApiClient,
        service: ExtenderService,
        *,
        policy_configmap: tuple[str, str] | None = None,
        page_size: int = 500,
        settle_gc: bool = True,
    ) -> None:
        self.service = service
        self.settle_gc = settle_gc
        self.settler = Settler()
        self.watches: dict[str, ListWatch] = {
            "nodes": ListWatch(
                client, "/api/v1/nodes",
                on_event=service.on_node_event, on_sync=service.on_node_sync,
                page_size=page_size, name="nodes",
            ),
            "pods": ListWatch(
                client, "/api/v1/pods",
                on_event=self._on_pod_event, on_sync=self._on_pod_sync, transform=reduce_watched,
                field_selector=POD_SELECTOR, page_size=page_size, name="pods",
            ),
        }
        if policy_configmap is not None:
            namespace, name = policy_configmap
            handlers = settling_configmap_handlers(service.policy, namespace, name)
            self.watches["policy"] = ListWatch(
                client, f"/api/v1/namespaces/{namespace}/configmaps",
                on_event=handlers.on_event, on_sync=handlers.on_sync,
                field_selector=f"metadata.name={name}", name="policy",
            )
        service.metrics.watches.update(self.watches)

    def _on_pod_event(self, event: str, pod: Watched) -> None:
        if isinstance(pod, tuple):
            self.service.on_pod_event(event, pod[0], pod[1])
        else:
            self.service.on_pod_event(event, pod)
        if self.settle_gc:
            self.settler.tick()

    async def _on_pod_sync(self, pods: list[Watched], resource_version: str) -> None:
        pending: dict[str, PodIdentity] = {}
        for i, pod in enumerate(pods):
            if isinstance(pod, tuple):
                pending[pod[0].uid] = pod[1]
                pods[i] = pod[0]
        entries: list[PodEntry] = pods  # type: ignore[assignment]  # every tuple unpacked above
        await self.service.on_pod_sync(entries, resource_version, pending)
        if self.settle_gc:
            # What is alive now is the cache (and the reduced LIST, freed by refcount when the watch drops it).
            settle()
            gc.enable()

    async def run(self, stop: asyncio.Event) -> None:
        """Run every watch until ``stop`` is set."""
        if self.settle_gc:
            # The initial LIST decodes millions of short-lived dicts; collecting while the cache
            # grows under them doubles the time to ready. Nothing in a LIST is cyclic garbage.
            gc.disable()
        try:
            await asyncio.gather(*(w.run(stop) for w in self.watches.values()))
        finally:
            if self.settle_gc:
                gc.enable()
