"""Re-record the apiserver and kube-scheduler documents the extender tests replay.

Run from the repository root (needs the control-plane binaries: ``make controlplane``)::

    .venv/bin/python tests/extender/recordings/record.py

It starts etcd, kube-apiserver and kube-scheduler on loopback (no kubelet),
configures the scheduler with two extenders pointing at a recorder on
loopback (one ``nodeCacheCapable`` that binds, one sent full NodeLists), and
writes what the real components sent and answered:

* ``args-cache-filter.json``, ``args-cache-prioritize.json``, ``bind.json``,
  ``args-full-filter.json``, ``args-full-prioritize.json``: the scheduler's
  ExtenderArgs and ExtenderBindingArgs for one injected pod;
* ``nodes-list.json``; ``pods-list-1.json``/``pods-list-2.json`` (a paginated
  LIST), ``pods-watch-1.ndjson`` (binding, status, deletion, completion
  events), ``pods-watch-gone.ndjson`` (the answer to resuming that watch
  after etcd was compacted past it), ``pods-relist.json`` and ``pods-watch-2.ndjson``.

The files are the bytes the apiserver sent, unedited.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))

from extender_shapes import app_pod, meshed  # noqa: E402

from controlplane.cluster import LocalCluster  # noqa: E402
from controlplane.ports import free_port  # noqa: E402

POD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


class Recorder:
    """Answers as a permissive extender would and keeps every body it was sent."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}
        self.cluster: LocalCluster | None = None
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['mode']}-{request.match_info['verb']}"
        body = await request.read()
        self.bodies.setdefault(key, []).append(body)
        data = json.loads(body)
        verb = request.match_info["verb"]
        if verb == "filter":
            if data.get("NodeNames") is not None:
                answer: Any = {"NodeNames": data["NodeNames"], "FailedNodes": {}, "Error": ""}
            else:
                answer = {"Nodes": data["Nodes"], "FailedNodes": {}, "Error": ""}
        elif verb == "prioritize":
            names = data.get("NodeNames") or [n["metadata"]["name"] for n in data["Nodes"]["items"]]
            answer = [{"Host": name, "Score": 5} for name in names]
        else:
            assert self.cluster is not None
            binding = {
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": data["PodName"], "namespace": data["PodNamespace"], "uid": data["PodUID"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": data["Node"]},
            }
            status, result = await asyncio.to_thread(
                self.cluster.request, "POST",
                f"/api/v1/namespaces/{data['PodNamespace']}/pods/{data['PodName']}/binding", binding,
            )
            answer = {"Error": "" if status < 300 else json.dumps(result)}
        return web.json_response(answer)

    def serve_in_thread(self) -> None:
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                app = web.Application()
                app.router.add_post("/{mode}/{verb}", self.handle)
                runner = web.AppRunner(app)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", self.port).start()
                ready.set()
                await asyncio.Event().wait()

            asyncio.run(main())

        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)


def raw_get(cluster: LocalCluster, path: str, params: dict[str, str], timeout: float = 30) -> bytes:
    import ssl

    ctx = ssl.create_default_context(cafile=str(cluster.ca_path))
    url = f"{cluster.api_url}{path}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {cluster.token}", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:  # a 410 is a recording too
        return exc.read()


