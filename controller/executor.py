"""The controller's I/O: the watched pods and nodes, the workers, and the writes each step makes.

Every decision is :func:`controller.plan.plan`'s; this module only moves
bytes, and keeps three promises about them:

* **conditional writes**: every patch of a pod carries the resourceVersion the
  decision read, so a pod changed meanwhile by anyone (a user, another
  controller, the kubelet's status) answers 409 and is read again and decided
  afresh; nothing another writer did is ever overwritten;
* **one operation per pod at a time**: the work queue hands a pod to one worker
  at a time, and the record of an operation is written in the same patch as
  the change it makes;
* **bounded pressure**: at most ``workers`` reconciles at once, every write
  takes a token from one bucket (``qps``/``burst``), a failing pod backs off
  exponentially on its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from controller.metrics import ControllerMetrics
from controller.plan import Step, plan
from controller.queue import WorkQueue
from controller.workloads import restart_workload
from kube.client import ApiClient, ApiError
from kube.events import EventRecorder
from kube.ratelimit import TokenBucket
from policy.annotations import OPERATION, RECREATED_FOR, TARGET, VERSION_PIN
from policy.model import Policy
from policy.targets import parse_operation

log = logging.getLogger(__name__)

Pod = dict[str, Any]
SMP = "application/strategic-merge-patch+json"


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def keep_targeted(pod: dict[str, Any]) -> dict[str, Any] | str:
    """The pod watch's transform: a pod with a target, whole but for managedFields; others only by key.

    At 250,000 pods only the few in an operation are held; the rest cost a string.
    """
    meta = pod.get("metadata") or {}
    if TARGET not in (meta.get("annotations") or {}):
        return pod_key(pod)
    meta.pop("managedFields", None)
    return pod


def _rv(pod: Mapping[str, Any]) -> int:
    try:
        return int((pod.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Executor:
    """Pods with targets, their nodes' kubelet versions, and the workers that carry the targets out."""

    def __init__(
        self,
        client: ApiClient,
        policy: Callable[[], Policy],
        *,
        workers: int = 4,
        qps: float = 20.0,
        burst: int = 40,
        metrics: ControllerMetrics | None = None,
        events: EventRecorder | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.policy = policy
        self.workers = workers
        self.bucket = TokenBucket(qps, burst)
        self.metrics = metrics if metrics is not None else ControllerMetrics()
        self.events = events if events is not None else EventRecorder(client, "meshfit-controller")
        self.clock = clock
        self.leading = leading
        self.queue = WorkQueue()
        self.pods: dict[str, Pod] = {}
        self.kubelets: dict[str, str] = {}
        #: Node name -> zone (the policy's ``versions.zoneLabel``): what a SidecarRollout spreads its batches over.
        self.zones: dict[str, str] = {}
        self.busy = 0
        self._event_tasks: set[asyncio.Task[bool]] = set()
        self.metrics.queue_depth = lambda: len(self.queue)
        self.metrics.in_flight = lambda: self.busy
        self.metrics.targeted = lambda: len(self.pods)

    # -- the watches' handlers ----------------------------------------------------------------------
    def on_pod_sync(self, items: list[Pod | str], _rv: str = "") -> None:
        self.pods = {pod_key(p): p for p in items if not isinstance(p, str)}
        for key in self.pods:
            self.queue.add(key)

    def on_pod_event(self, kind: str, pod: Pod | str) -> None:
        if isinstance(pod, str):
            self.pods.pop(pod, None)
            return
        key = pod_key(pod)
        if kind == "DELETED":
            self.pods.pop(key, None)
            return
        known = self.pods.get(key)
        if known is not None and _rv(known) > _rv(pod):
            return  # our own write's answer is newer than this event
        self.pods[key] = pod
        self.queue.add(key)

    def on_node_sync(self, items: list[dict[str, Any]], _rv: str = "") -> None:
        self.kubelets = {str((n.get("metadata") or {}).get("name")): _kubelet(n) for n in items}
        label = self.policy().versions.zone_label
        self.zones = {str((n.get("metadata") or {}).get("name")): zone for n in items
                      if (zone := ((n.get("metadata") or {}).get("labels") or {}).get(label))}

    def on_node_event(self, kind: str, node: dict[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name"))
        if kind == "DELETED":
            self.kubelets.pop(name, None)
            self.zones.pop(name, None)
            return
        zone = ((node.get("metadata") or {}).get("labels") or {}).get(self.policy().versions.zone_label)
        if zone:
            self.zones[name] = str(zone)
        else:
            self.zones.pop(name, None)
        version = _kubelet(node)
        if self.kubelets.get(name) != version:
            self.kubelets[name] = version
            for key, pod in self.pods.items():
                if (pod.get("spec") or {}).get("nodeName") == name:
                    self.queue.add(key)

    # -- the workers -----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run ``workers`` workers until ``stop`` is set."""
        for key in self.pods:
            self.queue.add(key)
        tasks = [asyncio.create_task(self._worker(), name=f"controller worker {i}") for i in range(self.workers)]
        try:
            await stop.wait()
        finally:
            self.queue.shut_down()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with _Suppress():
                    await task

    async def _worker(self) -> None:
        async def counted(key: str) -> None:
            self.busy += 1
            try:
                await self.reconcile(key)
            finally:
                self.busy -= 1

        await self.queue.drain(counted, lambda key, exc: self.metrics.failed("pod", key, exc))

    async def reconcile(self, key: str) -> Step | None:
        """Decide and carry out the next step for one pod; the step taken (``None`` when the pod is gone)."""
        if not self.leading():
            return None
        pod = self.pods.get(key)
        if pod is None:
            return None
        node = (pod.get("spec") or {}).get("nodeName")
        policy = self.policy()
        step = plan(pod, policy, self.kubelets.get(node) if node else None, self.clock())
        if step.kind == "none":
            self.queue.forget(key)
            if step.requeue_after is not None:
                self.queue.add_after(key, step.requeue_after)
            return step
        if step.patch is not None:
            pod = await self._patch_pod(pod, step.patch)
        if step.kind == "resize" and step.resize is not None:
            pod = await self._resize(pod, step)
        elif step.kind == "recreate" and step.owner is not None:
            await self._recreate(pod, step)
        self._note(pod, step)
        self.queue.forget(key)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)
        return step

    # -- the writes ------------------------------------------------------------------------------
    def _path(self, pod: Mapping[str, Any]) -> str:
        meta = pod.get("metadata") or {}
        return f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}"

    def _remember(self, pod: Pod) -> Pod:
        if isinstance(pod, dict) and pod.get("metadata"):
            current = self.pods.get(pod_key(pod))
            if current is None or _rv(pod) >= _rv(current):
                pod.get("metadata", {}).pop("managedFields", None)
                self.pods[pod_key(pod)] = pod
        return pod

    async def _patch_pod(self, pod: Pod, body: dict[str, Any]) -> Pod:
        await self.bucket.take()
        answer = await self.client.request("PATCH", self._path(pod), body, content_type=SMP)
        return self._remember(answer)

    async def _resize(self, pod: Pod, step: Step) -> Pod:
        await self.bucket.take()
        try:
            answer = await self.client.request("PATCH", self._path(pod) + "/resize", step.resize, content_type=SMP)
        except ApiError as exc:
            if exc.status in (400, 403, 422):
                # The apiserver refuses the resize itself (validation, PodResizeValidator): the operation fails.
                await self._fail_operation(pod, f"the apiserver refuses the resize: {exc.message or exc}")
                return pod
            raise
        return self._remember(answer)

    async def _fail_operation(self, pod: Pod, reason: str) -> None:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        try:
            op = parse_operation(annotations.get(OPERATION))
        except ValueError:
            return
        done = op.finish("Failed", reason, self.clock().strftime("%Y-%m-%dT%H:%M:%SZ"))
        body = {"metadata": {"resourceVersion": (pod.get("metadata") or {}).get("resourceVersion"),
                             "annotations": {OPERATION: done.to_json()}}}
        pod = await self._patch_pod(pod, body)
        self.metrics.operations.inc(op.action, "failed")
        await self.events.record(pod, reason="SidecarOperationFailed", message=f"{op.sidecar}: {reason}")

    async def _recreate(self, pod: Pod, step: Step) -> None:
        """Restart the owning workload's template with the versions pinned, once per pin."""
        assert step.owner is not None
        namespace = str((pod.get("metadata") or {}).get("namespace"))
        await self.bucket.take()
        done = await restart_workload(self.client, namespace, step.owner, RECREATED_FOR, step.pin,
                                      {VERSION_PIN: step.pin}, self.clock())
        if done.outcome == "refused":
            await self._fail_operation(pod, done.reason)
        elif done.outcome == "restarted":
            log.info("restarted %s in %s with %s", done.workload, namespace, step.pin)

    def _note(self, pod: Pod, step: Step) -> None:
        op = step.operation
        if op is not None and op.in_progress and step.outcome is None and step.event is not None \
                and step.event[1] == "SidecarOperationStarted":
            self.metrics.started.inc(op.action)
        if step.outcome is not None:
            self.metrics.operations.inc(*step.outcome)
            if step.duration is not None:
                self.metrics.duration.observe(step.duration, step.outcome[0])
        if step.event is not None:
            type_, reason, message = step.event
            log.info("%s: %s", pod_key(pod), message)
            subject = {"apiVersion": "v1", "kind": "Pod", **pod}
            task = asyncio.get_running_loop().create_task(
                self.events.record(subject, reason=reason, message=message, type_=type_))
            self._event_tasks.add(task)
            task.add_done_callback(self._event_tasks.discard)


def _kubelet(node: Mapping[str, Any]) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")


class _Suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True
