"""Benchmark 8: the controller's cost for a SidecarRollout over 10,000 pods, against writing each target once.

    python -m bench.rollout [--pods 10000] [--rounds 2] [--quick]

The real :class:`controller.rollouts.RolloutReconciler` runs in-process against
a recording apiserver: LIST pages are served as JSON bytes and decoded with
``orjson`` as :class:`kube.client.ApiClient` does, PATCHes and status PUTs are
applied and counted, and the fleet controller's answer is played by finishing
every pod's operation between reconciles (a kubelet that is instant). A clock
that jumps over bakes and analysis intervals leaves only the controller's own
work: what is measured is CPU and wall time *excluding* bake time.

The rollout: six batches (1 pod, 1%, 10%, 25%, 50%, 100%), bake 60 s, three
rounds of builtin checks plus one relative Prometheus metric (a fake
Prometheus answering 0.01 at once, so the queries' rendering — a regex of the
batch's pods and 500 baseline pods — is counted, not a network).

Two floors, measured in the same run and interleaved: the **write floor**,
what any tool that changes those pods must do at least — one paged LIST of them
and one PATCH of each pod's target — and the **read floor**, one paged LIST of
them and nothing else, which every reconcile pays (the rollout reads its pods
afresh each time, so that it is level-based). Reported: API requests per pod,
CPU seconds of the whole rollout against the write floor, CPU per reconcile
against the read floor, wall time per batch (bake excluded), and the status
object's size (etcd refuses objects over 1.5 MiB).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from bench import command
from bench.report import Report, write

#: Targets.
REQUESTS_PER_POD = 1.5
#: A reconcile reads every selected pod (one paged LIST): its own work on top must stay below the read's.
RECONCILE_RATIO = 2.0
STATUS_LIMIT = 1_500_000
NAMESPACE = "shop"


def _pods(count: int) -> list[dict[str, Any]]:
    status = orjson.dumps({"v": 1, "policy": "r1", "sidecars": [
        {"name": "rpc-mesh", "version": "1.8.0", "image": "registry.example.com/mesh/mosn:1.8.0", "source": "baseline"},
        {"name": "msg-mesh", "version": "2.3.0", "image": "registry.example.com/mesh/msg:2.3.0", "source": "baseline"}],
        "accounting": {"mode": "overcommit"}}).decode()
    out = []
    for i in range(count):
        app = f"app-{i % 200}"
        out.append({
            "metadata": {"name": f"{app}-{i}", "namespace": NAMESPACE, "uid": f"{i:08d}-0000-4000-8000-000000000000",
                         "resourceVersion": "1", "labels": {"app.kubernetes.io/name": app, "pod-template-hash": "5d8"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{app}-5d8", "controller": True}],
                         "annotations": {"meshfit.io/status": status}},
            "spec": {"nodeName": f"node-{i % 500}", "containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "app", "restartCount": 0, "ready": True,
                                              "state": {"running": {}}}],
                       "initContainerStatuses": [{"name": "rpc-mesh", "restartCount": 0, "ready": True,
                                                  "state": {"running": {}}}]},
        })
    return out


class Recorder:
    """An apiserver in memory: paged LISTs as JSON bytes, conditional PATCHes, status PUTs; every call counted."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = {p["metadata"]["name"]: p for p in pods}
        self.order = list(self.pods)
        self.rv = 1
        self.calls: dict[str, int] = {}
        self.rollout: dict[str, Any] = {}

    def _count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    async def get_json(self, path: str, params: Any = None) -> dict[str, Any]:
        self._count("list")
        params = dict(params or {})
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 500)
        names = self.order[start:start + limit]
        page: dict[str, Any] = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)},
                                "items": [self.pods[n] for n in names]}
        if start + limit < len(self.order):
            page["metadata"]["continue"] = str(start + limit)
        decoded: dict[str, Any] = orjson.loads(orjson.dumps(page))  # what the wire and ApiClient cost
        return decoded

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        raw = orjson.loads(orjson.dumps(body))
        if method == "PATCH":
            self._count("patch")
            pod = self.pods[path.rsplit("/", 1)[1]]
            meta = raw["metadata"]
            if meta.get("resourceVersion") and meta["resourceVersion"] != pod["metadata"]["resourceVersion"]:
                from kube.client import ApiError

                raise ApiError(409, "Conflict", "the object has been modified")
            pod["metadata"]["annotations"].update(meta.get("annotations") or {})
            self.rv += 1
            pod["metadata"]["resourceVersion"] = str(self.rv)
            return pod
        self._count("status")
        self.rv += 1
        raw["metadata"]["resourceVersion"] = str(self.rv)
        self.rollout = raw
        return raw

    def finish_operations(self) -> None:
        """The fleet controller and the kubelet, instantly: every pod's target is done."""
        for pod in self.pods.values():
            annotations = pod["metadata"]["annotations"]
            text = annotations.get("meshfit.io/target")
            if text is None:
                continue
            target = orjson.loads(text)
            op = annotations.get("meshfit.io/operation")
            if op is not None and orjson.loads(op)["generation"] == target["generation"]:
                continue
            version = target["sidecars"]["rpc-mesh"]["version"]
            status = orjson.loads(annotations["meshfit.io/status"])
            status["sidecars"][0]["version"] = version
            annotations["meshfit.io/status"] = orjson.dumps(status).decode()
            annotations["meshfit.io/operation"] = orjson.dumps({
                "generation": target["generation"], "sidecar": "rpc-mesh", "action": "in-place",
                "phase": "Succeeded", "started": "x"}).decode()
            pod["status"]["initContainerStatuses"][0]["restartCount"] += 1
            self.rv += 1
            pod["metadata"]["resourceVersion"] = str(self.rv)