def watch_in_background(cluster: LocalCluster, rv: str, seconds: int) -> tuple[threading.Thread, list[bytes]]:
    out: list[bytes] = []

    def run() -> None:
        out.append(raw_get(cluster, "/api/v1/pods", {
            "watch": "1", "allowWatchBookmarks": "true", "resourceVersion": rv,
            "timeoutSeconds": str(seconds), "fieldSelector": POD_SELECTOR,
        }, timeout=seconds + 30))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def create_pod(cluster: LocalCluster, pod: dict[str, Any]) -> dict[str, Any]:
    pod = json.loads(json.dumps(pod))
    pod["metadata"].pop("uid", None)
    pod.pop("status", None)
    status, created = cluster.request("POST", f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods", pod)
    assert status == 201, created
    return created


def wait_bound(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    def bound() -> dict[str, Any] | None:
        status, pod = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        return pod if status == 200 and pod.get("spec", {}).get("nodeName") else None

    return cluster.wait_for(bound, 60, what=f"{namespace}/{name} bound")


def main() -> None:
    recorder = Recorder()
    recorder.serve_in_thread()
    base = f"http://127.0.0.1:{recorder.port}"
    extenders = [
        {"urlPrefix": f"{base}/cache", "filterVerb": "filter", "prioritizeVerb": "prioritize", "bindVerb": "bind",
         "weight": 1, "nodeCacheCapable": True, "httpTimeout": "10s"},
        {"urlPrefix": f"{base}/full", "filterVerb": "filter", "prioritizeVerb": "prioritize",
         "weight": 1, "nodeCacheCapable": False, "httpTimeout": "10s"},
    ]
    # Pods are watched straight from etcd (no watch cache), so compacting etcd
    # makes the next resumed watch answer 410 at once instead of minutes later.
    with LocalCluster(extenders=extenders, extra_args={"kube-apiserver": ["--watch-cache-sizes=pods#0"]}) as cluster:
        recorder.cluster = cluster
        cluster.create_namespace("shop")
        for name, cpu, memory in (("node-a", "8", "16Gi"), ("node-b", "8", "16Gi"), ("node-c", "4", "8Gi")):
            cluster.create_node(name, cpu, memory)

        first = create_pod(cluster, meshed(app_pod("web-0", "2", "4Gi", limits={"cpu": "4", "memory": "4Gi"})))
        wait_bound(cluster, "shop", first["metadata"]["name"])
        for key, name in (("cache-filter", "args-cache-filter.json"), ("cache-prioritize", "args-cache-prioritize.json"),
                          ("cache-bind", "bind.json"), ("full-filter", "args-full-filter.json"),
                          ("full-prioritize", "args-full-prioritize.json")):
            (HERE / name).write_bytes(recorder.bodies[key][0])

        for i in (1, 2):
            pod = create_pod(cluster, meshed(app_pod(f"web-{i}", "1", "2Gi", limits={"cpu": "2", "memory": "2Gi"})))
            wait_bound(cluster, "shop", pod["metadata"]["name"])
        plain = create_pod(cluster, app_pod("batch-0", "500m", "512Mi"))
        wait_bound(cluster, "shop", plain["metadata"]["name"])

        (HERE / "nodes-list.json").write_bytes(raw_get(cluster, "/api/v1/nodes", {"limit": "500"}))
        page1 = raw_get(cluster, "/api/v1/pods", {"limit": "2", "fieldSelector": POD_SELECTOR})
        (HERE / "pods-list-1.json").write_bytes(page1)
        meta = json.loads(page1)["metadata"]
        page2 = raw_get(cluster, "/api/v1/pods", {"limit": "2", "fieldSelector": POD_SELECTOR, "continue": meta["continue"]})
        (HERE / "pods-list-2.json").write_bytes(page2)
        rv = json.loads(page2)["metadata"]["resourceVersion"]

        thread, stream = watch_in_background(cluster, rv, 6)
        time.sleep(0.5)
        late = create_pod(cluster, meshed(app_pod("web-3", "1", "1Gi")))
        wait_bound(cluster, "shop", late["metadata"]["name"])
        status, _ = cluster.request("DELETE", "/api/v1/namespaces/shop/pods/web-1?gracePeriodSeconds=0")
        assert status == 200
        status, _ = cluster.request("PATCH", "/api/v1/namespaces/shop/pods/batch-0/status",
                                    {"status": {"phase": "Succeeded"}})
        assert status == 200, _
        thread.join()
        (HERE / "pods-watch-1.ndjson").write_bytes(stream[0])

        # Compact etcd to now, as the apiserver does every 5 minutes: older resourceVersions are gone.
        compact = json.dumps({"revision": str(int(json.loads(stream[0].splitlines()[-1])["object"]["metadata"]["resourceVersion"])),
                              "physical": True}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{cluster.etcd_url}/v3/kv/compaction", data=compact), timeout=10).read()
        (HERE / "pods-watch-gone.ndjson").write_bytes(raw_get(cluster, "/api/v1/pods", {
            "watch": "1", "resourceVersion": rv, "timeoutSeconds": "2", "fieldSelector": POD_SELECTOR}))

        status, _ = cluster.request("DELETE", "/api/v1/namespaces/shop/pods/web-2?gracePeriodSeconds=0")
        relist = raw_get(cluster, "/api/v1/pods", {"limit": "500", "fieldSelector": POD_SELECTOR})
        (HERE / "pods-relist.json").write_bytes(relist)
        thread, stream = watch_in_background(cluster, json.loads(relist)["metadata"]["resourceVersion"], 3)
        time.sleep(0.5)
        status, _ = cluster.request("DELETE", "/api/v1/namespaces/shop/pods/web-0?gracePeriodSeconds=0")
        thread.join()
        (HERE / "pods-watch-2.ndjson").write_bytes(stream[0])
    print("recorded into", HERE)


if __name__ == "__main__":
    main()
