"""Session fixtures for meshfit's end-to-end tests: the webhook and the extender, once.

On top of ``local_cluster`` (tests/e2e_fixtures.py) this starts, once per
session and only when an e2e test asks for them:

* the policy ConfigMap ``meshfit-system/meshfit-policy`` from manifests/policy.yaml;
* ``meshfit webhook serve`` on loopback with certificates from
  ``meshfit certs generate --ip 127.0.0.1``, registered by the shipped
  MutatingWebhookConfiguration pointed at ``https://127.0.0.1:PORT/mutate``;
* ``meshfit extender serve`` on loopback, list+watching the cluster; tests
  put it in the scheduler's configuration with ``scheduler_extenders``;
* ``secure_extender``: the extender as the shipped Deployment runs it, the
  verbs over TLS for a client certificate only, probes and metrics on a plain
  port, with the files the scheduler's ``tlsConfig`` names.

Why session scope: each server takes a second or two of a 2-core CI machine
to start, and the tests isolate themselves by namespace, node pool and by
restoring any policy they change. Why the extra namespace label on the
session configuration: other modules (the webhook's own e2e tests, the
failure tests here) register their own configurations, and a pod must meet
exactly the webhooks its test means it to.

A failed test gets the webhook's and the extender's log tails in its report,
beside the control plane's.
"""

from __future__ import annotations

import ssl
import subprocess
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from client_certs import client_pair
from secure_extender import SecureExtender, start_secure_extender
from e2e_support import OPT_IN, SUITE_LABEL, SUITE_VALUE, PolicyControl, app_pod, create, sidecar_names

from controlplane.cluster import LocalCluster
from controlplane.ports import LOOPBACK, free_ports
from controlplane.meshfit_servers import (
    POLICY_NAME,
    POLICY_NAMESPACE,
    MeshfitServer,
    meshfit_argv,
    generate_certs,
    install_policy,
    policy_configmap,
    register_webhook,
    start_extender,
    start_webhook,
    unregister_webhook,
    webhook_configuration,
)

_LOG_LINES = 40
#: Every meshfit server a fixture or test started this session, for failure reports.
SERVERS: list[MeshfitServer] = []

SESSION_WEBHOOK = "meshfit-e2e-session"


@dataclass(frozen=True)
class WebhookCerts:
    directory: Path
    ca_bundle: str


@pytest.fixture(scope="session")
def meshfit_workdir(local_cluster: LocalCluster) -> Path:
    """Inside the cluster's work dir, so a failed session keeps these logs with the cluster's."""
    path = local_cluster.workdir / "meshfit"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def webhook_certs(meshfit_workdir: Path) -> WebhookCerts:
    directory = meshfit_workdir / "webhook-certs"
    return WebhookCerts(directory, generate_certs(directory))


@pytest.fixture(scope="session")
def shipped_policy(local_cluster: LocalCluster) -> str:
    """The policy text of manifests/policy.yaml, installed as the global ConfigMap."""
    install_policy(local_cluster)
    text: str = policy_configmap()["data"]["policy.yaml"]
    return text


def _stop(server: MeshfitServer) -> None:
    status = server.stop()
    assert status in (0, None), f"{server.name} exited {status} on SIGTERM:\n{server.log_tail()}"


@pytest.fixture(scope="session")
def webhook_server(
    local_cluster: LocalCluster, meshfit_workdir: Path, webhook_certs: WebhookCerts, shipped_policy: str
) -> Iterator[MeshfitServer]:
    server = start_webhook(meshfit_workdir, local_cluster.kubeconfig_path, webhook_certs.directory)
    SERVERS.append(server)
    try:
        yield server
    finally:
        _stop(server)


@pytest.fixture(scope="session")
def extender_server(
    local_cluster: LocalCluster, meshfit_workdir: Path, shipped_policy: str
) -> Iterator[MeshfitServer]:
    server = start_extender(meshfit_workdir, local_cluster.kubeconfig_path)
    SERVERS.append(server)
    try:
        yield server
    finally:
        _stop(server)


@pytest.fixture
def spare_webhook(
    local_cluster: LocalCluster, meshfit_workdir: Path, webhook_certs: WebhookCerts, shipped_policy: str
) -> Iterator[MeshfitServer]:
    """A webhook of the test's own, which the test may stop (the session's must keep serving)."""
    server = start_webhook(meshfit_workdir, local_cluster.kubeconfig_path, webhook_certs.directory,
                           name=f"webhook-spare-{uuid.uuid4().hex[:4]}")
    SERVERS.append(server)
    try:
        yield server
    finally:
        _stop(server)


