"""Rendering the chart and manifests/, and comparing what they render.

Shared by the offline chart tests and the end-to-end ones.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "meshfit"
NAMESPACE = "meshfit-system"
#: The labels Helm adds to kustomize's two; everything else must agree.
HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
               "helm.sh/chart"}
#: Kinds served by CRDs the test apiserver lacks.
CRD_KINDS = {"Certificate", "Issuer", "ClusterIssuer", "ServiceMonitor", "PodMonitor"}

Key = tuple[str, str, str]


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_key(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs}


def helm_template(helm: Path, *args: str, namespace: str = NAMESPACE, check: bool = True,
                  release: str = "meshfit") -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), "template", release, str(CHART), "--namespace", namespace, *args],
                          capture_output=True, text=True, check=check, timeout=120)


def render_chart(helm: Path, *args: str, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return documents(helm_template(helm, *args, namespace=namespace).stdout)


def render_kustomize(kubectl: Path, tmp: Path) -> list[dict[str, Any]]:
    """`make manifests && kubectl kustomize manifests/`, on a copy, with a certificate rendered for it."""
    tree = tmp / "manifests"
    shutil.copytree(REPO / "manifests", tree)
    subprocess.run(["bash", str(REPO / "hack" / "render-cabundle.sh"), str(tmp / "certs")], check=True,
                   capture_output=True, env={**os.environ, "OUT": str(tree / "webhook" / "bundle" / "generated"),
                                             "EXTENDER_OUT": str(tree / "extender" / "generated")})
    out = subprocess.run([str(kubectl), "kustomize", str(tree)], check=True, capture_output=True, text=True).stdout
    return documents(out)


def _strip_labels(meta: dict[str, Any] | None) -> None:
    if meta and "labels" in meta:
        meta["labels"] = {k: v for k, v in meta["labels"].items() if k not in HELM_LABELS}


def meaningful(doc: dict[str, Any]) -> dict[str, Any]:
    """What an install means, without what necessarily differs: Helm's labels, key material."""
    d = copy.deepcopy(doc)
    _strip_labels(d.get("metadata"))
    template = d.get("spec", {}).get("template") if isinstance(d.get("spec"), dict) else None
    if template:
        _strip_labels(template.get("metadata"))
    if d["kind"] == "Secret":
        d["data"] = sorted(d.get("data", {}))
    if d["kind"] == "MutatingWebhookConfiguration":
        for hook in d["webhooks"]:
            if hook["clientConfig"].get("caBundle"):
                hook["clientConfig"]["caBundle"] = "<a CA bundle>"
    if d["kind"] == "ConfigMap" and "policy.yaml" in d.get("data", {}):
        d["data"]["policy.yaml"] = yaml.safe_load(d["data"]["policy.yaml"])
    return d


def ca_bundle(docs: list[dict[str, Any]]) -> bytes:
    (hook,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    return base64.b64decode(hook["webhooks"][0]["clientConfig"]["caBundle"])
