"""The local control plane is the real thing: pinned version, real admission, real scheduler.

Every other end-to-end test trusts this cluster to behave like production for
exactly the features meshfit relies on: native sidecars, pod-level resources
surviving admission, and the stock scheduler binding to the nodes the helpers
create. If any of that silently broke (a feature gate off, a not-ready taint),
those tests would pass or fail for the wrong reason; these catch it first.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from controlplane import binaries
from controlplane.cluster import LocalCluster
from controlplane.ports import free_port

pytestmark = pytest.mark.e2e


def _pod(name: str, node_name: str) -> dict[str, Any]:
    """Pod-level requests (1 CPU, 1Gi) above its containers', plus a native sidecar."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            # Pin to this test's node: the session cluster holds other tests' nodes.
            "nodeSelector": {"kubernetes.io/hostname": node_name},
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            "initContainers": [
                {
                    "name": "mesh",
                    "image": "registry.invalid/mesh:1",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
            "containers": [
                {
                    "name": "app",
                    "image": "registry.invalid/app:1",
                    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                }
            ],
        },
    }


def _node_name() -> str:
    return f"node-{uuid.uuid4().hex[:8]}"


def _bound_node(cluster: LocalCluster, namespace: str, pod: str) -> str | None:
    status, body = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
    assert status == 200, body
    node: str | None = body["spec"].get("nodeName")
    return node


