"""What ``meshfit fleet`` and ``meshfit check`` read from a cluster: a handful of LISTs, pods a page at a time.

No per-pod requests: one paginated LIST of the pods (folded page by page by
the caller, so a 250,000-pod fleet is never held whole), one LIST of the nodes
(their zone labels and allocatable), one of the namespaces (their opt-in
labels) and one of the namespace policies (ConfigMaps named
``meshfit-policy``). The policy comes from ``--policy FILE`` or the
``--policy-configmap`` in the cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cli.errors import CommandError
from cli.options import policy_from_args
from policy.fields import PolicyError
from policy.model import NAMESPACE_POLICY_CONFIGMAP, NamespacePolicy, Policy


def add_source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="FILE", help="cluster to read (default: in-cluster, else ~/.kube/config)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--policy", metavar="FILE", help="the policy to judge by (YAML or ConfigMap manifest)")
    source.add_argument("--policy-configmap", metavar="NS/NAME", default="meshfit-system/meshfit-policy",
                        help="the policy in force, from the cluster (default: %(default)s)")
    parser.add_argument("-n", "--namespace", action="append", metavar="NS", default=None,
                        help="only pods of this namespace (repeatable; default: every namespace)")
    parser.add_argument("--page-size", type=int, default=500, metavar="N", help="LIST page size (default: %(default)s)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")


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


async def read_cluster(client: Any, args: argparse.Namespace, on_pod: Callable[[dict[str, Any]], None],
                       *, before_pods: Callable[[ClusterFacts], None] | None = None) -> ClusterFacts:
    """The facts, then every selected pod through ``on_pod``, a page at a time."""
    from kube.pages import list_pages
    from policy.load import namespace_policy_from_configmap

    facts = ClusterFacts(await policy_from_args(client.get_json, args))
    facts.requests += 0 if args.policy else 1
    async for page in list_pages(client, "/api/v1/configmaps",
                                 {"fieldSelector": f"metadata.name={NAMESPACE_POLICY_CONFIGMAP}"}, limit=args.page_size):
        facts.requests += 1
        for cm in page:
            meta = cm.get("metadata") or {}
            try:
                facts.namespace_policies[str(meta.get("namespace"))] = namespace_policy_from_configmap(cm, facts.policy)
            except PolicyError as exc:
                facts.notes.append(f"namespace policy {meta.get('namespace')}/{meta.get('name')} ignored: {exc.one_line()}")
    async for page in list_pages(client, "/api/v1/namespaces", limit=args.page_size):
        facts.requests += 1
        for ns in page:
            meta = ns.get("metadata") or {}
            facts.namespace_labels[str(meta.get("name"))] = dict(meta.get("labels") or {})
    zone_label = facts.policy.versions.zone_label
    async for page in list_pages(client, "/api/v1/nodes", limit=args.page_size):
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
    for path in _pod_paths(args.namespace):
        async for page in list_pages(client, path, limit=args.page_size,
                                     on_restart=lambda: facts.notes.append("the pod LIST expired and restarted")):
            facts.requests += 1
            facts.pods_listed += len(page)
            for pod in page:
                on_pod(pod)
    return facts


def _pod_paths(namespaces: list[str] | None) -> list[str]:
    if not namespaces:
        return ["/api/v1/pods"]
    return [f"/api/v1/namespaces/{ns}/pods" for ns in dict.fromkeys(namespaces)]


def open_client(kubeconfig: str | None) -> Any:
    from kube.client import ApiClient
    from kube.config import ConfigError, load_config

    try:
        config = load_config(kubeconfig)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    return ApiClient(config, timeout=120.0)


def run_async(coro_factory: Callable[[], Any]) -> Any:
    """Run a coroutine, turning transport and API errors into one line."""
    import aiohttp

    from cli.event_loop import run
    from kube.client import ApiError

    try:
        return run(coro_factory())
    except ApiError as exc:
        raise CommandError(f"the apiserver refused: {exc}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise CommandError(f"reading the cluster: {exc}") from None


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def counts_text(counts: Mapping[str, int]) -> str:
    """``1.8.0×12, 1.8.1×3``: most common first."""
    return ", ".join(f"{k}×{v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
