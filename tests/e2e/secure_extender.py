"""The extender as the shipped Deployment runs it: TLS verbs with a client certificate, a plain probe port.

Kept apart from conftest.py so test modules import it by a name of its own.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from client_certs import client_pair

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_NAME, POLICY_NAMESPACE, MeshfitServer, meshfit_argv
from controlplane.ports import LOOPBACK, free_ports


@dataclass(frozen=True)
class SecureExtender:
    """A TLS extender, its plain probe port, and the files a scheduler's ``tlsConfig`` needs to call it."""

    server: MeshfitServer
    #: /healthz, /readyz, /metrics over plain HTTP (what the kubelet and Prometheus use).
    probes: MeshfitServer
    ca_file: Path
    cert_file: Path
    key_file: Path


EXTENDER_SERVICE = "meshfit-extender"


def start_secure_extender(cluster: LocalCluster, workdir: Path, name: str, *extra: str) -> SecureExtender:
    """``meshfit extender serve`` with the shipped Deployment's TLS flags, on loopback."""
    directory = workdir / f"{name}-tls"
    directory.mkdir(exist_ok=True)
    done = subprocess.run(
        meshfit_argv("certs", "generate", "--service", EXTENDER_SERVICE, "--namespace", POLICY_NAMESPACE,
                     "--cert-dir", str(directory / "serving"), "--ip", LOOPBACK),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    client_ca, client_cert, client_key = client_pair(directory)
    port, probe_port = free_ports(2)
    context = ssl.create_default_context(cafile=str(directory / "serving" / "ca.crt"))
    context.load_cert_chain(str(client_cert), str(client_key))
    argv = meshfit_argv(
        "extender", "serve", "--host", LOOPBACK, "--port", str(port), "--probe-port", str(probe_port),
        "--cert-dir", str(directory / "serving"), "--tls-client-ca", str(client_ca),
        "--tls-client-name", "system:kube-scheduler",
        "--kubeconfig", str(cluster.kubeconfig_path), "--policy-configmap", f"{POLICY_NAMESPACE}/{POLICY_NAME}",
        *extra,
    )
    server = MeshfitServer(name, workdir, argv, f"https://{LOOPBACK}:{port}", context)
    probes = MeshfitServer(f"{name}-probes", workdir, [], f"http://{LOOPBACK}:{probe_port}")
    server.launch()
    try:
        server.wait_ready(60)
    except BaseException:
        server.stop()
        raise
    return SecureExtender(server, probes, directory / "serving" / "ca.crt", client_cert, client_key)
