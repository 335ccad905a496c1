"""Paging through a LIST with ``limit``/``continue``, so no caller holds a whole fleet in memory.

A continue token expires with etcd's compaction (410 Gone, reason
``Expired``); the apiserver then offers no way to resume that list. The
pages restart from the beginning with a fresh list and say so through
``on_restart``; callers that act on items must be idempotent (or skip what
they already did), which is what a restart costs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from kube.client import ApiClient, ApiError, JsonObject


async def list_pages(client: ApiClient, path: str, params: Mapping[str, Any] | None = None, *, limit: int = 500,
                     max_restarts: int = 3, on_restart: Callable[[], None] | None = None,
                     fetch: Callable[[str, dict[str, Any]], Any] | None = None) -> AsyncIterator[list[JsonObject]]:
    """Yield each page's ``items``; ``fetch(path, params)`` (default ``client.get_json``) may add rate limiting."""
    get = fetch or client.get_json
    restarts = 0
    query: dict[str, Any] = {**(params or {}), "limit": limit}
    while True:
        try:
            page = await get(path, query)
        except ApiError as exc:
            if exc.gone and "continue" in query and restarts < max_restarts:
                restarts += 1
                query.pop("continue", None)
                if on_restart is not None:
                    on_restart()
                continue
            raise
        yield list(page.get("items") or ())
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
        query["continue"] = token
