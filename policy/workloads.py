"""Where each workload kind keeps its pod template.

One table for everything that looks inside workloads (``meshfit inject``, the
demo), so that a kind added here is understood everywhere at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_template(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload object, or ``None`` for anything else."""
    path = TEMPLATE_PATHS.get(str(body.get("kind", "")))
    if path is None:
        return None
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node if isinstance(node, dict) else None
