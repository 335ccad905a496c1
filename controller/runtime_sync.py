"""The runtime parameters' ConfigMaps, kept equal to what the policy and the degradations say.

The leader keeps one ConfigMap per group of pods (namespace, app, zone;
:mod:`policy.runtime`) that the webhook made mount one. It knows the groups from
a watch of the pods carrying the ``meshfit.io/runtime`` label, the ConfigMaps
from a watch of those carrying it, and the degradations from a watch of their
store; every ``interval`` and on any change to those or to the policy, it
resolves each group's values and writes the ConfigMaps that differ (conditional
on the resourceVersion read, so a concurrent edit is never overwritten: it is
read again and the next pass decides). Expired degradations are removed from the
store with an audit entry and an Event — the values revert in the same pass.

What it never does: restart a pod. A pod created before the feature mounts
nothing; :mod:`controller.inspector` reports it, and only its workload's restart
adds the volume.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kube.client import ApiClient, ApiError
from kube.events import EventRecorder
from kube.ratelimit import TokenBucket
from policy.degradations import Degradation, Store, audit_line, check, expired, read_store, write_store
from policy.model import NamespacePolicy, Policy
from policy.runtime import (
    GROUP_ANNOTATION,
    POD_ANNOTATION,
    Group,
    Setting,
    configmap,
    group_from_annotation,
    resolve,
    text_of,
    window_values,
)
from serving.exposition import Registry, Sample
from serving.polling import Periodic

log = logging.getLogger(__name__)

#: A labelled ConfigMap no pod has mounted for this long is deleted (its app is gone).
STALE_AFTER = 600.0


def pod_group(pod: Mapping[str, Any]) -> tuple[str, Group] | None:
    """A watched pod → ``(uid, group)`` from the record the webhook left; ``None`` for anything else."""
    meta = pod.get("metadata") or {}
    group = group_from_annotation(str(meta.get("namespace") or ""), (meta.get("annotations") or {}).get(POD_ANNOTATION))
    uid = meta.get("uid")
    return (str(uid), group) if group is not None and uid else None


@dataclass
class SyncRun:
    """What one pass did, for the log, the metrics and the tests."""

    groups: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: int = 0
    expired: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    active: list[Degradation] = field(default_factory=list)


class RuntimeSync:
    """The reconciler of the runtime ConfigMaps; watches feed it, :meth:`run` acts while leading."""

    def __init__(self, client: ApiClient, policy: Callable[[], Policy],
                 namespace_policy: Callable[[str], NamespacePolicy | None], store: tuple[str, str], registry: Registry,
                 *, interval: float = 10.0, events: EventRecorder | None = None, bucket: TokenBucket | None = None,
                 leading: Callable[[], bool] = lambda: True,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.client = client
        self.policy = policy
        self.namespace_policy = namespace_policy
        self.store_ref = store
        self.events = events if events is not None else EventRecorder(client, "meshfit-controller")
        self.bucket = bucket if bucket is not None else TokenBucket(10.0, 20)
        self.leading = leading
        #: Whether every watch that feeds it has listed once (a pass on half the facts would flap values).
        self.ready: Callable[[], bool] = lambda: True
        self.clock = clock
        self.loop = Periodic("runtime parameters", interval)
        #: pod uid → its group; ConfigMap (namespace, name) → the object; the store's object.
        self.pods: dict[str, Group] = {}
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.store_object: dict[str, Any] | None = None
        self._last_good_store = Store()
        self._unused_since: dict[tuple[str, str], float] = {}
        self.writes: Counter[tuple[str, str]] = Counter()
        self.last: SyncRun | None = None
        self.last_finished: float | None = None
        p = "meshfit_runtime_"
        registry.callback(p + "degradations_active", "Degradations in force, by parameter and scope level.",
                          self._active, ("parameter", "scope"))
        registry.callback(p + "degradations_invalid", "Records of the degradations' store that are skipped "
                          "(broken, or refused by the policy's declarations).",
                          lambda: [((), len(self.last.invalid))] if self.last else [])
        registry.callback(p + "configmaps", "Groups of pods (namespace, app, zone) whose runtime ConfigMap is kept.",
                          lambda: [((), self.last.groups)] if self.last else [])
        registry.callback(p + "writes_total", "Writes of runtime ConfigMaps and of the store, by verb and result.",
                          lambda: [(k, v) for k, v in sorted(self.writes.items())], ("verb", "result"), kind="counter")
        registry.callback(p + "last_sync_timestamp_seconds", "When the runtime ConfigMaps were last brought in line.",
                          lambda: [((), self.last_finished)] if self.last_finished is not None else [])

    def _active(self) -> Iterable[Sample]:
        counts: Counter[tuple[str, str]] = Counter((d.parameter, d.level) for d in (self.last.active if self.last else ()))
        return [((parameter, level), n) for (parameter, level), n in sorted(counts.items())]

    # -- watches ----------------------------------------------------------------
    def on_pod_sync(self, pods: list[Any], _rv: str = "") -> None:
        """A LIST of the labelled pods, each made ``(uid, group)`` (or ``None``) by :func:`pod_group`."""
        self.pods = dict(p for p in pods if p is not None)
        self.loop.wake()

    def on_pod_event(self, kind: str, found: Any) -> None:
        if found is None:
            return
        uid, group = found
        if kind == "DELETED":
            self.pods.pop(uid, None)
        elif self.pods.get(uid) != group:
            self.pods[uid] = group
            self.loop.wake()

    def on_configmap_sync(self, items: list[Any], _rv: str = "") -> None:
        self.configmaps = {_key(c): c for c in items}
        self.loop.wake()

    def on_configmap_event(self, kind: str, item: Any) -> None:
        if kind == "DELETED":
            self.configmaps.pop(_key(item), None)
            self.loop.wake()  # deleted by hand while pods mount it: written again
        else:
            self.configmaps[_key(item)] = item

    def on_store_sync(self, items: list[Any], _rv: str = "") -> None:
        self.store_object = items[0] if items else None
        self.loop.wake()

    def on_store_event(self, kind: str, item: Any) -> None:
        self.store_object = None if kind == "DELETED" else item
        self.loop.wake()

    def wake(self) -> None:
        self.loop.wake()

    async def run(self, stop: asyncio.Event) -> None:
        self.loop.leading = lambda: self.leading()
        await self.loop.run(self.run_once, stop, (ApiError, OSError, TimeoutError))

    # -- one pass ---------------------------------------------------------------
    def degradations(self, policy: Policy, run: SyncRun) -> list[Degradation]:
        """The store's records that the policy accepts; a broken store keeps the last good records."""
        store = read_store((self.store_object or {}).get("data"))
        if store.unreadable:
            store = Store(self._last_good_store.records, store.broken, store.audit, unreadable=True)
        else:
            self._last_good_store = store
        run.invalid.extend(store.broken)
        accepted: list[Degradation] = []
        for d in store.records:
            checked, why = check(policy.runtime, d)
            if checked is None:
                run.invalid.append(f"{d.id}: {why}")
            else:
                accepted.append(checked)
        return accepted

    async def run_once(self) -> SyncRun:
        run = SyncRun()
        policy = self.policy()
        now = self.clock()
        if not policy.runtime.parameters or not self.ready():
            self.last, self.last_finished = run, time.time()
            return run
        records = self.degradations(policy, run)
        gone = expired(records, now)
        if gone:
            await self._remove_expired(gone, now, run)
        live = [d for d in records if d not in gone]
        run.active = [d for d in live if d.active(now)]
        for line in run.invalid:
            if self.store_object is not None:
                await self.events.record(self.store_object, reason="DegradationInvalid", message=f"skipped: {line}")
        windows = window_values(policy.fleet.freeze_windows, now)
        groups = set(self.pods.values())
        run.groups = len(groups)
        for group in sorted(groups, key=lambda g: (g.namespace, g.configmap)):
            ns_policy = self.namespace_policy(group.namespace)
            settings = resolve(policy.runtime, group, now=now, namespace_values=ns_policy.runtime if ns_policy else None,
                               degradations=live, windows=windows)
            await self._keep(group, settings, run)
        await self._delete_unused({(g.namespace, g.configmap) for g in groups}, run)
        self.last, self.last_finished = run, time.time()
        if run.created or run.updated or run.deleted or run.expired:
            log.info("runtime parameters: %d groups, %d created, %d updated, %d deleted, %d degradations expired",
                     run.groups, len(run.created), len(run.updated), len(run.deleted), len(run.expired))
        return run

    async def _keep(self, group: Group, settings: Mapping[str, Mapping[str, Setting]], run: SyncRun) -> None:
        desired = configmap(group, settings)
        key = (group.namespace, group.configmap)
        current = self.configmaps.get(key)
        path = f"/api/v1/namespaces/{group.namespace}/configmaps"
        if current is None:
            await self.bucket.take()
            try:
                created = await self.client.post_json(path, desired)
            except ApiError as exc:
                self._count("create", exc)
                if exc.status != 409:
                    raise
                return  # someone was first: the watch brings it, the next pass compares
            self.writes["create", "ok"] += 1
            self.configmaps[key] = created
            run.created.append(f"{group.namespace}/{group.configmap}")
            await self.events.record(created, reason="RuntimeParametersChanged", type_="Normal",
                                     message=f"runtime parameters for {group.describe()}: {_summary(settings)}")
            return
        meta = current.get("metadata") or {}
        owner = group_from_annotation(group.namespace, (meta.get("annotations") or {}).get(GROUP_ANNOTATION))
        if owner is not None and owner != group:
            run.invalid.append(f"{group.namespace}/{group.configmap}: holds {owner.describe()}, not {group.describe()}")
            return
        want_meta = desired["metadata"]
        assert isinstance(want_meta, dict)
        same = (current.get("data") or {}) == desired["data"] and all(
            (meta.get("annotations") or {}).get(k) == v for k, v in want_meta["annotations"].items()) and all(
            (meta.get("labels") or {}).get(k) == v for k, v in want_meta["labels"].items())
        if same:
            return
        body = dict(current)
        body["metadata"] = {**meta, "labels": {**(meta.get("labels") or {}), **want_meta["labels"]},
                            "annotations": {**(meta.get("annotations") or {}), **want_meta["annotations"]}}
        body["data"] = desired["data"]
        await self.bucket.take()
        try:
            updated = await self.client.request("PUT", f"{path}/{group.configmap}", body)
        except ApiError as exc:
            self._count("update", exc)
            if exc.status == 404:  # deleted meanwhile: created again in the next pass
                self.configmaps.pop(key, None)
            if exc.status in (404, 409):
                run.conflicts += 1
                return
            raise
        self.writes["update", "ok"] += 1
        self.configmaps[key] = updated
        run.updated.append(f"{group.namespace}/{group.configmap}")
        changes = _changes(current.get("data") or {}, desired["data"])  # type: ignore[arg-type]
        await self.events.record(updated, reason="RuntimeParametersChanged", type_="Normal",
                                 message=f"{group.describe()}: {changes}")

    async def _delete_unused(self, used: set[tuple[str, str]], run: SyncRun) -> None:
        now = time.monotonic()
        for key, item in list(self.configmaps.items()):
            if key in used:
                self._unused_since.pop(key, None)
                continue
            since = self._unused_since.setdefault(key, now)
            if now - since < STALE_AFTER:
                continue
            namespace, name = key
            rv = (item.get("metadata") or {}).get("resourceVersion")
            await self.bucket.take()
            try:
                await self.client.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/{name}",
                                          {"preconditions": {"resourceVersion": rv}} if rv else None)
            except ApiError as exc:
                self._count("delete", exc)
                if exc.status not in (404, 409):
                    raise
                continue
            self.writes["delete", "ok"] += 1
            self.configmaps.pop(key, None)
            self._unused_since.pop(key, None)
            run.deleted.append(f"{namespace}/{name}")

    async def _remove_expired(self, gone: tuple[Degradation, ...], now: dt.datetime, run: SyncRun) -> None:
        """Take expired records out of the store (read fresh, conditional write), each with an audit line and an Event."""
        namespace, name = self.store_ref
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        try:
            fresh = await self.client.get_json(path)
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        store = read_store(fresh.get("data"))
        if store.broken:  # never lose a hand-edited record the reader could not parse: leave the store to its owner
            run.invalid.append(f"{namespace}/{name}: has unreadable records; expired ones are ignored, not removed")
            return
        ids = {d.id for d in gone}
        removed = [d for d in store.records if d.id in ids and now >= d.until]
        if not removed:
            return
        audit = [*store.audit, *(audit_line("expired", d, by="meshfit-controller", at=now) for d in removed)]
        kept = [d for d in store.records if d not in removed]
        body = {**fresh, "data": {**(fresh.get("data") or {}), **write_store(kept, audit)}}
        await self.bucket.take()
        try:
            written = await self.client.request("PUT", path, body)
        except ApiError as exc:
            self._count("update", exc)
            if exc.status in (404, 409):
                run.conflicts += 1
                return
            raise
        self.writes["update", "ok"] += 1
        self.store_object = written
        for d in removed:
            run.expired.append(d.id)
            await self.events.record(written, reason="DegradationExpired", type_="Normal",
                                     message=f"{d.id}: {d.parameter}={text_of(d.value)} for {d.scope()} expired at "
                                             f"{d.until.isoformat()} (set by {d.by}: {d.reason}); the value reverts")

    def _count(self, verb: str, exc: ApiError) -> None:
        self.writes[verb, "conflict" if exc.status == 409 else "error"] += 1


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    meta = item.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")



def _summary(settings: Mapping[str, Mapping[str, Setting]]) -> str:
    return "; ".join(f"{sidecar}: " + ", ".join(f"{k}={text_of(s.value)} ({s.source})" for k, s in params.items())
                     for sidecar, params in settings.items())


def _json(text: object) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if isinstance(text, str) else {}
    except orjson.JSONDecodeError:  # edited by hand: shown as all new
        return {}
    return value if isinstance(value, dict) else {}


def _changes(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    out: list[str] = []
    for key in sorted(set(before) | set(after)):
        old, new = _json(before.get(key)), _json(after.get(key))
        sidecar = key.removesuffix(".json")
        for name in [*new, *(k for k in old if k not in new)]:
            if old.get(name) != new.get(name):
                out.append(f"{sidecar}.{name}: {text_of(old.get(name, '-'))} → {text_of(new.get(name, '-'))}")
    return ", ".join(out) or "labels or annotations"
