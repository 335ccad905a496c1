"""A Prometheus client for a rollout's analysis: instant queries, a timeout, and no error ever read as a pass.

``POST /api/v1/query`` with a form body (a batch's pod names can make the
query longer than a URL should be). The answer becomes a
:class:`controller.rollout_analysis.Reading`:

* a vector of samples: its worst value (the highest, or the lowest for a
  ``min`` condition); an empty vector: **no data**, which the analysis reads as
  inconclusive; ``NaN`` likewise; a scalar: its value;
* anything else — a timeout, a refused connection, an HTTP error, a PromQL
  error (``status: error``), a body that is not the API's — is a measurement
  **error**, with what went wrong in a few words.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp
import orjson

from controller.rollout_analysis import Reading


def _value(text: object) -> float | None:
    try:
        value = float(str(text))
    except ValueError:
        return None
    return None if math.isnan(value) else value


def reading_of(body: Any, *, lowest: bool = False) -> Reading:
    """The reading an ``/api/v1/query`` answer stands for (see the module docstring)."""
    if not isinstance(body, dict):
        return Reading(error="the answer is not a JSON object")
    if body.get("status") != "success":
        return Reading(error=f"{body.get('errorType') or 'error'}: {body.get('error') or 'no reason given'}")
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return Reading(_value(result[1]))
    if kind == "vector" and isinstance(result, list):
        values = [v for v in (_value((s.get("value") or [None, "NaN"])[1]) for s in result if isinstance(s, dict))
                  if v is not None]
        if not values:
            return Reading(None)
        return Reading(min(values) if lowest else max(values))
    return Reading(error=f"a {kind!r} answer; the query must return an instant vector or a scalar")


class PrometheusClient:
    """One ``aiohttp`` session for every query of the process (one connection pool per address)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.queries = 0
        self.errors = 0

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"Accept": "application/json"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def query(self, address: str, promql: str, *, timeout: float, lowest: bool = False) -> Reading:
        """One instant query; every failure is a :class:`Reading` with ``error`` set, never an exception."""
        self.queries += 1
        url = address.rstrip("/") + "/api/v1/query"
        try:
            async with self.session().post(url, data={"query": promql, "timeout": f"{timeout:g}s"},
                                           timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                raw = await response.read()
                try:
                    body = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    body = None
                if response.status >= 300 and not isinstance(body, dict):
                    self.errors += 1
                    return Reading(error=f"HTTP {response.status} from {address}")
        except (TimeoutError, asyncio.TimeoutError):
            self.errors += 1
            return Reading(error=f"no answer from {address} within {timeout:g}s")
        except (aiohttp.ClientError, OSError) as exc:
            self.errors += 1
            return Reading(error=f"{address}: {type(exc).__name__}: {exc}"[:300])
        reading = reading_of(body, lowest=lowest)
        if reading.error is not None:
            self.errors += 1
        return reading
