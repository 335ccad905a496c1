"""Every object under manifests/ survives a server-side dry-run apply on the real apiserver.

Schema, defaulting and validation of a YAML file are only known for sure when
a kube-apiserver of the pinned version has read it. Files are found when the
test runs (manifests are still being added), each is one test case, and each
Kubernetes object in it is applied the way ``kubectl apply --server-side
--dry-run=server`` does: a PATCH of type ``application/apply-patch+yaml``
with a field manager and ``dryRun=All``; nothing is stored.

Not every document is an object the server knows: kustomize's own files
(``Kustomization``, JSON patches) are no API objects at all, and some objects
need CRDs this cluster lacks (cert-manager's ``Certificate``). Those are
skipped by kind, each named in a warning, never silently. A
``KubeSchedulerConfiguration`` is no API object either, but kube-scheduler
reads it: its ``extenders`` are run for real, by restarting the session's
scheduler with them and binding a pod through them. An entry with a
``tlsConfig`` (the shipped one) calls the extender as the shipped Deployment
runs it, over TLS with the scheduler's client certificate: only the address
and the three file paths are swapped for the local ones.
Prometheus' rules file, its unit tests and the Grafana dashboards under
``manifests/monitoring/`` are no Kubernetes documents: promtool checks them
(tests/monitoring/); their PrometheusRule is applied here like any object.
"""

from __future__ import annotations

import fnmatch

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from secure_extender import SecureExtender
from e2e_support import app_pod, create, node_pool, wait_bound

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import MANIFESTS, MeshfitServer

pytestmark = pytest.mark.e2e

FIELD_MANAGER = "meshfit-e2e"
#: Namespaces the manifests place objects in (the shipped ones and the examples').
NAMESPACES = ("meshfit-system", "shop")
#: Documents that are kustomize's input, not API objects.
KUSTOMIZE_KINDS = {"Kustomization", "Component"}
SCHEDULER_CONFIG = "KubeSchedulerConfiguration"


#: Files that hold nothing the apiserver applies, each for a reason: kustomize's own input,
#: a message type (AdmissionReview), resources of a CRD the local control plane lacks
#: (cert-manager, the Prometheus operator). Any other file must apply at least one object.
NOTHING_TO_APPLY = (
    "kustomization.yaml", "*/kustomization.yaml",
    "examples/review.json",
    "webhook/cert-manager/certificate.yaml",
    "monitoring/prometheusrule.yaml", "monitoring/dashboards/*", "monitoring/rules.yaml",
)
#: Files for Prometheus and Grafana, not the apiserver (checked by tests/monitoring/), and the example
#: cluster snapshot `meshfit extender simulate` reads (objects as a LIST returns them: uids, status).
NOT_KUBERNETES = ("monitoring/rules.yaml", "monitoring/tests/", "monitoring/dashboards/", "examples/snapshot/")


def _manifest_files() -> list[Path]:
    """The shipped files; not what ``make manifests`` renders into ``generated/`` (git-ignored: keys, caBundles)."""
    return sorted(p for p in MANIFESTS.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
                  and "generated" not in p.relative_to(MANIFESTS).parts
                  and not str(p.relative_to(MANIFESTS)).startswith(NOT_KUBERNETES))


