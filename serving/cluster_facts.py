"""What a fleet-wide reader takes from a cluster: a handful of LISTs, pods a page at a time.

``meshfit fleet``, ``meshfit check`` and the fleet controller's inspections read
the same things: no per-pod requests, one paginated LIST of the pods (folded
page by page by the caller, so a 250,000-pod fleet is never held whole), one
LIST of the nodes (their zone labels and allocatable), one of the namespaces
(their opt-in labels) and one of the namespace policies (ConfigMaps named
``meshfit-policy``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kube.client import ApiClient
from kube.pages import list_pages
from policy.fields import PolicyError
from policy.load import namespace_policy_from_configmap
from policy.model import NAMESPACE_POLICY_CONFIGMAP, NamespacePolicy, Policy


@dataclass
class ClusterFacts:
    """Everything but the pods: read before the pod LIST starts."""

    policy: Policy
    namespace_policies: dict[str, NamespacePolicy] = field(default_factory=dict)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Node name -> zone (the policy's ``versions.zoneLabel``), for nodes that have one.
    node_zones: dict[str, str] = field(default_factory=dict)
    #: Node name -> its ``status.allocatable`` cpu and memory (strings, as the Node has them).
    node_allocatable: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pods_listed: int = 0
    requests: int = 0


async def read_cluster(client: ApiClient, policy: Policy, on_pod: Callable[[dict[str, Any]], None], *,
                       namespaces: Sequence[str] | None = None, page_size: int = 500,
                       before_pods: Callable[[ClusterFacts], None] | None = None) -> ClusterFacts:
    """The facts under ``policy``, then every pod (of ``namespaces``, or all) through ``on_pod``, a page at a time."""
    facts = ClusterFacts(policy)
    async for page in list_pages(client, "/api/v1/configmaps",
                                 {"fieldSelector": f"metadata.name={NAMESPACE_POLICY_CONFIGMAP}"}, limit=page_size):
        facts.requests += 1
        for cm in page:
            meta = cm.get("metadata") or {}
            try:
                facts.namespace_policies[str(meta.get("namespace"))] = namespace_policy_from_configmap(cm, facts.policy)
            except PolicyError as exc:
                facts.notes.append(f"namespace policy {meta.get('namespace')}/{meta.get('name')} ignored: {exc.one_line()}")
    async for page in list_pages(client, "/api/v1/namespaces", limit=page_size):
        facts.requests += 1
        for ns in page:
            meta = ns.get("metadata") or {}
            facts.namespace_labels[str(meta.get("name"))] = dict(meta.get("labels") or {})
    zone_label = facts.policy.versions.zone_label
    async for page in list_pages(client, "/api/v1/nodes", limit=page_size):
        facts.requests += 1
        for node in page:  # only what is read later: a fleet's Node objects are megabytes the fold would drag along
            meta = node.get("metadata") or {}
            name = str(meta.get("name"))
            zone = (meta.get("labels") or {}).get(zone_label)
            if zone:
                facts.node_zones[name] = str(zone)
            alloc = (node.get("status") or {}).get("allocatable") or {}
            facts.node_allocatable[name] = {r: str(alloc[r]) for r in ("cpu", "memory") if r in alloc}
    if before_pods is not None:
        before_pods(facts)
    for path in _pod_paths(namespaces):
        async for page in list_pages(client, path, limit=page_size,
                                     on_restart=lambda: facts.notes.append("the pod LIST expired and restarted")):
            facts.requests += 1
            facts.pods_listed += len(page)
            for pod in page:
                on_pod(pod)
    return facts


def _pod_paths(namespaces: Sequence[str] | None) -> list[str]:
    if not namespaces:
        return ["/api/v1/pods"]
    return [f"/api/v1/namespaces/{ns}/pods" for ns in dict.fromkeys(namespaces)]
