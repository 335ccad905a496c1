"""``meshfit fleet``: every sidecar's versions across the fleet, grouped, and the pods that disagree.

Per sidecar and group (``--by namespace,app,zone,node,rule``, any of them):
how many pods, the versions the policy would inject now (desired), the ones
their ``meshfit.io/status`` records (recorded), and the ones their container
statuses report (running, by image and imageID); then the pods where these
disagree, with what disagrees. One paginated LIST of the pods, folded page by
page (:class:`policy.fleet.FleetView`), plus one LIST of nodes for the zones.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any

from cli.errors import CommandError
from cli.output import structured
from cli.fleet_source import add_source_options, counts_text, open_client, read_cluster, run_async, table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fleet",
        help="sidecar versions across the fleet: desired, recorded, running, grouped; the pods that disagree",
        description="Per sidecar and group, the versions the policy would inject now, the ones the pods record and "
                    "the ones their containers run, from one paginated LIST of the pods.",
    )
    add_source_options(parser)
    parser.add_argument("--by", default="namespace", metavar="DIM,...",
                        help="group by any of namespace, app, zone, node, rule (default: %(default)s)")
    parser.add_argument("--examples", type=int, default=20, metavar="N",
                        help="pods listed per group that disagree (default: %(default)s; all are counted)")
    parser.set_defaults(func=run_fleet)


async def collect(client: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """Read the cluster into a :class:`policy.fleet.FleetView` (the benchmark calls this too)."""
    from policy.fleet import DesiredVersions, FleetView

    by = [d.strip() for d in args.by.split(",") if d.strip()]
    holder: dict[str, Any] = {}

    def before(facts: Any) -> None:
        desired = DesiredVersions(facts.policy, facts.namespace_policies, datetime.now(timezone.utc))
        try:
            holder["view"] = FleetView(desired, by, facts.node_zones, examples=args.examples)
        except ValueError as exc:
            raise CommandError(f"--by: {exc}") from None

    async with client:
        facts = await read_cluster(client, args, lambda pod: holder["view"].add(pod), before_pods=before)
    return holder["view"], facts


def run_fleet(args: argparse.Namespace) -> int:
    from policy.fleet import DIMENSIONS

    unknown = [d for d in (d.strip() for d in args.by.split(",")) if d and d not in DIMENSIONS]
    if unknown or not args.by.strip():
        raise CommandError(f"--by: unknown dimension(s) {', '.join(unknown) or '(none given)'}; "
                           f"known: {', '.join(DIMENSIONS)}", exit_code=2)
    async def go() -> tuple[Any, Any]:
        return await collect(open_client(args), args)

    view, facts = run_async(go)
    if args.output != "table":
        sys.stdout.write(structured(as_json(view, facts), args.output))
    else:
        sys.stdout.write(render(view, facts))
    return 0


def as_json(view: Any, facts: Any) -> dict[str, Any]:
    return {
        "by": list(view.by),
        "policyRevision": facts.policy.revision,
        "pods": {"listed": view.pods_seen, "meshed": view.pods_meshed, "disagreeing": view.pods_disagreeing,
                 "badStatus": view.bad_status_count},
        "cells": [
            {
                "sidecar": c.sidecar,
                "group": dict(zip(view.by, c.group)),
                "pods": c.pods,
                "desired": dict(c.desired),
                "recorded": dict(c.recorded),
                "running": dict(c.running),
                "runningImageIDs": dict(c.running_image_ids),
                "disagreeing": c.disagreeing,
                "problems": dict(c.problems),
                "examples": [{"pod": ref, "problems": list(problems)} for ref, problems in c.examples],
            }
            for c in view.sorted_cells()
        ],
        "badStatusExamples": view.bad_status,
        "requests": facts.requests,
        "notes": facts.notes,
    }


def render(view: Any, facts: Any) -> str:
    out: list[str] = [f"policy revision {facts.policy.revision}; {view.pods_seen} pods listed, {view.pods_meshed} meshed, "
                      f"{view.pods_disagreeing} disagreeing ({facts.requests} API requests)\n"]
    cells = view.sorted_cells()
    if not cells:
        out.append("(no meshed pods)\n")
    else:
        rows = [["SIDECAR", *(d.upper() for d in view.by), "PODS", "DESIRED", "RECORDED", "RUNNING", "DISAGREE"]]
        for c in cells:
            rows.append([c.sidecar, *c.group, str(c.pods), counts_text(c.desired), counts_text(c.recorded),
                         counts_text(c.running), str(c.disagreeing)])
        out.append(table(rows))
    disagreeing = [c for c in cells if c.examples]
    if disagreeing:
        out.append("\nPods that disagree\n")
        rows = [["SIDECAR", *(d.upper() for d in view.by), "POD", "WHAT"]]
        for c in disagreeing:
            for ref, problems in c.examples:
                rows.append([c.sidecar, *c.group, ref, ", ".join(problems)])
            if c.disagreeing > len(c.examples):
                rows.append([c.sidecar, *c.group, f"... and {c.disagreeing - len(c.examples)} more", ""])
        out.append(table(rows))
    if view.bad_status_count:
        out.append(f"\n{view.bad_status_count} pods with an unreadable meshfit.io/status: {', '.join(view.bad_status)}\n")
    for note in facts.notes:
        out.append(f"note: {note}\n")
    return "".join(out)
