"""``meshfit leak``: where sidecars make namespaces pay for more than their apps asked for.

Sidecars added on top of the app's requests leak quota
(docs/design.md#lesson-1). meshfit's overcommit mode leaks nothing, but additive mode, BestEffort
pods given a sidecar request, and pods injected by other meshes (Istio,
Linkerd) do. This prints, per namespace, what those sidecars add to the
requests the namespace's quota is charged, with totals, from a snapshot or a
live cluster (one paginated LIST of the pods that are not finished).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from cli.cluster_options import add_cluster_options, cluster_config
from cli.errors import CommandError
from cli.inputs import add_deprecated_alias, add_filename_option, read_texts
from cli.output import add_output_option, structured

POD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "leak",
        help="per-namespace table of the requests sidecars add beyond the apps'",
        description=(
            "Sum, per namespace, the requests sidecars add on top of what the apps asked for: meshfit pods "
            "from their accounting record, pods injected by Istio or Linkerd from their spec."
        ),
    )
    source = parser.add_mutually_exclusive_group()
    add_filename_option(source, what="pods instead of a cluster (YAML/JSON stream or List, as kubectl get pods -A "
                                     "-o yaml prints)", repeatable=True, required=False, dest="snapshot")
    add_deprecated_alias(source, "--snapshot", dest="snapshot", replacement="-f", metavar="FILE")
    add_cluster_options(parser, what="the cluster to list", kubeconfig_group=source)
    parser.add_argument("-n", "--namespace", metavar="NS", help="only this namespace")
    parser.add_argument("--all", action="store_true", help="list namespaces without leak too")
    add_output_option(parser)
    parser.set_defaults(func=run_leak)


async def _list_pods(args: argparse.Namespace, namespace: str | None) -> list[dict[str, Any]]:
    from kube.client import ApiClient, ApiError

    config = cluster_config(args)
    path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
    pods: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"limit": 500, "fieldSelector": POD_SELECTOR}
    async with ApiClient(config) as client:
        while True:
            try:
                page = await client.get_json(path, params)
            except ApiError as exc:
                raise CommandError(f"listing pods: {exc}") from None
            except OSError as exc:
                raise CommandError(f"listing pods at {config.server}: {exc}") from None
            pods.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return pods
            params["continue"] = token


def run_leak(args: argparse.Namespace) -> int:
    from policy.namespace_leak import leak_by_namespace

    if args.snapshot:
        from extender.snapshot import SnapshotError, load_text

        sources = [args.snapshot] if isinstance(args.snapshot, str) else args.snapshot
        try:
            pods = [p for name, text in read_texts(sources) for p in load_text(text, name).pods]
        except SnapshotError as exc:
            raise CommandError(str(exc)) from None
        if args.namespace:
            pods = [p for p in pods if ((p.get("metadata") or {}).get("namespace") or "default") == args.namespace]
    else:
        import aiohttp

        try:
            pods = asyncio.run(_list_pods(args, args.namespace))
        except aiohttp.ClientError as exc:
            raise CommandError(f"listing pods: {exc}") from None
    try:
        rows, total = leak_by_namespace(pods)
    except ValueError as exc:
        raise CommandError(f"unreadable pod resources: {exc}") from None
    if not args.all:
        rows = [r for r in rows if r.leaking]
    if args.output != "table":
        sys.stdout.write(structured({"namespaces": [_as_dict(r) for r in rows], "total": _as_dict(total)},
                                    args.output))
    else:
        sys.stdout.write(render_table(rows, total))
    return 0


def _as_dict(row: Any) -> dict[str, Any]:
    from policy.resources import format_resources

    return {
        "namespace": row.namespace,
        "pods": row.pods,
        "leakingPods": dict(sorted(row.leaking.items())),
        "leak": format_resources(row.leak),
        "requests": format_resources(row.requests),
    }


def render_table(rows: list[Any], total: Any) -> str:
    from extender.scoring import percent_text
    from policy.quantity import Quantity

    def mem(q: Quantity) -> str:
        return Quantity(q.nanos, "BinarySI").format()

    def leaking(row: Any) -> str:
        count = sum(row.leaking.values())
        if not count:
            return "0"
        return f"{count} (" + ", ".join(f"{m} {n}" for m, n in sorted(row.leaking.items())) + ")"

    table = [["NAMESPACE", "PODS", "LEAKING PODS", "CPU LEAK", "MEMORY LEAK", "CPU % OF REQ", "MEM % OF REQ"]]
    for row in [*rows, total]:
        table.append([
            row.namespace,
            str(row.pods),
            leaking(row),
            row.leak["cpu"].format(),
            mem(row.leak["memory"]),
            percent_text(row.leak["cpu"].nanos, row.requests["cpu"].nanos) if row.requests["cpu"] else "-",
            percent_text(row.leak["memory"].nanos, row.requests["memory"].nanos) if row.requests["memory"] else "-",
        ])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    if not rows:
        lines.insert(1, "(no namespace leaks)")
    return "\n".join(lines) + "\n"
