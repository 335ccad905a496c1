"""A minimal synchronous JSON client for the local kube-apiserver.

Tests need to create and read a handful of objects and look at them as plain
dicts; the official client's model deserialisation would hide exactly the fields
(pod-level ``resources``, sidecar ``restartPolicy``) these tests are about, and
is slow. One short-lived TLS connection per request: loopback makes that cheap,
and it keeps the client safe to share between threads.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

JSON = dict[str, Any]

#: Content type per method when the caller gives none; PATCH defaults to a
#: JSON merge patch, the one patch type that needs no schema knowledge.
_DEFAULT_CONTENT_TYPE = {
    "PATCH": "application/merge-patch+json",
}


class ApiClient:
    """Bearer-token JSON requests against one apiserver, verified with its CA."""

    def __init__(self, url: str, token: str, ca_path: Path, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname is None:
            raise ValueError(f"expected an https:// URL, got {url!r}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 443
        self._token = token
        self._timeout = timeout
        self._ssl = ssl.create_default_context(cafile=str(ca_path))

    def request(
        self,
        method: str,
        path: str,
        body: JSON | list[Any] | None = None,
        *,
        content_type: str | None = None,
        token: str | None = None,
    ) -> tuple[int, JSON]:
        """Send one request; return (HTTP status, decoded JSON body).

        Never raises for an HTTP error status: a 409 or 422 is an answer a test
        wants to assert on. A body that is not JSON (``/readyz`` says ``ok``)
        comes back as ``{"text": ...}``. ``token`` overrides the admin token,
        e.g. to act as another user.
        """
        method = method.upper()
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {token or self._token}",
        }
        payload: bytes | None = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type or _DEFAULT_CONTENT_TYPE.get(
                method, "application/json"
            )
        conn = http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=self._ssl
        )
        try:
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
        finally:
            conn.close()
        return status, _decode(raw)

    def watch(
        self, path: str, *, resource_version: str, timeout: float = 30.0
    ) -> Iterator[JSON]:
        """Yield the watch events (``{"type": ..., "object": ...}``) of ``path`` from ``resource_version``.

        Why a watch and not a poll: a condition a component holds for half a
        second (``PodResizeInProgress``) is missed by a poll on a busy machine,
        never by a watch that starts at the resourceVersion of the write. Ends
        after ``timeout`` seconds (the server closes the stream) or when the
        caller stops iterating; raises RuntimeError on an HTTP error.
        """
        sep = "&" if "?" in path else "?"
        query = (
            f"{path}{sep}watch=1&resourceVersion={resource_version}"
            f"&timeoutSeconds={max(1, int(timeout))}&allowWatchBookmarks=false"
        )
        conn = http.client.HTTPSConnection(
            self._host, self._port, timeout=timeout + 10, context=self._ssl
        )
        try:
            conn.request(
                "GET",
                query,
                headers={"Accept": "application/json", "Authorization": f"Bearer {self._token}"},
            )
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"watch {path}: HTTP {resp.status}: {resp.read()[:500]!r}")
            while line := resp.readline():
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()


def _decode(raw: bytes) -> JSON:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"text": raw.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"items": value}


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.1,
    what: str = "condition",
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Raises TimeoutError naming ``what`` and the last falsy value (or
    exception) seen, which is usually the clue a failing test needs.
    Exceptions from the predicate count as "not yet", since the server being
    polled may still be coming up; those in ``fatal`` (a crashed component)
    propagate at once instead of burning the whole timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
