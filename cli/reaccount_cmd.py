"""``meshfit reaccount``: re-size the sidecars of running meshed pods in place, under a target policy.

The field's 250,000-container repair as one safe command (docs/design.md,
lesson 7). For every meshed pod selected, :func:`policy.reaccount.plan_reaccount`
computes from the pod's record what a fresh injection under the target policy
would give; ``--apply`` makes it so with two writes per changed pod — the
``pods/NAME/resize`` subresource, then the record — each carrying the
resourceVersion it read. Dry-run is the default.

Fleet-scale habits: one paginated LIST (a fresh one when the continue token
expires), a client-side token bucket (``--qps``, ``--burst``) shared by every
request, bounded concurrency, retries with backoff on 429/5xx, a re-read and
re-plan on 409 (another writer's change is never overwritten), a checkpoint
file so an interrupted run resumes where it stopped, progress on stderr and a
final table (or ``-o json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from cli.cluster_options import add_cluster_options, cluster_config
from cli.errors import CommandError
from cli.output import add_output_option
from cli.options import policy_from_args
from cli.progress import Progress
from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.fields import PolicyError
from policy.model import NAMESPACE_POLICY_CONFIGMAP, NamespacePolicy, Policy
from policy.foreign_mesh import foreign_mesh
from policy.reaccount import ReaccountPlan, plan_reaccount

POD_LEVEL_GATE = "InPlacePodLevelResourcesVerticalScaling"
TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "reaccount", help="re-size running meshed pods' sidecars in place under a target policy",
        description="Recompute every selected meshed pod's sidecars and donations under a target policy from "
                    "the pod's own record, and (with --apply) resize them in place through pods/resize, then "
                    "rewrite the record. Dry-run by default. Pods that cannot keep R(pod), their QoS class "
                    "and their sidecars' CPU request and limit are listed with the reason and left alone.")
    add_cluster_options(p, what="the cluster to act on")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--policy", metavar="FILE", help="the target policy (YAML or ConfigMap manifest)")
    source.add_argument("--policy-configmap", metavar="NS/NAME", default="meshfit-system/meshfit-policy",
                        help="the target policy from the cluster (default: %(default)s)")
    p.add_argument("-n", "--namespace", metavar="NS", action="append", default=[], help="only these namespaces (repeatable)")
    p.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, as kubectl's -l")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", dest="apply", action="store_false", help="print what would change (the default)")
    mode.add_argument("--apply", dest="apply", action="store_true", help="resize the pods and rewrite their records")
    p.set_defaults(apply=False)
    p.add_argument("--qps", type=float, default=50.0, help="requests per second to the apiserver (default: %(default)s)")
    p.add_argument("--burst", type=int, default=100, help="token-bucket burst (default: %(default)s)")
    p.add_argument("--concurrency", type=int, default=16, help="pods written at once (default: %(default)s)")
    p.add_argument("--page-size", type=int, default=500, help="pods per LIST page (default: %(default)s)")
    p.add_argument("--checkpoint", metavar="FILE", help="record finished pods here and skip them on the next run")
    p.add_argument("--pod-level-resize", choices=("auto", "true", "false"), default="auto",
                   help=f"whether pod-level resources may be resized ({POD_LEVEL_GATE}); auto asks the apiserver")
    p.add_argument("--wait-resize", type=float, default=0.0, metavar="SECONDS",
                   help="after applying, wait this long for the kubelets to report each resize")
    add_output_option(p)
    p.set_defaults(func=run)


@dataclass
class Summary:
    """What a run did, by outcome; ``writes`` counts every API write it sent."""

    applied: bool
    pods: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    requests: int = 0
    list_restarts: int = 0
    resize_status: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "pods": self.pods, "outcomes": dict(self.outcomes),
                "skipped": dict(self.skipped), "failed": dict(self.failed), "writes": self.writes,
                "requests": self.requests, "listRestarts": self.list_restarts,
                "resizeStatus": dict(self.resize_status)}


class Checkpoint:
    """One line per finished pod (``uid action``): a resumed run skips them."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self.done: set[str] = set()
        if self.path and self.path.exists():
            self.done = {line.split(" ", 1)[0] for line in self.path.read_text().splitlines() if line.strip()}
        self._file: TextIO | None = self.path.open("a", encoding="utf-8") if self.path else None

    def mark(self, uid: str, action: str) -> None:
        if self._file is not None and uid:
            self._file.write(f"{uid} {action}\n")
            self._file.flush()
        self.done.add(uid)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def run(args: argparse.Namespace) -> int:
    if args.qps <= 0 or args.burst < 1 or args.concurrency < 1 or args.page_size < 1:
        raise CommandError("--qps must be > 0, and --burst, --concurrency and --page-size at least 1")
    config = cluster_config(args)
    summary = asyncio.run(_main(config, args, sys.stdout))
    return 1 if summary.failed else 0


