"""A thin asynchronous client for the Kubernetes REST API that speaks plain dicts.

The official client turns every object into generated model classes, which
costs seconds per thousand Pods; the extender watches every Pod of a
fleet, so here responses stay the JSON the apiserver sent, decoded by
``orjson``. Paths are the REST paths themselves (``/api/v1/nodes``,
``/apis/apps/v1/namespaces/x/deployments``): no per-kind methods to keep
in step with the API.

Non-2xx answers raise :class:`ApiError` carrying the ``Status`` object's
reason and message. Transport failures are left as ``aiohttp.ClientError``
and ``asyncio.TimeoutError``, which callers that retry already handle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from kube.config import ClusterConfig

JsonObject = dict[str, Any]
Params = Mapping[str, str | int | float | bool | None]

DEFAULT_TIMEOUT = 30.0


class ApiError(Exception):
    """The apiserver answered with a non-2xx status.

    ``reason`` is the ``Status.reason`` (``NotFound``, ``Conflict``,
    ``Expired`` ...), or the HTTP reason phrase when the body is not a Status.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        body: JsonObject | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body
        #: Seconds from a ``Retry-After`` header (429, some 5xx), when the server gave one.
        self.retry_after = retry_after

    @property
    def gone(self) -> bool:
        """410: the resourceVersion (or continue token) is older than etcd's compaction."""
        return self.status == 410

    @classmethod
    def from_body(cls, status: int, http_reason: str, raw: bytes, retry_after: str | None = None) -> ApiError:
        """The error a failed response stands for, with the apiserver's Status message when it sent one."""
        body: JsonObject | None = None
        reason, message = http_reason or "Error", ""
        try:
            decoded = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict):
            body = decoded
            reason = str(decoded.get("reason") or reason)
            message = str(decoded.get("message") or "")
        elif raw:
            message = raw[:500].decode("utf-8", "replace").strip()
        delay: float | None = None
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = float(retry_after)
        return cls(status, reason, message, body=body, retry_after=delay)


def _query(params: Params | None) -> dict[str, str]:
    """aiohttp refuses bools; the apiserver wants ``true``/``false``. ``None`` means absent."""
    if not params:
        return {}
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


class ApiClient:
    """One ``aiohttp.ClientSession`` (one connection pool) for every call to one apiserver.

    Create it inside the running event loop and close it (or use ``async with``).
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 32,
    ) -> None:
        self.config = config
        self.timeout = timeout
        ssl_context = config.ssl_context()
        connector = aiohttp.TCPConnector(
            ssl=ssl_context if ssl_context is not None else False,
            limit=max_connections,
        )
        self._server = config.server.rstrip("/")
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            headers={"Accept": "application/json"},
            auto_decompress=True,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.session.close()

    def url(self, path: str) -> str:
        """Join onto the server URL, which may carry a path prefix (a proxy, Rancher)."""
        return f"{self._server}/{path.lstrip('/')}"

    def _request_kwargs(self, params: Params | None, timeout: aiohttp.ClientTimeout | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": _query(params), "headers": self.config.headers()}
        if timeout is not None:
            kwargs["timeout"] = timeout
        if self.config.tls_server_name:
            kwargs["server_hostname"] = self.config.tls_server_name
        return kwargs

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Params | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JsonObject:
        """Send ``body`` (JSON-encoded unless already bytes); return the decoded answer (``{}`` if empty).

        ``content_type`` matters for PATCH: ``application/merge-patch+json``,
        ``application/json-patch+json``, ``application/strategic-merge-patch+json``
        or ``application/apply-patch+yaml``.
        """
        kwargs = self._request_kwargs(params, aiohttp.ClientTimeout(total=timeout) if timeout is not None else None)
        if body is not None:
            kwargs["data"] = body if isinstance(body, bytes | bytearray) else orjson.dumps(body)
            kwargs["headers"]["Content-Type"] = content_type
        async with self.session.request(method, self.url(path), **kwargs) as response:
            raw = await response.read()
            if response.status >= 300:
                raise ApiError.from_body(
                    response.status, response.reason or "", raw, response.headers.get("Retry-After")
                )
        if not raw:
            return {}
        decoded = orjson.loads(raw)
        return decoded if isinstance(decoded, dict) else {"value": decoded}

    async def get_json(self, path: str, params: Params | None = None) -> JsonObject:
        """GET ``path`` and decode the JSON object."""
        return await self.request("GET", path, params=params)

    async def post_json(self, path: str, body: Any, params: Params | None = None) -> JsonObject:
        """POST ``body`` to ``path`` and decode the JSON object."""
        return await self.request("POST", path, body, params=params)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        path: str,
        params: Params | None = None,
        *,
        read_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET whose body the caller reads incrementally (watches); raises :class:`ApiError` on non-2xx.

        There is no total timeout, only one between reads: a watch is
        supposed to stay open for minutes.
        """
        connect = connect_timeout if connect_timeout is not None else self.timeout
        timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read_timeout)
        kwargs = self._request_kwargs(params, timeout)
        async with self.session.get(self.url(path), **kwargs) as response:
            if response.status >= 300:
                try:
                    raw = await asyncio.wait_for(response.read(), connect)
                except (TimeoutError, aiohttp.ClientError):
                    raw = b""
                raise ApiError.from_body(
                    response.status, response.reason or "", raw, response.headers.get("Retry-After")
                )
            yield response
