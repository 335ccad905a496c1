"""ListWatch against recorded apiserver traffic: pagination, resume, 410, bookmarks, junk."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from recorded_apiserver import RecordedApiServer, recording

from kube.client import ApiClient
from kube.config import ClusterConfig
from kube.watch import Backoff, ListWatch

PATH = "/api/v1/namespaces/meshfit/configmaps"
FAST = Backoff(initial=0.01, maximum=0.05)


class Store:
    """What a consumer keeps: objects by namespace/name, replaced on sync, patched on events."""

    def __init__(self, *, async_handlers: bool = False) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.syncs: list[str] = []
        self.events: list[tuple[str, str]] = []
        if async_handlers:
            self.on_sync, self.on_event = self._async_sync, self._async_event  # type: ignore[method-assign]

    @staticmethod
    def key(obj: dict[str, Any]) -> str:
        return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"

    def on_sync(self, items: list[dict[str, Any]], resource_version: str) -> None:
        self.objects = {self.key(item): item for item in items}
        self.syncs.append(resource_version)

    def on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((kind, obj["metadata"]["name"]))
        if kind == "DELETED":
            self.objects.pop(self.key(obj), None)
        else:
            self.objects[self.key(obj)] = obj

    async def _async_sync(self, items: list[dict[str, Any]], resource_version: str) -> None:
        await asyncio.sleep(0)
        Store.on_sync(self, items, resource_version)

    async def _async_event(self, kind: str, obj: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        Store.on_event(self, kind, obj)

    def versions(self) -> dict[str, str]:
        return {key.split("/")[1]: obj["data"]["policy.yaml"].strip() for key, obj in self.objects.items()}


async def run_until(watch: ListWatch, api: RecordedApiServer, condition, timeout: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        await api.wait_for(condition, timeout)
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)


@pytest.mark.parametrize("async_handlers", [False, True])
async def test_recorded_session_with_disconnect_410s_bookmarks_and_junk(
    api: RecordedApiServer, async_handlers: bool, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="kube.watch")
    api.lists.extend(
        [
            api.json(recording("list-page-1.json")),
            api.json(recording("list-page-2.json")),
            api.json(recording("relist-1.json")),
            api.json(recording("relist-2.json")),
        ]
    )
    api.watches.extend(
        [
            # Events, junk, a bookmark, then the connection drops mid-line.
            api.stream(recording("watch-1.ndjson"), tail=recording("watch-1.truncated"), then="abort", chunk=97),
            # Resumed from 1006: the server has compacted past it.
            api.stream(recording("watch-2.ndjson")),
            # After the relist, the watch request itself answers 410.
            api.json(recording("status-410.json"), status=410),
            # After the second relist, a transient 503.
            api.json(b'{"kind":"Status","status":"Failure","message":"etcd leader changed","code":503}', status=503),
            # Then an event and a bookmark, and the server's timeoutSeconds ends the stream.
            api.stream(recording("watch-5.ndjson")),
        ]
    )
    store = Store(async_handlers=async_handlers)
    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(
            client,
            PATH,
            on_sync=store.on_sync,
            on_event=store.on_event,
            label_selector="meshfit.io/policy=true",
            page_size=2,
            timeout_seconds=60,
            backoff=FAST,
        )
        # Six watches: the sixth hangs open, waiting for news.
        await run_until(watch, api, lambda: len(api.queries("watch")) >= 6)

    lists, watches = api.queries("list"), api.queries("watch")
    # The first LIST was paginated; relists start from scratch with no continue token.
    assert [q.get("continue") for q in lists] == [
        None,
        orjson.loads(recording("list-page-1.json"))["metadata"]["continue"],
        None,
        None,
    ]
    assert all(q["limit"] == "2" and q["labelSelector"] == "meshfit.io/policy=true" for q in lists)
    assert all("resourceVersion" not in q for q in lists)
    # Every watch resumed from the last resourceVersion seen: the list's, then the
    # last event's before the drop (1006, not the truncated 1007), then the bookmark's.
    assert [q["resourceVersion"] for q in watches] == ["1000", "1006", "1500", "1700", "1700", "1750"]
    for q in watches:
        assert q["allowWatchBookmarks"] == "true" and q["watch"] == "1"
        assert q["labelSelector"] == "meshfit.io/policy=true"
        assert 60 <= int(q["timeoutSeconds"]) < 120

    assert store.syncs == ["1000", "1500", "1700"]
    assert store.versions() == {
        "mesh-a": "version: 2",
        "mesh-c": "version: 9",
        "mesh-d": "version: 1",
        "mesh-e": "version: 1",
        "mesh-f": "version: 1",
        "mesh-g": "version: 1",
    }
    # LIST items get the kind/apiVersion that watch objects carry.
    assert store.objects["meshfit/mesh-f"]["kind"] == "ConfigMap"
    assert store.objects["meshfit/mesh-f"]["apiVersion"] == "v1"
    assert store.events == [("ADDED", "mesh-d"), ("MODIFIED", "mesh-a"), ("DELETED", "mesh-b"), ("ADDED", "mesh-g")]

    stats = watch.stats
    assert stats.lists == 3
    assert stats.relists == 2
    assert stats.restarts == 3  # after the drop, after the 503, after the clean end
    assert stats.errors == 2  # the drop and the 503
    assert stats.events == 4
    assert stats.events_by_type == {"ADDED": 2, "MODIFIED": 1, "DELETED": 1}
    assert stats.bookmarks == 2
    assert stats.malformed == 2
    assert stats.handler_errors == 0
    assert watch.resource_version == "1750"
    assert watch.has_synced
    assert "skipping malformed watch line" in caplog.text


async def test_expired_continue_token_restarts_the_list(api: RecordedApiServer) -> None:
    expired = (
        b'{"kind":"Status","status":"Failure","reason":"Expired","code":410,'
        b'"message":"The provided continue parameter is too old"}'
    )
    api.lists.extend(
        [
            api.json(recording("list-page-1.json")),
            api.json(expired, status=410),
            api.json(recording("list-page-1.json")),
            api.json(recording("list-page-2.json")),
        ]
    )
    store = Store()
    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=store.on_sync, on_event=store.on_event, page_size=2, backoff=FAST)
        await run_until(watch, api, lambda: len(api.queries("watch")) >= 1)
    assert [("continue" in q) for q in api.queries("list")] == [False, True, False, True]
    assert store.syncs == ["1000"]
    assert sorted(store.versions()) == ["mesh-a", "mesh-b", "mesh-c"]
    assert watch.stats.lists == 1


async def test_handler_errors_are_counted_and_the_stream_goes_on(api: RecordedApiServer) -> None:
    api.lists.append(api.json(recording("list-page-2.json")))
    api.watches.append(api.stream(recording("watch-1.ndjson"), then="hang"))
    seen: list[str] = []

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == "mesh-d":
            raise RuntimeError("boom")
        seen.append(obj["metadata"]["name"])

    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=lambda items, rv: None, on_event=on_event, backoff=FAST)
        await run_until(watch, api, lambda: len(seen) >= 2)
    assert seen == ["mesh-a", "mesh-b"]
    assert watch.stats.handler_errors == 1
    assert watch.stats.events == 3
    assert watch.resource_version == "1006"
    assert len(api.queries("watch")) == 1


async def test_giant_objects_and_byte_by_byte_delivery(api: RecordedApiServer) -> None:
    """Events far larger than aiohttp's line limit, and lines split across many tiny writes."""
    giant = orjson.loads(recording("list-page-2.json"))["items"][0]
    giant["kind"], giant["apiVersion"] = "ConfigMap", "v1"
    giant["metadata"]["resourceVersion"] = "1001"
    giant["data"]["blob"] = "x" * (3 * 1024 * 1024)
    body = orjson.dumps({"type": "MODIFIED", "object": giant}) + b"\n"
    small = recording("watch-5.ndjson")
    api.lists.append(api.json(recording("list-page-2.json")))
    api.watches.append(api.stream(body, chunk=65536))
    api.watches.append(api.stream(small, chunk=7))
    store = Store()
    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=store.on_sync, on_event=store.on_event, backoff=FAST)
        await run_until(watch, api, lambda: len(api.queries("watch")) >= 3)
    assert len(store.objects["meshfit/mesh-c"]["data"]["blob"]) == 3 * 1024 * 1024
    assert "meshfit/mesh-g" in store.objects
    assert watch.stats.malformed == 0
    assert [q["resourceVersion"] for q in api.queries("watch")] == ["1000", "1001", "1750"]


