"""The install applies to a demo's cluster (``KEEP=1 make demo``) without undoing the demo.

The demo registers its webhook by URL on loopback and serves a policy of its own
(the swap variant); ``kubectl apply -k manifests/`` creates the shipped webhook
configuration (by Service) and the shipped policy. They must not be the same
objects, or the apply would point the apiserver at a Service with no pods and put
the demo back on the default variant. This runs the demo's own registration on a
fresh control plane, renders the install as ``make manifests`` does and applies it
with the real kubectl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from controlplane.cluster import LocalCluster
from controlplane.demo import DEMO_POLICY, DEMO_WEBHOOK, demo_policy
from controlplane.meshfit_servers import (
    MWC_PATH,
    POLICY_NAME,
    POLICY_NAMESPACE,
    generate_certs,
    install_policy,
    register_webhook,
    webhook_configuration,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def test_kubectl_apply_k_manifests_on_a_demo_cluster_leaves_the_demo_as_it_was(
        controlplane_bindir: Path, tmp_path: Path) -> None:
    cluster = LocalCluster(bindir=controlplane_bindir)
    cluster.start()
    try:
        policy_text = demo_policy("swap")
        install_policy(cluster, policy_text, DEMO_POLICY[1])
        bundle = generate_certs(tmp_path / "demo-certs")
        register_webhook(cluster, webhook_configuration(DEMO_WEBHOOK, "https://127.0.0.1:9", bundle))

        tree = tmp_path / "manifests"
        shutil.copytree(REPO / "manifests", tree, ignore=shutil.ignore_patterns("generated"))
        subprocess.run(["bash", str(REPO / "hack" / "render-cabundle.sh"), str(tmp_path / "certs")], check=True,
                       capture_output=True, env={**os.environ, "OUT": str(tree / "webhook" / "bundle" / "generated"),
                                                 "EXTENDER_OUT": str(tree / "extender" / "generated")})
        kubectl = [str(controlplane_bindir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path)]
        secrets = tree / "extender" / "generated" / "secrets.yaml"
        applied = subprocess.run([*kubectl, "apply", "-f", str(secrets)], capture_output=True, text=True, timeout=120)
        assert applied.returncode == 0, applied.stderr
        applied = subprocess.run([*kubectl, "apply", "-k", str(tree)], capture_output=True, text=True, timeout=120)
        assert applied.returncode == 0, applied.stderr

        # The demo's registration still calls the demo's webhook, on loopback ...
        status, demo_hook = cluster.request("GET", f"{MWC_PATH}/{DEMO_WEBHOOK}")
        assert status == 200
        assert demo_hook["webhooks"][0]["clientConfig"]["url"] == "https://127.0.0.1:9/mutate"
        # ... and its policy is still the demo's, beside the shipped one the install brought.
        status, demo = cluster.request("GET", f"/api/v1/namespaces/{POLICY_NAMESPACE}/configmaps/{DEMO_POLICY[1]}")
        assert status == 200 and demo["data"]["policy.yaml"] == policy_text
        assert yaml.safe_load(policy_text)["resources"]["overcommitVariant"] == "swap"
        status, shipped = cluster.request("GET", f"/api/v1/namespaces/{POLICY_NAMESPACE}/configmaps/{POLICY_NAME}")
        assert status == 200 and shipped["data"]["policy.yaml"] != policy_text
        status, installed = cluster.request("GET", f"{MWC_PATH}/meshfit-sidecar-injector")
        assert status == 200 and installed["webhooks"][0]["clientConfig"]["service"]["name"] == "meshfit-webhook"
    finally:
        cluster.stop()
