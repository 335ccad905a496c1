"""Small builders for pod dicts, shared by the policy, webhook and extender tests."""

from __future__ import annotations

from typing import Any


def container(name: str, req: dict[str, str] | None = None, lim: dict[str, str] | None = None,
              restart: str | None = None, **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": f"example/{name}:1", **extra}
    res: dict[str, Any] = {}
    if req:
        res["requests"] = dict(req)
    if lim:
        res["limits"] = dict(lim)
    if res:
        c["resources"] = res
    if restart:
        c["restartPolicy"] = restart
    return c


def pod(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None, *,
        name: str = "p", namespace: str | None = None, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, overhead: dict[str, str] | None = None,
        pod_requests: dict[str, str] | None = None, pod_limits: dict[str, str] | None = None,
        **spec_extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: dict[str, Any] = {"containers": containers, **spec_extra}
    if init:
        spec["initContainers"] = init
    if overhead:
        spec["overhead"] = dict(overhead)
    if pod_requests or pod_limits:
        spec["resources"] = {}
        if pod_requests:
            spec["resources"]["requests"] = dict(pod_requests)
        if pod_limits:
            spec["resources"]["limits"] = dict(pod_limits)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def java_pod(name: str = "java", labels: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
    """The typical two-container Java pod of the benchmarks."""
    return pod([
        container("app", {"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "4Gi"},
                  ports=[{"containerPort": 8080}], env=[{"name": "JAVA_OPTS", "value": "-Xmx3g"}]),
        container("log-shipper", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "200m", "memory": "128Mi"}),
    ], name=name, labels={"app.kubernetes.io/name": name, **(labels or {})}, **kw)