class FakePrometheus:
    def __init__(self) -> None:
        self.queries = 0
        self.characters = 0

    async def query(self, address: str, promql: str, *, timeout: float, lowest: bool = False) -> Any:
        from controller.rollout_analysis import Reading

        self.queries += 1
        self.characters += len(promql)
        return Reading(0.01)

    async def close(self) -> None:
        return None


def _rollout() -> dict[str, Any]:
    return {"apiVersion": "meshfit.io/v1alpha1", "kind": "SidecarRollout",
            "metadata": {"name": "bench", "namespace": NAMESPACE, "generation": 1, "resourceVersion": "1"},
            "spec": {"sidecar": "rpc-mesh", "version": "1.8.1", "selector": {"namespaces": [NAMESPACE]},
                     "batches": [{"count": 1, "bake": "60s"}, {"percent": 1, "bake": "60s"},
                                 {"percent": 10, "bake": "60s"}, {"percent": 25, "bake": "60s"},
                                 {"percent": 50, "bake": "60s"}, {"percent": 100, "bake": "60s"}],
                     "maxUnavailable": "100%",
                     "analysis": {"interval": "30s", "count": 3, "prometheus": {
                         "address": "http://prometheus:9090", "metrics": [{
                             "name": "error-rate", "maxRatio": 2,
                             "query": 'sum(rate(errors{namespace=~"{{namespace}}",pod=~"{{pods}}"}[1m]))'}]}}}}


async def _rollout_run(pods: int) -> dict[str, Any]:
    from controller.rollouts import RolloutReconciler
    from kube.ratelimit import TokenBucket

    api = Recorder(_pods(pods))
    now = [dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)]
    prometheus = FakePrometheus()

    class Events:
        async def record(self, *_a: Any, **_k: Any) -> bool:
            return True

    reconciler = RolloutReconciler(api, bucket=TokenBucket(1e9, 10**9), events=Events(),  # type: ignore[arg-type]
                                   clock=lambda: now[0], prometheus=prometheus)  # type: ignore[arg-type]
    reconciler.rollouts["shop/bench"] = _rollout()
    reconciles, wall, cpu = 0, 0.0, 0.0
    per_batch: dict[int, float] = {}
    status_bytes = 0
    while True:
        batch = int((reconciler.rollouts["shop/bench"].get("status") or {}).get("batch") or 0)
        t0, c0 = time.perf_counter(), time.process_time()
        decision = await reconciler.reconcile("shop/bench")
        await asyncio.sleep(0)
        spent, cpu_spent = time.perf_counter() - t0, time.process_time() - c0
        wall, cpu = wall + spent, cpu + cpu_spent
        per_batch[batch] = per_batch.get(batch, 0.0) + spent
        reconciles += 1
        assert decision is not None
        status = decision.status
        status_bytes = max(status_bytes, len(orjson.dumps(status)))
        if status.get("phase") in ("Succeeded", "Failed", "Aborted") and status.get("step") != "RollingBack":
            break
        api.finish_operations()
        # Time goes on by what the rollout waits for (bake, interval) — never counted as its cost.
        now[0] += dt.timedelta(seconds=decision.requeue_after if decision.requeue_after is not None else 1.0)
        if reconciles > 10_000:
            raise RuntimeError("the rollout did not finish")
    assert status["phase"] == "Succeeded", status.get("message")
    assert all(p["metadata"]["annotations"]["meshfit.io/target"] for p in api.pods.values())
    requests = sum(api.calls.values()) + prometheus.queries
    return {"pods": pods, "cpu_seconds": cpu, "wall_seconds": wall, "reconciles": reconciles,
            "requests": requests, "calls": dict(api.calls), "queries": prometheus.queries,
            "query_characters": prometheus.characters, "status_bytes": status_bytes,
            "batches": len(status["batches"]), "per_batch_seconds": [round(per_batch[b], 4) for b in sorted(per_batch)]}


