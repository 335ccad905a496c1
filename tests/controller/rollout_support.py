"""Meshed pods and a small fleet for the rollout's tests: targets written, operations finished by hand.

:class:`Fleet` stands in for the apiserver and the fleet controller together:
``apply`` writes a decision's targets as the conditional patch would (a stale
resourceVersion is refused), and ``finish`` answers a pod's target the way the
controller does (``meshfit.io/status`` moves, ``meshfit.io/operation`` says
Succeeded or Failed for that generation).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from controller.rollout_plan import Decision, plan
from controller.rollout_pods import PodView, view_pod

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.UTC)


def meshed(name: str, *, namespace: str = "shop", version: str = "1.8.0", app: str = "shop", node: str = "n1",
           uid: str | None = None, target: Mapping[str, Any] | None = None, ready: bool = True,
           restarts: int = 0, owner: str | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    record = {"v": 1, "policy": "r1", "sidecars": [{"name": "rpc-mesh", "version": version, "image": "mosn"}]}
    annotations = {"meshfit.io/status": orjson.dumps(record).decode()}
    if target is not None:
        annotations["meshfit.io/target"] = orjson.dumps(target).decode()
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}",
                            "resourceVersion": "1", "labels": {"app.kubernetes.io/name": app, **(labels or {})},
                            "annotations": annotations}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "containerStatuses": [{"name": "app", "restartCount": restarts, "state": {"running": {}}}]}}


def rollout(spec: Mapping[str, Any], status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "shop", "generation": 1, "uid": "r-uid"},
            "spec": dict(spec), "status": dict(status or {})}


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sidecar": "rpc-mesh", "version": "1.8.1", "selector": {"namespaces": ["shop"]},
                            "batches": [{"count": 1, "bake": "10s"}, {"percent": 100, "bake": "10s"}],
                            "maxUnavailable": 100,
                            "analysis": {"interval": "5s", "count": 2, "inconclusiveDeadline": "60s"}}
    base.update(changes)
    return base


class Fleet:
    """Pods by key, with the apiserver's resourceVersion check and the controller's answers."""

    def __init__(self, pods: Iterable[dict[str, Any]], zones: Mapping[str, str] | None = None) -> None:
        self.pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in pods}
        self.zones = dict(zones or {})
        self.rv = 1
        self.writes = 0
        self.refused = 0

    def views(self) -> list[PodView]:
        return [v for p in self.pods.values() if (v := view_pod(p, "rpc-mesh", self.zones)) is not None]

    def annotations(self, key: str) -> dict[str, str]:
        return self.pods[key]["metadata"]["annotations"]

    def touch(self, key: str) -> None:
        self.rv += 1
        self.pods[key]["metadata"]["resourceVersion"] = str(self.rv)

    def apply(self, decision: Decision) -> list[str]:
        """Write the decision's targets; the keys whose write was refused (a stale resourceVersion)."""
        refused = []
        for write in decision.writes:
            pod = self.pods.get(write.pod)
            if pod is None or pod["metadata"]["resourceVersion"] != write.resource_version:
                refused.append(write.pod)
                self.refused += 1
                continue
            self.writes += 1
            self.annotations(write.pod)["meshfit.io/target"] = write.target
            self.touch(write.pod)
        return refused

    def target(self, key: str) -> dict[str, Any]:
        return orjson.loads(self.annotations(key)["meshfit.io/target"])  # type: ignore[no-any-return]

    def finish(self, key: str, *, phase: str = "Succeeded", restarts: int | None = None) -> None:
        """The controller's answer to the pod's current target."""
        target = self.target(key)
        version = target["sidecars"]["rpc-mesh"]["version"]
        status = orjson.loads(self.annotations(key)["meshfit.io/status"])
        before = status["sidecars"][0]["version"]
        op = {"generation": target["generation"], "sidecar": "rpc-mesh", "action": "in-place", "phase": phase,
              "reason": "crash-loops" if phase == "Failed" else "", "from": before, "to": version, "started": "x"}
        if phase == "Failed":
            op["settled"] = {"rpc-mesh": "Failed"}
        else:
            status["sidecars"][0]["version"] = version
            status["sidecars"][0]["previous"] = before
        self.annotations(key)["meshfit.io/status"] = orjson.dumps(status).decode()
        self.annotations(key)["meshfit.io/operation"] = orjson.dumps(op).decode()
        if restarts is not None:
            self.pods[key]["status"]["containerStatuses"][0]["restartCount"] = restarts
        self.touch(key)

    def finish_all(self) -> None:
        for key in self.pods:
            if "meshfit.io/target" in self.annotations(key):
                op = self.annotations(key).get("meshfit.io/operation")
                if op is None or orjson.loads(op)["generation"] != self.target(key)["generation"]:
                    self.finish(key)

    def version(self, key: str) -> str:
        return str(orjson.loads(self.annotations(key)["meshfit.io/status"])["sidecars"][0]["version"])


def step(fleet: Fleet, cr: dict[str, Any], now: dt.datetime, **kwargs: Any) -> Decision:
    """Plan, write the targets, keep the status on the resource (as the reconciler does)."""
    decision = plan(cr, fleet.views(), now, **kwargs)
    fleet.apply(decision)
    cr["status"] = decision.status
    return decision


def at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def names(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return [r["pod"] for r in records]
