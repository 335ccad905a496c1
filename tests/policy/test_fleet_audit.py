"""policy/fleet_audit.py: the pod inspections folded over one LIST, counted by hand on a few pods.

What each check judged, what it found (listed to the cap, all counted), the
pods that escaped injection or mount no runtime parameters, and the nodes'
exposure: every expected figure is written out.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from typing import Any

import pytest
from fleet_pods import NOW, fleet_policy, meshed
from runtime_policies import runtime_policy

from policy.decision import Namespace
from policy.fleet_audit import POD_CHECKS, FleetAudit, MissedPod, Results
from policy.inject import inject
from policy.inspections import Finding, NodeExposure
from policy.model import NamespacePolicy, Policy, SidecarOverride

POLICY = fleet_policy()
OPTED_IN = {"meshfit.io/inject": "enabled"}
GI = 2**30 * 10**9  # one Gi in nanos
CPU = 10**9  # one core in nanos


def app(name: str, namespace: str | None = "shop", *, node: str | None = "n1", cpu: str = "1",
        limit: str | None = None, uid: str | None = None, owners: list[dict[str, Any]] | None = None,
        phase: str = "Running") -> dict[str, Any]:
    """An application pod as the API server holds it before (or without) injection."""
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "web"}}
    if namespace is not None:
        meta["namespace"] = namespace
    if uid is not None:
        meta["uid"] = uid
    if owners is not None:
        meta["ownerReferences"] = owners
    spec: dict[str, Any] = {"containers": [{
        "name": "app", "image": "registry.example.com/app:1",
        "resources": {"requests": {"cpu": cpu, "memory": "2Gi"}, "limits": {"cpu": limit or cpu, "memory": "2Gi"}}}]}
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": phase}}


def injected(pod: dict[str, Any], policy: Policy = POLICY) -> dict[str, Any]:
    namespace = pod["metadata"].get("namespace", "default")
    out = inject(pod, Namespace(namespace, None), policy, now=NOW).pod
    out["status"] = copy.deepcopy(pod["status"])
    return out


def fold(audit: FleetAudit, pods: list[dict[str, Any]], *, labels: dict[str, dict[str, str]] | None = None,
         namespace_policies: dict[str, NamespacePolicy] | None = None,
         nodes: dict[str, dict[str, str]] | None = None) -> Results:
    audit.start(namespace_policies=namespace_policies or {}, namespace_labels=labels or {},
                node_allocatable_=nodes or {}, now=NOW)
    for pod in pods:
        audit.add(pod)
    return audit.finish()


def codes(results: Results) -> list[tuple[str, str, str]]:
    return [(f.check, f.code, f.subject) for f in results.findings]


def test_results_list_findings_to_the_cap_and_count_them_all() -> None:
    results = Results(["versions", "accounting"], cap=2)
    for i in range(3):
        results.add(Finding("versions", "stale", f"pod shop/p-{i}", "m", "h"))
    results.add(Finding("versions", "bad_status", "pod shop/q", "m", "h"))
    results.add(Finding("accounting", "bad_record", "pod shop/r", "m", "h"))
    assert results.counts == Counter({("versions", "stale"): 3, ("versions", "bad_status"): 1,
                                      ("accounting", "bad_record"): 1})
    assert [f.subject for f in results.findings] == ["pod shop/p-0", "pod shop/p-1", "pod shop/q", "pod shop/r"]
    assert (results.failures("versions"), results.failures("accounting"), results.failures("exposure")) == (4, 1, 0)


def test_an_audit_lists_a_hundred_findings_and_a_thousand_missed_pods_by_default() -> None:
    audit = FleetAudit(POLICY, iter(POD_CHECKS))
    assert (audit.results.checks, audit.results.cap, audit.missed_cap) == (list(POD_CHECKS), 100, 1000)
    with pytest.raises(AssertionError, match=r"start\(\) first"):
        audit.desired  # noqa: B018


def test_versions_and_accounting_judge_the_pods_that_carry_records() -> None:
    fresh = injected(app("fresh"))
    tampered = injected(app("tampered"))
    tampered["metadata"]["annotations"]["meshfit.io/accounting"] = "{"
    unreadable = injected(app("unreadable"))
    unreadable["metadata"]["annotations"]["meshfit.io/status"] = "{"
    stale = meshed("stale", app="payments")  # a record of the versions only
    plain = app("plain")
    audit = FleetAudit(POLICY, ["versions", "accounting"])
    results = fold(audit, [fresh, tampered, unreadable, stale, plain])
    assert results.checked == Counter({"versions": 4, "accounting": 3})
    assert codes(results) == [("accounting", "bad_record", "pod shop/tampered"),
                              ("versions", "bad_status", "pod shop/unreadable"),
                              ("versions", "stale", "pod shop/stale")]


def test_escaped_pods_are_counted_by_namespace_and_listed_with_their_owner() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d", "uid": "rs", "controller": True}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-the-controller"}
    pods = [
        app("e-0", uid="u-0", owners=["not a reference", other, owner]),
        app("e-1", owners=[other]),
        app("e-2", namespace=None),
        app("disabled", namespace="quiet"),  # every sidecar is disabled there
        injected(app("meshed")),
        app("done", phase="Succeeded"),
        app("unknown", namespace="unlabelled"),
    ]
    labels = {"shop": OPTED_IN, "default": OPTED_IN, "quiet": OPTED_IN}
    quiet = {"quiet": NamespacePolicy("quiet", "r1", {"rpc-mesh": SidecarOverride(enabled=False),
                                                      "msg-mesh": SidecarOverride(enabled=False)})}
    audit = FleetAudit(POLICY, ["missed-injections"])
    results = fold(audit, pods, labels=labels, namespace_policies=quiet)
    assert results.checked == Counter({"missed-injections": 7})
    assert results.counts == Counter({("missed-injections", "missed_injection"): 3})
    assert audit.missed_by_namespace == Counter({"shop": 2, "default": 1})
    assert audit.missed == [MissedPod("shop", "e-0", "u-0", owner), MissedPod("shop", "e-1", "", None),
                            MissedPod("default", "e-2", "", None)]
    capped = FleetAudit(POLICY, ["missed-injections"], missed_cap=2)
    fold(capped, pods, labels=labels, namespace_policies=quiet)
    assert ([m.name for m in capped.missed], capped.missed_by_namespace) == (
        ["e-0", "e-1"], Counter({"shop": 2, "default": 1}))


def test_an_audit_never_started_knows_no_namespace_and_claims_no_missed_injection() -> None:
    audit = FleetAudit(POLICY, ["missed-injections", "accounting"])
    audit.add(app("e-0"))
    assert (audit.results.checked, audit.missed, audit.results.findings) == (Counter({"missed-injections": 1}), [], [])


SWAP = dataclasses.replace(POLICY, resources=dataclasses.replace(POLICY.resources, variant="swap"))
NODES = {"n1": {"cpu": "4", "memory": "8Gi"}, "n2": {"cpu": "4", "memory": "8Gi"}, "n3": {"cpu": "16"}}


def exposed(name: str, namespace: str, node: str) -> dict[str, Any]:
    """A burstable pod under the swap variant: 1200m of CPU and 256Mi of memory exposed on its node."""
    return injected(app(name, namespace, node=node, cpu="2", limit="4"), SWAP)


def test_exposure_counts_every_pod_and_judges_the_nodes_of_the_selected_namespaces() -> None:
    pods = [exposed("a", "shop", "n1"), exposed("b", "other", "n2"), exposed("c", "shop", "n9"),
            app("pending", node=None)]
    audit = FleetAudit(SWAP, ["exposure", "versions"], namespaces=["shop"])
    results = fold(audit, pods, nodes=NODES)
    assert audit.node_exposure == [
        NodeExposure("n1", 4 * CPU, 8 * GI, True, 1200 * CPU // 1000, GI // 4, 1),
        NodeExposure("n2", 4 * CPU, 8 * GI, True, 1200 * CPU // 1000, GI // 4, 1),
        NodeExposure("n3", 16 * CPU, 0, True, 0, 0, 0),
    ]
    # n2 holds only another namespace's pod, n3 none, n9 is not a node the LIST of nodes returned
    assert results.checked == Counter({"exposure": 1, "versions": 2})
    assert codes(results) == [("exposure", "over_ceiling", "node n1")]
    everyone = FleetAudit(SWAP, ["exposure"])
    results = fold(everyone, pods, nodes=NODES)
    assert results.checked == Counter({"exposure": 3})
    assert codes(results) == [("exposure", "over_ceiling", "node n1"), ("exposure", "over_ceiling", "node n2")]


def test_without_the_exposure_check_no_pod_is_counted_on_a_node() -> None:
    audit = FleetAudit(SWAP, ["versions"])
    results = fold(audit, [exposed("a", "shop", "n1")], nodes={"n1": NODES["n1"]})
    assert audit.node_exposure == [NodeExposure("n1", 4 * CPU, 8 * GI, True, 0, 0, 0)]
    assert results.checked == Counter({"versions": 1})


def test_pods_created_before_the_runtime_parameters_are_counted_and_listed() -> None:
    with_runtime = runtime_policy()
    pods = [injected(app("old-0", uid="u-0")), injected(app("old-1")), injected(app("new"), with_runtime),
            app("plain"), injected(app("elsewhere", namespace="other"))]
    audit = FleetAudit(with_runtime, ["runtime"], missed_cap=1, namespaces=["shop"])
    results = fold(audit, pods)
    assert results.checked == Counter({"runtime": 4})
    assert codes(results) == [("runtime", "runtime_unmounted", "pod shop/old-0"),
                              ("runtime", "runtime_unmounted", "pod shop/old-1")]
    assert audit.unmounted_by_namespace == Counter({"shop": 2})
    assert audit.unmounted == [MissedPod("shop", "old-0", "u-0", None)]
    quiet = FleetAudit(POLICY, ["runtime"])
    assert fold(quiet, pods).checked == Counter()
