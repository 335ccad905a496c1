"""Restarting a pod's workload, as ``kubectl rollout restart`` does: the one way the controller replaces pods.

A pod cannot gain a container, an env var or a port in place, and a pod
admitted without the webhook cannot be meshed where it stands; both are
replaced by their workload. The controller never deletes a pod itself: it
writes ``kubectl.kubernetes.io/restartedAt`` (and, for a recreate, the pinned
versions) on the owning Deployment, StatefulSet or DaemonSet's pod template, and
the workload's own controller replaces the pods at the pace its rollout
strategy and PodDisruptionBudgets allow. A marker annotation makes the restart
happen once per reason, whichever pod of the workload asked first, and again
after a leader change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kube.client import ApiClient

#: The annotation ``kubectl rollout restart`` writes on a pod template.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets/{name}",
    "ReplicaSet": "/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
}
MERGE = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Restart:
    """What became of one request: ``restarted``, ``already`` (the marker was there), or ``refused`` (why)."""

    outcome: str
    workload: str
    reason: str = ""


async def restart_workload(client: ApiClient, namespace: str, owner: Mapping[str, Any], marker_key: str,
                           marker: str, annotations: Mapping[str, str], now: dt.datetime) -> Restart:
    """Restart the workload that owns a pod (through a ReplicaSet to its Deployment), once per ``marker``."""
    kind, name = str(owner.get("kind")), str(owner.get("name"))
    if kind == "ReplicaSet":
        rs = await client.get_json(PATHS[kind].format(ns=namespace, name=name))
        owners = [o for o in (rs.get("metadata") or {}).get("ownerReferences") or () if o.get("controller")]
        if not owners or owners[0].get("kind") != "Deployment":
            return Restart("refused", f"ReplicaSet/{name}", f"ReplicaSet {name} has no Deployment to restart")
        kind, name = "Deployment", str(owners[0].get("name"))
    if kind not in PATHS or kind == "ReplicaSet":
        return Restart("refused", f"{kind}/{name}", f"{kind} is not a workload meshfit restarts "
                                                   "(Deployment, StatefulSet, DaemonSet)")
    path = PATHS[kind].format(ns=namespace, name=name)
    workload = await client.get_json(path)
    template = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    if (template.get("annotations") or {}).get(marker_key) == marker:
        return Restart("already", f"{kind}/{name}")
    body = {"metadata": {"resourceVersion": (workload.get("metadata") or {}).get("resourceVersion")},
            "spec": {"template": {"metadata": {"annotations": {
                **annotations, marker_key: marker,
                RESTARTED_AT: now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}}}}}
    await client.request("PATCH", path, body, content_type=MERGE)
    return Restart("restarted", f"{kind}/{name}")
