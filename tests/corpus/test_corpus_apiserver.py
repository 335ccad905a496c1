"""The real kube-apiserver accepts every corpus document (server-side dry-run create).

Why: the corpus is the ground truth for "every valid manifest accepted"; a
document the apiserver itself refuses would make an injection test prove
nothing. Each document is POSTed with ``dryRun=All`` to its own collection in a
namespace of this module, the way ``kubectl create --dry-run=server`` does:
defaulting, validation and the built-in admission plugins (RuntimeClass,
Priority, ServiceAccount, LimitRanger, ResourceQuota) run, nothing is stored.

No webhook is registered here: what is checked is the apiserver's own
acceptance of the upstream manifests, before meshfit touches them.

The upstream files name their own namespaces; ``metadata.namespace`` is
dropped so every document lands in this module's namespace. Pods meet two
admission plugins that look things up: ServiceAccount and RuntimeClass. So the
ServiceAccounts the corpus Pods name are created first, as their upstream
files (or clusters) would have, and so are the upstream RuntimeClasses of
``runtimeclasses/`` (their ``overhead`` lands on the dry-run Pods, as on a real
cluster); the RuntimeClasses this module created are deleted at its end.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.cluster import LocalCluster
from corpus.load import CorpusDocument, documents, runtime_classes

pytestmark = pytest.mark.e2e

#: Collection of each pod-bearing kind (group version comes from the document).
PLURALS = {
    "Pod": "pods",
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
    "ReplicaSet": "replicasets",
    "Job": "jobs",
    "CronJob": "cronjobs",
}

DOCUMENTS = documents()


def collection(doc: CorpusDocument, namespace: str) -> str:
    api_version = doc.obj["apiVersion"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{PLURALS[doc.kind]}"


def in_namespace(doc: CorpusDocument) -> dict[str, Any]:
    body = copy.deepcopy(doc.obj)
    (body.get("metadata") or {}).pop("namespace", None)
    return body


def pod_service_accounts() -> set[str]:
    names = set()
    for doc in DOCUMENTS:
        if doc.kind == "Pod":
            spec = doc.pod_spec
            name = spec.get("serviceAccountName") or spec.get("serviceAccount")
            if name and name != "default":
                names.add(name)
    return names


@pytest.fixture(scope="module")
def corpus_runtime_classes(local_cluster: LocalCluster) -> Iterator[list[str]]:
    created = []
    for name, body in runtime_classes().items():
        status, answer = local_cluster.request("POST", "/apis/node.k8s.io/v1/runtimeclasses", body)
        assert status in (201, 409), f"RuntimeClass {name}: HTTP {status}: {answer.get('message', answer)}"
        if status == 201:
            created.append(name)
    yield sorted(runtime_classes())
    for name in created:
        local_cluster.request("DELETE", f"/apis/node.k8s.io/v1/runtimeclasses/{name}")


@pytest.fixture(scope="module")
def corpus_namespace(local_cluster: LocalCluster, corpus_runtime_classes: list[str]) -> str:
    name = f"corpus-{uuid.uuid4().hex[:6]}"
    local_cluster.create_namespace(name, {"meshfit.io/e2e-test": "true"})
    for account in sorted(pod_service_accounts()):
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}
        status, answer = local_cluster.request("POST", f"/api/v1/namespaces/{name}/serviceaccounts", body)
        assert status in (201, 409), f"ServiceAccount {name}/{account}: HTTP {status}: {answer.get('message', answer)}"
    return name


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: f"{d.id}-{d.kind}")
def test_apiserver_accepts_document(local_cluster: LocalCluster, corpus_namespace: str, doc: CorpusDocument) -> None:
    status, answer = local_cluster.request("POST", collection(doc, corpus_namespace) + "?dryRun=All", in_namespace(doc))
    assert status == 201, (
        f"{doc.id} {doc.kind} {doc.name}: HTTP {status}: {answer.get('message', answer)}"
    )
    assert answer.get("kind") == doc.kind
