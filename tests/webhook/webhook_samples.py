"""Pods of many shapes and the AdmissionReview documents that carry them.

Shared by the pure tests and the tests against a running server, so both
prove the same thing: the patch the webhook returns, applied to the pod in
the request, gives exactly what the engine (``meshfit inject``) gives.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
POLICY_FILE = REPO / "manifests" / "policy.yaml"
EXAMPLES = REPO / "manifests" / "examples"


def container(name: str, cpu: str | None = None, memory: str | None = None, *, limits: dict[str, str] | None = None,
              **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": f"registry.example.com/{name}:1"}
    resources: dict[str, Any] = {}
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    if resources:
        c["resources"] = resources
    c.update(extra)
    return c


def pod(name: str, containers: list[dict[str, Any]], *, namespace: str = "shop", labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": name, **(labels or {})}}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": containers, **spec}}


def giant_pod(env_vars: int = 1500) -> dict[str, Any]:
    env = [{"name": f"VAR_{i:05d}", "value": "x" * 40} for i in range(env_vars)]
    return pod("giant", [container("app", "2", "4Gi", limits={"cpu": "4", "memory": "4Gi"}, env=env)])


def pod_shapes() -> dict[str, dict[str, Any]]:
    """Named pods, each a shape that injectors have got wrong somewhere."""
    shapes: dict[str, dict[str, Any]] = {
        "burstable": pod("web", [container("app", "1", "1Gi", limits={"cpu": "2", "memory": "2Gi"})]),
        "guaranteed-limits-only": pod("ledger", [container("app", limits={"cpu": "1", "memory": "2Gi"})]),
        "best-effort": pod("toolbox", [container("app")]),
        "two-containers": pod(
            "payments",
            [
                container("app", "2", "4Gi", limits={"cpu": "4", "memory": "4Gi"}, ports=[{"containerPort": 8080}]),
                container("log-shipper", "100m", "128Mi", limits={"cpu": "200m", "memory": "128Mi"}),
            ],
        ),
        "init-heavy": pod(
            "orders",
            [container("app", "500m", "1Gi", limits={"cpu": "1", "memory": "1Gi"})],
            initContainers=[container("migrate", "2", "2Gi", limits={"cpu": "2", "memory": "2Gi"})],
        ),
        "existing-native-sidecar": pod(
            "proxied",
            [container("app", "1", "1Gi", limits={"cpu": "1", "memory": "1Gi"})],
            initContainers=[
                container("envoy", "100m", "64Mi", limits={"cpu": "200m", "memory": "128Mi"}, restartPolicy="Always")
            ],
        ),
        "overhead": pod(
            "kata",
            [container("app", "1", "1Gi", limits={"cpu": "1", "memory": "1Gi"})],
            overhead={"cpu": "250m", "memory": "120Mi"},
            runtimeClassName="kata",
        ),
        "pod-level-resources": pod(
            "pooled",
            [container("app"), container("worker")],
            resources={"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
        ),
        "opt-out-annotation": pod("debug", [container("shell")], annotations={"meshfit.io/inject": "false"}),
        "opt-out-conflict": pod(
            "conflicted",
            [container("app", "1", "1Gi")],
            annotations={"meshfit.io/inject": "true"},
            labels={"meshfit.io/inject": "false"},
        ),
        "host-network": pod("agent", [container("app", "100m", "64Mi")], hostNetwork=True),
        "excluded-namespace": pod("dns", [container("coredns", "100m", "70Mi")], namespace="kube-system"),
        "generate-name-only": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-7d9f8-", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8",
                                              "uid": "0f0e", "controller": True}]},
            "spec": {"containers": [container("app", "250m", "256Mi", limits={"memory": "512Mi"})]},
        },
        "payments-bugfix-rule": pod("payments-v2", [container("app", "1", "2Gi", limits={"cpu": "2", "memory": "2Gi"})],
                                     labels={"app.kubernetes.io/name": "payments"}),
        "version-pin": pod("pinned", [container("app", "1", "1Gi")], annotations={"meshfit.io/version": "rpc-mesh=1.8.1"}),
        "managed-fields": pod("managed", [container("app", "1", "1Gi")]),
        "giant-env": giant_pod(),
    }
    shapes["managed-fields"]["metadata"]["managedFields"] = [
        {"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}
    ]
    for document in _example_pods():
        shapes[f"example-{document['metadata'].get('name', 'unnamed')}"] = document
    return shapes


def _example_pods() -> list[dict[str, Any]]:
    pods = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "Pod":
                pods.append(document)
    return pods


def review(
    obj: dict[str, Any] | None,
    *,
    api_version: str = "admission.k8s.io/v1",
    operation: str = "CREATE",
    kind: tuple[str, str, str] = ("", "v1", "Pod"),
    resource: str = "pods",
    sub_resource: str | None = None,
    namespace: str | None = None,
    dry_run: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview as the apiserver sends it."""
    group, version, kind_name = kind
    meta = (obj or {}).get("metadata") or {}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind_name},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind_name},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "namespace": namespace if namespace is not None else meta.get("namespace", "default"),
        "operation": operation,
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
        "object": copy.deepcopy(obj) if obj is not None else None,
        "oldObject": None,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    if meta.get("name"):
        request["name"] = meta["name"]
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


def configmap() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
            "data": {"key": "value"}}
