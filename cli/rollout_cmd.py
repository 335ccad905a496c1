"""``meshfit rollout create|status|promote|pause|resume|abort``: phased rollouts (``SidecarRollout``).

The fleet controller's leader carries a rollout out; these commands only
write its spec (``create``; ``paused``, ``abort`` and ``promotedBatch`` for the
others) and read its status. ``status --watch`` follows it as ``kubectl
rollout status`` follows a Deployment: the batch under way, a progress bar of
the pods on the version, and a summary of every batch at the end; it exits 0
when the rollout succeeded and 1 when it failed or was aborted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any


from cli.cluster_options import add_cluster_options
from cli.output import add_output_option, structured
from cli.errors import CommandError
from cli.fleet_source import open_client, run_async, table
from cli.progress import Progress
from cli.server_options import positive_seconds

API = "/apis/meshfit.io/v1alpha1"
MERGE = "application/merge-patch+json"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rollout", help="phased rollouts of a sidecar version: create, follow, promote, pause, resume, abort",
        description="Phased rollouts (SidecarRollout): batches of pods, each analysed against the pods not yet "
                    "changed, stopped and rolled back on regression by the fleet controller.")
    verbs = parser.add_subparsers(dest="rollout_command", metavar="VERB")
    verbs.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-n", "--namespace", default="default", help="the rollout's namespace (default: default)")
        add_cluster_options(p, what="the cluster the rollout is in")
        add_output_option(p)

    create = verbs.add_parser("create", help="create a rollout from flags or -f FILE",
                              description="Create a SidecarRollout. With -f FILE the file is the whole resource "
                                          "(YAML or JSON); otherwise the flags make its spec.")
    create.add_argument("name", metavar="NAME", nargs="?")
    create.add_argument("-f", "--filename", metavar="FILE", help="the SidecarRollout, YAML or JSON")
    create.add_argument("--sidecar", help="the sidecar (rpc-mesh)")
    create.add_argument("--version", dest="to_version", metavar="VERSION", help="the version to move to")
    create.add_argument("--action", choices=("auto", "in-place", "hot", "recreate"), default=None)
    create.add_argument("--select-namespace", action="append", metavar="NS", default=None,
                        help="a namespace whose pods are rolled (repeatable; default: the rollout's namespace)")
    create.add_argument("-l", "--selector", metavar="K=V,...", help="the pods' labels (matchLabels)")
    create.add_argument("--zone", action="append", metavar="ZONE", default=None,
                        help="only pods on nodes of this topology.kubernetes.io/zone (repeatable)")
    create.add_argument("--batches", default="1,25%,100%", metavar="LIST",
                        help="cumulative sizes, counts or percents, the last 100%% (default 1,25%%,100%%)")
    create.add_argument("--bake", default="1m", metavar="DURATION", help="each batch's bake (default 1m)")
    create.add_argument("--pause-after-canary", action="store_true",
                        help="wait for `meshfit rollout promote` after the first batch")
    create.add_argument("--max-unavailable", metavar="N|P%", help="per workload (default 25%%)")
    create.add_argument("--on-failure", choices=("rollback", "stop"), default=None)
    create.add_argument("--interval", metavar="DURATION", help="between measurements (default 30s)")
    create.add_argument("--count", type=int, metavar="N", help="conclusive rounds a batch needs (default 3)")
    create.add_argument("--inconclusive-deadline", metavar="DURATION", help="default 5m")
    create.add_argument("--prometheus", metavar="URL", help="the Prometheus the metrics are asked of")
    create.add_argument("--metric", action="append", default=None, metavar="NAME:COND=VALUE:QUERY",
                        help="a metric: COND one of max, min, maxIncrease, maxRatio (repeatable), e.g. "
                             "'errors:maxRatio=1.5:sum(rate(http_errors_total{pod=~\"{{pods}}\"}[1m]))'")
    common(create)
    create.set_defaults(func=run_create)

    status = verbs.add_parser("status", help="a rollout's batches; --watch follows it to the end")
    status.add_argument("name", metavar="NAME")
    status.add_argument("-w", "--watch", action="store_true", help="follow until it succeeds, fails or is aborted")
    status.add_argument("--timeout", type=positive_seconds, default=3600.0, metavar="SECONDS",
                        help="with --watch: give up after this long (default 3600)")
    common(status)
    status.set_defaults(func=run_status)

    for verb, summary in (("promote", "pass the manual gate the rollout waits at"),
                          ("pause", "write no new target until resumed (the analysis goes on)"),
                          ("resume", "undo pause"),
                          ("abort", "stop now and roll the current batch back")):
        p = verbs.add_parser(verb, help=summary, description=summary[0].upper() + summary[1:] + ".")
        p.add_argument("name", metavar="NAME")
        common(p)
        p.set_defaults(func=run_control, verb=verb)


# -- create ------------------------------------------------------------------------------------------------
def _batches(text: str, bake: str, pause_first: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, part in enumerate(p.strip() for p in text.split(",")):
        entry: dict[str, Any] = {}
        if part.endswith("%") and part[:-1].isdigit():
            entry["percent"] = int(part[:-1])
        elif part.isdigit():
            entry["count"] = int(part)
        else:
            raise CommandError(f"--batches: {part!r} is neither a count nor a percent")
        entry["bake"] = bake
        if i == 0 and pause_first:
            entry["pause"] = True
        out.append(entry)
    return out


def _metric(text: str) -> dict[str, Any]:
    name, _, rest = text.partition(":")
    condition, _, query = rest.partition(":")
    key, _, value = condition.partition("=")
    if not name or not query or key not in ("max", "min", "maxIncrease", "maxRatio"):
        raise CommandError(f"--metric: NAME:COND=VALUE:QUERY with COND one of max, min, maxIncrease, maxRatio, "
                           f"got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise CommandError(f"--metric {name}: {value!r} is not a number") from None
    return {"name": name, "query": query, key: number}


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from cli.options import parse_labels

    if not args.sidecar or not args.to_version:
        raise CommandError("create: give --sidecar and --version (or -f FILE)")
    spec: dict[str, Any] = {
        "sidecar": args.sidecar, "version": args.to_version,
        "selector": {"namespaces": args.select_namespace or [args.namespace]},
        "batches": _batches(args.batches, args.bake, args.pause_after_canary),
    }
    if args.selector:
        spec["selector"]["podSelector"] = {"matchLabels": parse_labels(args.selector)}
    if args.zone:
        spec["selector"]["zones"] = list(args.zone)
    if args.action:
        spec["action"] = args.action
    if args.max_unavailable:
        mu = args.max_unavailable
        spec["maxUnavailable"] = int(mu) if mu.isdigit() else mu
    if args.on_failure:
        spec["onFailure"] = args.on_failure
    analysis: dict[str, Any] = {}
    for key, value in (("interval", args.interval), ("count", args.count),
                       ("inconclusiveDeadline", args.inconclusive_deadline)):
        if value is not None:
            analysis[key] = value
    if args.metric:
        if not args.prometheus:
            raise CommandError("--metric needs --prometheus URL")
        analysis["prometheus"] = {"address": args.prometheus, "metrics": [_metric(m) for m in args.metric]}
    if analysis:
        spec["analysis"] = analysis
    return spec


def _document(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    if args.filename:
        try:
            doc = yaml.safe_load(Path(args.filename).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"{args.filename}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != "SidecarRollout":
            raise CommandError(f"{args.filename}: not a SidecarRollout")
        meta = doc.setdefault("metadata", {})
        if args.name:
            meta["name"] = args.name
        meta.setdefault("namespace", args.namespace)
    else:
        if not args.name:
            raise CommandError("create: name the rollout (or -f FILE)")
        doc = {"apiVersion": "meshfit.io/v1alpha1", "kind": "SidecarRollout",
               "metadata": {"name": args.name, "namespace": args.namespace}, "spec": spec_from_args(args)}
    from controller.rollout_spec import SpecError, parse_spec

    try:
        parse_spec(doc.get("spec"))
    except SpecError as exc:
        raise CommandError("the rollout is refused:\n" + "\n".join(f"  {e}" for e in exc.errors)) from None
    return doc


def run_create(args: argparse.Namespace) -> int:
    doc = _document(args)
    namespace = doc["metadata"]["namespace"]

    async def main() -> dict[str, Any]:
        async with open_client(args) as client:
            answer: dict[str, Any] = await client.post_json(f"{API}/namespaces/{namespace}/sidecarrollouts", doc)
            return answer

    created = run_async(main)
    if args.output != "table":
        sys.stdout.write(structured(created, args.output))
    else:
        spec = created.get("spec") or {}
        sys.stdout.write(f"sidecarrollout {namespace}/{created['metadata']['name']} created: {spec.get('sidecar')} "
                         f"to {spec.get('version')} in {len(spec.get('batches') or ())} batches\n")
    return 0


# -- status -------------------------------------------------------------------------------------------------
def finished(rollout: Mapping[str, Any]) -> bool:
    """Nothing more will happen: succeeded, or failed/aborted with its rollback (if any) over."""
    status = rollout.get("status") or {}
    phase = status.get("phase")
    return phase == "Succeeded" or (phase in ("Failed", "Aborted") and status.get("step") != "RollingBack")


def summary(rollout: Mapping[str, Any]) -> str:
    """The rollout's state in lines: phase and reason, then a row per batch."""
    status = rollout.get("status") or {}
    meta = rollout.get("metadata") or {}
    spec = rollout.get("spec") or {}
    lines = [f"{meta.get('namespace')}/{meta.get('name')}: {spec.get('sidecar')} to {spec.get('version')}: "
             f"{status.get('phase', 'Pending')}{' (' + status['step'] + ')' if status.get('step') else ''}, "
             f"{status.get('updated', 0)}/{status.get('total', 0)} pods updated",
             f"  {status.get('reason', '')}: {status.get('message', '')}".rstrip()]
    if status.get("deadline"):
        lines.append(f"  until {status['deadline']}")
    rows = [["BATCH", "PODS", "STARTED", "ENDED", "VERDICT", "REASON"]]
    for batch in status.get("batches") or ():
        rows.append([str(batch.get("index", 0) + 1), str(len(batch.get("pods") or ())),
                     str(batch.get("started", "")), str(batch.get("ended", "")), str(batch.get("verdict", "")),
                     str(batch.get("reason", ""))[:120]])
    text = "\n".join(lines) + "\n"
    if len(rows) > 1:
        text += table(rows)
    for condition in status.get("conditions") or ():
        if condition.get("status") == "False":
            text += f"  {condition.get('type')}: {condition.get('message')}\n"
    return text


