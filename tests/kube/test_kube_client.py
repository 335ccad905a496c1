"""ApiClient: plain-dict requests, typed errors from Status bodies."""

from __future__ import annotations

import orjson
import pytest
from aiohttp import web
from recorded_apiserver import RecordedApiServer, recording

from kube.client import ApiClient, ApiError
from kube.config import ClusterConfig


def config(api: RecordedApiServer, **kwargs) -> ClusterConfig:
    return ClusterConfig(server=api.url, **kwargs)


async def test_get_json_returns_dicts_and_sends_credentials(api: RecordedApiServer) -> None:
    api.lists.append(api.json(recording("list-page-1.json")))
    cfg = config(api, token_source=lambda: "abc.def")
    async with ApiClient(cfg) as client:
        body = await client.get_json(
            "/api/v1/namespaces/meshfit/configmaps",
            {"labelSelector": "a=b", "limit": 2, "allowWatchBookmarks": True, "continue": None},
        )
    assert isinstance(body, dict) and body["kind"] == "ConfigMapList"
    assert [item["metadata"]["name"] for item in body["items"]] == ["mesh-a", "mesh-b"]
    _kind, query, headers = api.requests[0]
    assert query == {"labelSelector": "a=b", "limit": "2", "allowWatchBookmarks": "true"}
    assert headers["Authorization"] == "Bearer abc.def"
    assert headers["User-Agent"] == "meshfit"
    assert headers["Accept"] == "application/json"


async def test_status_bodies_become_typed_errors(api: RecordedApiServer) -> None:
    not_found = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps"},
        "code": 404,
    }
    api.lists.append(api.json(orjson.dumps(not_found), status=404))
    api.lists.append(api.json(recording("status-410.json"), status=410))
    async with ApiClient(config(api)) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("/api/v1/namespaces/meshfit/configmaps/nope")
        error = caught.value
        assert (error.status, error.reason, error.message) == (404, "NotFound", 'configmaps "nope" not found')
        assert error.body == not_found and not error.gone
        assert str(error) == '404 NotFound: configmaps "nope" not found'

        with pytest.raises(ApiError) as caught:
            await client.get_json("/api/v1/pods")
        assert caught.value.gone and caught.value.reason == "Expired"


async def test_non_status_error_bodies(api: RecordedApiServer) -> None:
    async def plain(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="upstream connect error\n", headers={"Retry-After": "7"})

    api.lists.append(plain)
    async with ApiClient(config(api)) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("/version")
    assert caught.value.status == 502
    assert caught.value.reason == "Bad Gateway"
    assert caught.value.message == "upstream connect error"
    assert caught.value.body is None
    assert caught.value.retry_after == 7.0


async def test_post_and_patch_send_json_with_the_right_content_type(api: RecordedApiServer) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"echo": orjson.loads(await request.read()), "contentType": request.content_type},
            status=201,
        )

    api.routes[("POST", "/api/v1/namespaces/meshfit/configmaps")] = echo
    api.routes[("PATCH", "/api/v1/namespaces/meshfit/configmaps/mesh-a")] = echo
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mesh-a"}, "data": {"k": "v"}}
    async with ApiClient(config(api)) as client:
        created = await client.post_json("/api/v1/namespaces/meshfit/configmaps", obj)
        patched = await client.request(
            "PATCH",
            "/api/v1/namespaces/meshfit/configmaps/mesh-a",
            {"data": {"k": "w"}},
            content_type="application/merge-patch+json",
        )
    assert created == {"echo": obj, "contentType": "application/json"}
    assert patched == {"echo": {"data": {"k": "w"}}, "contentType": "application/merge-patch+json"}


async def test_server_url_path_prefix_is_kept(api: RecordedApiServer) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        return web.json_response({"gitVersion": "v1.36.3"})

    api.routes[("GET", "/k8s/clusters/c-1/version")] = record
    async with ApiClient(ClusterConfig(server=api.url + "/k8s/clusters/c-1/")) as client:
        assert await client.get_json("version") == {"gitVersion": "v1.36.3"}
    assert seen == ["/k8s/clusters/c-1/version"]


async def test_empty_body_is_an_empty_dict(api: RecordedApiServer) -> None:
    async def empty(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    api.routes[("DELETE", "/api/v1/namespaces/meshfit/configmaps/mesh-a")] = empty
    async with ApiClient(config(api)) as client:
        assert await client.request("DELETE", "/api/v1/namespaces/meshfit/configmaps/mesh-a") == {}
