"""When meshfit's servers are down, the cluster does what the configuration promised.

The webhook's ``failurePolicy`` decides whether a pod CREATE goes on without
it (``Ignore``: created uninjected) or is refused (``Fail``), and an
extender marked ``ignorable`` must not stop scheduling. Each test runs a
server of its own and really stops it: the apiserver and the scheduler meet
a closed port, exactly as after a crash.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from e2e_support import OPT_IN, admission_only, app_pod, create, is_untouched, node_pool, pods_path, sidecar_names, wait_bound

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import (
    MeshfitServer,
    extender_config,
    register_webhook,
    unregister_webhook,
    webhook_configuration,
)

pytestmark = pytest.mark.e2e

FAILURE_LABEL = "meshfit.io/e2e-failure"
POD = admission_only(app_pod("orders", requests={"cpu": "500m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"}))


def test_a_stopped_webhook_admits_uninjected_with_ignore_and_refuses_with_fail(
    local_cluster: LocalCluster, spare_webhook: MeshfitServer, webhook_certs: Any
) -> None:
    run = uuid.uuid4().hex[:6]
    namespaces: dict[str, str] = {}
    configs = []
    for policy in ("Ignore", "Fail"):
        value = f"{policy.lower()}-{run}"
        namespaces[policy] = f"webhook-down-{value}"
        local_cluster.create_namespace(namespaces[policy], {FAILURE_LABEL: value, **OPT_IN})
        config = webhook_configuration(
            f"meshfit-e2e-{value}", spare_webhook.url, webhook_certs.ca_bundle, failure_policy=policy,
            namespace_expressions=[{"key": FAILURE_LABEL, "operator": "In", "values": [value]}],
        )
        register_webhook(local_cluster, config)
        configs.append(config["metadata"]["name"])
    try:
        # Up: both namespaces are injected (the configurations are live, the namespaces known).
        for policy, namespace in namespaces.items():
            local_cluster.wait_for(
                lambda ns=namespace: sidecar_names(create(local_cluster, ns, POD, dry_run=True)), 30,
                interval=0.2, what=f"webhook injecting in {namespace} ({policy})",
            )

        assert spare_webhook.stop() == 0

        stored = create(local_cluster, namespaces["Ignore"], POD)
        assert is_untouched(stored, POD) == [], "failurePolicy Ignore: created, without sidecars"

        status, refused = local_cluster.request("POST", pods_path(namespaces["Fail"]), POD)
        message = refused.get("message", "")
        print(f"failurePolicy Fail, webhook down: HTTP {status}: {message}")
        assert status >= 400, f"created although the webhook is down and failurePolicy is Fail: {refused}"
        assert 'failed calling webhook "inject.meshfit.io"' in message
        assert spare_webhook.url.removeprefix("https://") in message and "connection refused" in message
        assert local_cluster.request("GET", f"{pods_path(namespaces['Fail'])}/orders")[0] == 404
    finally:
        for name in configs:
            unregister_webhook(local_cluster, name)


def test_a_stopped_ignorable_extender_does_not_stop_scheduling(
    local_cluster: LocalCluster, spare_extender: MeshfitServer, e2e_namespace: str
) -> None:
    pool = node_pool(local_cluster, [("only", "4", "8Gi")])
    (node,) = pool.names
    pod = pool.place(app_pod("api", requests={"cpu": "100m", "memory": "128Mi"}))

    with local_cluster.scheduler_extenders([extender_config(spare_extender.url, ignorable=True)]):
        create(local_cluster, e2e_namespace, {**pod, "metadata": {**pod["metadata"], "name": "while-up"}})
        assert wait_bound(local_cluster, e2e_namespace, "while-up") == node
        assert spare_extender.metric("meshfit_extender_binds_total", {"result": "ok"}) == 1, "the extender bound it"

        assert spare_extender.stop() == 0
        create(local_cluster, e2e_namespace, {**pod, "metadata": {**pod["metadata"], "name": "while-down"}})
        assert wait_bound(local_cluster, e2e_namespace, "while-down") == node

    # The contrast: the same outage with ignorable: false stops scheduling, and says why.
    with local_cluster.scheduler_extenders([extender_config(spare_extender.url, ignorable=False)]):
        create(local_cluster, e2e_namespace, {**pod, "metadata": {**pod["metadata"], "name": "not-ignorable"}})

        def failed() -> dict[str, Any] | None:
            status, got = local_cluster.request("GET", f"{pods_path(e2e_namespace)}/not-ignorable")
            assert not got["spec"].get("nodeName"), "bound without its non-ignorable extender"
            for condition in got.get("status", {}).get("conditions") or ():
                if condition["type"] == "PodScheduled" and condition["status"] == "False":
                    return dict(condition)
            return None

        condition = local_cluster.wait_for(failed, 30, what="the scheduler giving up on the pod")
        print(f"ignorable: false, extender down: PodScheduled {condition}")
        assert "connection refused" in condition.get("message", "")
