"""One pod no cluster can hold never takes the extender down (issue: a quantity of 1e1000000).

The apiserver stores ``requests.cpu: "1e1000000"`` for a pod bound by hand. A new
extender replica started after it must still list every pod, become Ready, count
the bad one, and judge other pods as ever.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from e2e_support import create, node_pool

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import MeshfitServer

pytestmark = pytest.mark.e2e


def _pod(name: str, cpu: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example.com/app:1",
                                                        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}


def test_a_pod_with_an_impossible_quantity_leaves_the_extender_ready(
        local_cluster: LocalCluster, e2e_namespace: str, spare_extender: MeshfitServer) -> None:
    pool = node_pool(local_cluster, [("a", "4", "8Gi")])
    status, stored = local_cluster.request("POST", f"/api/v1/namespaces/{e2e_namespace}/pods",
                                           _pod(f"poison-{uuid.uuid4().hex[:4]}", "1e1000000", pool.names[0]))
    if status != 201:
        pytest.fail(f"the apiserver refused the pod this test needs (HTTP {status}: {stored.get('message')})")
    create(local_cluster, e2e_namespace, _pod("fine", "1", pool.names[0]))
    # spare_extender started before the pods: restart it so its first LIST holds the poison pod
    spare_extender.stop()
    spare_extender.launch()
    spare_extender.wait_ready(60)
    status, _ = spare_extender.get("/readyz")
    assert status == 200
    local_cluster.wait_for(lambda: (spare_extender.metric("meshfit_extender_unreadable_pods_total") or 0) >= 1, 30,
                           what="the bad pod counted")
    log = spare_extender.log_tail(200).rsplit("==== ", 1)[-1]  # this start of the process only
    assert log.count("beyond what Kubernetes can hold") == 1, "logged once, no traceback"
    assert "Traceback" not in log
    text = spare_extender.get(f"/debug/nodes/{pool.names[0]}")[1]
    report = json.loads(text)
    assert report["pods"] == 1 and report["requested"]["cpu"] == "1", "the fine pod is counted, the bad one is not"
