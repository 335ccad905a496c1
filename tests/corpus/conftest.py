"""Fixtures the corpus tests share: the upstream RuntimeClasses and the ServiceAccounts corpus pods name.

Pods meet two admission plugins that look things up: ServiceAccount and
RuntimeClass. A cluster the upstream manifests were written for has both, so
the tests create them first; the RuntimeClasses' ``overhead`` then lands on the
pods as it does on a real cluster (and is part of ``A``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.cluster import LocalCluster
from corpus.load import documents, runtime_classes


def pod_service_accounts() -> set[str]:
    names = set()
    for doc in documents():
        spec = doc.pod_spec
        name = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if name and name != "default":
            names.add(name)
    return names


def create_service_accounts(cluster: LocalCluster, namespace: str) -> None:
    for account in sorted(pod_service_accounts()):
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}
        status, answer = cluster.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
        assert status in (201, 409), f"ServiceAccount {namespace}/{account}: HTTP {status}: {answer.get('message', answer)}"


def install_runtime_classes(cluster: LocalCluster) -> list[str]:
    """Create the corpus RuntimeClasses the cluster lacks; the names created."""
    created = []
    for name, body in runtime_classes().items():
        status, answer = cluster.request("POST", "/apis/node.k8s.io/v1/runtimeclasses", body)
        assert status in (201, 409), f"RuntimeClass {name}: HTTP {status}: {answer.get('message', answer)}"
        if status == 201:
            created.append(name)
    return created


@pytest.fixture(scope="session")
def corpus_runtime_classes(local_cluster: LocalCluster) -> Iterator[list[str]]:
    created = install_runtime_classes(local_cluster)
    yield sorted(runtime_classes())
    for name in created:
        local_cluster.request("DELETE", f"/apis/node.k8s.io/v1/runtimeclasses/{name}")
