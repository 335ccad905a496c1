"""How often kube-apiserver calls meshfit per pod, counted by the apiserver itself.

``apiserver_admission_webhook_request_total{name="inject.meshfit.io"}`` on the
apiserver's /metrics, before and after. The shipped configuration's
``matchConditions`` keep pods that already carry meshfit's record, or opt out by
annotation, from being sent at all, and ``reinvocationPolicy: Never`` keeps a
second webhook that adds a container after meshfit from making the apiserver
call meshfit again. The second webhook here is a real one on loopback over TLS,
registered under a configuration name that sorts after the session's, so the
apiserver calls it after meshfit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from e2e_support import app_pod, create, get_pod, sidecar_names

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import register_webhook, unregister_webhook, webhook_configuration
from controlplane.ports import free_port
from serving.exposition import parse_text

pytestmark = pytest.mark.e2e

ADDER = "zz-meshfit-e2e-adder"  # after "meshfit-e2e-session" in name order


def _calls(cluster: LocalCluster, webhook: str) -> float:
    status, metrics = cluster.request("GET", "/metrics")
    assert status == 200, metrics
    samples = parse_text(metrics["text"])
    return sum(v for k, v in samples.items()
               if k.startswith("apiserver_admission_webhook_request_total{") and f'name="{webhook}"' in k)


class Adder:
    """A mutating webhook that adds a container named ``added`` to every pod it is sent."""

    def __init__(self, cert_dir: Any) -> None:
        self.port = free_port()
        self.calls = 0
        self.ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ssl.load_cert_chain(str(cert_dir / "tls.crt"), str(cert_dir / "tls.key"))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _mutate(self, request: web.Request) -> web.Response:
        self.calls += 1
        review = await request.json()
        req = review["request"]
        patch = [{"op": "add", "path": "/spec/containers/-",
                  "value": {"name": "added", "image": "registry.invalid/added:1"}}]
        return web.json_response({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
            "uid": req["uid"], "allowed": True, "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode()}})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/mutate", self._mutate)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ssl).start())
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> Adder:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def adder(local_cluster: LocalCluster, webhook_certs: Any, session_webhook: str) -> Iterator[tuple[Adder, str]]:
    server = Adder(webhook_certs.directory).start()
    label = f"adder-{uuid.uuid4().hex[:6]}"
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": ADDER},
        "webhooks": [{
            "name": "add.e2e.meshfit.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "reinvocationPolicy": "Never", "timeoutSeconds": 5,
            "clientConfig": {"url": f"https://127.0.0.1:{server.port}/mutate", "caBundle": webhook_certs.ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"meshfit.io/e2e-adder": label}},
        }],
    }
    register_webhook(local_cluster, config)
    try:
        yield server, label
    finally:
        unregister_webhook(local_cluster, ADDER)
        server.stop()


def test_one_call_per_pod_and_none_where_the_answer_is_known(
        local_cluster: LocalCluster, mesh_namespace: Any, adder: tuple[Adder, str]) -> None:
    cluster = local_cluster
    server, label = adder
    ns = mesh_namespace()
    status, _ = cluster.request("PATCH", f"/api/v1/namespaces/{ns}",
                                {"metadata": {"labels": {"meshfit.io/e2e-adder": label}}},
                                content_type="application/merge-patch+json")
    assert status == 200
    gate = {"schedulingGates": [{"name": "meshfit.io/e2e-admission-only"}]}

    def pod(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        body = app_pod(name, requests={"cpu": "500m", "memory": "256Mi"}, annotations=annotations)
        body["spec"].update(gate)
        return body

    # The apiserver learns of the adder's configuration through its informer: wait for it to be called.
    cluster.wait_for(lambda: "added" in [c["name"] for c in create(cluster, ns, pod("probe"), dry_run=True)
                                         ["spec"]["containers"]], 30, interval=0.2, what="the adder called")
    before_meshfit, before_adder = _calls(cluster, "inject.meshfit.io"), server.calls
    for i in range(3):
        create(cluster, ns, pod(f"app-{i}"))
    for i in range(3):
        stored = get_pod(cluster, ns, f"app-{i}")
        assert {"rpc-mesh", "msg-mesh"} <= set(sidecar_names(stored))  # meshed by meshfit
        assert "added" in [c["name"] for c in stored["spec"]["containers"]]  # and changed after it
    assert server.calls - before_adder == 3
    # Once per pod: the adder's change after meshfit did not make the apiserver call meshfit again.
    assert _calls(cluster, "inject.meshfit.io") - before_meshfit == 3

    # A pod that already carries meshfit's record, and one that opts out by annotation: never sent.
    meshed = get_pod(cluster, ns, "app-0")
    copy = pod("copy-0", annotations={"meshfit.io/status": meshed["metadata"]["annotations"]["meshfit.io/status"]})
    create(cluster, ns, copy)
    create(cluster, ns, pod("out-0", annotations={"meshfit.io/inject": " False "}))
    assert _calls(cluster, "inject.meshfit.io") - before_meshfit == 3
    assert sidecar_names(get_pod(cluster, ns, "out-0")) == []
    # ... while a pod that opts in by annotation is sent as before.
    create(cluster, ns, pod("in-0", annotations={"meshfit.io/inject": "true"}))
    assert _calls(cluster, "inject.meshfit.io") - before_meshfit == 4


def test_without_the_shipped_conditions_the_apiserver_would_call_twice(
        local_cluster: LocalCluster, mesh_namespace: Any, adder: tuple[Adder, str], webhook_server: Any,
        webhook_certs: Any) -> None:
    """The floor the shipped configuration is measured against: the same webhook as it was configured before."""
    cluster = local_cluster
    _server, label = adder
    ns = mesh_namespace(labels={})  # the session configuration does not inject here: the legacy one below does
    legacy_label = f"legacy-{uuid.uuid4().hex[:6]}"
    config = webhook_configuration("meshfit-e2e-legacy", webhook_server.url, webhook_certs.ca_bundle,
                                   namespace_expressions=[{"key": "meshfit.io/e2e-legacy", "operator": "In",
                                                           "values": [legacy_label]}])
    (hook,) = config["webhooks"]
    hook["name"] = "legacy.meshfit.io"
    hook["reinvocationPolicy"] = "IfNeeded"
    del hook["matchConditions"]
    register_webhook(cluster, config)
    try:
        status, _ = cluster.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {
            "meshfit.io/e2e-adder": label, "meshfit.io/e2e-legacy": legacy_label}}},
            content_type="application/merge-patch+json")
        assert status == 200
        gate = {"schedulingGates": [{"name": "meshfit.io/e2e-admission-only"}]}

        def pod(name: str) -> dict[str, Any]:
            body = app_pod(name, requests={"cpu": "500m", "memory": "256Mi"},
                           annotations={"meshfit.io/inject": "true"})
            body["spec"].update(gate)
            return body

        cluster.wait_for(lambda: _calls(cluster, "legacy.meshfit.io") > 0 or create(cluster, ns, pod("probe"),
                                                                                     dry_run=True) is None,
                         30, interval=0.2, what="the legacy configuration called")
        before = _calls(cluster, "legacy.meshfit.io")
        for i in range(3):
            create(cluster, ns, pod(f"app-{i}"))
        assert {"rpc-mesh", "msg-mesh"} <= set(sidecar_names(get_pod(cluster, ns, "app-0")))
        # Twice per pod: once, then again after the adder changed the pod (and the second call changed nothing).
        assert _calls(cluster, "legacy.meshfit.io") - before == 6
    finally:
        unregister_webhook(cluster, "meshfit-e2e-legacy")
