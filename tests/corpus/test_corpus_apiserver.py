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
from typing import Any

import pytest
from corpus.conftest import create_service_accounts

from controlplane.cluster import LocalCluster
from corpus.load import CorpusDocument, documents

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


@pytest.fixture(scope="module")
def corpus_namespace(local_cluster: LocalCluster, corpus_runtime_classes: list[str]) -> str:
    name = f"corpus-{uuid.uuid4().hex[:6]}"
    local_cluster.create_namespace(name, {"meshfit.io/e2e-test": "true"})
    create_service_accounts(local_cluster, name)
    return name


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: f"{d.id}-{d.kind}")
def test_apiserver_accepts_document(local_cluster: LocalCluster, corpus_namespace: str, doc: CorpusDocument) -> None:
    status, answer = local_cluster.request("POST", collection(doc, corpus_namespace) + "?dryRun=All", in_namespace(doc))
    assert status == 201, (
        f"{doc.id} {doc.kind} {doc.name}: HTTP {status}: {answer.get('message', answer)}"
    )
    assert answer.get("kind") == doc.kind
