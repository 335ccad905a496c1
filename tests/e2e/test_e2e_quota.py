"""ResourceQuota sized for the app alone: the real quota admission shows who leaks.

Overcommit keeps ``R(pod)`` exactly what the app asked for, so a namespace
whose quota covers the app alone admits the meshed pod; additive mode puts
the sidecars on top, and the quota admission plugin (the apiserver's, not a
model of it) refuses the same pod with its own message.
"""

from __future__ import annotations

from typing import Any

import pytest
from e2e_support import PolicyControl, admission_only, app_pod, create, pods_path, sidecar_names

from controlplane.cluster import LocalCluster

pytestmark = pytest.mark.e2e

APP = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
#: Exactly the app's requests and limits: no room for anything on top.
HARD = {"requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2Gi", "pods": "5"}


def _used(cluster: LocalCluster, namespace: str) -> dict[str, str]:
    status, quota = cluster.request("GET", f"/api/v1/namespaces/{namespace}/resourcequotas/app-only")
    assert status == 200, quota
    used: dict[str, str] = quota["status"]["used"]
    return used


def test_overcommit_fits_the_apps_quota_and_additive_does_not(
    local_cluster: LocalCluster, mesh_namespace: Any, policy_control: PolicyControl
) -> None:
    pod = admission_only(app_pod("checkout", **APP))

    overcommit_ns = mesh_namespace("overcommit")
    local_cluster.create_resource_quota(overcommit_ns, "app-only", HARD)
    stored = create(local_cluster, overcommit_ns, pod)
    assert sidecar_names(stored) == ["rpc-mesh", "msg-mesh"]
    # Charged exactly what the app alone would have been charged.
    assert _used(local_cluster, overcommit_ns) == {**HARD, "pods": "1"}

    with policy_control.changed({"resources": {"mode": "additive"}}, "e2e-additive"):
        additive_ns = mesh_namespace("additive")
        local_cluster.create_resource_quota(additive_ns, "app-only", HARD)
        status, refused = local_cluster.request("POST", pods_path(additive_ns), pod)
        assert status == 403, f"additive pod admitted over the app's quota: {status} {refused}"
        message = refused["message"]
        print(f"quota admission refused the additive pod: {message}")
        assert "exceeded quota: app-only" in message
        assert "requests.cpu" in message and "requests.memory" in message
        assert _used(local_cluster, additive_ns)["requests.cpu"] == "0"

        # The same pod without its sidecars fits: the refusal is the sidecars' leak.
        opted_out = admission_only(app_pod("checkout", **APP, annotations={"meshfit.io/inject": "false"}))
        assert sidecar_names(create(local_cluster, additive_ns, opted_out)) == []