class _Run:
    """The state one run shares across its workers: client, bucket, policy, counters, output."""

    def __init__(self, client: Any, bucket: Any, policy: Policy, namespace_policies: dict[str, NamespacePolicy],
                 pod_level_resize: bool, args: argparse.Namespace, out: TextIO, summary: Summary,
                 checkpoint: Checkpoint) -> None:
        self.client, self.bucket, self.policy = client, bucket, policy
        self.namespace_policies = namespace_policies
        self.pod_level_resize = pod_level_resize
        self.args, self.out, self.summary, self.checkpoint = args, out, summary, checkpoint
        self.resized: list[tuple[str, str]] = []
        self._first_json = True

    async def call(self, method: str, path: str, body: Any = None, *, params: dict[str, Any] | None = None,
                   content_type: str = "application/json", write: bool = False) -> dict[str, Any]:
        from kube.retry import with_retries

        async def once() -> dict[str, Any]:
            await self.bucket.take()
            self.summary.requests += 1
            if write:
                self.summary.writes += 1
            result: dict[str, Any] = await self.client.request(method, path, body, params=params,
                                                               content_type=content_type)
            return result
        return await with_retries(once)

    def namespace(self, name: str) -> Namespace:
        return Namespace(name, None, self.namespace_policies.get(name))

    def plan(self, pod: dict[str, Any]) -> ReaccountPlan:
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        return plan_reaccount(pod, self.namespace(ns), self.policy, pod_level_resize=self.pod_level_resize)

    def report(self, pod: dict[str, Any], outcome: str, plan: ReaccountPlan | None, detail: str = "") -> None:
        meta = pod.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        if self.args.output == "json":
            entry = {"namespace": meta.get("namespace"), "name": meta.get("name"), "outcome": outcome,
                     "code": plan.code if plan else "", "reason": detail or (plan.reason if plan else ""),
                     "changes": [{"container": c.name, "before": c.before, "after": c.after}
                                 for c in (plan.changes if plan else ())]}
            self.out.write(("" if self._first_json else ",\n") + "    " + json.dumps(entry, sort_keys=True))
            self._first_json = False
            return
        if self.args.output == "yaml":
            self.out.write(yaml.safe_dump([{"namespace": meta.get("namespace"), "name": meta.get("name"),
                                            "outcome": outcome, "code": plan.code if plan else "",
                                            "reason": detail or (plan.reason if plan else ""),
                                            "changes": [{"container": c.name, "before": c.before, "after": c.after}
                                                        for c in (plan.changes if plan else ())]}],
                                          sort_keys=True, default_flow_style=False))
            return
        if outcome == "unchanged":
            return
        text = detail or (plan.reason if plan else "")
        self.out.write(f"{where:<48} {outcome:<14} {text}\n")
        for c in plan.changes if plan else ():
            self.out.write(f"{'':<48} {'':<14}   {c.name}: {_res(c.before)} → {_res(c.after)}\n")


def _res(resources: dict[str, Any]) -> str:
    req = resources.get("requests") or {}
    lim = resources.get("limits") or {}
    return ("requests " + (",".join(f"{k}={v}" for k, v in sorted(req.items())) or "-")
            + " limits " + (",".join(f"{k}={v}" for k, v in sorted(lim.items())) or "-"))


async def _namespace_policies(run: _Run, out: list[str]) -> dict[str, NamespacePolicy]:
    from kube.pages import list_pages
    from policy.load import namespace_policy_from_configmap

    policies: dict[str, NamespacePolicy] = {}
    params = {"fieldSelector": f"metadata.name={NAMESPACE_POLICY_CONFIGMAP}"}
    async for page in list_pages(run.client, "/api/v1/configmaps", params, fetch=lambda p, q: run.call("GET", p, params=q)):
        for cm in page:
            meta = cm.get("metadata") or {}
            try:
                policies[str(meta.get("namespace"))] = namespace_policy_from_configmap(cm, run.policy)
            except PolicyError as exc:
                out.append(f"namespace policy {meta.get('namespace')}/{meta.get('name')} ignored: {exc.one_line()}")
    return policies


