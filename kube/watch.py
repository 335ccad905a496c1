"""List, then watch: keep a local copy of one resource collection current, forever.

This is client-go's Reflector reduced to what the webhook and the extender
need. A LIST (paginated) gives a snapshot and its resourceVersion; a WATCH
from that version streams every change after it. The stream ends often and
for ordinary reasons (the server's ``timeoutSeconds``, an apiserver
restart, a load balancer's idle timeout), so the loop resumes from the last
resourceVersion it saw (bookmarks keep that fresh on quiet collections).
Only when the apiserver says that version is gone (410, after etcd
compaction) is a full relist needed, because events in between are lost.

Objects are never copied into models: ``on_sync`` and ``on_event`` get the
decoded JSON dicts, and own them afterwards. A caller that needs only a few
fields of each object gives a ``transform`` (client-go's ``SetTransform``):
it is applied to every LIST item as its page arrives and to every watch
event's object, so what is kept is only what it returns. For a 250,000-pod
LIST that is the difference between holding every decoded pod at once
(gigabytes, and CPython rarely hands freed arenas back) and holding one
page of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from kube.client import ApiClient, ApiError, JsonObject

log = logging.getLogger(__name__)

#: Made of each object before a handler sees it; the handlers then get what it returns.
Transform = Callable[[JsonObject], Any]
#: The handlers take objects as decoded (JsonObject), or as ``transform`` made them.
EventHandler = Callable[[str, Any], "Awaitable[None] | None"]
SyncHandler = Callable[[list[Any], str], "Awaitable[None] | None"]

#: Event types delivered to ``on_event``. BOOKMARK and ERROR are the watch's own business.
OBJECT_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})

#: A watch line longer than this is treated as a broken stream, not buffered forever.
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter, so a fleet of watchers does not reconnect in step."""

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    #: Each delay is drawn from ``[d * (1 - jitter), d]``.
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        """The delay before retry ``attempt``, jittered."""
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * random.random())


