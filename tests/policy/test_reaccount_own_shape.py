"""The owner's pod rebuilt from a running meshed pod and its record: what a fresh injection starts from.

What the apiserver and the kubelet added (resourceVersion, uid, creationTimestamp,
managedFields, generation, nodeName) and meshfit's own annotations go; the owner's
metadata stays; each own container gets back the requests the record says it asked,
whatever its resources are now. Expected values are written out from the java pod
(:func:`podshapes.java_pod`).
"""

from __future__ import annotations

import copy
from typing import Any

from podshapes import java_pod
from policies import default_policy
from slotted import slotted

from policy.annotations import ACCOUNTING
from policy.decision import Namespace
from policy.inject import inject
from policy.model import Policy
from policy.reaccount import own_shape
from policy.record import parse_record

NS = Namespace("shop", None)
APP = {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}}
SHIPPER = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


def _running(policy: Policy | None = None) -> dict[str, Any]:
    """The java pod meshed, as read back from a cluster: server fields, a node, the owner's annotation."""
    pod = inject(java_pod(), NS, policy or default_policy()).pod
    pod["metadata"].update({"namespace": "shop", "resourceVersion": "4711", "uid": "0b1c", "generation": 1,
                            "creationTimestamp": "2026-12-01T12:00:00Z",
                            "managedFields": [{"manager": "kube-apiserver", "operation": "Update"}]})
    pod["metadata"]["annotations"].update({"team": "payments", "meshfit.io/slot-rpc-mesh": "1.8.0"})
    pod["spec"]["nodeName"] = "node-1"
    return pod


def _own(pod: dict[str, Any]) -> dict[str, Any]:
    return own_shape(pod, parse_record(pod["metadata"]["annotations"][ACCOUNTING]))


def _resources(own: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c.get("resources") for c in own["spec"]["containers"]}


def test_the_server_and_meshfit_fields_go_and_the_owners_stay() -> None:
    own = _own(_running())
    assert own["metadata"] == {"name": "java", "namespace": "shop", "labels": {"app.kubernetes.io/name": "java"},
                               "annotations": {"team": "payments"}}
    assert "nodeName" not in own["spec"] and "initContainers" not in own["spec"]
    assert _resources(own) == {"app": APP, "log-shipper": SHIPPER}


def test_the_rebuilt_pod_shares_nothing_with_the_pod_read() -> None:
    pod = _running()
    before = copy.deepcopy(pod)
    own = _own(pod)
    own["metadata"]["labels"]["app.kubernetes.io/name"] = "other"
    own["metadata"]["managedFields"] = []
    own["spec"]["containers"][0]["env"].clear()
    assert pod == before


def test_requests_come_back_from_the_record_whatever_the_spec_has_now() -> None:
    pod = _running()
    del pod["spec"]["containers"][0]["resources"]
    del pod["spec"]["containers"][1]["resources"]["requests"]
    assert _resources(_own(pod)) == {"app": {"requests": {"cpu": "2", "memory": "4Gi"}}, "log-shipper": SHIPPER}


def test_a_pod_without_meshfit_annotations_or_init_containers_is_rebuilt_too() -> None:
    """Legacy sidecars (in containers): no initContainers list to empty; no status annotation to drop."""
    policy = slotted(rpc_mesh={"placement": "legacy"}, msg_mesh={"placement": "legacy"})
    pod = _running(policy)
    record = parse_record(pod["metadata"]["annotations"][ACCOUNTING])
    pod["metadata"]["annotations"] = {"team": "payments"}
    assert "initContainers" not in pod["spec"]
    own = own_shape(pod, record)
    assert own["metadata"]["annotations"] == {"team": "payments"}
    assert "initContainers" not in own["spec"]
    assert _resources(own) == {"app": APP, "log-shipper": SHIPPER}


def test_the_rebuilt_pod_is_a_v1_pod() -> None:
    own = _own(_running())
    assert (own["apiVersion"], own["kind"]) == ("v1", "Pod")


def test_the_owners_pod_level_fields_come_back_and_meshfits_go() -> None:
    p = java_pod(pod_requests={"cpu": "3", "memory": "5Gi"}, pod_limits={"cpu": "6", "memory": "5Gi"})
    pod = inject(p, NS, default_policy()).pod
    assert _own(pod)["spec"]["resources"] == {"requests": {"cpu": "3", "memory": "5Gi"},
                                              "limits": {"cpu": "6", "memory": "5Gi"}}
    none_of_the_owners = _running()
    assert "resources" in none_of_the_owners["spec"]  # the pod-level variant's
    assert "resources" not in _own(none_of_the_owners)["spec"]
    del none_of_the_owners["spec"]["resources"]
    assert "resources" not in _own(none_of_the_owners)["spec"]