async def test_watch_error_event_other_than_410_resumes(api: RecordedApiServer) -> None:
    error = (
        b'{"type":"ERROR","object":{"kind":"Status","status":"Failure",'
        b'"message":"internal error","reason":"InternalError","code":500}}\n'
    )
    api.lists.append(api.json(recording("list-page-2.json")))
    api.watches.append(api.stream(recording("watch-5.ndjson") + error))
    store = Store()
    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=store.on_sync, on_event=store.on_event, backoff=FAST)
        await run_until(watch, api, lambda: len(api.queries("watch")) >= 2)
    assert [q["resourceVersion"] for q in api.queries("watch")] == ["1000", "1750"]
    assert watch.stats.relists == 0 and watch.stats.errors == 1


async def test_unreachable_server_backs_off_and_stop_is_prompt() -> None:
    store = Store()
    async with ApiClient(ClusterConfig(server="http://127.0.0.1:9"), timeout=1) as client:
        watch = ListWatch(
            client,
            PATH,
            on_sync=store.on_sync,
            on_event=store.on_event,
            backoff=Backoff(initial=0.05, maximum=0.2),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.create_task(watch.run(stop))
        deadline = started + 10
        while watch.stats.errors < 4:  # kept trying...
            assert loop.time() < deadline, "no retries"
            await asyncio.sleep(0.01)
        elapsed = loop.time() - started
        stop.set()
        stopping = loop.time()
        await asyncio.wait_for(task, 1)
        assert loop.time() - stopping < 0.5, "stop is prompt even while backing off"
    # ...and backed off between attempts rather than spinning: three delays of at least half
    # of 0.05, 0.1 and 0.2 s (the jitter) lie between the first error and the fourth.
    assert elapsed >= (0.05 + 0.1 + 0.2) * 0.5
    assert not watch.has_synced and watch.stats.lists == 0


async def test_retry_after_is_honoured(api: RecordedApiServer) -> None:
    api.lists.append(
        api.json(b'{"kind":"Status","code":429,"reason":"TooManyRequests"}', status=429, headers={"Retry-After": "0.3"})
    )
    api.lists.append(api.json(recording("list-page-2.json")))
    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=lambda items, rv: None, on_event=lambda k, o: None, backoff=FAST)
        stop = asyncio.Event()
        task = asyncio.create_task(watch.run(stop))
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(watch.synced.wait(), 5)
        assert loop.time() - started >= 0.25
        stop.set()
        await asyncio.wait_for(task, 2)


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(initial=1, maximum=8, factor=2, jitter=0.5)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (10, 8), (1000, 8)]:
        delays = {backoff.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1


async def test_failed_sync_is_retried_with_a_fresh_list(api: RecordedApiServer) -> None:
    api.lists.extend([api.json(recording("list-page-2.json")), api.json(recording("relist-1.json"))])
    synced: list[str] = []

    def on_sync(items: list[dict[str, Any]], resource_version: str) -> None:
        if not synced and resource_version == "1000":
            synced.append("failed")
            raise RuntimeError("store not ready")
        synced.append(resource_version)

    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=on_sync, on_event=lambda k, o: None, backoff=FAST)
        await run_until(watch, api, lambda: len(api.queries("watch")) >= 1)
    assert synced == ["failed", "1500"]
    assert (watch.stats.lists, watch.stats.relists, watch.stats.handler_errors) == (1, 0, 1)
    assert api.queries("watch")[0]["resourceVersion"] == "1500"