@pytest.mark.parametrize("binary", ["kube-apiserver", "kube-scheduler"])
def test_kubernetes_binaries_report_the_pinned_version(
    controlplane_bindir: Path, binary: str
) -> None:
    out = subprocess.run(
        [str(controlplane_bindir / binary), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert out.strip() == f"Kubernetes {binaries.pins().kubernetes}"


def test_etcd_reports_the_pinned_version(controlplane_bindir: Path) -> None:
    out = subprocess.run(
        [str(controlplane_bindir / "etcd"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert f"etcd Version: {binaries.pins().etcd.removeprefix('v')}" in out


def test_created_node_is_ready_allocatable_and_untainted(local_cluster: LocalCluster) -> None:
    name = _node_name()
    node = local_cluster.create_node(name, cpu="4", memory="8Gi", pods="20", labels={"zone": "z1"})

    assert node["status"]["allocatable"] == {
        "cpu": "4",
        "memory": "8Gi",
        "pods": "20",
        "ephemeral-storage": "100Gi",
    }
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert [c["status"] for c in ready] == ["True"]
    assert node["metadata"]["labels"]["zone"] == "z1"
    # Re-read: nothing running in the background may have tainted it since.
    status, again = local_cluster.request("GET", f"/api/v1/nodes/{name}")
    assert status == 200
    assert not again["spec"].get("taints"), again["spec"]


def test_sidecar_pod_with_pod_level_resources_is_admitted_intact_and_bound(
    local_cluster: LocalCluster, e2e_namespace: str
) -> None:
    node = _node_name()
    local_cluster.create_node(node, cpu="8", memory="16Gi")

    status, pod = local_cluster.request(
        "POST", f"/api/v1/namespaces/{e2e_namespace}/pods", _pod("sidecar-pod", node)
    )

    assert status == 201, pod
    spec = pod["spec"]
    # A disabled PodLevelResources gate would drop this field silently, not reject it.
    assert spec.get("resources") == {"requests": {"cpu": "1", "memory": "1Gi"}}
    (mesh,) = spec["initContainers"]
    assert mesh["restartPolicy"] == "Always"
    assert mesh["resources"] == {"requests": {"cpu": "100m", "memory": "64Mi"}}
    (app,) = spec["containers"]
    assert app["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}}

    bound = local_cluster.wait_for(
        lambda: _bound_node(local_cluster, e2e_namespace, "sidecar-pod"),
        timeout=30,
        what="the scheduler to bind sidecar-pod",
    )
    assert bound == node


def test_scheduler_restarts_with_extenders_and_restores_its_config(
    local_cluster: LocalCluster, e2e_namespace: str
) -> None:
    # An ignorable extender nobody listens on: the real scheduler must accept
    # the configuration (a bad one crashes it) and still bind around it.
    extender = {
        "urlPrefix": f"http://127.0.0.1:{free_port()}/meshfit",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "weight": 1,
        "nodeCacheCapable": True,
        "ignorable": True,
        "httpTimeout": "2s",
    }
    before = local_cluster.extenders
    node = _node_name()
    local_cluster.create_node(node, cpu="2", memory="4Gi")

    with local_cluster.scheduler_extenders([extender]):
        written = json.loads(local_cluster.scheduler_config_path.read_text())
        assert written["extenders"] == [extender]
        status, pod = local_cluster.request(
            "POST", f"/api/v1/namespaces/{e2e_namespace}/pods", _pod("via-extender", node)
        )
        assert status == 201, pod
        local_cluster.wait_for(
            lambda: _bound_node(local_cluster, e2e_namespace, "via-extender") == node,
            timeout=30,
            what="binding with an ignorable, unreachable extender",
        )

    assert local_cluster.extenders == before
    assert (
        json.loads(local_cluster.scheduler_config_path.read_text()).get("extenders", []) == before
    )


def test_resource_quota_charges_pod_level_requests(
    local_cluster: LocalCluster, e2e_namespace: str
) -> None:
    # Each pod's containers ask 600m CPU, its pod-level request 1 CPU. Under a
    # 1500m quota a second pod fits only if quota counted the containers: the
    # rejection proves quota charges R(pod), the number meshfit keeps constant.
    local_cluster.create_resource_quota(
        e2e_namespace, "compute", {"requests.cpu": "1500m", "requests.memory": "4Gi"}
    )
    pods = f"/api/v1/namespaces/{e2e_namespace}/pods"

    status, first = local_cluster.request("POST", pods, _pod("first", "nowhere"))
    assert status == 201, first
    status, second = local_cluster.request("POST", pods, _pod("second", "nowhere"))

    assert status == 403, second
    assert "exceeded quota" in second["message"]
    status, quota = local_cluster.request(
        "GET", f"/api/v1/namespaces/{e2e_namespace}/resourcequotas/compute"
    )
    assert status == 200, quota
    assert quota["status"]["used"]["requests.cpu"] == "1"


def test_mutating_admission_webhooks_are_called(
    local_cluster: LocalCluster, e2e_namespace: str
) -> None:
    # A webhook nobody serves, with failurePolicy Fail, scoped to this test's
    # namespace: the pod is refused only if the apiserver really calls it.
    label = {"meshfit.io/e2e-webhook": e2e_namespace}
    local_cluster.request(
        "PATCH", f"/api/v1/namespaces/{e2e_namespace}", {"metadata": {"labels": label}}
    )
    name = f"unreachable-{e2e_namespace}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": "unreachable.e2e.meshfit.io",
                "clientConfig": {
                    "url": f"https://127.0.0.1:{free_port()}/mutate",
                    "caBundle": base64.b64encode(local_cluster.ca_path.read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "namespaceSelector": {"matchLabels": label},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 2,
            }
        ],
    }
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    status, body = local_cluster.request("POST", path, config)
    assert status == 201, body
    try:
        # The apiserver picks up new webhook configurations asynchronously.
        attempts = itertools.count()

        def refused() -> str:
            # A fresh name per attempt: an early attempt may still be admitted.
            pod_name = f"guarded-{next(attempts)}"
            status, pod = local_cluster.request(
                "POST", f"/api/v1/namespaces/{e2e_namespace}/pods", _pod(pod_name, "nowhere")
            )
            assert status != 201, "admitted without calling the webhook"
            return str(pod.get("message", ""))

        message = local_cluster.wait_for(refused, timeout=15, what="the webhook to be called")
        assert "failed calling webhook" in message
    finally:
        local_cluster.request("DELETE", f"{path}/{name}")
