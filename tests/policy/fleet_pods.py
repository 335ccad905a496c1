"""Hand-written meshed pods and the policy they are judged under, for the fleet view's tests.

Every figure is written out: the record, the spec's images and the kubelet's
report are set one by one, so a test states exactly which reading disagrees.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any

from policies import default_policy

from policy.model import Policy, VersionRule

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
RPC = "registry.example.com/mesh/mosn"
MSG = "registry.example.com/mesh/msg-agent"
EMPTY = "registry.example.com/mesh/empty:1"
#: The policy's own image for 1.9.0-rc.1: a digest, no tag to read the version from.
RC_IMAGE = "registry.example.com/mesh/mosn-rc@sha256:" + "9" * 64
RPC_ID = "registry.example.com/mesh/mosn@sha256:" + "a" * 64
MSG_ID = "registry.example.com/mesh/msg-agent@sha256:" + "b" * 64
APP_LABEL = "app.kubernetes.io/name"
ZONE_LABEL = "topology.kubernetes.io/zone"

#: rpc-mesh 1.8.1 for the payments app, 1.9.0-rc.1 in zone eu-1b and for a tenth of the canary namespace.
RULES = (
    VersionRule("mosn-1.8.1-conn-leak-fix", "bugfix", "1.8.1", sidecar="rpc-mesh", apps=("payments",)),
    VersionRule("mosn-1.9-canary", "experiment", "1.9.0-rc.1", sidecar="rpc-mesh", namespaces=("canary",),
                percent=Fraction(10)),
    VersionRule("eu-1b-rc", "zone", "1.9.0-rc.1", sidecar="rpc-mesh", zones=("eu-1b",)),
)


def fleet_policy() -> Policy:
    """The shipped policy with :data:`RULES`, and 1.9.0-rc.1's image given by digest."""
    base = default_policy()
    sidecars = dict(base.versions.sidecars)
    sidecars["rpc-mesh"] = dataclasses.replace(sidecars["rpc-mesh"], images={"1.9.0-rc.1": RC_IMAGE})
    return dataclasses.replace(base, versions=dataclasses.replace(base.versions, sidecars=sidecars, rules=RULES))


def record(name: str, version: str | None, image: str | None, **extra: Any) -> dict[str, Any]:
    """One sidecar's entry in ``meshfit.io/status``, as the webhook writes it."""
    return {"name": name, "version": version, "image": image, "source": "baseline", **extra}


def status_text(*sidecars: dict[str, Any]) -> str:
    return json.dumps({"v": 1, "policy": "0123456789ab", "sidecars": list(sidecars)})


def meshed(name: str = "web-0", namespace: str | None = "shop", *, app: str | None = "web",
           rpc: str = RPC + ":1.8.0", msg: str = MSG + ":2.3.0", node: str | None = "n1",
           owner: str = "w-0") -> dict[str, Any]:
    """A pod the webhook gave rpc-mesh 1.8.0 and msg-mesh 2.3.0, its spec running ``rpc`` and ``msg``."""
    meta: dict[str, Any] = {
        "name": name, "labels": {APP_LABEL: app} if app else {},
        "annotations": {"meshfit.io/status": status_text(record("rpc-mesh", "1.8.0", RPC + ":1.8.0"),
                                                         record("msg-mesh", "2.3.0", MSG + ":2.3.0"))},
        "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "controller": True}],
    }
    if namespace is not None:
        meta["namespace"] = namespace
    spec: dict[str, Any] = {
        "initContainers": [{"name": "rpc-mesh", "image": rpc}, {"name": "msg-mesh", "image": msg}],
        "containers": [{"name": "app", "image": "registry.example.com/app:1"}],
    }
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {
        "phase": "Running",
        "initContainerStatuses": [{"name": "rpc-mesh", "image": rpc, "imageID": RPC_ID},
                                  {"name": "msg-mesh", "image": msg, "imageID": MSG_ID}],
        "containerStatuses": [{"name": "app", "image": "registry.example.com/app:1", "imageID": "app-id"}],
    }}


def set_record(pod: dict[str, Any], *sidecars: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["annotations"]["meshfit.io/status"] = status_text(*sidecars)
    return pod


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for k in ("initContainers", "containers") for c in pod["spec"].get(k, ()) if c["name"] == name)


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for k in ("initContainerStatuses", "containerStatuses") for s in pod["status"].get(k, ())
                if s["name"] == name)
