"""What ``meshfit fleet`` and ``meshfit check`` share: their options, the cluster read, the client, tables.

The read itself is :mod:`serving.cluster_facts` (the fleet controller's
inspections read the same way); here the policy comes from ``--policy FILE``
or the ``--policy-configmap`` in the cluster.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from cli.cluster_options import add_cluster_options, cluster_config
from cli.errors import CommandError
from cli.output import add_output_option
from cli.options import policy_from_args
from serving import cluster_facts
from serving.cluster_facts import ClusterFacts


def add_source_options(parser: argparse.ArgumentParser) -> None:
    add_cluster_options(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--policy", metavar="FILE", help="the policy to judge by (YAML or ConfigMap manifest)")
    source.add_argument("--policy-configmap", metavar="NS/NAME", default="meshfit-system/meshfit-policy",
                        help="the policy in force, from the cluster (default: %(default)s)")
    parser.add_argument("-n", "--namespace", action="append", metavar="NS", default=None,
                        help="only pods of this namespace (repeatable; default: every namespace)")
    parser.add_argument("--page-size", type=int, default=500, metavar="N", help="LIST page size (default: %(default)s)")
    add_output_option(parser)


async def read_cluster(client: Any, args: argparse.Namespace, on_pod: Callable[[dict[str, Any]], None],
                       *, before_pods: Callable[[ClusterFacts], None] | None = None) -> ClusterFacts:
    """The policy ``--policy``/``--policy-configmap`` names, the facts, then every selected pod through ``on_pod``."""
    policy = await policy_from_args(client.get_json, args)
    facts = await cluster_facts.read_cluster(client, policy, on_pod, namespaces=args.namespace,
                                             page_size=args.page_size, before_pods=before_pods)
    facts.requests += 0 if args.policy else 1
    return facts


def open_client(args: argparse.Namespace) -> Any:
    """A client for the cluster ``--kubeconfig``/``$KUBECONFIG``/``--context`` name."""
    from kube.client import ApiClient

    return ApiClient(cluster_config(args), timeout=120.0)


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
