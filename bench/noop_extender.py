"""The floor of benchmark 3: an HTTP scheduler extender that does nothing but answer.

    python -m bench.noop_extender --kubeconfig FILE --port PORT [--host 127.0.0.1]

What scheduling with meshfit's extender would cost if the extender's own work
were free: the same ``extenders:`` entry (nodeCacheCapable, filter,
prioritize, bind), the same aiohttp and event loop, the same HTTP on loopback.
``filter`` passes every candidate node, ``prioritize`` gives every node 0,
``bind`` POSTs the pod's Binding (what any binding extender must do; the
client is meshfit's own :class:`kube.client.ApiClient`, as its binder's).
No cache, no watch, no policy: kube-scheduler's cost of calling an extender at
all, and the round trips, are all that is left.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
from aiohttp import web

from cli.event_loop import run
from kube.client import ApiClient, ApiError
from kube.config import load_config

CLIENT = web.AppKey("client", ApiClient)


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def filter_nodes(request: web.Request) -> web.Response:
    args = orjson.loads(await request.read())
    return _json({"NodeNames": args.get("NodeNames") or [], "FailedNodes": {}, "FailedAndUnresolvableNodes": {},
                  "Error": ""})


async def prioritize(request: web.Request) -> web.Response:
    args = orjson.loads(await request.read())
    return _json([{"Host": name, "Score": 0} for name in args.get("NodeNames") or []])


async def bind(request: web.Request) -> web.Response:
    args = orjson.loads(await request.read())
    namespace, name, uid, node = args["PodNamespace"], args["PodName"], args.get("PodUID", ""), args["Node"]
    body = {"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, **({"uid": uid} if uid else {})},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    try:
        await request.app[CLIENT].request("POST", f"/api/v1/namespaces/{namespace}/pods/{name}/binding", body)
    except ApiError as exc:
        return _json({"Error": str(exc)})
    return _json({"Error": ""})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def serve(kubeconfig: str, host: str, port: int) -> None:
    async with ApiClient(load_config(kubeconfig), max_connections=64) as client:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app[CLIENT] = client
        app.router.add_post("/filter", filter_nodes)
        app.router.add_post("/prioritize", prioritize)
        app.router.add_post("/bind", bind)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run(serve(args.kubeconfig, args.host, args.port))


if __name__ == "__main__":
    main()
