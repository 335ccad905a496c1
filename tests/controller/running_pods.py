"""Running meshed pods as the apiserver returns them, written out by hand for the controller's tests.

Each is what a kubelet would report for a pod the webhook meshed: the spec, the
record, and container statuses with images, imageIDs and restart counts.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from controller.plan import Step, plan
from policy.load import load_policy_file
from policy.model import FleetPolicy, Policy

POLICY_FILE = Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml"
RULES = FleetPolicy(rollback=True, timeout_seconds=300, crash_restarts=2, sidecar_image_change_kubelet="1.32")

MOSN = "registry.example.com/mesh/mosn"
EMPTY = "registry.example.com/meshfit/empty:1"
NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def stamp(seconds_ago: float = 0) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status_entry(name: str, image: str, digest: str = DIGEST_A, restarts: int = 0, ready: bool = True,
                  waiting: str | None = None, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": stamp(600)}}
    entry = {"name": name, "image": image, "imageID": f"{image.split(':')[0]}@{digest}", "restartCount": restarts,
             "ready": ready and waiting is None, "started": waiting is None, "state": state}
    if resources is not None:
        entry["resources"] = resources
    return entry


def sidecar_container(name: str, image: str, *, native: bool = True,
                      resources: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": image,
                           "resources": resources or {"requests": {"cpu": "100m", "memory": "64Mi"},
                                                      "limits": {"cpu": "200m", "memory": "64Mi"}}}
    if native:
        out["restartPolicy"] = "Always"
    return out


def meshed_pod(*, version: str = "1.8.0", slots: tuple[str, ...] = ("rpc-mesh",), live: str = "rpc-mesh",
               active: bool = True, empty_image: str | None = None, native: bool = True,
               owner: str | None = "ReplicaSet", previous: str | None = None) -> dict[str, Any]:
    """A Running pod with an app container and the rpc-mesh sidecar in ``slots``."""
    image = f"{MOSN}:{version}"
    record: dict[str, Any] = {"name": "rpc-mesh", "version": version, "image": image, "source": "baseline"}
    if slots != ("rpc-mesh",):
        record["slots"] = list(slots)
        record["live"] = live
    if not active:
        record["active"] = False
    if empty_image:
        record["emptyImage"] = empty_image
    if previous:
        record["previous"] = previous
    sidecars, statuses = [], []
    for slot in slots:
        slot_image = image if slot == live and active else (empty_image or EMPTY)
        sidecars.append(sidecar_container(slot, slot_image, native=native))
        statuses.append(_status_entry(slot, slot_image))
    app = {"name": "app", "image": "registry.example.com/shop/app:3",
           "resources": {"requests": {"cpu": "900m", "memory": "960Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}
    spec: dict[str, Any] = {"nodeName": "node-a", "containers": [app]}
    status: dict[str, Any] = {"phase": "Running", "podIP": "10.64.1.7"}
    if native:
        spec["initContainers"] = sidecars
        status["initContainerStatuses"] = statuses
        status["containerStatuses"] = [_status_entry("app", app["image"])]
    else:
        spec["containers"] = sidecars + [app]
        status["containerStatuses"] = statuses + [_status_entry("app", app["image"])]
    meta: dict[str, Any] = {
        "name": "shop-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "41",
        "annotations": {"meshfit.io/status": orjson.dumps({"v": 1, "policy": "r1", "sidecars": [record]}).decode()},
    }
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "shop-7d9", "uid": "o-1",
                                    "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def with_annotation(pod: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(pod)
    out["metadata"]["annotations"][key] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return out


def with_target(pod: dict[str, Any], generation: int = 1, **sidecar: Any) -> dict[str, Any]:
    return with_annotation(pod, "meshfit.io/target", {"generation": generation, "sidecars": {"rpc-mesh": sidecar}})


def kubelet_reports(pod: dict[str, Any], container: str, image: str, *, digest: str = DIGEST_B,
                    restarts: int = 1, ready: bool = True, waiting: str | None = None) -> dict[str, Any]:
    """``pod`` after the kubelet restarted ``container`` on ``image``."""
    out = copy.deepcopy(pod)
    for key in ("initContainerStatuses", "containerStatuses"):
        for i, entry in enumerate(out["status"].get(key, [])):
            if entry["name"] == container:
                out["status"][key][i] = _status_entry(container, image, digest, restarts, ready, waiting)
    return out


def apply_patch(pod: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver makes of the controller's strategic merge patch (annotations and images by name)."""
    out = copy.deepcopy(pod)
    for key, value in ((body.get("metadata") or {}).get("annotations") or {}).items():
        if value is None:
            out["metadata"]["annotations"].pop(key, None)
        else:
            out["metadata"]["annotations"][key] = value
    for field, items in (body.get("spec") or {}).items():
        for item in items:
            for c in out["spec"][field]:
                if c["name"] == item["name"]:
                    c.update(item)
    out["metadata"]["resourceVersion"] = str(int(out["metadata"]["resourceVersion"]) + 1)
    return out


def annotation(pod: dict[str, Any], key: str) -> Any:
    return orjson.loads(pod["metadata"]["annotations"][key])


def image_of(pod: dict[str, Any], container: str) -> str:
    for field in ("initContainers", "containers"):
        for c in pod["spec"].get(field, []):
            if c["name"] == container:
                return str(c["image"])
    raise KeyError(container)


def shipped_policy() -> Policy:
    return load_policy_file(POLICY_FILE)


def decide(pod: dict[str, Any], policy: Policy, kubelet: str | None = "v1.36.3",
           rules: FleetPolicy = RULES, now: dt.datetime = NOW) -> Step:
    """The controller's decision for ``pod`` on a node with ``kubelet``, at :data:`NOW`."""
    return plan(pod, policy, kubelet, now, rules)


def after(pod: dict[str, Any], step: Step) -> dict[str, Any]:
    """``pod`` once the step's patch is written."""
    assert step.patch is not None, step
    return apply_patch(pod, step.patch)