async def _pod_level_gate(client: Any) -> bool:
    """Whether the apiserver runs with the pod-level resize gate (its ``kubernetes_feature_enabled`` metric)."""
    try:
        async with client.session.get(client.url("/metrics"), headers=client.config.headers()) as response:
            text = await response.text()
    except Exception:  # no metrics access: assume the conservative answer
        return False
    for line in text.splitlines():
        if line.startswith("kubernetes_feature_enabled") and f'name="{POD_LEVEL_GATE}"' in line:
            return line.rsplit(" ", 1)[-1].strip() in ("1", "1.0")
    return False


async def _apply_one(run: _Run, pod: dict[str, Any], plan: ReaccountPlan) -> None:
    """Resize (with the resourceVersion it read), then the record (compare-and-swap); a conflict re-plans.

    The resize carries the pod's resourceVersion: another writer's change since
    the read fails it (409). The record write tests the record and the
    containers' resources it was planned from, so the kubelet's status updates
    after the resize do not fail it, another writer's change does (422).
    """
    from kube.client import ApiError

    meta = pod["metadata"]
    path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
    resized_here = False
    for _attempt in range(4):
        stage = "resize"
        try:
            current = pod
            if plan.action == "resize":
                body = plan.resize_body()
                body["metadata"] = {"resourceVersion": meta.get("resourceVersion")}
                current = await run.call("PATCH", path + "/resize", body,
                                         content_type="application/strategic-merge-patch+json", write=True)
                resized_here = True
                if run.args.wait_resize > 0:  # kept only to follow them: the run's memory stays flat otherwise
                    run.resized.append((meta["namespace"], meta["name"]))
            stage = "record"
            await run.call("PATCH", path, plan.record_patch(current), content_type="application/json-patch+json",
                           write=True)
            outcome = "resized" if resized_here else "record_only"
            run.summary.outcomes[outcome] += 1
            run.checkpoint.mark(str(meta.get("uid", "")), outcome)
            run.report(pod, outcome.replace("_", "-"), plan)
            return
        except ApiError as exc:
            # 409 on the resize: the pod changed since it was read. 422 on the record write: its
            # compare-and-swap found the record or a container's resources changed (the record
            # patch itself is always valid). Either way: read again and plan again.
            lost_race = exc.status == 409 or (exc.status == 422 and stage == "record")
            if not lost_race:
                run.summary.failed[f"{exc.status} {exc.reason}"] += 1
                run.report(pod, "failed", plan, f"{exc}")
                return
            pod = await run.call("GET", path)  # another writer won: re-read, re-plan, never overwrite
            meta = pod["metadata"]
            plan = run.plan(pod)
            if plan.action in ("unchanged", "skip"):
                _count_plan(run, pod, plan)
                return
    run.summary.failed["conflict"] += 1
    run.report(pod, "failed", plan, "kept conflicting with another writer")


def _count_plan(run: _Run, pod: dict[str, Any], plan: ReaccountPlan) -> None:
    if plan.action == "skip":
        run.summary.skipped[plan.code] += 1
        run.report(pod, "skipped", plan)
    else:
        run.summary.outcomes[plan.action] += 1
        shown = plan.action if run.args.apply or plan.action == "unchanged" else f"would-{plan.action}"
        run.report(pod, shown.replace("_", "-"), plan)


