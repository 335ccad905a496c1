"""``meshfit upgrade|rollback|restart|activate|deactivate|resize``: write targets on pods, and follow them.

These commands are a higher layer in the field's sense: they write
``meshfit.io/target`` on the chosen pods (each pod's other sidecars' entries
kept, the generation moved on so the request is made afresh) and never touch a
pod's spec; the fleet controller carries the targets out. Every write is
conditional on the resourceVersion read, and a conflict reads the pod again.

``--wait`` follows the pods until each has reached its target, failed, or been
blocked (the reason is the controller's), with a progress bar on a terminal,
and exits 1 when any did not reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli.cluster_options import add_cluster_options
from cli.errors import CommandError
from cli.output import add_output_option, structured
from cli.fleet_source import open_client, run_async, table
from cli.progress import Progress
from cli.server_options import positive_seconds

VERBS = {
    "upgrade": "move a sidecar to a version (in place, hot, or by recreation: the controller picks the cheapest)",
    "rollback": "return a sidecar to the version it had before its last upgrade",
    "restart": "restart one sidecar alone, the app untouched",
    "activate": "switch a dormant sidecar on, in place",
    "deactivate": "switch a sidecar off in place (its slot idles on the empty image)",
    "resize": "change a sidecar's resources through pods/resize, keeping R(pod) and the QoS class",
}


#: The commands this module registers (cli.main lists modules, most of which register one).
COMMAND_NAMES: tuple[str, ...] = tuple(VERBS)


def register(subparsers: Any) -> None:
    for verb, summary in VERBS.items():
        parser = subparsers.add_parser(verb, help=summary, description=summary[0].upper() + summary[1:] + ".")
        parser.add_argument("sidecar", metavar="SIDECAR", help="the sidecar's name in the policy (e.g. rpc-mesh)")
        if verb == "upgrade":
            parser.add_argument("version", metavar="VERSION", help="the version to move to")
            parser.add_argument("--action", choices=("auto", "in-place", "hot", "recreate"), default="auto",
                                help="force how (default auto: the cheapest that works on each pod)")
        if verb == "resize":
            parser.add_argument("--requests", metavar="cpu=Q,memory=Q", help="the sidecar's new requests")
            parser.add_argument("--limits", metavar="cpu=Q,memory=Q", help="the sidecar's new limits")
        parser.add_argument("pods", nargs="*", metavar="POD", help="pod names (or use -l)")
        parser.add_argument("-l", "--selector", metavar="SELECTOR", help="a label selector choosing the pods")
        parser.add_argument("-n", "--namespace", default="default", help="the pods' namespace (default: default)")
        add_cluster_options(parser, what="the cluster the pods are in")
        parser.add_argument("--wait", action="store_true",
                            help="follow the pods until each reached the target, failed or was blocked; exit 1 "
                                 "unless all reached it")
        parser.add_argument("--timeout", type=positive_seconds, default=600.0, metavar="SECONDS",
                            help="with --wait: give up after this long (default 600)")
        add_output_option(parser)
        parser.set_defaults(func=run, verb=verb)


@dataclass
class PodResult:
    """One pod's answer: what was asked, and where it stands."""

    name: str
    generation: int = 0
    asked: str = ""
    state: str = "pending"
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"pod": self.name, "generation": self.generation, "asked": self.asked, "state": self.state,
                "reason": self.reason}