class Discovery:
    """Which resource serves each (apiVersion, kind), asked of the apiserver once per group version."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self._cache: dict[str, dict[str, Any] | None] = {}

    def resource(self, api_version: str, kind: str) -> dict[str, Any] | None:
        if api_version not in self._cache:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            status, body = self.cluster.request("GET", path)
            self._cache[api_version] = body if status == 200 else None
        listing = self._cache[api_version]
        if listing is None:
            return None
        for resource in listing.get("resources") or ():
            if resource.get("kind") == kind and "/" not in resource["name"]:
                found: dict[str, Any] = resource
                return found
        return None


@pytest.fixture(scope="module")
def discovery(local_cluster: LocalCluster) -> Discovery:
    for namespace in NAMESPACES:
        local_cluster.create_namespace(namespace)
    return Discovery(local_cluster)


def _documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _run_scheduler_config(
    cluster: LocalCluster, plain: MeshfitServer, secure: SecureExtender, doc: dict[str, Any], where: str
) -> str:
    """Run kube-scheduler with the document's extenders (addresses swapped); a pod must bind through them."""
    extenders = []
    extender = plain
    for shipped in doc.get("extenders") or ():
        if shipped.get("tlsConfig"):
            assert shipped.get("enableHTTPS") and shipped["urlPrefix"].startswith("https://"), shipped
            tls = {**shipped["tlsConfig"], "caFile": str(secure.ca_file), "certFile": str(secure.cert_file),
                   "keyFile": str(secure.key_file)}
            entry = {**shipped, "urlPrefix": secure.server.url, "tlsConfig": tls}
            extender = secure.server
        else:
            entry = {**shipped, "urlPrefix": plain.url, "enableHTTPS": False}
        extenders.append(entry)
    assert extenders, f"{where}: a KubeSchedulerConfiguration in manifests/ without meshfit's extender"
    pool = node_pool(cluster, [("only", "2", "4Gi")])
    extender.wait_ready()
    cluster.wait_for(lambda: (extender.metric("meshfit_extender_cache_nodes", {"state": "known"}) or 0) > 0
                     and f'"{pool.names[0]}"' in extender.get(f"/debug/nodes/{pool.names[0]}")[1], 20,
                     what="the extender knowing the pool's node")
    binds = extender.metric("meshfit_extender_binds_total", {"result": "ok"}) or 0
    with cluster.scheduler_extenders(extenders):  # kube-scheduler refuses to start on a bad entry
        pod = pool.place(app_pod(f"scheduler-config-{pool.value}", requests={"cpu": "100m", "memory": "64Mi"}))
        create(cluster, "shop", pod)
        assert wait_bound(cluster, "shop", pod["metadata"]["name"]) == pool.names[0]
    if any(e.get("bindVerb") for e in extenders):
        assert (extender.metric("meshfit_extender_binds_total", {"result": "ok"}) or 0) == binds + 1
    return f"{SCHEDULER_CONFIG} (run by kube-scheduler)"


@pytest.mark.parametrize("path", _manifest_files(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_manifest_passes_server_side_dry_run_apply(
    local_cluster: LocalCluster, discovery: Discovery, extender_server: MeshfitServer,
    request: pytest.FixtureRequest, path: Path,
) -> None:
    applied, skipped, failures = [], [], []
    for index, doc in enumerate(_documents(path)):
        where = f"{path.relative_to(MANIFESTS)} document {index + 1}"
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            skipped.append(f"{where}: not a Kubernetes object ({type(doc).__name__}: a kustomize patch)")
            continue
        api_version, kind = doc["apiVersion"], doc["kind"]
        if kind in KUSTOMIZE_KINDS:
            skipped.append(f"{where}: {kind} is kustomize's input, not an API object")
            continue
        if kind == SCHEDULER_CONFIG:
            secure: SecureExtender = request.getfixturevalue("secure_extender")
            applied.append(_run_scheduler_config(local_cluster, extender_server, secure, doc, where))
            continue
        resource = discovery.resource(api_version, kind)
        if resource is None:
            skipped.append(f"{where}: the apiserver serves no {kind} resource in {api_version} "
                           "(a CRD it lacks, or a message type such as AdmissionReview)")
            continue
        name = doc["metadata"]["name"]
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if resource["namespaced"]:
            namespace = doc["metadata"].get("namespace") or "default"
            url = f"{base}/namespaces/{namespace}/{resource['name']}/{name}"
        else:
            url = f"{base}/{resource['name']}/{name}"
        status, body = local_cluster.request(
            "PATCH", f"{url}?dryRun=All&fieldManager={FIELD_MANAGER}&force=true", doc,
            content_type="application/apply-patch+yaml",
        )
        if status in (200, 201):
            applied.append(f"{kind}/{name}")
        else:
            failures.append(f"{where} ({kind} {name}): HTTP {status}: {body.get('message', body)}")
    for reason in skipped:
        warnings.warn(f"not applied: {reason}", stacklevel=1)
    assert failures == [], "\n".join(failures)
    assert applied or skipped, f"{path} holds no documents"
    relative = str(path.relative_to(MANIFESTS))
    if any(fnmatch.fnmatch(relative, pattern) for pattern in NOTHING_TO_APPLY):
        assert not applied, f"{relative} is listed as holding nothing to apply, but {applied} applied"
    else:
        assert applied, f"{relative}: every document was skipped, so this test proved nothing: {skipped}"
