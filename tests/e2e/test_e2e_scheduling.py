"""kube-scheduler with the meshfit extender: exposure steers and bounds placement.

The swap variant puts each injected pod's sidecars beyond its original limit
(node-level exposure), which the stock scheduler cannot see and the extender
accounts per node. So this module runs with ``overcommitVariant: swap`` and
the scheduler configured with the extender (filter, prioritize, bind), and
each test builds its own node pool, reachable only through a nodeSelector,
so the scheduler judges exactly the nodes the test made.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import (
    ACCOUNTING,
    PolicyControl,
    app_pod,
    create,
    get_pod,
    node_pool,
    wait_bound,
    wait_unschedulable,
)

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import MeshfitServer, shipped_extender_config

pytestmark = pytest.mark.e2e

#: Requests 1 CPU / 1Gi; with limits 2 CPU / 8Gi the swap variant exposes
#: rpc-mesh 500m/512Mi (1/4 and 1/16 of the limits) + msg-mesh 200m/128Mi.
APP = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
EXPOSURE = {"cpu": "700m", "memory": "640Mi"}


@pytest.fixture(scope="module")
def scheduling(
    local_cluster: LocalCluster, extender_server: MeshfitServer, policy_control: PolicyControl
) -> Iterator[None]:
    """Swap variant and the extender in the scheduler, for this module; both restored after.

    The scheduler's ``extenders:`` entry is the shipped one
    (manifests/extender/scheduler-config.yaml) with the address changed.
    """
    extenders = [shipped_extender_config(extender_server.url)]
    with policy_control.changed({"resources": {"overcommitVariant": "swap"}}, "e2e-swap"), \
            local_cluster.scheduler_extenders(extenders):
        yield


def _exposure(pod: dict[str, Any]) -> dict[str, str]:
    record = json.loads(pod["metadata"]["annotations"][ACCOUNTING])
    assert record["variant"] == "swap" and record["exposure"] == "node", record
    overcommit: dict[str, str] = record["overcommit"]
    return overcommit


def _node_report(extender: MeshfitServer, node: str) -> dict[str, Any]:
    status, text = extender.get(f"/debug/nodes/{node}")
    return json.loads(text) if status == 200 else {}


def _ask(extender: MeshfitServer, verb: str, pod: dict[str, Any], nodes: list[str]) -> Any:
    """Call the extender's ``verb`` directly, with the body the scheduler sends (nodeCacheCapable)."""
    body = json.dumps({"Pod": pod, "NodeNames": nodes}).encode()
    request = urllib.request.Request(f"{extender.url}/{verb}", body, {"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return json.loads(response.read())


def test_pods_bind_to_the_node_the_extender_prefers(
    local_cluster: LocalCluster, mesh_namespace: Any, extender_server: MeshfitServer, scheduling: None
) -> None:
    namespace = mesh_namespace()
    # Four nodes the stock scheduler cannot tell apart: same size, each already
    # holding one pod with the same requests. On three the pod is meshed (its
    # sidecars exposed on the node), on "clean" it is opted out (no exposure).
    pool = node_pool(local_cluster, [(s, "8", "16Gi") for s in ("x1", "x2", "x3", "clean")])
    nodes = list(pool.names)
    clean = nodes[-1]
    for i, node in enumerate(nodes):
        annotations = {"meshfit.io/inject": "false"} if node == clean else None
        preload = pool.place(app_pod(f"preload-{i}", **APP, annotations=annotations))
        preload["spec"]["nodeName"] = node  # placed directly, as if scheduled earlier
        create(local_cluster, namespace, preload)

    def extender_sees_preloads() -> bool:
        reports = {n: _node_report(extender_server, n) for n in nodes}
        return all(r.get("pods") == 1 for r in reports.values()) and all(
            (reports[n]["exposure"]["cpu"] != "0") == (n != clean) for n in nodes
        )

    local_cluster.wait_for(extender_sees_preloads, 20, what="the extender counting the preloaded pods")

    pod = pool.place(app_pod("web", **APP))
    dry = create(local_cluster, namespace, pod, dry_run=True)
    assert _exposure(dry) == EXPOSURE
    answer = _ask(extender_server, "prioritize", {**dry, "metadata": {**dry["metadata"], "uid": "dry-run"}}, nodes)
    scores = {entry["Host"]: entry["Score"] for entry in answer}
    print(f"extender scores: {scores}")
    best = max(scores.values())
    assert [n for n, s in scores.items() if s == best] == [clean], f"extender scores {scores}"

    binds = extender_server.metric("meshfit_extender_binds_total", {"result": "ok"}) or 0
    create(local_cluster, namespace, pod)
    assert wait_bound(local_cluster, namespace, "web") == clean, f"extender scores were {scores}"
    assert (extender_server.metric("meshfit_extender_binds_total", {"result": "ok"}) or 0) == binds + 1


def test_a_pod_over_the_exposure_ceiling_everywhere_stays_pending_until_observe_only(
    local_cluster: LocalCluster,
    mesh_namespace: Any,
    extender_server: MeshfitServer,
    policy_control: PolicyControl,
    scheduling: None,
) -> None:
    namespace = mesh_namespace()
    # 2 CPU nodes: the ceiling is 25% = 500m of exposure, the pod brings 700m.
    # Its requests (1 CPU) fit: only meshfit's accounting says no.
    pool = node_pool(local_cluster, [("a", "2", "16Gi"), ("b", "2", "16Gi")])
    nodes = list(pool.names)
    local_cluster.wait_for(lambda: all(_node_report(extender_server, n).get("known") for n in nodes), 20,
                           what="the extender knowing the pool")
    pod = pool.place(app_pod("batch", **APP))
    stored = create(local_cluster, namespace, pod)
    assert _exposure(stored) == EXPOSURE

    condition = wait_unschedulable(local_cluster, namespace, "batch")
    message = condition["message"]
    print(f"PodScheduled: {message}")
    # The extender's own verdict, asked directly, is what the scheduler reports for both nodes.
    verdict = _ask(extender_server, "filter", stored, nodes)
    assert verdict["NodeNames"] in (None, []), verdict
    reasons = {**(verdict.get("FailedNodes") or {}), **(verdict.get("FailedAndUnresolvableNodes") or {})}
    assert set(reasons) == set(nodes) and len(set(reasons.values())) == 1, verdict
    extender_message = reasons[nodes[0]]
    assert "cpu exposure would reach 35.0" in extender_message and "700m for this pod" in extender_message
    assert f"2 {extender_message}" in message, message

    would_fail = extender_server.metric("meshfit_extender_nodes_would_fail_total", {"reason": "exposure"}) or 0
    with policy_control.changed({"emergency": {"extenderObserveOnly": True, "reason": "e2e: observe only"}},
                                "e2e-observe-only"):
        assert extender_server.metric("meshfit_extender_observe_only") == 1
        # With no kubelets nothing else changes in this cluster, and an
        # unschedulable pod is retried on a cluster event (or after minutes):
        # touch a node of the pool, as a kubelet's status update would.
        status, body = local_cluster.request("PATCH", f"/api/v1/nodes/{nodes[0]}",
                                             {"metadata": {"labels": {"meshfit.io/e2e-nudge": "1"}}})
        assert status == 200, body
        node = wait_bound(local_cluster, namespace, "batch")
        assert node in nodes
        # Observe-only still judges: it counted what it would have filtered.
        now = extender_server.metric("meshfit_extender_nodes_would_fail_total", {"reason": "exposure"}) or 0
        assert now > would_fail
    assert get_pod(local_cluster, namespace, "batch")["spec"]["nodeName"] == node
