"""The apiserver calls the webhook and stores exactly what ``meshfit inject`` predicts.

The pods are the shapes in manifests/examples/ (a two-container service, a
CronJob's template, an init-heavy pod, a limits-only pod, an opted-out pod),
created through the real admission chain. What the API stores must be what
the offline injector prints for the same pod and namespace labels, and the
apiserver's acceptance of it is the proof that pod-level resources and native
sidecars as meshfit writes them are valid Kubernetes.
"""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import reference as ref
import yaml
from e2e_support import (
    ACCOUNTING,
    OPT_IN,
    STATUS,
    admission_only,
    SUITE_LABEL,
    SUITE_VALUE,
    app_pod,
    create,
    injection_differences,
    is_untouched,
    predict,
    sidecar_names,
)

from cli.documents import pods_of, read_documents
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import MANIFESTS, POLICY_MANIFEST, MeshfitServer, meshfit_argv, metric_value
from policy.load import load_policy_file
from policy.resources import pod_limits, pod_requests

pytestmark = pytest.mark.e2e

EXAMPLES = MANIFESTS / "examples"


def _example_pods() -> list[tuple[str, dict[str, Any]]]:
    """Every Pod and pod template in manifests/examples/, as a Pod to create (first replica), gated."""
    found = []
    for doc in read_documents(str(EXAMPLES)):
        for pod, _namespace, owner in pods_of(doc.body, None):
            meta = copy.deepcopy(pod.get("metadata") or {})
            meta.pop("namespace", None)
            name = f"{owner[1]}-0" if owner else meta["name"]
            meta["name"] = name
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(pod["spec"])}
            found.append((name, admission_only(body)))
    return found


EXAMPLE_PODS = _example_pods()


def _meshfit_inject(pod: dict[str, Any], namespace: str, labels: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """``meshfit inject`` as a user runs it, for one pod in one labelled namespace."""
    source = tmp_path / "pod.yaml"
    body = copy.deepcopy(pod)
    body["metadata"]["namespace"] = namespace
    source.write_text(yaml.safe_dump(body))
    label_text = ",".join(f"{k}={v}" for k, v in {**labels, "kubernetes.io/metadata.name": namespace}.items())
    done = subprocess.run(
        meshfit_argv("inject", "-f", str(source), "--policy", str(POLICY_MANIFEST),
                     "--namespace", namespace, "--namespace-labels", label_text, "-o", "json"),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(("name", "pod"), EXAMPLE_PODS, ids=[name for name, _ in EXAMPLE_PODS])
def test_the_api_stores_what_meshfit_inject_predicts(
    local_cluster: LocalCluster, mesh_namespace: Any, name: str, pod: dict[str, Any], tmp_path: Path
) -> None:
    namespace = mesh_namespace()
    labels = {SUITE_LABEL: SUITE_VALUE, **OPT_IN}
    predicted = _meshfit_inject(pod, namespace, labels, tmp_path)
    engine = predict(pod, namespace, labels, load_policy_file(POLICY_MANIFEST))
    assert predicted == engine.pod, "meshfit inject and inject() disagree"

    stored = create(local_cluster, namespace, pod)

    assert injection_differences(stored, predicted) == []
    annotations = stored["metadata"].get("annotations") or {}
    if not engine.injected:
        assert (pod["metadata"].get("annotations") or {}).get("meshfit.io/inject") == "false", engine.reason
        assert is_untouched(stored, pod) == []
        return
    # Accepted by validation as meshfit wrote them: native sidecars first, the
    # pod-level budget (pod-level variant) unless that would move the QoS class, R(pod)
    # exactly what the app asked for, and the QoS class the apiserver gives unchanged.
    assert sidecar_names(stored) == ["rpc-mesh", "msg-mesh"]
    assert [c["name"] for c in stored["spec"]["initContainers"][:2]] == ["rpc-mesh", "msg-mesh"]
    assert STATUS in annotations and ACCOUNTING in annotations
    record = json.loads(annotations[ACCOUNTING])
    assert record["mode"] == "overcommit" and record["variant"] in ("pod-level", "swap"), record
    assert ref.effective_requests(stored) == ref.effective_requests(pod), "R(pod) changed: quota would see a leak"
    assert stored["status"]["qosClass"] == ref.qos_class(pod) == record["qos"]["before"] == record["qos"]["after"]
    if record["variant"] == "pod-level":
        assert "resources" in stored["spec"], "pod-level resources were dropped"
        assert ref.effective_limits(stored) == ref.effective_limits(pod), "the pod's cgroup limit changed"
    else:
        assert record["qos"]["before"] != "Guaranteed", "a Guaranteed pod keeps its class through the pod-level variant"


def test_a_deployments_template_is_not_touched_at_admission(local_cluster: LocalCluster, mesh_namespace: Any) -> None:
    namespace = mesh_namespace()
    deployment = next(d.body for d in read_documents(str(EXAMPLES / "payments.yaml")) if d.body["kind"] == "Deployment")
    deployment = copy.deepcopy(deployment)
    deployment["metadata"]["namespace"] = namespace

    stored = create(local_cluster, namespace, deployment,
                    collection=f"/apis/apps/v1/namespaces/{namespace}/deployments")

    template = {"metadata": stored["spec"]["template"]["metadata"], "spec": stored["spec"]["template"]["spec"]}
    submitted = deployment["spec"]["template"]
    assert is_untouched(template, submitted) == [], "the webhook must only ever touch pods"
    assert "initContainers" not in template["spec"]


@pytest.mark.parametrize("case", ["namespace-not-opted-in", "pod-annotation-false", "pod-label-false", "kube-system"])
def test_pods_that_are_not_for_meshfit_come_back_untouched(
    local_cluster: LocalCluster, mesh_namespace: Any, webhook_server: MeshfitServer, case: str
) -> None:
    pod = admission_only(
        app_pod("untouched", requests={"cpu": "500m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"})
    )
    if case == "namespace-not-opted-in":
        namespace = mesh_namespace(labels={})
    elif case == "kube-system":
        namespace = "kube-system"
        # Its default ServiceAccount, and the session configuration's label: only the shipped
        # namespaceSelector (NotIn kube-system, ...) then keeps the apiserver from calling the webhook.
        local_cluster.create_namespace(namespace, {SUITE_LABEL: SUITE_VALUE})
        pod["metadata"]["name"] = f"untouched-{uuid.uuid4().hex[:6]}"
        # Even a pod asking for the mesh: system namespaces are never injected.
        pod["metadata"]["annotations"] = {"meshfit.io/inject": "true"}
    else:
        namespace = mesh_namespace()
        where = "annotations" if case == "pod-annotation-false" else "labels"
        pod["metadata"].setdefault(where, {})["meshfit.io/inject"] = "false"

    asked_before = _requests_answered(webhook_server)
    stored = create(local_cluster, namespace, pod)
    asked = _requests_answered(webhook_server) - asked_before

    assert is_untouched(stored, pod) == []
    # Who decided: the webhook itself (asked once), or the shipped configuration's selectors and
    # matchConditions before it (never asked: system namespaces, pods labelled out, and pods
    # annotated out are not even sent).
    expected_calls = {"namespace-not-opted-in": 1, "pod-annotation-false": 0, "pod-label-false": 0, "kube-system": 0}
    assert asked == expected_calls[case]


def _requests_answered(webhook: MeshfitServer) -> float:
    text = webhook.get("/metrics")[1]
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("meshfit_webhook_requests_total")
    ) if metric_value(text, "meshfit_webhook_requests_total") is not None else 0.0
