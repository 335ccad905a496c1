"""The rollout reconciler's I/O against a recorded apiserver: what it reads, what it writes, what it undoes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from rollout_support import NOW, meshed, rollout, spec

from controller.rollout_analysis import Reading
from controller.rollouts import RolloutReconciler
from kube.client import ApiError
from kube.ratelimit import TokenBucket


class Api:
    """Pods in two namespaces behind paged LISTs; conditional PATCHes; status PUTs; every call kept."""

    def __init__(self) -> None:
        self.pods = {f"{ns}/{n}": meshed(n, namespace=ns, labels={"tier": "web" if i % 2 == 0 else "db"})
                     for ns in ("shop", "bank") for i, n in enumerate(f"{ns}-{j}" for j in range(4))}
        self.namespaces = {"shop": {"team": "a"}, "bank": {"team": "b"}, "empty": {"team": "a"}}
        self.calls: list[tuple[str, str, Any]] = []
        self.conflict_on: set[str] = set()
        self.status_conflicts = 0
        self.rv = 10

    async def get_json(self, path: str, params: Any = None) -> dict[str, Any]:
        params = dict(params or {})
        self.calls.append(("GET", path, params))
        if path == "/api/v1/namespaces":
            wanted = params.get("labelSelector", "")
            items = [{"metadata": {"name": n, "labels": labels}} for n, labels in self.namespaces.items()
                     if not wanted or wanted == f"team={labels['team']}"]
            return {"items": items, "metadata": {}}
        namespace = path.split("/")[4]
        items = [p for k, p in self.pods.items() if k.startswith(namespace + "/")]
        start = int(params.get("continue") or 0)
        page = items[start:start + int(params["limit"])]
        meta = {"continue": str(start + len(page))} if start + len(page) < len(items) else {}
        return orjson.loads(orjson.dumps({"items": page, "metadata": meta}))  # type: ignore[no-any-return]

    async def request(self, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        self.calls.append((method, path, body))
        if method == "PATCH":
            key = "/".join(path.split("/")[4:7:2])
            if key in self.conflict_on:
                raise ApiError(409, "Conflict", "the object has been modified")
            pod = self.pods[key]
            assert body["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]
            pod["metadata"]["annotations"].update(body["metadata"]["annotations"])
            self.rv += 1
            pod["metadata"]["resourceVersion"] = str(self.rv)
            return pod
        if self.status_conflicts:
            self.status_conflicts -= 1
            raise ApiError(409, "Conflict", "the object has been modified")
        self.rv += 1
        answer: dict[str, Any] = orjson.loads(orjson.dumps(body))
        answer["metadata"]["resourceVersion"] = str(self.rv)
        return answer


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    async def record(self, obj: Any, *, reason: str, message: str, type_: str = "Normal") -> bool:
        self.recorded.append((reason, message))
        return True


def _reconciler(api: Api, **kwargs: Any) -> tuple[RolloutReconciler, Events]:
    events = Events()
    reconciler = RolloutReconciler(api, bucket=TokenBucket(1000, 1000), events=events,  # type: ignore[arg-type]
                                   clock=lambda: NOW, page_size=3, **kwargs)
    return reconciler, events


def _cr(**changes: Any) -> dict[str, Any]:
    cr = rollout(spec(**changes))
    cr["metadata"]["resourceVersion"] = "5"
    return cr


async def test_a_reconcile_lists_the_selection_page_by_page_writes_conditionally_and_puts_the_status() -> None:
    api = Api()
    reconciler, events = _reconciler(api)
    reconciler.on_sync([_cr(selector={"namespaceSelector": {"matchLabels": {"team": "a"}},
                                      "podSelector": {"matchLabels": {"tier": "web"}}})])
    decision = await reconciler.reconcile("shop/r")
    assert decision is not None and decision.status["total"] == 2  # shop's two web pods; bank is team b
    lists = [(p, c.get("labelSelector")) for m, p, c in api.calls if m == "GET"]
    assert lists[0] == ("/api/v1/namespaces", "team=a")
    assert ("/api/v1/namespaces/shop/pods", "tier=web") in lists and not any("bank" in p for p, _ in lists)
    (patch,) = [c for c in api.calls if c[0] == "PATCH"]
    assert patch[2]["metadata"]["resourceVersion"] == "1"
    assert orjson.loads(patch[2]["metadata"]["annotations"]["meshfit.io/target"])["generation"] == 1
    (put,) = [c for c in api.calls if c[0] == "PUT"]
    assert put[1] == "/apis/meshfit.io/v1alpha1/namespaces/shop/sidecarrollouts/r/status"
    assert put[2]["metadata"]["resourceVersion"] == "5" and put[2]["status"]["phase"] == "Progressing"
    assert reconciler.rollouts["shop/r"]["metadata"]["resourceVersion"] == str(api.rv)
    await _drain()
    assert [r for r, _ in events.recorded] == ["RolloutBatchStarted"]


async def test_a_refused_write_is_not_recorded_as_written() -> None:
    api = Api()
    reconciler, _ = _reconciler(api)
    reconciler.on_sync([_cr()])
    api.conflict_on = set(api.pods)
    decision = await reconciler.reconcile("shop/r")
    assert decision is not None and decision.writes
    stored = reconciler.rollouts["shop/r"]["status"]["batches"][0]["pods"][0]
    assert "gen" not in stored  # written again on the next reconcile
    api.conflict_on = set()
    await reconciler.reconcile("shop/r")
    assert reconciler.rollouts["shop/r"]["status"]["batches"][0]["pods"][0]["gen"] == 1
    assert reconciler.metrics.rollout_writes.get("upgrade", "conflict") == 1


async def test_a_status_conflict_raises_for_a_retry_and_nothing_is_lost() -> None:
    api = Api()
    reconciler, _ = _reconciler(api)
    reconciler.on_sync([_cr()])
    api.status_conflicts = 1
    with pytest.raises(ApiError):
        await reconciler.reconcile("shop/r")
    # The target landed, its record did not: the next reconcile adopts the write instead of making another.
    await reconciler.reconcile("shop/r")
    patches = [c for c in api.calls if c[0] == "PATCH"]
    assert len(patches) == 1
    assert reconciler.rollouts["shop/r"]["status"]["batches"][0]["pods"][0]["gen"] == 1


async def test_a_follower_does_nothing() -> None:
    api = Api()
    reconciler, _ = _reconciler(api, leading=lambda: False)
    reconciler.on_sync([_cr()])
    assert await reconciler.reconcile("shop/r") is None and api.calls == []


async def test_a_round_queries_the_batch_and_the_baseline() -> None:
    api = Api()
    queries: list[str] = []

    class Prom:
        async def query(self, address: str, promql: str, *, timeout: float, lowest: bool = False) -> Reading:
            queries.append(promql)
            return Reading(0.01)

        async def close(self) -> None:
            return None

    reconciler, _ = _reconciler(api, prometheus=Prom())
    cr = _cr(analysis={"prometheus": {"address": "http://p", "metrics": [
        {"name": "e", "query": 'rate(e{pod=~"{{pods}}"}[1m])', "maxRatio": 2}]}})
    reconciler.on_sync([cr])
    decision = await reconciler.reconcile("shop/r")
    assert decision is not None
    (canary,) = decision.writes
    record = orjson.loads(api.pods[canary.pod]["metadata"]["annotations"]["meshfit.io/target"])
    status = orjson.loads(api.pods[canary.pod]["metadata"]["annotations"]["meshfit.io/status"])
    status["sidecars"][0]["version"] = record["sidecars"]["rpc-mesh"]["version"]
    api.pods[canary.pod]["metadata"]["annotations"]["meshfit.io/status"] = orjson.dumps(status).decode()
    api.pods[canary.pod]["metadata"]["resourceVersion"] = "99"
    reconciler.clock = lambda: NOW + dt.timedelta(seconds=1)
    await reconciler.reconcile("shop/r")  # settled
    reconciler.clock = lambda: NOW + dt.timedelta(seconds=11)
    await reconciler.reconcile("shop/r")  # the bake is over: a round
    assert queries == [f'rate(e{{pod=~"{canary.name}"}}[1m])',
                       'rate(e{pod=~"' + "|".join(sorted(k.split("/")[1] for k in api.pods
                                                         if k.startswith("shop/") and k != canary.pod)) + '"}[1m])']
    measured = reconciler.rollouts["shop/r"]["status"]["batches"][0]["measurements"]
    assert {m["check"]: m["result"] for m in measured}["e"] == "Successful"


async def _drain() -> None:
    import asyncio

    for _ in range(3):
        await asyncio.sleep(0)