async def _main(config: Any, args: argparse.Namespace, out: TextIO) -> Summary:
    from kube.client import ApiClient
    from kube.pages import list_pages
    from kube.ratelimit import TokenBucket

    summary = Summary(applied=args.apply)
    checkpoint = Checkpoint(args.checkpoint)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with ApiClient(config, max_connections=max(4, args.concurrency)) as client:
        bucket = TokenBucket(args.qps, args.burst)
        run = _Run(client, bucket, Policy(revision="", sidecars=()), {}, False, args, out, summary, checkpoint)
        run.policy = await policy_from_args(lambda p: run.call("GET", p), args)
        notes: list[str] = []
        run.namespace_policies = await _namespace_policies(run, notes)
        run.pod_level_resize = (args.pod_level_resize == "true" or
                                (args.pod_level_resize == "auto" and await _pod_level_gate(client)))
        for note in notes:
            print(f"meshfit reaccount: {note}", file=sys.stderr)
        if args.output == "json":
            out.write('{\n  "pods": [\n')
        elif args.output == "yaml":
            out.write("pods:\n")
        else:
            out.write(f"{'POD':<48} {'OUTCOME':<14} WHY\n")
        progress = Progress("reaccount", enabled=True)
        paths = [f"/api/v1/namespaces/{ns}/pods" for ns in args.namespace] or ["/api/v1/pods"]
        params: dict[str, Any] = {"fieldSelector": TERMINAL}
        if args.selector:
            params["labelSelector"] = args.selector
        workers = asyncio.Semaphore(args.concurrency)

        def restarted() -> None:
            summary.list_restarts += 1

        async def handle(pod: dict[str, Any], plan: ReaccountPlan) -> None:
            async with workers:
                await _apply_one(run, pod, plan)

        try:
            for path in paths:
                async for page in list_pages(client, path, params, limit=args.page_size, on_restart=restarted,
                                             fetch=lambda p, q: run.call("GET", p, params=q)):
                    tasks = []
                    for pod in page:
                        (pod.get("metadata") or {}).pop("managedFields", None)  # the bulk of a listed pod
                        if stop.is_set():
                            break
                        summary.pods += 1
                        uid = str((pod.get("metadata") or {}).get("uid", ""))
                        if uid and uid in checkpoint.done:
                            summary.outcomes["checkpointed"] += 1
                            continue
                        annotations = (pod.get("metadata") or {}).get("annotations") or {}
                        if ACCOUNTING not in annotations and STATUS not in annotations:
                            mesh, _ = foreign_mesh(pod)
                            if mesh is not None:
                                summary.skipped[f"other_mesh:{mesh}"] += 1
                                run.report(pod, "skipped", None, f"injected by {mesh}, not meshfit")
                            else:
                                summary.outcomes["not_meshed"] += 1
                            continue
                        plan = run.plan(pod)
                        if plan.action in ("resize", "record_only") and args.apply:
                            tasks.append(asyncio.create_task(handle(pod, plan)))
                        else:
                            _count_plan(run, pod, plan)
                            if plan.action == "unchanged":
                                checkpoint.mark(uid, "unchanged")
                    if tasks:
                        await asyncio.gather(*tasks)  # a page at a time: memory stays flat as the fleet grows
                    progress.advance(len(page))
                    if stop.is_set():
                        break
                if stop.is_set():
                    break
            if run.resized and args.wait_resize > 0 and not stop.is_set():
                await _wait_resizes(run, args.wait_resize)
        finally:
            progress.finish()
            checkpoint.close()
            _finish(run, out, interrupted=stop.is_set())
    return summary


async def _wait_resizes(run: _Run, seconds: float) -> None:
    """Poll each resized pod until its resize conditions clear or ``seconds`` pass; count what remains."""
    deadline = asyncio.get_running_loop().time() + seconds
    pending = list(run.resized)
    while pending:
        still = []
        for ns, name in pending:
            pod = await run.call("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
            conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or ()}
            if "PodResizePending" in conditions:
                reason = conditions["PodResizePending"].get("reason") or "Pending"
                if reason == "Infeasible":
                    run.summary.resize_status["infeasible"] += 1
                    continue
                still.append((ns, name))
            elif "PodResizeInProgress" in conditions:
                still.append((ns, name))
            else:
                run.summary.resize_status["done"] += 1
        pending = still
        if not pending or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(min(1.0, max(0.0, deadline - asyncio.get_running_loop().time())))
    run.summary.resize_status["deferred_or_in_progress"] += len(pending)


def _finish(run: _Run, out: TextIO, *, interrupted: bool) -> None:
    s = run.summary
    if run.args.output == "json":
        data = s.to_json()
        data["interrupted"] = interrupted
        out.write("\n  ],\n  \"summary\": " + json.dumps(data, sort_keys=True) + "\n}\n")
        out.flush()
        return
    if run.args.output == "yaml":
        data = s.to_json()
        data["interrupted"] = interrupted
        out.write(yaml.safe_dump({"summary": data}, sort_keys=True, default_flow_style=False))
        out.flush()
        return
    rows = [("pods listed", s.pods)]
    rows += [(f"{k.replace('_', ' ')}", v) for k, v in sorted(s.outcomes.items())]
    rows += [(f"skipped: {k}", v) for k, v in sorted(s.skipped.items())]
    rows += [(f"failed: {k}", v) for k, v in sorted(s.failed.items())]
    rows += [(f"resize {k.replace('_', ' ')}", v) for k, v in sorted(s.resize_status.items())]
    rows += [("API requests", s.requests), ("API writes", s.writes)]
    if s.list_restarts:
        rows.append(("LIST restarted (expired continue token)", s.list_restarts))
    width = max(len(r[0]) for r in rows)
    out.write("\n" + ("DRY RUN — nothing was changed (pass --apply)\n" if not s.applied else ""))
    if interrupted:
        out.write("INTERRUPTED — run again (with the same --checkpoint) to resume\n")
    for label, value in rows:
        out.write(f"  {label:<{width}}  {value:>8}\n")
    out.flush()
