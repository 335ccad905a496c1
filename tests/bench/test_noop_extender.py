"""The no-op extender, benchmark 3's floor: it passes every node, scores 0, and binds as the default binder does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import noop_extender
from controlplane.ports import free_port


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def test_filter_prioritize_bind(tmp_path: Path) -> None:
    bindings: list[tuple[str, dict[str, Any]]] = []

    async def binding(request: web.Request) -> web.Response:
        bindings.append((request.path, await request.json()))
        return web.json_response({"kind": "Status", "status": "Success"}, status=201)

    async def main() -> None:
        api_port, port = free_port(), free_port()
        api = web.Application()
        api.router.add_post("/api/v1/namespaces/{ns}/pods/{name}/binding", binding)
        api_runner = await _serve(api, api_port)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{api_port}"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        server = asyncio.create_task(noop_extender.serve(str(kubeconfig), "127.0.0.1", port))
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(100):
                    try:
                        async with session.get(f"{url}/healthz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.05)
                args = {"Pod": {"metadata": {"name": "p"}}, "NodeNames": ["a", "b", "c"], "Nodes": None}
                async with session.post(f"{url}/filter", json=args) as resp:
                    assert await resp.json() == {"NodeNames": ["a", "b", "c"], "FailedNodes": {},
                                                 "FailedAndUnresolvableNodes": {}, "Error": ""}
                async with session.post(f"{url}/prioritize", json=args) as resp:
                    assert await resp.json() == [{"Host": n, "Score": 0} for n in "abc"]
                bind = {"PodName": "p", "PodNamespace": "ns", "PodUID": "u-1", "Node": "b"}
                async with session.post(f"{url}/bind", json=bind) as resp:
                    assert await resp.json() == {"Error": ""}
        finally:
            server.cancel()
            await api_runner.cleanup()
        assert bindings == [("/api/v1/namespaces/ns/pods/p/binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "b"}})]

    asyncio.run(main())
