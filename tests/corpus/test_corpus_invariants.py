"""The product's promise on real pods: every corpus pod, offline, through the apiserver, through the webhook.

For each pod and pod template of the corpus (upstream manifests, README.md),
injected with the shipped policy, checked with ``tests/reference.py`` (an
accounting written apart from ``policy/``):

- ``R(pod)`` unchanged — or, where the pod requests nothing of a resource,
  grown by exactly the sidecars' requests of it, warned (``bestEffort: requests``);
- the QoS class unchanged (a BestEffort pod given requests by that rule aside);
- app containers' limits unchanged; every sidecar with a CPU request and limit;
- a skip leaves the pod untouched and says why.

tests/e2e/test_e2e_corpus.py runs the same checks through the real apiserver
and the real webhook.
"""

from __future__ import annotations

import copy
import uuid
from fractions import Fraction
from typing import Any

import pytest
import reference as ref
from corpus.load import CorpusDocument, documents, runtime_classes

from cli.documents import pods_of
from cli.runtime_classes import overheads_from, with_overhead
from policy.decision import Namespace
from policy.inject import InjectionResult, inject
from policy.load import load_policy_file
from policy.model import Policy

DOCUMENTS = documents()
SKIPS_ALLOWED = {"host_network", "pod_too_small", "qos_change", "container_name_conflict", "port_conflict"}


def _policy() -> Policy:
    from controlplane.meshfit_servers import POLICY_MANIFEST
    return load_policy_file(POLICY_MANIFEST)


def _pods(doc: CorpusDocument) -> list[dict[str, Any]]:
    """The document's pod, or its template as the pod a controller would create (as admission sees it)."""
    overheads = overheads_from(runtime_classes().values(), ())
    out = []
    for pod, _ns, owner in pods_of(copy.deepcopy(doc.obj), None):
        meta = copy.deepcopy(pod.get("metadata") or {})
        meta.pop("namespace", None)
        owner_name = (owner[1] if owner else "") or str((doc.obj.get("metadata") or {}).get("generateName") or "owner")
        meta.setdefault("name", f"{(owner_name if owner else doc.name) or 'pod'}-{doc.index}".lower().strip("-")[:50])
        meta.pop("generateName", None)
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner_name.strip("-"),
                                        "uid": str(uuid.uuid4()), "controller": True}]
        spec = copy.deepcopy(pod.get("spec") or {})
        # a StatefulSet's controller gives each pod a volume per claim template
        for claim in (doc.obj.get("spec") or {}).get("volumeClaimTemplates") or () if doc.kind == "StatefulSet" else ():
            claim_name = (claim.get("metadata") or {}).get("name")
            spec.setdefault("volumes", []).append(
                {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{doc.name}-0"}})
        as_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        out.append(with_overhead(as_pod, overheads)[0])
    return out


def check_invariants(original: dict[str, Any], result: InjectionResult) -> list[str]:
    """Every way ``result`` breaks the promise for ``original`` ([] when it keeps it)."""
    problems: list[str] = []
    if not result.injected:
        if result.pod is not original:
            problems.append("a skip changed the pod")
        if result.skip_code not in SKIPS_ALLOWED:
            problems.append(f"unexpected skip {result.skip_code}: {result.reason}")
        return problems
    new = result.pod
    budget = ref.own_budget(original)
    sidecars = ref.sidecar_containers(new, set(result.sizes))
    before, after = ref.effective_requests(original), ref.effective_requests(new)
    for n in ref.NAMES:
        asked = sum((ref.requests_of(c).get(n, Fraction(0)) for c in sidecars), Fraction(0))
        expected = asked if budget[n] == 0 else Fraction(0)  # bestEffort: requests, resource by resource
        if after[n] - before[n] != expected:
            problems.append(f"R({n}) {before[n]} → {after[n]}, expected +{expected}")
        if expected and not any("R(pod) grows" in w for w in result.warnings):
            problems.append(f"{n} leak without a warning")
    qos_before, qos_after = ref.qos_class(original), ref.qos_class(new)
    if qos_before != qos_after and qos_before != "BestEffort":
        problems.append(f"QoS {qos_before} → {qos_after}")
    old = {c["name"]: c for k in ("containers", "initContainers") for c in original["spec"].get(k) or ()}
    for kind in ("containers", "initContainers"):
        for c in new["spec"].get(kind) or ():
            if c["name"] in old and ref.limits_of(c) != ref.limits_of(old[c["name"]]):
                problems.append(f"limits of {c['name']} changed")
    for c in sidecars:
        if not (ref.requests_of(c).get("cpu", 0) > 0 and "cpu" in ref.limits_of(c)):
            problems.append(f"sidecar {c['name']} lacks a CPU request or limit")
    again = inject(new, Namespace("corpus", None), _policy())
    if again.injected:
        problems.append("injecting twice changed the pod again")
    return problems


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda d: f"{d.id}-{d.kind}")
def test_offline_injection_keeps_the_promise(doc: CorpusDocument) -> None:
    policy = _policy()
    for pod in _pods(doc):
        result = inject(pod, Namespace("corpus", None), policy)
        assert check_invariants(pod, result) == [], f"{doc.id} {doc.kind} {doc.name}"


def test_the_corpus_is_mostly_meshed_and_every_skip_has_its_reason() -> None:
    """Skips are allowed only for the documented reasons, and stay rare on real pods."""
    policy = _policy()
    outcomes: dict[str, int] = {}
    for doc in DOCUMENTS:
        for pod in _pods(doc):
            result = inject(pod, Namespace("corpus", None), policy)
            key = "injected" if result.injected else result.skip_code
            outcomes[key] = outcomes.get(key, 0) + 1
    total = sum(outcomes.values())
    assert total >= len(DOCUMENTS)
    assert outcomes.get("injected", 0) >= 0.85 * total, outcomes