@dataclass
class WatchStats:
    """Counters for metrics; monotonic over the ListWatch's life."""

    #: LISTs completed, the first included.
    lists: int = 0
    #: LISTs after the first: the watch's resourceVersion (or a continue token) was gone.
    relists: int = 0
    #: WATCH requests that resumed from a known resourceVersion (after a stream ended).
    restarts: int = 0
    #: Failed requests and broken streams (connection errors, timeouts, non-410 errors).
    errors: int = 0
    #: ADDED/MODIFIED/DELETED events handed to ``on_event``.
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    bookmarks: int = 0
    #: Lines that were not a well-formed watch event; skipped.
    malformed: int = 0
    #: Exceptions raised by ``on_event`` / ``on_sync``.
    handler_errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict."""
        return dataclasses.asdict(self)


class _Gone(Exception):
    """The resourceVersion we hold is no longer served: relist."""


class _StreamError(Exception):
    """The watch stream reported or suffered a failure worth a backoff."""


class _StreamBroke(Exception):
    """An open watch stream failed; says how much it had delivered, to judge the backoff."""

    def __init__(self, why: str, delivered: int, lived: float) -> None:
        super().__init__(why)
        self.delivered = delivered
        self.lived = lived


class ListWatch:
    """Keeps ``on_sync``/``on_event`` fed with one collection, e.g. ``/api/v1/pods``.

    ``on_sync(items, resource_version)`` replaces the caller's store after each
    (re)list; ``on_event(type, obj)`` applies one ADDED/MODIFIED/DELETED.
    BOOKMARK and ERROR events are the watch's own business and never reach
    ``on_event``. Either handler may be a coroutine function; each is awaited
    before the next event is read, so a handler sees events in order and the
    stream is paced by it. An exception from ``on_event`` is
    logged and counted and the stream goes on (one bad object must not stall
    the rest); one from ``on_sync`` fails the list, which is retried.

    ``transform(obj)``, when given, stands between the wire and the handlers:
    each LIST item (already given the ``kind`` and ``apiVersion`` a watch
    object carries) is replaced by what it returns as its page is decoded,
    and each ADDED/MODIFIED/DELETED object before ``on_event``. It fails the
    way the handler it feeds would: a LIST is retried, an event is skipped.
    """

    def __init__(
        self,
        client: ApiClient,
        path: str,
        *,
        on_event: EventHandler,
        on_sync: SyncHandler,
        field_selector: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
        timeout_seconds: int = 300,
        backoff: Backoff = Backoff(),
        healthy_after: float = 10.0,
        name: str | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.client = client
        self.path = path
        self.on_event = on_event
        self.on_sync = on_sync
        self.transform = transform
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.page_size = page_size
        self.timeout_seconds = timeout_seconds
        self.backoff = backoff
        #: A stream that lived this long, or delivered anything, resets the backoff.
        self.healthy_after = healthy_after
        self.name = name or path
        self.stats = WatchStats()
        #: The last resourceVersion seen: from the LIST, then from every event and bookmark.
        self.resource_version = ""
        #: Set once the first LIST has been handed to ``on_sync``: readiness.
        self.synced = asyncio.Event()
        self.last_sync_monotonic: float | None = None
        self._watched_since_list = False

    @property
    def has_synced(self) -> bool:
        """Whether the first LIST has been handed to ``on_sync``."""
        return self.synced.is_set()

    def _selectors(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        return params

    async def run(self, stop: asyncio.Event) -> None:
        """List and watch until ``stop`` is set; returns promptly then, whatever it was doing."""
        loop_task = asyncio.create_task(self._loop(), name=f"listwatch {self.name}")
        stop_task = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (loop_task, stop_task):
                task.cancel()
            for task in (loop_task, stop_task):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _loop(self) -> None:
        attempt = 0  # consecutive failures: drives the backoff
        gone_streak = 0  # 410s with nothing delivered in between: a relist loop needs a brake too
        need_list = True
        while True:
            delay = 0.0
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    attempt = 0
                delivered, lived = await self._watch()
                if delivered:
                    gone_streak = 0
                if delivered or lived >= self.healthy_after:
                    attempt = 0  # the server's timeoutSeconds ended it: resume at once
                    continue
                # A clean but empty, short stream: something closes watches early; slow down.
                delay = self.backoff.delay(attempt)
            except _Gone as exc:
                need_list = True
                if gone_streak:
                    delay = self.backoff.delay(gone_streak - 1)
                gone_streak += 1
                log.info("%s: %s; relisting in %.1fs", self.name, exc, delay)
            except _StreamBroke as exc:
                self.stats.errors += 1
                if exc.delivered:
                    gone_streak = 0
                if exc.delivered or exc.lived >= self.healthy_after:
                    attempt = 0
                delay = self.backoff.delay(attempt)
                log.warning("%s: watch broke (%s); resuming in %.1fs", self.name, exc, delay)
            except ApiError as exc:
                if exc.gone:  # the watch request itself answered 410
                    need_list = True
                    if gone_streak:
                        delay = self.backoff.delay(gone_streak - 1)
                    gone_streak += 1
                    log.info("%s: %s; relisting in %.1fs", self.name, exc, delay)
                else:
                    self.stats.errors += 1
                    delay = max(self.backoff.delay(attempt), exc.retry_after or 0.0)
                    log.warning("%s: %s; retrying in %.1fs", self.name, exc, delay)
            except (TimeoutError, _StreamError, aiohttp.ClientError, OSError) as exc:
                self.stats.errors += 1
                delay = self.backoff.delay(attempt)
                log.warning("%s: %s; retrying in %.1fs", self.name, _describe(exc), delay)
            except Exception:  # a bug must not end the watch: relist from a clean slate
                self.stats.errors += 1
                need_list = True
                delay = self.backoff.delay(attempt)
                log.exception("%s: unexpected failure; relisting in %.1fs", self.name, delay)
            if delay:
                await asyncio.sleep(delay)
            attempt += 1

    async def _list(self) -> None:
        """LIST page by page; hand everything to ``on_sync``.

        No ``resourceVersion`` is sent: the result is a consistent read, and
        unlike ``resourceVersion=0`` it honours ``limit`` on every apiserver
        version, so no single response holds the whole fleet. Each page is
        decoded on its own, so peak memory is one page of JSON plus the dicts
        (with a ``transform``: one page, plus what it kept of the pages before).
        """
        items: list[Any] = []
        params: dict[str, str | int] = {**self._selectors(), "limit": self.page_size}
        resource_version = ""
        while True:
            try:
                page = await self.client.get_json(self.path, params)
            except ApiError as exc:
                if exc.gone and "continue" in params:
                    # The snapshot behind the continue token was compacted: start over.
                    raise _Gone(f"continue token expired: {exc.message}") from exc
                raise
            metadata = page.get("metadata") or {}
            resource_version = str(metadata.get("resourceVersion") or resource_version)
            items.extend(self._page_objects(page))
            token = metadata.get("continue")
            if not token:
                break
            params["continue"] = str(token)

        try:
            await _call(self.on_sync, items, resource_version)
        except Exception as exc:
            self.stats.handler_errors += 1
            raise _StreamError(f"on_sync failed: {exc!r}") from exc
        if self.stats.lists:
            self.stats.relists += 1
        self.stats.lists += 1
        self.resource_version = resource_version
        self._watched_since_list = False
        self.last_sync_monotonic = time.monotonic()
        self.synced.set()
        log.info("%s: listed %d objects at resourceVersion %s", self.name, len(items), resource_version)

    def _page_objects(self, page: JsonObject) -> list[Any]:
        """The items of one LIST page, as watch objects look, transformed.

        The items leave ``page``: with a ``transform`` the decoded dicts are
        freed here, before the next page is fetched.
        """
        raw = page.pop("items", None) or []
        kind = str(page.get("kind") or "")
        api_version = page.get("apiVersion")
        if kind.endswith("List") and api_version:
            # LIST items omit kind/apiVersion; watch objects carry them. Make both look alike.
            item_kind = kind[: -len("List")]
            for item in raw:
                item.setdefault("kind", item_kind)
                item.setdefault("apiVersion", api_version)
        transform = self.transform
        if transform is None:
            return raw
        try:
            return [transform(item) for item in raw]
        except Exception as exc:
            self.stats.handler_errors += 1
            raise _StreamError(f"transform failed: {exc!r}") from exc

    async def _watch(self) -> tuple[int, float]:
        """One WATCH from ``resource_version`` until the server ends it.

        Returns how many events and bookmarks it delivered and how long it
        lived; a stream that breaks raises :class:`_StreamBroke` with the same.
        """
        # client-go draws the timeout from [T, 2T) so watchers started together do not reconnect together.
        timeout = int(self.timeout_seconds * (1 + random.random()))
        params = {
            **self._selectors(),
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version,
            "timeoutSeconds": str(timeout),
        }
        if self._watched_since_list:
            self.stats.restarts += 1
        self._watched_since_list = True
        started = time.monotonic()
        delivered = 0
        async with self.client.stream(self.path, params, read_timeout=timeout + 30) as response:
            try:
                buffer = bytearray()
                async for chunk in response.content.iter_any():
                    scan_from = len(buffer)
                    buffer += chunk
                    newline = buffer.find(b"\n", scan_from)
                    if newline < 0:
                        if len(buffer) > MAX_LINE_BYTES:
                            raise _StreamError(f"watch line longer than {MAX_LINE_BYTES} bytes")
                        continue
                    start = 0
                    while newline >= 0:
                        delivered += await self._handle_line(bytes(buffer[start:newline]))
                        start = newline + 1
                        newline = buffer.find(b"\n", start)
                    del buffer[:start]
                if buffer.strip():
                    # A clean end after a last line without its newline.
                    delivered += await self._handle_line(bytes(buffer))
            except (TimeoutError, aiohttp.ClientError, OSError, _StreamError) as exc:
                raise _StreamBroke(_describe(exc), delivered, time.monotonic() - started) from exc
        return delivered, time.monotonic() - started

    async def _handle_line(self, line: bytes) -> int:
        """Apply one event line; return 1 when it advanced the stream (event or bookmark)."""
        line = line.strip()
        if not line:
            return 0
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return self._malformed(line, f"not JSON ({exc})")
        if not isinstance(event, dict):
            return self._malformed(line, "not an object")
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(kind, str) or not isinstance(obj, dict):
            return self._malformed(line, "no type or object")

        if kind == "ERROR":
            code = obj.get("code")
            reason = obj.get("reason")
            message = obj.get("message") or ""
            if code == 410 or reason in ("Expired", "Gone"):
                raise _Gone(f"watch error {code} {reason}: {message}")
            raise _StreamError(f"watch error {code} {reason}: {message}")

        metadata = obj.get("metadata")
        resource_version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        if kind == "BOOKMARK":
            if not resource_version:
                return self._malformed(line, "bookmark without resourceVersion")
            self.resource_version = str(resource_version)
            self.stats.bookmarks += 1
            return 1
        if kind not in OBJECT_EVENTS:
            return self._malformed(line, f"unknown event type {kind!r}")

        try:
            await _call(self.on_event, kind, obj if self.transform is None else self.transform(obj))
        except Exception:
            self.stats.handler_errors += 1
            log.exception("%s: on_event failed for %s %s", self.name, kind, _object_name(obj))
        self.stats.events += 1
        self.stats.events_by_type[kind] = self.stats.events_by_type.get(kind, 0) + 1
        if resource_version:
            self.resource_version = str(resource_version)
        return 1

    def _malformed(self, line: bytes, why: str) -> int:
        self.stats.malformed += 1
        log.warning("%s: skipping malformed watch line (%s): %.200r", self.name, why, line)
        return 0


async def _call(handler: Callable[..., Any], *args: Any) -> None:
    result = handler(*args)
    if inspect.isawaitable(result):
        await result


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _object_name(obj: JsonObject) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "?")
    return f"{namespace}/{name}" if namespace else str(name)
