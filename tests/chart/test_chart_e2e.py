"""charts/meshfit on a real kube-apiserver: server-side dry-run of every mode, then a real install.

A cluster of its own: the session's cluster already holds the webhook
configuration the other end-to-end tests register under the same name, and an
install must not touch it. Nothing runs (there is no kubelet); what is proven
is that the apiserver of the pinned release accepts and stores every object,
that Helm's lookup reuses the generated certificate on upgrade, and that the
release uninstalls cleanly.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chart_support import CHART, CRD_KINDS, NAMESPACE, documents, helm_template

from controlplane.cluster import LocalCluster

pytestmark = pytest.mark.e2e

MODES = {
    "generate": [],
    "secret": ["--set", "certificates.mode=secret", "--set", "certificates.secret.name=corp-tls",
               "--set", "certificates.secret.caBundle=Y2EK", "--set", "extender.tls.secretName=corp-extender-tls",
               "--set", "extender.tls.clientCASecretName=corp-scheduler-ca"],
    "cert-manager": ["--set", "certificates.mode=certManager", "--set", "extender.tls.mode=certManager"],
    "everything": ["--set", "scheduler.mode=secondScheduler", "--set", "networkPolicy.webhook.enabled=true",
                   "--set", "networkPolicy.webhook.from[0].ipBlock.cidr=10.0.0.0/16",
                   "--set", "networkPolicy.extender.from[0].ipBlock.cidr=10.0.0.0/24",
                   "--set", "serviceMonitor.enabled=true", "--set", "extender.pdb.enabled=true",
                   "--set", "scheduler.snippetConfigMap=true", "--set", "namespace.create=true",
                   "--set", "extender.tls.mode=generate"],
    "single-extender": ["--set", "extender.leaderElection.enabled=false", "--set", "extender.replicas=1"],
    "single-controller": ["--set", "controller.leaderElection.enabled=false", "--set", "controller.replicas=1",
                          "--set", "controller.pdb.enabled=false", "--set", "networkPolicy.metricsFrom=null"],
}


@pytest.fixture(scope="module")
def cluster(controlplane_bindir: Path) -> Iterator[LocalCluster]:
    with LocalCluster(bindir=controlplane_bindir) as c:
        c.create_namespace(NAMESPACE)
        yield c


def kubectl(cluster: LocalCluster, bindir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(bindir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path), *args],
                          input=stdin, capture_output=True, text=True, timeout=120)


def helm_cmd(helm: Path, cluster: LocalCluster, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"HOME": str(tmp), "HELM_CACHE_HOME": str(tmp / "cache"), "HELM_CONFIG_HOME": str(tmp / "config"),
           "HELM_DATA_HOME": str(tmp / "data"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(helm), "--kubeconfig", str(cluster.kubeconfig_path), *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_server_side_dry_run(mode: str, helm: Path, cluster: LocalCluster, controlplane_bindir: Path) -> None:
    docs = documents(helm_template(helm, *MODES[mode]).stdout)
    served = [d for d in docs if d["kind"] not in CRD_KINDS]
    skipped = sorted({d["kind"] for d in docs} & CRD_KINDS)
    if mode == "cert-manager":
        assert skipped == ["Certificate", "Issuer"]
    done = kubectl(cluster, controlplane_bindir, "apply", "--server-side", "--dry-run=server", "--force-conflicts",
                   "--field-manager=meshfit-chart-test", "-f", "-", stdin=yaml.safe_dump_all(served))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("serverside-applied (server dry run)") == len(served), done.stdout


def test_install_upgrade_uninstall(helm: Path, cluster: LocalCluster, controlplane_bindir: Path, tmp_path: Path) -> None:
    done = helm_cmd(helm, cluster, tmp_path, "install", "meshfit", str(CHART), "--namespace", NAMESPACE,
                    "--create-namespace")
    assert done.returncode == 0, done.stderr
    assert "kubectl label namespace NAMESPACE meshfit.io/inject=enabled" in done.stdout  # the notes
    assert f"-n {NAMESPACE} get lease meshfit-controller" in done.stdout
    manifest = helm_cmd(helm, cluster, tmp_path, "get", "manifest", "meshfit", "--namespace", NAMESPACE)
    installed = documents(manifest.stdout)
    for d in installed:
        ns = ["--namespace", d["metadata"]["namespace"]] if d["metadata"].get("namespace") else []
        got = kubectl(cluster, controlplane_bindir, "get", d["kind"], d["metadata"]["name"], *ns, "-o", "json")
        assert got.returncode == 0, f"{d['kind']}/{d['metadata']['name']}: {got.stderr}"
        assert json.loads(got.stdout)["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    secret = json.loads(kubectl(cluster, controlplane_bindir, "get", "secret", "meshfit-webhook-tls", "-n", NAMESPACE,
                                "-o", "json").stdout)
    hook = json.loads(kubectl(cluster, controlplane_bindir, "get", "mutatingwebhookconfiguration",
                              "meshfit-sidecar-injector", "-o", "json").stdout)
    assert hook["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]

    # An upgrade (here to the second scheduler, and to the extender's generated certificates) keeps the
    # webhook's generated certificate: lookup reads it back.
    generated = ["--set", "scheduler.mode=secondScheduler", "--set", "extender.tls.mode=generate"]
    done = helm_cmd(helm, cluster, tmp_path, "upgrade", "meshfit", str(CHART), "--namespace", NAMESPACE, *generated)
    assert done.returncode == 0, done.stderr
    again = json.loads(kubectl(cluster, controlplane_bindir, "get", "secret", "meshfit-webhook-tls", "-n", NAMESPACE,
                               "-o", "json").stdout)
    assert again["data"] == secret["data"]
    got = kubectl(cluster, controlplane_bindir, "get", "deployment", "meshfit-scheduler", "-n", NAMESPACE)
    assert got.returncode == 0, got.stderr

    # ... and the next one (back to the main scheduler's snippet) keeps the extender's: serving certificate,
    # client CA, the scheduler's client certificate.
    extender_secrets = ["meshfit-extender-tls", "meshfit-scheduler-client-ca", "meshfit-scheduler-client"]

    def extender_data() -> list[dict[str, str]]:
        return [json.loads(kubectl(cluster, controlplane_bindir, "get", "secret", name, "-n", NAMESPACE,
                                   "-o", "json").stdout)["data"] for name in extender_secrets]

    first = extender_data()
    done = helm_cmd(helm, cluster, tmp_path, "upgrade", "meshfit", str(CHART), "--namespace", NAMESPACE,
                    "--set", "extender.tls.mode=generate", "--set", "extender.assumeTTL=45")
    assert done.returncode == 0, done.stderr
    assert extender_data() == first
    assert "get secret meshfit-scheduler-client" in done.stdout  # the notes say how to copy the scheduler's files

    done = helm_cmd(helm, cluster, tmp_path, "uninstall", "meshfit", "--namespace", NAMESPACE, "--wait")
    assert done.returncode == 0, done.stderr
    gone = kubectl(cluster, controlplane_bindir, "get", "mutatingwebhookconfiguration", "meshfit-sidecar-injector")
    assert gone.returncode != 0 and "NotFound" in gone.stderr
