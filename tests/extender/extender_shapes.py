"""Nodes, pods and policies for the extender tests, shaped as the API serves them.

Injected pods come from the real engine (:func:`policy.inject.inject`), so the
records the extender reads are exactly the ones the webhook writes.
"""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file
from policy.model import Policy

POLICY_FILE = Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml"

_uids = itertools.count(1)


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy_file(POLICY_FILE)


def policy_with(
    *,
    ceiling: dict[str, Fraction] | None = None,
    weights: dict[str, int] | None = None,
    exposure_weight: Fraction | None = None,
    observe_only: bool | None = None,
    variant: str | None = None,
    mode: str | None = None,
) -> Policy:
    p = default_policy()
    s = p.scheduling
    p = dataclasses.replace(p, scheduling=dataclasses.replace(
        s,
        exposure_ceiling={**s.exposure_ceiling, **(ceiling or {})},
        weights={**s.weights, **(weights or {})},
        exposure_weight=s.exposure_weight if exposure_weight is None else exposure_weight,
    ))
    if observe_only is not None:
        p = dataclasses.replace(p, emergency=dataclasses.replace(p.emergency, extender_observe_only=observe_only))
    changes = {k: v for k, v in (("variant", variant), ("mode", mode)) if v is not None}
    if changes:
        p = dataclasses.replace(p, resources=dataclasses.replace(p.resources, **changes))
    return p


def node(name: str, cpu: str = "8", memory: str = "16Gi", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": f"node-{name}", "labels": {"kubernetes.io/hostname": name, **labels}},
        "spec": {},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def app_pod(
    name: str,
    cpu: str = "1",
    memory: str = "1Gi",
    *,
    namespace: str = "shop",
    limits: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod as a user writes it (the scheduler's view after admission adds uid and defaults)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}-{next(_uids)}",
        "labels": {"app.kubernetes.io/name": name.rsplit("-", 1)[0]},
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "schedulerName": "default-scheduler",
            "containers": containers or [{
                "name": "app",
                "image": "registry.example.com/shop/app:1.0",
                "resources": {
                    "requests": {"cpu": cpu, "memory": memory},
                    # Burstable, as most real pods are: no CPU limit. (A Guaranteed pod keeps its QoS
                    # through the pod-level variant, which puts no exposure on the node.)
                    "limits": limits or {"memory": memory},
                },
            }],
        },
        "status": {"phase": "Pending"},
    }


def meshed(pod: dict[str, Any], policy: Policy | None = None, *, variant: str = "swap") -> dict[str, Any]:
    """``pod`` through the injection engine (swap variant by default: node-level exposure)."""
    policy = policy or policy_with(variant=variant)
    result = inject(pod, Namespace(pod["metadata"]["namespace"], None), policy)
    assert result.injected, result.reason
    return result.pod


def bound(pod: dict[str, Any], node_name: str, phase: str = "Running") -> dict[str, Any]:
    out = dict(pod)
    out["spec"] = {**pod["spec"], "nodeName": node_name}
    out["status"] = {**(pod.get("status") or {}), "phase": phase}
    return out


def uid(pod: dict[str, Any]) -> str:
    return pod["metadata"]["uid"]


def watched(service: Any, pods: list[dict[str, Any]], event: str = "ADDED") -> None:
    """Deliver ``pods`` to ``service`` as its pod watch would (reduced by the feed's own transform)."""
    from extender.feed import reduce_watched

    for pod in pods:
        item = reduce_watched(pod)
        if isinstance(item, tuple):
            service.on_pod_event(event, item[0], item[1])
        else:
            service.on_pod_event(event, item)
