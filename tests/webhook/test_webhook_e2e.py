"""The webhook in cluster mode against a real kube-apiserver.

The apiserver itself calls the webhook (a MutatingWebhookConfiguration with
the generated caBundle), the webhook runs as ``meshfit webhook serve`` with
the token of a ServiceAccount bound to exactly the ClusterRole in
``manifests/webhook/base/rbac.yaml`` (so least privilege is proven
sufficient), and the global policy, namespace policies and namespace labels
all arrive through watches and change under the running process.

The configuration selects only namespaces carrying this module's own label,
so pods of other end-to-end tests sharing the cluster are never sent to it.
"""

from __future__ import annotations

import base64
import copy
import re
import ssl
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from webhook_samples import POLICY_FILE, REPO, container, pod

from certs.generate import generate
from controlplane.cluster import LocalCluster
from policy.inject import Namespace, inject
from policy.load import load_policy_file

pytestmark = pytest.mark.e2e

MANIFESTS = REPO / "manifests" / "webhook" / "base"
SYSTEM_NS = "meshfit-system"
SELECT_LABEL = "meshfit.io/e2e-webhook"
OPT_IN = {"meshfit.io/inject": "enabled"}


def _manifest(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def _ok(status: int, body: dict, what: str) -> dict:
    assert 200 <= status < 300, f"{what}: {status} {body}"
    return body


def _apply(cluster: LocalCluster, obj: dict[str, Any], collection: str) -> dict:
    status, body = cluster.request("POST", collection, obj)
    if status == 409:
        name = obj["metadata"]["name"]
        status, current = cluster.request("GET", f"{collection}/{name}")
        _ok(status, current, f"get {name}")
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        status, body = cluster.request("PUT", f"{collection}/{name}", obj)
    return _ok(status, body, f"apply {obj['kind']} {obj['metadata']['name']}")


class Webhook:
    """``meshfit webhook serve`` as a subprocess, and HTTPS reads of its probes."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, ca: Path, log: Path) -> None:
        self.process = process
        self.port = port
        self.context = ssl.create_default_context(cafile=str(ca))
        self.log = log

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", context=self.context, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str) -> float:
        _, text = self.get("/metrics")
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else float("nan")


@pytest.fixture(scope="module")
def webhook(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    cluster = local_cluster
    work = tmp_path_factory.mktemp("webhook-e2e")
    certs = generate(work / "certs", service="meshfit-webhook", namespace=SYSTEM_NS, ips=["127.0.0.1"])

    # The webhook's identity: the manifests' ServiceAccount and RBAC, nothing more.
    cluster.create_namespace(SYSTEM_NS)
    _apply(cluster, _manifest("serviceaccount.yaml")[0], f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts")
    rbac = {obj["kind"]: obj for obj in _manifest("rbac.yaml")}
    _apply(cluster, rbac["ClusterRole"], "/apis/rbac.authorization.k8s.io/v1/clusterroles")
    _apply(cluster, rbac["ClusterRoleBinding"], "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
    _apply(cluster, rbac["Role"], f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SYSTEM_NS}/roles")
    _apply(cluster, rbac["RoleBinding"], f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SYSTEM_NS}/rolebindings")
    status, token = cluster.request(
        "POST",
        f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts/meshfit-webhook/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    _ok(status, token, "token request")
    kubeconfig = work / "webhook.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "webhook",
        "clusters": [{"name": "e2e", "cluster": {"server": cluster.api_url, "certificate-authority": str(cluster.ca_path)}}],
        "users": [{"name": "webhook", "user": {"token": token["status"]["token"]}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "e2e", "user": "webhook"}}],
    }))

    policy_cm = yaml.safe_load(POLICY_FILE.read_text())
    _apply(cluster, policy_cm, f"/api/v1/namespaces/{SYSTEM_NS}/configmaps")

    log = work / "webhook.log"
    script = Path(sys.executable).parent / "meshfit"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "webhook", "serve", "--cert-dir", str(certs.directory), "--port", "0",
             "--policy-configmap", f"{SYSTEM_NS}/meshfit-policy", "--kubeconfig", str(kubeconfig),
             "--cert-interval", "1"],
            stdout=sink, stderr=subprocess.STDOUT,
        )

    def port() -> int | None:
        match = re.search(r"serving https://127\.0\.0\.1:(\d+)/mutate", log.read_text())
        if process.poll() is not None:
            raise AssertionError(f"webhook exited: {log.read_text()}")
        return int(match.group(1)) if match else None

    hook = Webhook(process, cluster.wait_for(port, 30, what="webhook listening"), certs.ca_cert_path, log)
    cluster.wait_for(lambda: hook.get("/readyz")[0] == 200, 30, what=f"webhook ready: {hook.get('/readyz')[1]}")

    configuration = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": f"meshfit-e2e-{uuid.uuid4().hex[:6]}"},
        "webhooks": [{
            **_manifest("mutatingwebhookconfiguration.yaml")[0]["webhooks"][0],
            "clientConfig": {"url": f"https://127.0.0.1:{hook.port}/mutate", "caBundle": certs.ca_bundle},
            "namespaceSelector": {"matchLabels": {SELECT_LABEL: "true"}},
            "failurePolicy": "Fail",  # here a webhook that does not answer must fail the test
        }],
    }
    _apply(cluster, configuration, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations")
    try:
        yield hook
    finally:
        cluster.request("DELETE", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                                  f"{configuration['metadata']['name']}")
        _apply(cluster, policy_cm, f"/api/v1/namespaces/{SYSTEM_NS}/configmaps")
        process.terminate()
        assert process.wait(20) == 0, log.read_text()


def _namespace(cluster: LocalCluster, labels: dict[str, str]) -> str:
    name = f"webhook-e2e-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name, {SELECT_LABEL: "true", **labels})
    return name


def _app_pod(name: str) -> dict[str, Any]:
    return pod(name, [container("app", "1", "1Gi", limits={"cpu": "2", "memory": "2Gi"})], namespace="")


def _create(cluster: LocalCluster, namespace: str, body: dict[str, Any], *, dry_run: bool = False) -> dict:
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = namespace
    query = "?dryRun=All" if dry_run else ""
    status, created = cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods{query}", body)
    return _ok(status, created, f"create pod in {namespace}")


def _sidecars(stored: dict) -> list[str]:
    return [c["name"] for c in stored["spec"].get("initContainers") or () if c.get("restartPolicy") == "Always"]


def _wait(cluster: LocalCluster, condition, what: str) -> None:  # noqa: ANN001
    cluster.wait_for(condition, 30, interval=0.2, what=what)


def test_the_apiserver_stores_what_inject_gives(local_cluster: LocalCluster, webhook: Webhook) -> None:
    namespace = _namespace(local_cluster, OPT_IN)
    original = _app_pod("web")
    original["metadata"]["namespace"] = namespace
    stored = _create(local_cluster, namespace, original)
    labels = {SELECT_LABEL: "true", **OPT_IN, "kubernetes.io/metadata.name": namespace}
    expected = inject(copy.deepcopy(original), Namespace(namespace, labels, None), load_policy_file(POLICY_FILE)).pod
    assert _sidecars(stored) == ["rpc-mesh", "msg-mesh"]
    for key in ("meshfit.io/status", "meshfit.io/accounting"):
        assert stored["metadata"]["annotations"][key] == expected["metadata"]["annotations"][key]
    assert stored["spec"]["resources"] == expected["spec"]["resources"]
    for got, want in zip(stored["spec"]["containers"], expected["spec"]["containers"], strict=True):
        assert got["resources"] == want["resources"]
        assert got.get("env") == want.get("env")
    for got, want in zip(stored["spec"]["initContainers"], expected["spec"]["initContainers"], strict=True):
        assert (got["name"], got["image"], got["resources"]) == (want["name"], want["image"], want["resources"])


def test_dry_run_is_mutated_the_same(local_cluster: LocalCluster, webhook: Webhook) -> None:
    namespace = _namespace(local_cluster, OPT_IN)
    dry = _create(local_cluster, namespace, _app_pod("dry"), dry_run=True)
    assert _sidecars(dry) == ["rpc-mesh", "msg-mesh"]
    status, _ = local_cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods/dry")
    assert status == 404


def test_namespace_labels_come_from_the_watch(local_cluster: LocalCluster, webhook: Webhook) -> None:
    namespace = _namespace(local_cluster, {})
    assert _sidecars(_create(local_cluster, namespace, _app_pod("before"))) == []
    local_cluster.create_namespace(namespace, {SELECT_LABEL: "true", **OPT_IN})  # label it opted in

    def injected() -> bool:
        created = _create(local_cluster, namespace, _app_pod("after"), dry_run=True)
        return _sidecars(created) == ["rpc-mesh", "msg-mesh"]

    _wait(local_cluster, injected, "the label change reached the webhook")


def test_namespace_policy_configmap_applies_live(local_cluster: LocalCluster, webhook: Webhook) -> None:
    namespace = _namespace(local_cluster, OPT_IN)
    configmap = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "meshfit-policy", "namespace": namespace},
        "data": {"policy.yaml": "apiVersion: meshfit.io/v1alpha1\nkind: NamespacePolicy\n"
                                "sidecars:\n  msg-mesh: {enabled: false}\n"},
    }
    _apply(local_cluster, configmap, f"/api/v1/namespaces/{namespace}/configmaps")

    def only_rpc() -> bool:
        return _sidecars(_create(local_cluster, namespace, _app_pod("p"), dry_run=True)) == ["rpc-mesh"]

    _wait(local_cluster, only_rpc, "the namespace policy reached the webhook")

    bad = {**configmap, "data": {"policy.yaml": configmap["data"]["policy.yaml"].replace("enabled: false", "enabled: maybe")}}
    _apply(local_cluster, bad, f"/api/v1/namespaces/{namespace}/configmaps")
    _wait(local_cluster, lambda: f"namespace policy {namespace}" in webhook.get("/readyz")[1], "refusal reported")
    assert webhook.get("/readyz")[0] == 200
    assert _sidecars(_create(local_cluster, namespace, _app_pod("q"), dry_run=True)) == ["rpc-mesh"], "last good kept"


def test_global_policy_configmap_applies_live_and_refuses_bad_edits(local_cluster: LocalCluster, webhook: Webhook) -> None:
    namespace = _namespace(local_cluster, OPT_IN)
    path = f"/api/v1/namespaces/{SYSTEM_NS}/configmaps"
    original = yaml.safe_load(POLICY_FILE.read_text())
    try:
        broken = copy.deepcopy(original)
        broken["data"]["policy.yaml"] = broken["data"]["policy.yaml"].replace("mode: overcommit", "mode: sideways")
        _apply(local_cluster, broken, path)
        _wait(local_cluster, lambda: webhook.metric("meshfit_webhook_policy_last_update_invalid") == 1, "refusal")
        status, text = webhook.get("/readyz")
        assert status == 200 and "last update refused" in text and "resources.mode" in text
        assert _sidecars(_create(local_cluster, namespace, _app_pod("still"), dry_run=True)) == ["rpc-mesh", "msg-mesh"]

        stopped = copy.deepcopy(original)
        stopped["data"]["policy.yaml"] = stopped["data"]["policy.yaml"].replace("stopInjection: false", "stopInjection: true")
        _apply(local_cluster, stopped, path)

        def not_injected() -> bool:
            return _sidecars(_create(local_cluster, namespace, _app_pod("stopped"), dry_run=True)) == []

        _wait(local_cluster, not_injected, "the emergency stop reached the webhook")
        assert webhook.metric("meshfit_webhook_policy_last_update_invalid") == 0
    finally:
        _apply(local_cluster, original, path)
    _wait(local_cluster, lambda: _sidecars(_create(local_cluster, namespace, _app_pod("again"), dry_run=True)) != [],
          "the policy restored")


def test_manifests_are_accepted_by_the_apiserver(local_cluster: LocalCluster, tmp_path: Path) -> None:
    """Every object of the webhook's base manifests passes server-side validation (dry run)."""
    certs = generate(tmp_path / "certs", service="meshfit-webhook", namespace=SYSTEM_NS)
    local_cluster.create_namespace(SYSTEM_NS)
    collections = {
        "Namespace": "/api/v1/namespaces",
        "ServiceAccount": f"/api/v1/namespaces/{SYSTEM_NS}/serviceaccounts",
        "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        "Role": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SYSTEM_NS}/roles",
        "RoleBinding": f"/apis/rbac.authorization.k8s.io/v1/namespaces/{SYSTEM_NS}/rolebindings",
        "Service": f"/api/v1/namespaces/{SYSTEM_NS}/services",
        "Deployment": f"/apis/apps/v1/namespaces/{SYSTEM_NS}/deployments",
        "PodDisruptionBudget": f"/apis/policy/v1/namespaces/{SYSTEM_NS}/poddisruptionbudgets",
        "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    }
    seen = set()
    for name in yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]:
        for obj in _manifest(name):
            if obj["kind"] == "MutatingWebhookConfiguration":
                obj["webhooks"][0]["clientConfig"]["caBundle"] = certs.ca_bundle
            status, body = local_cluster.request("POST", collections[obj["kind"]] + "?dryRun=All", obj)
            assert status in (200, 201) or (status == 409 and obj["kind"] in ("Namespace", "ServiceAccount",
                                                                              "ClusterRole", "ClusterRoleBinding",
                                                                              "Role", "RoleBinding")), \
                f"{obj['kind']} {obj['metadata']['name']}: {status} {body.get('message', body)}"
            seen.add(obj["kind"])
    assert seen == set(collections)
    # The caBundle render patch targets the one webhook of the configuration.
    assert base64.b64decode(certs.ca_bundle).startswith(b"-----BEGIN CERTIFICATE-----")


def test_replicas_created_through_the_apiserver_share_a_verdict(local_cluster: LocalCluster, webhook: Webhook) -> None:
    namespace = _namespace(local_cluster, OPT_IN)
    replica = _app_pod("unused")
    del replica["metadata"]["name"]
    replica["metadata"]["generateName"] = "web-5d8c7b9f6-"
    hits = 'meshfit_webhook_answer_cache_lookups_total{result="hit"}'
    before = webhook.metric(hits)
    created = [_create(local_cluster, namespace, replica) for _ in range(3)]
    assert all(_sidecars(p) == ["rpc-mesh", "msg-mesh"] for p in created)
    assert len({p["metadata"]["name"] for p in created}) == 3
    assert webhook.metric(hits) >= before + 2