@pytest.fixture
def spare_extender(local_cluster: LocalCluster, meshfit_workdir: Path, shipped_policy: str) -> Iterator[MeshfitServer]:
    """An extender of the test's own, which the test may stop."""
    server = start_extender(meshfit_workdir, local_cluster.kubeconfig_path,
                            name=f"extender-spare-{uuid.uuid4().hex[:4]}")
    SERVERS.append(server)
    try:
        yield server
    finally:
        _stop(server)


@pytest.fixture(scope="session")
def secure_extender(
    local_cluster: LocalCluster, meshfit_workdir: Path, shipped_policy: str
) -> Iterator[SecureExtender]:
    secure = start_secure_extender(local_cluster, meshfit_workdir, "extender-tls")
    SERVERS.append(secure.server)
    try:
        yield secure
    finally:
        _stop(secure.server)


def webhook_knows_namespaces(cluster: LocalCluster, webhook: MeshfitServer) -> bool:
    """Whether the webhook's namespace cache holds every namespace there is.

    The webhook treats a namespace it has not seen yet as not opted in, so a
    test must not create pods before this; namespaces are never deleted here,
    so a cache as large as the list holds them all.
    """
    status, listing = cluster.request("GET", "/api/v1/namespaces")
    size = webhook.metric("meshfit_webhook_namespace_cache_size")
    return status == 200 and size is not None and size >= len(listing["items"])


@pytest.fixture(scope="session")
def session_webhook(
    local_cluster: LocalCluster, webhook_server: MeshfitServer, webhook_certs: WebhookCerts
) -> Iterator[str]:
    """The shipped configuration (failurePolicy Ignore) calling the session webhook."""
    config = webhook_configuration(
        SESSION_WEBHOOK,
        webhook_server.url,
        webhook_certs.ca_bundle,
        namespace_expressions=[{"key": SUITE_LABEL, "operator": "In", "values": [SUITE_VALUE]}],
    )
    register_webhook(local_cluster, config)
    # The apiserver learns of a new configuration through its own informer:
    # wait until a dry-run pod actually comes back injected.
    probe = f"probe-{uuid.uuid4().hex[:6]}"
    local_cluster.create_namespace(probe, {SUITE_LABEL: SUITE_VALUE, **OPT_IN})
    local_cluster.wait_for(lambda: webhook_knows_namespaces(local_cluster, webhook_server), 30,
                           what="webhook namespace cache")
    local_cluster.wait_for(
        lambda: sidecar_names(create(local_cluster, probe, app_pod("probe", requests={"cpu": "100m"}),
                                     dry_run=True)),
        30, interval=0.2, what="the apiserver calling the session webhook",
    )
    try:
        yield SESSION_WEBHOOK
    finally:
        unregister_webhook(local_cluster, SESSION_WEBHOOK)


NamespaceFactory = Callable[..., str]


@pytest.fixture
def mesh_namespace(
    local_cluster: LocalCluster, webhook_server: MeshfitServer, session_webhook: str, request: pytest.FixtureRequest
) -> NamespaceFactory:
    """Make namespaces the session webhook is called for; returns once the webhook knows them.

    ``mesh_namespace()`` is opted in; ``mesh_namespace(labels={})`` is not.
    """
    base = request.node.name.lower().replace("_", "-").removeprefix("test-")
    base = "".join(c for c in base if c.isalnum() or c == "-")[:30].strip("-")

    def make(suffix: str = "", labels: Mapping[str, str] | None = None) -> str:
        name = "-".join(p for p in (base, suffix, uuid.uuid4().hex[:5]) if p)
        local_cluster.create_namespace(name, {SUITE_LABEL: SUITE_VALUE, **(OPT_IN if labels is None else labels)})
        local_cluster.wait_for(lambda: webhook_knows_namespaces(local_cluster, webhook_server), 30,
                               what=f"webhook knows namespace {name}")
        return name

    return make


@pytest.fixture(scope="session")
def policy_control(
    local_cluster: LocalCluster,
    webhook_server: MeshfitServer,
    extender_server: MeshfitServer,
    shipped_policy: str,
) -> PolicyControl:
    control = PolicyControl(local_cluster, webhook_server, extender_server, shipped_policy)
    control.wait_serving(control.base.revision)
    return control


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Attach each meshfit server's log tail to a failed e2e test's report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    for server in SERVERS:
        tail = server.log_tail(_LOG_LINES)
        if tail:
            report.sections.append((f"meshfit {server.name} log, last {_LOG_LINES} lines", tail))