def _resources(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from cli.options import parse_labels

    out: dict[str, dict[str, str]] = {}
    for kind in ("requests", "limits"):
        text = getattr(args, kind, None)
        if text:
            try:
                out[kind] = parse_labels(text)
            except ValueError as exc:
                raise CommandError(f"--{kind}: {exc}") from None
    if not out:
        raise CommandError("resize: give --requests and/or --limits")
    return out


def change_for(args: argparse.Namespace, status: Any) -> tuple[Any, str]:
    """The sidecar's target entry this command asks for on a pod with ``status``, and a word for it."""
    from policy.quantity import Quantity, QuantityError
    from policy.targets import SidecarTarget

    record = status.sidecar(args.sidecar) if status is not None else None
    if args.verb == "upgrade":
        return SidecarTarget(version=args.version, action=args.action), args.version
    if args.verb == "rollback":
        if record is None or not record.previous:
            raise LookupError(f"{args.sidecar} has no previous version recorded to roll back to")
        return SidecarTarget(version=record.previous), record.previous
    if args.verb == "restart":
        token = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        return SidecarTarget(restart=token), "restart"
    if args.verb in ("activate", "deactivate"):
        return SidecarTarget(active=args.verb == "activate"), args.verb
    try:
        parsed = {k: {r: Quantity.parse(v) for r, v in values.items()} for k, values in _resources(args).items()}
    except QuantityError as exc:
        raise CommandError(f"resize: {exc}") from None
    return SidecarTarget(resources=parsed, action="resize"), "resize"


def run(args: argparse.Namespace) -> int:
    if not args.pods and not args.selector:
        raise CommandError(f"{args.verb}: name pods or give -l SELECTOR")
    if args.pods and args.selector:
        raise CommandError(f"{args.verb}: name pods or give -l SELECTOR, not both")
    if args.verb == "resize":
        _resources(args)
    results = run_async(lambda: _main(args))
    if args.output != "table":
        sys.stdout.write(structured([r.to_dict() for r in results], args.output))
    else:
        rows = [["POD", "GENERATION", "ASKED", "STATE", "REASON"]]
        rows += [[r.name, str(r.generation), r.asked, r.state, r.reason] for r in results]
        sys.stdout.write(table(rows))
        counts: dict[str, int] = {}
        for r in results:
            counts[r.state] = counts.get(r.state, 0) + 1
        sys.stdout.write(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + "\n")
    bad = [r for r in results if r.state in ("failed", "blocked", "error", "timeout")]
    if bad or (args.wait and any(r.state != "done" for r in results)):
        return 1
    return 0


async def _main(args: argparse.Namespace) -> list[PodResult]:
    async with open_client(args) as client:
        base = f"/api/v1/namespaces/{args.namespace}/pods"
        if args.selector:
            listed = await client.get_json(base, params={"labelSelector": args.selector})
            names = sorted(str(p["metadata"]["name"]) for p in listed.get("items") or ())
            if not names:
                raise CommandError(f"no pods in {args.namespace} match {args.selector}")
        else:
            names = list(dict.fromkeys(args.pods))
        results = [await _write(client, f"{base}/{name}", name, args) for name in names]
        if args.wait:
            await _follow(client, base, results, args)
        return results


async def _write(client: Any, path: str, name: str, args: argparse.Namespace) -> PodResult:
    """Write one pod's target, re-reading on a conflict; the result says what was asked or why not."""
    from kube.client import ApiError
    from policy.annotations import STATUS, TARGET
    from policy.sidecar_status import StatusError, parse_status
    from policy.targets import TargetError, next_target, parse_target

    result = PodResult(name)
    for _attempt in range(8):
        try:
            pod = await client.get_json(path)
        except ApiError as exc:
            result.state, result.reason = "error", str(exc)
            return result
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        try:
            status = parse_status(annotations[STATUS]) if STATUS in annotations else None
        except StatusError as exc:
            result.state, result.reason = "error", f"{STATUS} does not parse: {exc}"
            return result
        if status is None:
            result.state, result.reason = "error", f"no {STATUS}: meshfit did not inject this pod"
            return result
        try:
            change, asked = change_for(args, status)
        except LookupError as exc:
            result.state, result.reason = "error", str(exc)
            return result
        try:
            current = parse_target(annotations[TARGET]) if TARGET in annotations else None
        except TargetError:
            current = None  # a broken target is replaced: this is the request now
        target = next_target(current, args.sidecar, change)
        body = {"metadata": {"resourceVersion": pod["metadata"].get("resourceVersion"),
                             "annotations": {TARGET: target.to_json()}}}
        try:
            await client.request("PATCH", path, body, content_type="application/merge-patch+json")
        except ApiError as exc:
            if exc.status == 409:
                continue
            result.state, result.reason = "error", str(exc)
            return result
        result.generation, result.asked, result.reason = target.generation, asked, "target written"
        return result
    result.state, result.reason = "error", "the pod kept changing under the write (8 conflicts)"
    return result


def _matches(args: argparse.Namespace, pod: dict[str, Any]) -> bool:
    """Whether the pod's status record says what this command's target asks."""
    from policy.annotations import STATUS, TARGET
    from policy.sidecar_status import StatusError, parse_status
    from policy.targets import TargetError, parse_target

    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        status = parse_status(annotations.get(STATUS, ""))
        target = parse_target(annotations.get(TARGET, ""))
    except (StatusError, TargetError):
        return False
    record, want = status.sidecar(args.sidecar), target.sidecars.get(args.sidecar)
    if record is None or want is None:
        return False
    if want.version is not None and record.version != want.version:
        return False
    if want.active is not None and record.active != want.active:
        return False
    if want.restart is not None and record.restart != want.restart:
        return False
    if want.resources is not None:
        return _resources_running(pod, record.live, want.resources)
    return True


def _resources_running(pod: dict[str, Any], container: str, wanted: dict[str, Any]) -> bool:
    from policy.quantity import Quantity

    for item in (pod.get("status") or {}).get("initContainerStatuses", []) + \
            (pod.get("status") or {}).get("containerStatuses", []):
        if item.get("name") == container:
            running = item.get("resources") or {}
            return all(r in (running.get(k) or {}) and Quantity.parse(running[k][r]).nanos == q.nanos
                       for k, values in wanted.items() for r, q in values.items())
    return False


async def _follow(client: Any, base: str, results: list[PodResult], args: argparse.Namespace,
                  interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
    """Poll the pods until each has settled (or ``--timeout``), with a progress bar."""
    from kube.client import ApiError
    from policy.annotations import OPERATION
    from policy.targets import progress_of

    pending = {r.name: r for r in results if r.state == "pending"}
    progress = Progress(f"{args.verb} {args.sidecar}", total=len(pending), enabled=args.output == "table")
    deadline = clock() + args.timeout
    while pending and clock() < deadline:
        for name, result in list(pending.items()):
            try:
                pod = await client.get_json(f"{base}/{name}")
            except ApiError as exc:
                if exc.status == 404:
                    result.state, result.reason = "done", "the pod was replaced (recreated by its workload)"
                    pending.pop(name)
                    progress.advance()
                continue
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            state, reason = progress_of(annotations.get(OPERATION), _matches(args, pod), args.sidecar,
                                        result.generation)
            if state != "pending":
                result.state, result.reason = state, reason
                pending.pop(name)
                progress.advance()
            else:
                result.reason = reason
        if pending:
            await asyncio.sleep(interval)
    for result in pending.values():
        result.state = "timeout"
        result.reason = f"not settled after {args.timeout:g}s ({result.reason})"
    progress.finish()
