"""The webhook's manifests say what the operator was promised, and the sample review is real."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import orjson
import pytest
import yaml
from webhook_samples import POLICY_FILE, REPO

from policy.inject import Namespace, inject
from policy.load import load_policy_file
from webhook.mutate import INJECTED, admit
from webhook.review import decode_patch, parse_review

BASE = REPO / "manifests" / "webhook" / "base"


def objects() -> dict[str, dict[str, Any]]:
    found = {}
    for name in yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]:
        for obj in yaml.safe_load_all((BASE / name).read_text()):
            if obj:
                found[obj["kind"]] = obj
    return found


def test_mutating_webhook_configuration() -> None:
    (hook,) = objects()["MutatingWebhookConfiguration"]["webhooks"]
    assert hook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["pods"], "scope": "Namespaced"}]
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["key"] == "kubernetes.io/metadata.name" and excluded["operator"] == "NotIn"
    assert set(excluded["values"]) >= set(load_policy_file(POLICY_FILE).injection.excluded_namespaces)
    assert hook["objectSelector"]["matchExpressions"] == [
        {"key": "meshfit.io/inject", "operator": "NotIn", "values": ["false"]}
    ]
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["matchPolicy"] == "Equivalent"
    assert hook["reinvocationPolicy"] == "Never"
    assert [c["name"] for c in hook["matchConditions"]] == ["not-yet-meshed", "not-opted-out"]
    assert 1 <= hook["timeoutSeconds"] <= 10
    assert hook["failurePolicy"] in ("Ignore", "Fail")
    assert hook["clientConfig"]["service"] == {"name": "meshfit-webhook", "namespace": "meshfit-system",
                                               "path": "/mutate", "port": 443}


def test_deployment_is_hardened_and_highly_available() -> None:
    found = objects()
    deployment = found["Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert spec["affinity"]["podAntiAffinity"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    (webhook,) = spec["containers"]
    assert webhook["securityContext"]["readOnlyRootFilesystem"] is True
    assert webhook["securityContext"]["allowPrivilegeEscalation"] is False
    assert webhook["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert set(webhook["resources"]) == {"requests", "limits"}
    assert webhook["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert webhook["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--policy-configmap=meshfit-system/meshfit-policy" in webhook["args"]
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    service = found["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 443


def test_rbac_only_reads() -> None:
    rules = objects()["ClusterRole"]["rules"]
    for rule in rules:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    resources = {r for rule in rules for r in rule["resources"]}
    assert resources <= {"pods", "namespaces", "configmaps", "nodes"}


def test_the_sample_review_is_injected_like_inject_does() -> None:
    document = orjson.loads((REPO / "manifests" / "examples" / "review.json").read_bytes())
    review = parse_review(orjson.dumps(document))
    policy = load_policy_file(POLICY_FILE)
    outcome = admit(review, policy, lambda name: Namespace(name, None, None))
    assert outcome.result == INJECTED
    patch = decode_patch(orjson.loads(outcome.body)["response"])
    pod = document["request"]["object"]
    assert jsonpatch.apply_patch(pod, patch) == inject(pod, Namespace("shop", None, None), policy).pod


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["bundle", "cert-manager"])
def test_kustomize_renders(variant: str, tmp_path: Path, controlplane_bindir: Path) -> None:
    """kubectl, built with the control plane from the same Kubernetes release, renders both trees."""
    kubectl = str(controlplane_bindir / "kubectl")
    tree = tmp_path / "webhook"
    shutil.copytree(REPO / "manifests" / "webhook", tree, ignore=shutil.ignore_patterns("*.yaml.tmp"))
    if variant == "bundle":
        subprocess.run(["bash", str(REPO / "hack" / "render-cabundle.sh"), str(tmp_path / "certs")], check=True,
                       capture_output=True, env={**os.environ, "OUT": str(tree / "bundle" / "generated")})
    out = subprocess.run([kubectl, "kustomize", str(tree / variant)], check=True, capture_output=True, text=True).stdout
    rendered = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    hook = rendered["MutatingWebhookConfiguration", "meshfit-sidecar-injector"]
    if variant == "bundle":
        ca = (tmp_path / "certs" / "ca.crt").read_bytes()
        assert base64.b64decode(hook["webhooks"][0]["clientConfig"]["caBundle"]) == ca
        assert ("Secret", "meshfit-webhook-tls") in rendered
    else:
        assert hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "meshfit-system/meshfit-webhook"
        assert rendered["Certificate", "meshfit-webhook"]["spec"]["secretName"] == "meshfit-webhook-tls"


@pytest.mark.e2e
def test_the_top_level_kustomization_renders_everything(tmp_path: Path, controlplane_bindir: Path) -> None:
    """`make manifests && kubectl apply -k manifests/` is the documented install: it must render."""
    tree = tmp_path / "manifests"
    shutil.copytree(REPO / "manifests", tree)
    subprocess.run(["bash", str(REPO / "hack" / "render-cabundle.sh"), str(tmp_path / "certs")], check=True,
                   capture_output=True, env={**os.environ, "OUT": str(tree / "webhook" / "bundle" / "generated")})
    out = subprocess.run([str(controlplane_bindir / "kubectl"), "kustomize", str(tree)], check=True,
                         capture_output=True, text=True).stdout
    kinds = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}
    for expected in [("MutatingWebhookConfiguration", "meshfit-sidecar-injector"), ("ConfigMap", "meshfit-policy"),
                     ("Secret", "meshfit-webhook-tls"), ("Namespace", "meshfit-system")]:
        assert expected in kinds, expected
    assert any(kind == "Deployment" and "extender" in name for kind, name in kinds), kinds
