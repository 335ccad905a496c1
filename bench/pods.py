"""The pods and AdmissionReviews the benchmarks send, each one distinct on demand.

Shapes are those the issue names: a typical two-container Java pod as the
kube-apiserver hands it to a webhook (defaulted: pull policies, termination
paths, the service-account token volume, tolerations), a 64 KB pod, and a pod
with 1,500 environment variables. ``distinct`` gives each copy its own name,
uid and a label, so the webhook's answer cache (keyed by the pod's content)
can never answer for it: the benchmarks measure the engine, not the cache.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

import orjson

#: The namespace every benchmark pod lives in (opted in or not is the caller's choice).
NAMESPACE = "bench"


def _container(name: str, image: str, requests: dict[str, str], limits: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [{"name": "kube-api-access-x7k2q", "readOnly": True,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        **extra,
    }


def java_pod(name: str = "orders-7d9f8c6b5-abcde") -> dict[str, Any]:
    """A typical Java service pod (app + log shipper) in the form the apiserver sends it."""
    app = _container(
        "app", "registry.example.com/shop/orders:4.2.1",
        {"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "4Gi"},
        ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"},
               {"name": "metrics", "containerPort": 9404, "protocol": "TCP"}],
        env=[{"name": "JAVA_OPTS", "value": "-Xmx3g -XX:+UseG1GC -XX:MaxGCPauseMillis=100"},
             {"name": "SPRING_PROFILES_ACTIVE", "value": "prod"},
             {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
        readinessProbe={"httpGet": {"path": "/actuator/health/readiness", "port": 8080, "scheme": "HTTP"},
                        "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
        livenessProbe={"httpGet": {"path": "/actuator/health/liveness", "port": 8080, "scheme": "HTTP"},
                       "initialDelaySeconds": 60, "periodSeconds": 10, "timeoutSeconds": 1,
                       "successThreshold": 1, "failureThreshold": 3},
    )
    shipper = _container(
        "log-shipper", "registry.example.com/infra/fluent-bit:3.1",
        {"cpu": "100m", "memory": "128Mi"}, {"cpu": "200m", "memory": "128Mi"},
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": "orders-7d9f8c6b5-",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "orders", "pod-template-hash": "7d9f8c6b5", "team": "shop"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "orders-7d9f8c6b5",
                                 "uid": "5b1c0f3e-8d3a-4c1e-9f0a-2f6b7e1d4c3b", "controller": True,
                                 "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": [app, shipper],
            "volumes": [{"name": "kube-api-access-x7k2q", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                                 "fieldPath": "metadata.namespace"}}]}},
            ]}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
    }


def large_pod(target_bytes: int = 64 * 1024) -> dict[str, Any]:
    """The Java pod grown to ``target_bytes`` of JSON with config-like annotations and env."""
    pod = java_pod("catalog-6c8f7d9b4-fghij")
    app = pod["spec"]["containers"][0]
    annotations = pod["metadata"].setdefault("annotations", {})
    i = 0
    while len(orjson.dumps(pod)) < target_bytes:
        annotations[f"config.example.com/setting-{i:04d}"] = f"value-{i:04d}-" + "v" * 80
        app["env"].append({"name": f"FEATURE_FLAG_{i:04d}", "value": "enabled-" + "f" * 60})
        i += 1
    return pod


def env_pod(count: int = 1500) -> dict[str, Any]:
    """The Java pod with ``count`` environment variables on its app container."""
    pod = java_pod("legacy-5f7c8d9e6-klmno")
    app = pod["spec"]["containers"][0]
    app["env"] = app["env"] + [{"name": f"LEGACY_SETTING_{i:05d}", "value": "x" * 40} for i in range(count)]
    return pod


SHAPES: dict[str, Callable[[], dict[str, Any]]] = {"typical": java_pod, "64KB": large_pod, "1500-env": env_pod}


def distinct(pod: dict[str, Any], i: int) -> dict[str, Any]:
    """A copy of ``pod`` that no other ``i`` shares: its own name, uid and a label."""
    out = copy.deepcopy(pod)
    meta = out["metadata"]
    meta["name"] = f"{meta.get('generateName', 'pod-')}{i:06d}"
    meta["uid"] = str(uuid.UUID(int=i + 1))
    meta["labels"] = {**meta.get("labels", {}), "bench.meshfit.io/seq": str(i)}
    return out


def review(pod: dict[str, Any], uid: str | None = None) -> dict[str, Any]:
    """The ``admission.k8s.io/v1`` AdmissionReview the apiserver sends for a pod CREATE."""
    meta = pod.get("metadata") or {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", NAMESPACE),
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "uid": "3f1e2d4c-0000-0000-0000-000000000001",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]},
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def client_pod(name: str) -> dict[str, Any]:
    """The Java pod as a client submits it: what the apiserver defaults and the
    ServiceAccount plugin adds (token volume and mounts) left for it to add."""
    pod = java_pod(name)
    pod["metadata"].pop("generateName", None)
    pod["metadata"].pop("namespace", None)  # the URL names it
    spec = pod["spec"]
    spec.pop("volumes", None)
    spec.pop("serviceAccount", None)
    for container in spec["containers"]:
        container.pop("volumeMounts", None)
    return pod