async def _floor_run(pods: int) -> dict[str, Any]:
    """One paged LIST and one conditional PATCH of each pod's target, as `meshfit upgrade -l` would."""
    from kube.pages import list_pages
    from policy.targets import SidecarTarget, next_target

    api = Recorder(_pods(pods))
    t0, c0 = time.perf_counter(), time.process_time()
    listed: list[dict[str, Any]] = []
    async for page in list_pages(api, f"/api/v1/namespaces/{NAMESPACE}/pods", limit=500):  # type: ignore[arg-type]
        listed.extend(page)
    for pod in listed:
        target = next_target(None, "rpc-mesh", SidecarTarget(version="1.8.1"))
        await api.request("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}",
                          {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"],
                                        "annotations": {"meshfit.io/target": target.to_json()}}})
    return {"pods": pods, "cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - t0,
            "requests": sum(api.calls.values())}


async def _read_run(pods: int) -> dict[str, Any]:
    """One paged LIST of the pods, decoded: what each reconcile reads."""
    from kube.pages import list_pages

    api = Recorder(_pods(pods))
    t0, c0 = time.perf_counter(), time.process_time()
    count = 0
    async for page in list_pages(api, f"/api/v1/namespaces/{NAMESPACE}/pods", limit=500):  # type: ignore[arg-type]
        count += len(page)
    assert count == pods
    return {"pods": pods, "cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - t0,
            "requests": sum(api.calls.values())}


def run(pods: int = 10_000, rounds: int = 2, out_dir: Path | None = None) -> Report:
    started = time.monotonic()
    report = Report("rollout", "Benchmark 8: a SidecarRollout's controller cost over many pods, against the floor")
    report.parameters = {"pods": pods, "rounds": rounds, "batches": "1,1%,10%,25%,50%,100%", "page_size": 500,
                         "analysis": "3 rounds: builtin checks + 1 relative Prometheus metric (fake, instant)"}
    samples: dict[str, list[dict[str, Any]]] = {"floor": [], "read": [], "rollout": []}
    runs = {"floor": _floor_run, "read": _read_run, "rollout": _rollout_run}
    for r in range(rounds):
        for role in ("floor", "read", "rollout") if r % 2 == 0 else ("rollout", "read", "floor"):
            result = asyncio.run(runs[role](pods))
            samples[role].append(result)
            print(f"round {r + 1}: {role} {result['cpu_seconds']:.2f} CPU-s, {result['requests']} requests",
                  flush=True)
    floor_cpu = statistics.median(s["cpu_seconds"] for s in samples["floor"])
    read_cpu = statistics.median(s["cpu_seconds"] for s in samples["read"])
    roll_cpu = statistics.median(s["cpu_seconds"] for s in samples["rollout"])
    last = samples["rollout"][-1]
    for role in ("floor", "read", "rollout"):
        for i, s in enumerate(samples[role]):
            report.rows.append({"round": i + 1, "what": role, "CPU s": round(s["cpu_seconds"], 3),
                                "wall s (no bake)": round(s["wall_seconds"], 3), "requests": s["requests"],
                                "requests/pod": round(s["requests"] / pods, 3)})
    per_pod = last["requests"] / pods
    ratio = roll_cpu / floor_cpu if floor_cpu else 0.0
    per_batch = statistics.median(last["per_batch_seconds"])
    report.target(f"API requests per pod, a 6-batch rollout of {pods} pods", f"<= {REQUESTS_PER_POD:g}", per_pod,
                  "requests", per_pod <= REQUESTS_PER_POD,
                  f"{last['calls']}, {last['queries']} Prometheus queries, {last['reconciles']} reconciles")
    per_reconcile = roll_cpu / last["reconciles"]
    reconcile_ratio = per_reconcile / read_cpu if read_cpu else 0.0
    report.target("controller CPU per reconcile, x one paged LIST of the pods (the read floor)",
                  f"<= {RECONCILE_RATIO:g}x read floor", reconcile_ratio, "x", reconcile_ratio <= RECONCILE_RATIO,
                  f"{per_reconcile:.3f} CPU-s vs {read_cpu:.3f} CPU-s; {last['reconciles']} reconciles")
    report.notes.append(f"the whole rollout: {roll_cpu:.2f} CPU-s, {ratio:.1f}x the write floor (one LIST + one "
                        f"PATCH per pod: {floor_cpu:.2f} CPU-s) — {last['reconciles']} reconciles, each reading "
                        "every selected pod")
    report.target("wall time per batch, bake and intervals excluded (median of the batches)", "<= 10 s", per_batch,
                  "s", per_batch <= 10, f"per batch: {last['per_batch_seconds']}")
    report.target("largest status object written", f"<= {STATUS_LIMIT} bytes (etcd's limit is 1.5 MiB)",
                  float(last["status_bytes"]), "bytes", last["status_bytes"] <= STATUS_LIMIT,
                  f"{last['status_bytes'] / pods:.0f} bytes per pod")
    report.details = {"samples": samples}
    report.seconds = time.monotonic() - started
    write(report, out_dir)
    return report


#: A smoke run (``--quick``): checks it runs, measures nothing.
QUICK: dict[str, Any] = dict(pods=300, rounds=1)


def main() -> None:
    command.main(run, QUICK, __doc__, {"pods": "pods selected", "rounds": "interleaved rounds"})


if __name__ == "__main__":
    main()
