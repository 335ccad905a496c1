"""The ``SidecarRollout`` reconciler: the I/O around :func:`controller.rollout_plan.plan`.

Each reconcile of one rollout reads, decides, writes — and remembers nothing:

1. the rollout, from a watch of ``sidecarrollouts`` (every replica keeps it warm);
2. its pods, LISTed (paginated) per selected namespace with the pod selector as
   ``labelSelector``; the namespaces' labels when a ``namespaceSelector`` is
   given; zones from the nodes the executor already watches;
3. the decision; when a round of measurements is due, the Prometheus queries,
   and the decision again with their readings;
4. the targets, each a merge patch of ``meshfit.io/target`` conditional on the
   pod's resourceVersion (as ``meshfit upgrade`` writes them), each taking a
   token from the controller's one bucket; a refused write is undone in the
   status, so the next reconcile makes it again;
5. the status, through the ``status`` subresource, conditional on the
   rollout's resourceVersion (a conflict reads it again); Events on the
   rollout; the metrics.

Only the leader reconciles. A crash between 4 and 5 loses nothing: the next
reconcile finds the targets on the pods and adopts them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller.metrics import ControllerMetrics
from controller.prometheus import PrometheusClient
from controller.queue import WorkQueue
from controller.rollout_analysis import Reading, render
from controller.rollout_plan import Decision, MeasureRequest, forget_writes, plan, select, spec_of
from controller.rollout_pods import PodView, view_pod
from controller.rollout_spec import RolloutSpec
from kube.client import ApiClient, ApiError
from kube.events import EventRecorder
from kube.pages import list_pages
from kube.ratelimit import TokenBucket
from policy.annotations import TARGET
from policy.freeze import FreezeWindow

log = logging.getLogger(__name__)

GROUP_VERSION = "meshfit.io/v1alpha1"
KIND = "SidecarRollout"
COLLECTION = "/apis/meshfit.io/v1alpha1/sidecarrollouts"
MERGE = "application/merge-patch+json"


def rollout_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def rollout_path(key: str) -> str:
    namespace, name = key.split("/", 1)
    return f"/apis/meshfit.io/v1alpha1/namespaces/{namespace}/sidecarrollouts/{name}"


class RolloutReconciler:
    """Every SidecarRollout of the cluster, and the worker that moves the leader's along."""

    def __init__(
        self,
        client: ApiClient,
        *,
        bucket: TokenBucket,
        metrics: ControllerMetrics | None = None,
        events: EventRecorder | None = None,
        freeze_windows: Callable[[], Sequence[FreezeWindow]] = lambda: (),
        revision: Callable[[], str] = lambda: "",
        zones: Callable[[], Mapping[str, str]] = lambda: {},
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        leading: Callable[[], bool] = lambda: True,
        prometheus: PrometheusClient | None = None,
        poll: float = 2.0,
        page_size: int = 500,
        workers: int = 2,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.metrics = metrics if metrics is not None else ControllerMetrics()
        self.events = events if events is not None else EventRecorder(client, "meshfit-controller")
        self.freeze_windows = freeze_windows
        self.revision = revision
        self.zones = zones
        self.clock = clock
        self.leading = leading
        self.prometheus = prometheus if prometheus is not None else PrometheusClient()
        self.poll = poll
        self.page_size = page_size
        self.workers = workers
        self.rollouts: dict[str, dict[str, Any]] = {}
        #: (sidecar, pod key) -> (resourceVersion, zone, view) of the pods the last reconcile listed.
        self._views: dict[tuple[str, str], tuple[str, str, PodView | None]] = {}
        self.queue = WorkQueue()
        #: API requests made, by verb (the benchmark's count).
        self.requests: dict[str, int] = {}
        self.metrics.rollout_phases = lambda: [
            (key, str((r.get("status") or {}).get("phase") or "Pending")) for key, r in self.rollouts.items()]

    # -- the watch's handlers ---------------------------------------------------------------------------
    def on_sync(self, items: list[dict[str, Any]], _rv: str = "") -> None:
        self.rollouts = {rollout_key(r): r for r in items}
        for key in self.rollouts:
            self.queue.add(key)

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        key = rollout_key(obj)
        if kind == "DELETED":
            self.rollouts.pop(key, None)
            return
        known = self.rollouts.get(key)
        if known is not None and _rv(known) > _rv(obj):
            return
        self.rollouts[key] = obj
        self.queue.add(key)

    # -- the workers ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        for key in self.rollouts:
            self.queue.add(key)
        tasks = [asyncio.create_task(self._worker(), name=f"rollout worker {i}") for i in range(self.workers)]
        tasks.append(asyncio.create_task(self._follow_policy(stop), name="rollouts: policy changes"))
        try:
            await stop.wait()
        finally:
            self.queue.shut_down()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.prometheus.close()

    async def _follow_policy(self, stop: asyncio.Event, every: float = 1.0) -> None:
        """A new policy (a freeze window added or removed) is looked at by every rollout at once."""
        seen = self.revision()
        while not stop.is_set():
            await asyncio.sleep(every)
            now = self.revision()
            if now != seen:
                seen = now
                for key in self.rollouts:
                    self.queue.add(key)

    async def _worker(self) -> None:
        async def reconciled(key: str) -> None:
            decision = await self.reconcile(key)
            self.queue.forget(key)
            if decision is not None and decision.requeue_after is not None:
                self.queue.add_after(key, decision.requeue_after)

        await self.queue.drain(reconciled, lambda key, exc: self.metrics.failed("rollout", key, exc))

    async def reconcile(self, key: str) -> Decision | None:
        """One step of rollout ``key``: read, decide, write; the decision (``None``: not leading, or gone)."""
        if not self.leading():
            return None
        cr = self.rollouts.get(key)
        if cr is None:
            return None
        spec, _ = spec_of(cr)
        now = self.clock()
        views = await self.pods(spec) if spec is not None else []
        windows = tuple(self.freeze_windows())
        decision = plan(cr, views, now, windows, poll=self.poll)
        if decision.measure is not None and decision.spec is not None:
            readings = await self.measure(decision.spec, decision.measure)
            decision = plan(cr, views, now, windows, readings, poll=self.poll)
        refused = await self._write_targets(decision)
        status = forget_writes(decision.status, refused) if refused else decision.status
        if status != (cr.get("status") or {}):
            cr = await self._write_status(key, cr, status)
        self._note(cr, decision)
        return decision

    # -- reads -----------------------------------------------------------------------------------------
    async def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        self.requests["list"] = self.requests.get("list", 0) + 1
        return await self.client.get_json(path, params)

    async def pods(self, spec: RolloutSpec) -> list[PodView]:
        """The selected pods carrying the sidecar, a page at a time (each page's pods reduced to their views)."""
        selection = spec.selector
        labels: dict[str, dict[str, str]] = {}
        if selection.namespace_selector is not None:
            params = {"labelSelector": selection.namespace_selector.to_query()}
            async for page in list_pages(self.client, "/api/v1/namespaces", params, limit=self.page_size,
                                         fetch=self._get):
                for ns in page:
                    meta = ns.get("metadata") or {}
                    labels[str(meta.get("name"))] = dict(meta.get("labels") or {})
        namespaces = [n for n in (selection.namespaces or sorted(labels))
                      if selection.namespace_selector is None or n in labels]
        params = {"labelSelector": selection.pod_selector.to_query()} if selection.pod_selector is not None else {}
        zones = self.zones()
        views: list[PodView] = []
        seen: dict[tuple[str, str], tuple[str, str, PodView | None]] = {}
        for namespace in namespaces:
            async for page in list_pages(self.client, f"/api/v1/namespaces/{namespace}/pods", params,
                                         limit=self.page_size, fetch=self._get):
                for pod in page:
                    view = self._view(pod, spec.sidecar, zones, seen)
                    if view is not None:
                        views.append(view)
        self._views = seen
        return select(views, selection, labels)

    def _view(self, pod: dict[str, Any], sidecar: str, zones: Mapping[str, str],
              seen: dict[tuple[str, str], tuple[str, str, PodView | None]]) -> PodView | None:
        """The pod's view, made again only when the pod changed (its resourceVersion) or its node's zone did.

        Between two reconciles of a rollout most of its pods are untouched; reading
        their records again would be most of a reconcile's CPU at 10,000 pods.
        """
        meta = pod.get("metadata") or {}
        key = (sidecar, f"{meta.get('namespace')}/{meta.get('name')}")
        rv = str(meta.get("resourceVersion") or "")
        zone = zones.get(str((pod.get("spec") or {}).get("nodeName") or ""), "")
        cached = self._views.get(key)
        if cached is not None and rv and cached[0] == rv and cached[1] == zone:
            view = cached[2]
        else:
            view = view_pod(pod, sidecar, zones)
        seen[key] = (rv, zone, view)
        return view

    async def measure(self, spec: RolloutSpec, request: MeasureRequest) -> dict[str, tuple[Reading, Reading | None]]:
        """Each metric's batch and baseline readings, the queries run at once."""
        prometheus = spec.analysis.prometheus
        assert prometheus is not None
        batch = [p.name for p in request.batch_pods]
        baseline = [p.name for p in request.baseline_pods]
        out: dict[str, tuple[Reading, Reading | None]] = {}

        async def one(query: str, lowest: bool) -> Reading:
            reading = await self.prometheus.query(prometheus.address, query, timeout=prometheus.timeout,
                                                  lowest=lowest)
            self.metrics.rollout_queries.inc("error" if reading.error else "ok")
            return reading

        for metric in prometheus.metrics:
            lowest = metric.min is not None
            if not batch:
                out[metric.name] = (Reading(None), None)
                continue
            batch_q = render(metric.query, request.namespaces, batch, baseline)
            if metric.relative and baseline:
                base_q = render(metric.query, request.namespaces, baseline, baseline)
                got = await asyncio.gather(one(batch_q, lowest), one(base_q, lowest))
                out[metric.name] = (got[0], got[1])
            else:
                out[metric.name] = (await one(batch_q, lowest), None)
        return out

    # -- writes ----------------------------------------------------------------------------------------
    async def _write_targets(self, decision: Decision) -> set[str]:
        refused: set[str] = set()
        for write in decision.writes:
            kind = "rollback" if write.rollback else "upgrade"
            await self.bucket.take()
            self.requests["patch"] = self.requests.get("patch", 0) + 1
            body = {"metadata": {"resourceVersion": write.resource_version, "annotations": {TARGET: write.target}}}
            try:
                await self.client.request("PATCH", f"/api/v1/namespaces/{write.namespace}/pods/{write.name}", body,
                                          content_type=MERGE)
            except ApiError as exc:
                refused.add(write.pod)
                self.metrics.rollout_writes.inc(kind, "conflict" if exc.status == 409 else "error")
                if exc.status != 409:
                    log.warning("rollout target for %s: %s", write.pod, exc)
                continue
            self.metrics.rollout_writes.inc(kind, "written")
        return refused

    async def _write_status(self, key: str, cr: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        meta = cr.get("metadata") or {}
        body = {"apiVersion": GROUP_VERSION, "kind": KIND,
                "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                             "resourceVersion": meta.get("resourceVersion")},
                "spec": cr.get("spec") or {}, "status": status}
        self.requests["status"] = self.requests.get("status", 0) + 1
        answer = await self.client.request("PUT", rollout_path(key) + "/status", body)
        if answer.get("metadata"):
            known = self.rollouts.get(key)
            if known is None or _rv(answer) >= _rv(known):
                self.rollouts[key] = answer
            return answer
        return cr

    def _note(self, cr: Mapping[str, Any], decision: Decision) -> None:
        if decision.aborted is not None:
            self.metrics.rollouts_aborted.inc(decision.aborted)
        for verdict, seconds in decision.ended_batches:
            self.metrics.rollout_batches.inc(verdict)
            self.metrics.rollout_batch_duration.observe(seconds, verdict)
        subject = {"apiVersion": GROUP_VERSION, "kind": KIND, **cr}
        for type_, reason, message in decision.events:
            log.info("rollout %s: %s: %s", rollout_key(cr), reason, message)
            task = asyncio.get_running_loop().create_task(
                self.events.record(subject, reason=reason, message=message, type_=type_))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)


def _rv(obj: Mapping[str, Any]) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
