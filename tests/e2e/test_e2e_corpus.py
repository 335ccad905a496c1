"""The corpus through the real kube-apiserver and the real webhook (tests/corpus/README.md).

Each corpus pod (templates as the pods their controllers would create) is
admitted with server-side dry-run three ways: as written in a namespace
meshfit does not serve (what Kubernetes itself makes of it: defaulting, the
RuntimeClass overhead, the QoS class), as ``meshfit inject`` printed it (the
apiserver must accept it), and as written in an opted-in namespace, where the
apiserver calls the real webhook over TLS. The webhook's result must be what
``meshfit inject`` predicts, and keep the invariants checked with
tests/reference.py against the apiserver's own figures and ``status.qosClass``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from corpus.conftest import create_service_accounts, install_runtime_classes
from corpus.load import documents
from corpus.test_corpus_invariants import _policy, _pods, check_invariants
from e2e_support import injection_differences, predict

from controlplane.cluster import LocalCluster
from policy.decision import Namespace
from policy.inject import InjectionResult, inject

pytestmark = pytest.mark.e2e
DOCUMENTS = documents()


def test_the_apiserver_and_the_webhook_agree_with_the_promise(local_cluster: LocalCluster, mesh_namespace: Any) -> None:
    """Offline output accepted by the real apiserver; the real webhook stores exactly that."""
    install_runtime_classes(local_cluster)
    policy = _policy()
    meshed = mesh_namespace()
    plain = mesh_namespace("plain", labels={})
    for namespace in (meshed, plain):
        create_service_accounts(local_cluster, namespace)
    failures: list[str] = []
    checked = 0
    for doc in DOCUMENTS:
        for pod in _pods(doc):
            label = f"{doc.id} {doc.kind} {doc.name}"
            submitted = copy.deepcopy(pod)
            submitted["spec"].pop("overhead", None)  # the RuntimeClass admission plugin adds it
            status, as_is = local_cluster.request("POST", f"/api/v1/namespaces/{plain}/pods?dryRun=All", submitted)
            if status != 201:
                failures.append(f"{label}: the apiserver refused the original: {as_is.get('message')}")
                continue
            offline = inject(pod, Namespace(plain, None), policy)
            problems = check_invariants(as_is, inject(as_is, Namespace(plain, None), policy))
            if offline.injected:
                printed = copy.deepcopy(offline.pod)
                printed["spec"].pop("overhead", None)
                status, accepted = local_cluster.request("POST", f"/api/v1/namespaces/{plain}/pods?dryRun=All", printed)
                if status != 201:
                    problems.append(f"the apiserver refused meshfit inject's output: {accepted.get('message')}")
            status, stored = local_cluster.request("POST", f"/api/v1/namespaces/{meshed}/pods?dryRun=All", submitted)
            if status != 201:
                problems.append(f"refused through the webhook: {stored.get('message')}")
            else:
                # the webhook sees the pod after the apiserver's defaulting: predict from that
                expected = predict(_admitted(as_is), meshed, {"meshfit.io/inject": "enabled"}, policy)
                if expected.injected:
                    problems += [f"webhook ≠ inject: {d}"
                                 for d in injection_differences(_without_token(stored), _without_token(expected.pod))]
                    problems += [f"webhook: {p}" for p in check_invariants(as_is, _as_result(as_is, stored, expected))]
                    if stored["status"]["qosClass"] != as_is["status"]["qosClass"] and \
                            as_is["status"]["qosClass"] != "BestEffort":
                        problems.append(f"qosClass {as_is['status']['qosClass']} → {stored['status']['qosClass']}")
                elif "meshfit.io/status" in (stored["metadata"].get("annotations") or {}):
                    problems.append(f"the webhook injected a pod meshfit inject skips ({expected.reason})")
            failures += [f"{label}: {p}" for p in problems]
            checked += 1
    assert failures == [], "\n".join(failures)
    assert checked >= len(DOCUMENTS)


def _without_token(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod without the ServiceAccount token volume, which admission adds by its own rules, not meshfit's."""
    out = copy.deepcopy(pod)
    spec = out["spec"]
    spec["volumes"] = [v for v in spec.get("volumes") or () if not str(v.get("name", "")).startswith("kube-api-access-")]
    for kind in ("containers", "initContainers"):
        for c in spec.get(kind) or ():
            mounts = [m for m in c.get("volumeMounts") or () if not str(m.get("name", "")).startswith("kube-api-access-")]
            if mounts:
                c["volumeMounts"] = mounts
            else:
                c.pop("volumeMounts", None)
    return out


def _admitted(stored: dict[str, Any]) -> dict[str, Any]:
    """A dry-run answer as a mutating webhook receives it: defaulted, without server-set fields."""
    pod = copy.deepcopy(stored)
    pod.pop("status", None)
    for key in ("uid", "creationTimestamp", "resourceVersion", "managedFields", "namespace"):
        pod["metadata"].pop(key, None)
    return pod


def _as_result(original: dict[str, Any], stored: dict[str, Any], expected: InjectionResult) -> InjectionResult:
    """The stored pod as an injection result, to judge it with the same checks."""
    result = copy.copy(expected)
    result.pod = stored
    return result