def run_status(args: argparse.Namespace) -> int:
    path = f"{API}/namespaces/{args.namespace}/sidecarrollouts/{args.name}"

    async def main() -> dict[str, Any]:
        async with open_client(args) as client:
            rollout: dict[str, Any] = await client.get_json(path)
            if not args.watch:
                return rollout
            progress = Progress(f"{args.name}", total=int((rollout.get("status") or {}).get("total") or 0),
                                enabled=args.output == "table")
            deadline = time.monotonic() + args.timeout
            seen: tuple[Any, ...] = ()
            while not finished(rollout) and time.monotonic() < deadline:
                status = rollout.get("status") or {}
                now = (status.get("phase"), status.get("batch"), status.get("reason"))
                if now != seen and args.output == "table":
                    sys.stderr.write(f"\n{status.get('phase', 'Pending')}: batch {status.get('batchText', '?')}: "
                                     f"{status.get('message', '')}\n")
                    seen = now
                progress.advance(int(status.get("updated") or 0) - progress.done, total=int(status.get("total") or 0))
                await asyncio.sleep(1.0)
                rollout = await client.get_json(path)
            progress.advance(int((rollout.get("status") or {}).get("updated") or 0) - progress.done)
            progress.finish()
            return rollout

    rollout = run_async(main)
    if args.output != "table":
        sys.stdout.write(structured(rollout, args.output))
    else:
        sys.stdout.write(summary(rollout))
    if args.watch:
        if not finished(rollout):
            sys.stderr.write(f"not finished after {args.timeout:g}s\n")
            return 1
        return 0 if (rollout.get("status") or {}).get("phase") == "Succeeded" else 1
    return 0


