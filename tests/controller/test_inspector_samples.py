"""The fleet gauges one inspection run exports: counted by hand here, cardinality folded past the cap."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

from running_pods import meshed_pod

from controller.inspector import TOP, fleet_samples
from policy.fleet import FleetView
from policy.fleet_audit import POD_CHECKS, FleetAudit
from policy.load import load_policy_file

POLICY = load_policy_file(Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml")
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def fold(pods: list[dict], labels: dict[str, dict[str, str]]) -> tuple[FleetView, FleetAudit]:
    audit = FleetAudit(POLICY, POD_CHECKS)
    audit.start(namespace_policies={}, namespace_labels=labels, node_allocatable_={"node-a": {"cpu": "8",
                                                                                          "memory": "16Gi"}},
                now=NOW)
    view = FleetView(audit.desired, ("namespace", "zone", "app"), {"node-a": "z1"}, examples=0)
    for pod in pods:
        view.add(pod)
        audit.add(pod)
    audit.finish()
    return view, audit


def in_namespace(ns: str, i: int) -> dict:
    pod = copy.deepcopy(meshed_pod())
    pod["metadata"]["namespace"] = ns
    pod["metadata"]["name"] = f"p-{i}"
    pod["metadata"]["labels"] = {"app.kubernetes.io/name": "shop"}
    return pod


def test_pods_per_version_and_kind_are_counted() -> None:
    pods = [in_namespace("a", i) for i in range(3)] + [in_namespace("b", 9)]
    run = fleet_samples(*fold(pods, {"a": {}, "b": {}}))
    samples = dict(run.pods)
    assert samples[("rpc-mesh", "1.8.0", "recorded", "a", "z1", "shop")] == 3
    assert samples[("rpc-mesh", "1.8.0", "running", "b", "z1", "shop")] == 1
    assert sum(v for k, v in run.pods if k[2] == "recorded") == 4


def test_namespaces_past_the_cap_fold_into_other() -> None:
    # TOP + 2 namespaces: the two smallest (one pod each) fold into "other"; the others have two pods each.
    pods = []
    for n in range(TOP):
        pods += [in_namespace(f"big-{n:02d}", 0), in_namespace(f"big-{n:02d}", 1)]
    pods += [in_namespace("small-x", 0), in_namespace("small-y", 0)]
    run = fleet_samples(*fold(pods, {}))
    recorded = {k[3]: v for k, v in run.pods if k[2] == "recorded"}
    assert len(recorded) == TOP + 1
    assert recorded["other"] == 2
    assert all(recorded[f"big-{n:02d}"] == 2 for n in range(TOP))


def test_a_missed_injection_is_counted_by_namespace_with_its_owner() -> None:
    escaped = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "e-0", "namespace": "shop", "uid": "u-e",
                            "ownerReferences": [{"kind": "ReplicaSet", "name": "e-5d", "controller": True}]},
               "spec": {"containers": [{"name": "app", "image": "x",
                                        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
               "status": {"phase": "Running"}}
    opted_in = {"shop": {"meshfit.io/inject": "enabled"}}
    view, audit = fold([escaped, in_namespace("shop", 1)], opted_in)
    run = fleet_samples(view, audit)
    assert run.missed == [(("shop",), 1)]
    (missed,) = run.missed_pods
    assert (missed.namespace, missed.name, missed.owner and missed.owner["name"]) == ("shop", "e-0", "e-5d")
    assert dict(run.failures)[("missed-injections",)] == 1
    # Not opted in: nothing is claimed.
    assert fleet_samples(*fold([escaped], {"shop": {}})).missed == []
