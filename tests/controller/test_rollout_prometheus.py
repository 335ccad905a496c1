"""The Prometheus client: every answer that is not a value is no data or an error, never a pass."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from aiohttp import web

from controller.prometheus import PrometheusClient, reading_of


def vector(*values: str) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": {}, "value": [1, v]} for v in values]}}


def test_a_vector_reads_as_its_worst_value() -> None:
    assert reading_of(vector("0.2", "0.5", "0.1")).value == 0.5
    assert reading_of(vector("0.2", "0.5", "0.1"), lowest=True).value == 0.1
    assert reading_of({"status": "success", "data": {"resultType": "scalar", "result": [1, "3"]}}).value == 3.0
    assert reading_of(vector("+Inf")).value == math.inf


@pytest.mark.parametrize("body", [vector(), vector("NaN"), vector("NaN", "NaN")])
def test_an_empty_vector_or_nan_is_no_data(body: dict[str, Any]) -> None:
    reading = reading_of(body)
    assert reading.value is None and reading.error is None


@pytest.mark.parametrize(("body", "words"), [
    ({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}, "bad_data: parse error"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "'matrix'"),
    ("not json", "not a JSON object"),
])
def test_anything_else_is_an_error(body: Any, words: str) -> None:
    reading = reading_of(body)
    assert reading.value is None and reading.error is not None and words in reading.error


async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/api/v1/query", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_the_query_travels_as_a_form_and_a_value_comes_back() -> None:
    seen: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(await request.post())  # type: ignore[arg-type]
        return web.json_response(vector("0.01"))

    runner, url = await _serve(handler)
    client = PrometheusClient()
    try:
        reading = await client.query(url, 'up{pod=~"a|b"}', timeout=2)
    finally:
        await client.close()
        await runner.cleanup()
    assert reading.value == 0.01 and seen["query"] == 'up{pod=~"a|b"}' and seen["timeout"] == "2s"


async def test_a_slow_server_an_http_error_and_no_server_are_errors() -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(vector("0"))

    async def broken(_request: web.Request) -> web.Response:
        return web.Response(status=503, text="overloaded")

    client = PrometheusClient()
    try:
        for handler, words in ((slow, "within 0.2s"), (broken, "HTTP 503")):
            runner, url = await _serve(handler)
            try:
                reading = await client.query(url, "up", timeout=0.2)
            finally:
                await runner.cleanup()
            assert reading.value is None and reading.error is not None and words in reading.error
        refused = await client.query(url, "up", timeout=1)  # the last server is gone
        assert refused.value is None and refused.error
    finally:
        await client.close()
    assert client.errors == 3 and client.queries == 3