async def test_transform_reduces_each_page_as_it_arrives_and_each_event(api: RecordedApiServer) -> None:
    api.lists.extend([api.json(recording("list-page-1.json")), api.json(recording("list-page-2.json"))])
    api.watches.append(api.stream(recording("watch-1.ndjson"), then="hang"))
    pages_fetched: list[int] = []
    synced: list[Any] = []
    events: list[tuple[str, Any]] = []

    def transform(obj: dict[str, Any]) -> tuple[str, str]:
        if obj["metadata"]["name"] == "mesh-a" and events:
            raise ValueError("cannot reduce")  # the MODIFIED mesh-a of the watch
        pages_fetched.append(len(api.queries("list")))
        return obj["kind"], obj["metadata"]["name"]

    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(
            client, PATH, page_size=2, backoff=FAST, transform=transform,
            on_sync=lambda items, rv: synced.extend(items), on_event=lambda kind, obj: events.append((kind, obj)),
        )
        await run_until(watch, api, lambda: len(events) >= 2)
    # LIST items carry the kind a watch object has before the transform sees them.
    assert synced == [("ConfigMap", "mesh-a"), ("ConfigMap", "mesh-b"), ("ConfigMap", "mesh-c")]
    assert pages_fetched[:3] == [1, 1, 2], "the first page was reduced before the second was fetched"
    # A transform that fails on one event skips that event, like a failing on_event.
    assert events == [("ADDED", ("ConfigMap", "mesh-d")), ("DELETED", ("ConfigMap", "mesh-b"))]
    assert watch.stats.handler_errors == 1 and watch.resource_version == "1006"


async def test_a_failing_transform_fails_the_list_which_is_retried(api: RecordedApiServer) -> None:
    api.lists.extend([api.json(recording("list-page-2.json")), api.json(recording("relist-1.json"))])
    failed: list[str] = []

    def transform(obj: dict[str, Any]) -> str:
        if not failed:
            failed.append(obj["metadata"]["name"])
            raise ValueError("cannot reduce")
        return obj["metadata"]["name"]

    synced: list[list[str]] = []
    async with ApiClient(ClusterConfig(server=api.url)) as client:
        watch = ListWatch(client, PATH, on_sync=lambda items, rv: synced.append(items), on_event=lambda k, o: None,
                          backoff=FAST, transform=transform)
        await run_until(watch, api, lambda: len(api.queries("watch")) >= 1)
    assert len(synced) == 1 and (watch.stats.lists, watch.stats.handler_errors) == (1, 1)
