"""Certificate rotations with the real apiserver calling the webhook throughout: no pod goes unmeshed.

With ``failurePolicy: Ignore`` (shipped) a TLS failure between the apiserver
and the webhook does not fail a pod CREATE: it silently admits the pod
without sidecars. So each test creates pods continuously while it rotates,
and counts the ones that came back without sidecars: there must be none.

* a serving rotation under the kept CA (``meshfit certs issue``): the
  caBundle does not change, the webhook loads the new pair from its files;
* a CA rotation in three steps (``meshfit certs rotate-ca begin``, ``switch``,
  ``finish``), the configuration's caBundle updated after the first and the
  last, as ``make manifests`` and ``kubectl apply`` would.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import OPT_IN, admission_only, app_pod, create, pods_path, sidecar_names

from certs.authority import begin_ca_rotation, bundle_pem, finish_ca_rotation, issue, make_ca, switch_ca
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import (
    POLICY_NAMESPACE,
    WEBHOOK_SERVICE,
    MeshfitServer,
    register_webhook,
    start_webhook,
    unregister_webhook,
    webhook_configuration,
)

pytestmark = pytest.mark.e2e

LABEL = "meshfit.io/e2e-certificates"
SERVING = {"service": WEBHOOK_SERVICE, "namespace": POLICY_NAMESPACE, "ips": ["127.0.0.1"]}
POD = admission_only(app_pod("orders", requests={"cpu": "500m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"}))


class PodStream:
    """Creates a pod every ``interval`` seconds from a thread until stopped; remembers what came back."""

    def __init__(self, cluster: LocalCluster, namespace: str, interval: float = 0.1) -> None:
        self.cluster, self.namespace, self.interval = cluster, namespace, interval
        self.injected = 0
        self.unmeshed: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            body = {**POD, "metadata": {**POD["metadata"], "name": f"orders-{n}"}}
            status, stored = self.cluster.request("POST", pods_path(self.namespace), body)
            if status != 201:
                self.errors.append(f"HTTP {status}: {stored.get('message', stored)}")
            elif sidecar_names(stored):
                self.injected += 1
            else:
                self.unmeshed.append(stored["metadata"]["name"])
            self._stop.wait(self.interval)

    def __enter__(self) -> PodStream:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    @property
    def total(self) -> int:
        return self.injected + len(self.unmeshed) + len(self.errors)


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


def _rotations(server: MeshfitServer) -> int:
    return server.log_tail(400).count("serving certificate rotated")


@pytest.fixture
def kept_ca_webhook(local_cluster: LocalCluster, meshfit_workdir: Path, shipped_policy: str) -> Iterator[tuple[MeshfitServer, Path, str]]:
    """A webhook of the test's own, serving from a kept-CA directory, registered for one namespace."""
    run = uuid.uuid4().hex[:6]
    cert_dir = meshfit_workdir / f"kept-ca-{run}"
    make_ca(cert_dir)
    issue(cert_dir, **SERVING)
    server = start_webhook(meshfit_workdir, local_cluster.kubeconfig_path, cert_dir,
                           name=f"webhook-certs-{run}", extra_args=["--cert-interval", "0.5"])
    namespace = f"cert-rotation-{run}"
    local_cluster.create_namespace(namespace, {LABEL: run, **OPT_IN})
    config = webhook_configuration(f"meshfit-e2e-certs-{run}", server.url, _b64(bundle_pem(cert_dir)),
                                   namespace_expressions=[{"key": LABEL, "operator": "In", "values": [run]}])
    register_webhook(local_cluster, config)
    local_cluster.wait_for(lambda: sidecar_names(create(local_cluster, namespace, POD, dry_run=True)), 30,
                           interval=0.2, what="the apiserver calling the test's webhook")
    try:
        yield server, cert_dir, namespace
    finally:
        unregister_webhook(local_cluster, config["metadata"]["name"])
        assert server.stop() in (0, None)


def _set_bundle(cluster: LocalCluster, server: MeshfitServer, cert_dir: Path, namespace: str) -> None:
    run = namespace.removeprefix("cert-rotation-")
    register_webhook(cluster, webhook_configuration(
        f"meshfit-e2e-certs-{run}", server.url, _b64(bundle_pem(cert_dir)),
        namespace_expressions=[{"key": LABEL, "operator": "In", "values": [run]}]))


def _report(what: str, stream: PodStream) -> None:
    print(f"{what}: {stream.total} pods created during it, {stream.injected} injected, "
          f"{len(stream.unmeshed)} unmeshed, {len(stream.errors)} failed")
    assert not stream.errors, stream.errors[:3]
    assert not stream.unmeshed, f"created without sidecars: {stream.unmeshed[:5]}"
    assert stream.total >= 20


def test_a_serving_rotation_under_the_kept_ca_meshes_every_pod(
    local_cluster: LocalCluster, kept_ca_webhook: tuple[MeshfitServer, Path, str]
) -> None:
    server, cert_dir, namespace = kept_ca_webhook
    bundle = bundle_pem(cert_dir)
    with PodStream(local_cluster, namespace) as stream:
        time.sleep(1.0)
        issue(cert_dir, **SERVING)
        assert bundle_pem(cert_dir) == bundle, "the caBundle does not change"
        local_cluster.wait_for(lambda: _rotations(server) >= 1, 20, what="the webhook loading the new pair")
        time.sleep(2.0)  # new connections from the apiserver now meet the new certificate
    _report("serving rotation", stream)


def test_a_ca_rotation_in_two_bundle_steps_meshes_every_pod(
    local_cluster: LocalCluster, kept_ca_webhook: tuple[MeshfitServer, Path, str]
) -> None:
    server, cert_dir, namespace = kept_ca_webhook
    with PodStream(local_cluster, namespace) as stream:
        time.sleep(1.0)
        begin_ca_rotation(cert_dir)                          # step 1: caBundle = old + new
        _set_bundle(local_cluster, server, cert_dir, namespace)
        time.sleep(3.0)                                      # the apiservers take the new configuration
        switch_ca(cert_dir, **SERVING)                       # step 2: the pair moves to the new CA
        local_cluster.wait_for(lambda: _rotations(server) >= 1, 20, what="the webhook loading the new pair")
        time.sleep(3.0)
        finish_ca_rotation(cert_dir)                         # step 3: caBundle = new only
        _set_bundle(local_cluster, server, cert_dir, namespace)
        time.sleep(3.0)
    _report("CA rotation", stream)
    # After the rotation the apiserver trusts the new CA only, and still meshes pods.
    assert sidecar_names(create(local_cluster, namespace, POD, dry_run=True))


def test_the_one_step_rotation_the_counting_guards_against_does_lose_pods(
    local_cluster: LocalCluster, kept_ca_webhook: tuple[MeshfitServer, Path, str], tmp_path: Path
) -> None:
    """The control: a new CA in the caBundle before the pods serve a pair under it, as a fresh CA per
    rotation did while the kubelet had not yet refreshed the Secret. The count must see those pods."""
    server, cert_dir, namespace = kept_ca_webhook
    elsewhere = tmp_path / "fresh-ca"
    make_ca(elsewhere)
    with PodStream(local_cluster, namespace) as stream:
        time.sleep(1.0)
        _set_bundle(local_cluster, server, elsewhere, namespace)  # the caBundle moves on, the pair does not
        time.sleep(4.0)
    print(f"one-step rotation: {stream.total} pods, {stream.injected} injected, {len(stream.unmeshed)} unmeshed")
    assert stream.unmeshed, "pods created while the caBundle names a CA the served pair is not from go unmeshed"
    _set_bundle(local_cluster, server, cert_dir, namespace)