# -- promote, pause, resume, abort --------------------------------------------------------------------------
def run_control(args: argparse.Namespace) -> int:
    path = f"{API}/namespaces/{args.namespace}/sidecarrollouts/{args.name}"

    async def main() -> dict[str, Any]:
        async with open_client(args) as client:
            rollout = await client.get_json(path)
            status = rollout.get("status") or {}
            meta: dict[str, Any] = {}
            if args.verb == "promote":
                if status.get("reason") != "ManualGate":
                    raise CommandError(f"{args.name} waits at no manual gate ({status.get('phase', 'Pending')}: "
                                       f"{status.get('reason', '')})")
                spec: dict[str, Any] = {"promotedBatch": int(status.get("batch") or 0)}
                meta = {"resourceVersion": (rollout.get("metadata") or {}).get("resourceVersion")}
            elif args.verb in ("pause", "resume"):
                spec = {"paused": args.verb == "pause"}
            else:
                spec = {"abort": True}
            body: dict[str, Any] = {"spec": spec}
            if meta:
                body["metadata"] = meta
            answer: dict[str, Any] = await client.request("PATCH", path, body, content_type=MERGE)
            return answer

    answer = run_async(main)
    if args.output != "table":
        sys.stdout.write(structured(answer, args.output))
    else:
        words = {"promote": "promoted", "pause": "paused", "resume": "resumed", "abort": "aborted"}
        sys.stdout.write(f"sidecarrollout {args.namespace}/{args.name} {words[args.verb]}\n")
    return 0
