"""The global policy ConfigMap drives injection live; a broken edit never does.

Both servers watch ``meshfit-system/meshfit-policy``. An edit must reach the
next pod within seconds, with no restart, and an invalid edit must leave the
last good policy serving while ``/readyz`` and ``/metrics`` say it was refused.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from e2e_support import STATUS, PolicyControl, admission_only, app_pod, create

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import policy_configmap

pytestmark = pytest.mark.e2e

_SHIPPED_SIDECARS: list[dict[str, Any]] = yaml.safe_load(policy_configmap()["data"]["policy.yaml"])["sidecars"]

POD = admission_only(
    app_pod("catalog", requests={"cpu": "500m", "memory": "512Mi"}, limits={"cpu": "1", "memory": "1Gi"})
)


def _msg_mesh_size(cpu: str) -> dict[str, Any]:
    """A policy edit: msg-mesh (fixed size, 200m in the shipped policy) gets ``cpu``."""
    return {"sidecars": [*_SHIPPED_SIDECARS[:1], {**_SHIPPED_SIDECARS[1],
                                                 "sizing": {**_SHIPPED_SIDECARS[1]["sizing"],
                                                            "fixed": {"cpu": cpu, "memory": "128Mi"}}}]}


def _msg_mesh(pod: dict[str, Any]) -> tuple[str, str]:
    """(CPU limit of the msg-mesh sidecar, policy revision on the pod).

    Sizes, not versions: the shipped policy's canary rule picks a tenth of
    workloads by a hash that includes the (random) namespace name.
    """
    limit = next(c["resources"]["limits"]["cpu"] for c in pod["spec"]["initContainers"] if c["name"] == "msg-mesh")
    return limit, json.loads(pod["metadata"]["annotations"][STATUS])["policy"]


def test_a_policy_edit_reaches_the_next_pod_within_seconds(
    local_cluster: LocalCluster, mesh_namespace: Any, policy_control: PolicyControl
) -> None:
    namespace = mesh_namespace()
    assert _msg_mesh(create(local_cluster, namespace, POD, dry_run=True)) == ("200m", policy_control.base.revision)

    with policy_control.restoring():
        text = policy_control.text(_msg_mesh_size("300m"), "e2e-msg-300m")
        started = time.monotonic()
        policy_control.put_text(text)

        def resized() -> bool:
            return _msg_mesh(create(local_cluster, namespace, POD, dry_run=True))[0] == "300m"

        local_cluster.wait_for(resized, 10, interval=0.05, what="the edit reaching the webhook")
        elapsed = time.monotonic() - started
        print(f"policy edit reached the next pod after {elapsed:.2f}s")
        assert elapsed < 10

        stored = create(local_cluster, namespace, POD)
        assert _msg_mesh(stored) == ("300m", "e2e-msg-300m")
        policy_control.wait_serving("e2e-msg-300m")  # the extender took it too


def test_an_invalid_policy_keeps_the_last_good_one(
    local_cluster: LocalCluster, mesh_namespace: Any, policy_control: PolicyControl
) -> None:
    namespace = mesh_namespace()
    with policy_control.changed(_msg_mesh_size("250m"), "e2e-last-good"):
        rejected_before = policy_control.extender.metric("meshfit_extender_policy_updates_total", {"result": "rejected"})
        broken = policy_control.text({"resources": {"mode": "sideways"}}, "e2e-broken")
        policy_control.put_text(broken)

        def refused() -> str | None:
            status, text = policy_control.webhook.get("/readyz")
            return text if status == 200 and "[!] policy: last update refused" in text else None

        readyz = local_cluster.wait_for(refused, 20, interval=0.1, what="the webhook reporting the refusal")
        print(f"webhook /readyz after the broken edit:\n{readyz}")
        assert "still serving revision e2e-last-good" in readyz and "resources.mode" in readyz
        assert policy_control.webhook.metric("meshfit_webhook_policy_last_update_invalid") == 1
        local_cluster.wait_for(
            lambda: (policy_control.extender.metric("meshfit_extender_policy_updates_total", {"result": "rejected"})
                     or 0) > (rejected_before or 0),
            20, what="the extender refusing the broken edit",
        )
        assert policy_control.extender.metric("meshfit_extender_policy_info", {"revision": "e2e-last-good"}) == 1

        # The person who edited the ConfigMap is told where they look: an Event on it.
        def event() -> dict | None:
            status, events = local_cluster.request(
                "GET", "/api/v1/namespaces/meshfit-system/events?fieldSelector=involvedObject.name=meshfit-policy")
            found = [e for e in events.get("items") or () if e.get("reason") == "PolicyRefused"
                     and "resources.mode" in e.get("message", "")]
            return found[-1] if status == 200 and found else None

        refusal = local_cluster.wait_for(event, 20, interval=0.1, what="a PolicyRefused Event on the ConfigMap")
        assert refusal["type"] == "Warning" and refusal["involvedObject"]["kind"] == "ConfigMap"
        assert "keeps serving revision e2e-last-good" in refusal["message"]
        assert refusal["source"]["component"] == "meshfit-webhook"

        stored = create(local_cluster, namespace, POD)
        assert _msg_mesh(stored) == ("250m", "e2e-last-good")
    assert policy_control.webhook.metric("meshfit_webhook_policy_last_update_invalid") == 0
