"""Runtime parameters on the real apiserver: switches reach the ConfigMaps their pods mount, and only those.

Pods are meshed by the webhook's engine under a policy that declares runtime
parameters (so each mounts its group's ConfigMap), created unscheduled; the
controller runs as its own process reading the policy from a ConfigMap, and the
switches are flipped with ``meshfit degrade`` as on-call would.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_support import annotation, app, cli, events_for
from e2e_support import admission_only, create, get_pod

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_MANIFEST, MeshfitServer, start_controller
from policy.decision import Namespace
from policy.inject import inject
from policy.load import parse_policy
from serving.exposition import parse_text

pytestmark = pytest.mark.e2e
JSON = dict[str, Any]
POLICY = "meshfit-global-policy"
STORE = "meshfit-degradations"

RUNTIME = {
    "sidecars": {
        "rpc-mesh": {
            "logLevel": {"type": "enum", "values": ["debug", "info", "warn", "error"], "default": "info"},
            "traceLog": {"type": "enum", "values": ["on", "off"], "default": "on"},
            "maxConnections": {"type": "int", "minimum": 1, "maximum": 100000, "default": 1000},
        },
    },
    "rules": [{"name": "checkout-debug", "apps": ["checkout"], "set": {"logLevel": "debug"}}],
}


def _policy_text(runtime: JSON) -> str:
    document = yaml.safe_load(Path(POLICY_MANIFEST).read_text())
    policy = yaml.safe_load(document["data"]["policy.yaml"])
    policy["versions"]["rules"] = [r for r in policy["versions"]["rules"] if r["type"] != "experiment"]
    policy["runtime"] = runtime
    return yaml.safe_dump(policy)


def _put_configmap(cluster: LocalCluster, namespace: str, name: str, data: dict[str, str]) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}
    status, found = cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    if status == 404:
        status, found = cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
    else:
        body["metadata"]["resourceVersion"] = found["metadata"]["resourceVersion"]
        status, found = cluster.request("PUT", f"/api/v1/namespaces/{namespace}/configmaps/{name}", body)
    assert status in (200, 201), found


def _meshed(cluster: LocalCluster, namespace: str, name: str, app_name: str, policy_text: str) -> JSON:
    """A pod as the webhook meshes it, created unscheduled (nothing has to run for a mounted ConfigMap's name)."""
    result = inject(app(name, {"app.kubernetes.io/name": app_name}), Namespace(namespace, None),
                    parse_policy(yaml.safe_load(policy_text)))
    assert result.injected, result.reason
    create(cluster, namespace, admission_only(result.pod))
    return get_pod(cluster, namespace, name)


def _mounted(pod: JSON) -> str:
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "meshfit-runtime")
    return str(volume["projected"]["sources"][0]["configMap"]["name"])


def _values(cluster: LocalCluster, namespace: str, name: str) -> JSON | None:
    status, cm = cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    if status != 200:
        return None
    return dict(json.loads(cm["data"]["rpc-mesh.json"]))


def _metrics(server: MeshfitServer) -> dict[str, float]:
    status, text = server.get("/metrics")
    assert status == 200, text
    return parse_text(text)


@pytest.fixture
def runtime_env(local_cluster: LocalCluster, e2e_namespace: str, tmp_path: Path) -> Iterator[JSON]:
    other = f"rt-other-{uuid.uuid4().hex[:6]}"
    local_cluster.create_namespace(other, {"meshfit.io/e2e-test": "true"})
    text = _policy_text(RUNTIME)
    _put_configmap(local_cluster, e2e_namespace, POLICY, {"policy.yaml": text})
    server = start_controller(tmp_path, local_cluster.kubeconfig_path, name=f"ctl-rt-{e2e_namespace[-6:]}",
                              policy_configmap=(e2e_namespace, POLICY),
                              extra_args=["--runtime-interval", "1", "--degradations", f"{e2e_namespace}/{STORE}",
                                          "--inspect-interval", "0", "--log-level", "debug"])
    try:
        yield {"namespace": e2e_namespace, "other": other, "policy": text, "server": server}
    finally:
        server.stop()


def _degrade(cluster: LocalCluster, env: JSON, *args: str) -> Any:
    ns = env["namespace"]
    return cli(cluster, "degrade", *args, "--store", f"{ns}/{STORE}", *(
        ["--policy-configmap", f"{ns}/{POLICY}"] if args[0] == "set" else []))


def test_a_switch_reaches_its_namespace_only_an_app_override_wins_and_an_expired_degradation_reverts(
        local_cluster: LocalCluster, runtime_env: JSON) -> None:
    ns, other, text, server = runtime_env["namespace"], runtime_env["other"], runtime_env["policy"], runtime_env["server"]
    shop = _meshed(local_cluster, ns, "shop-1", "shop", text)
    checkout = _meshed(local_cluster, ns, "checkout-1", "checkout", text)
    elsewhere = _meshed(local_cluster, other, "shop-1", "shop", text)
    assert (_mounted(shop), _mounted(checkout), _mounted(elsewhere)) == (
        "meshfit-runtime-shop", "meshfit-runtime-checkout", "meshfit-runtime-shop")
    defaults = {"logLevel": "info", "traceLog": "on", "maxConnections": 1000}
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop") == defaults
                           and _values(local_cluster, other, "meshfit-runtime-shop") == defaults
                           and _values(local_cluster, ns, "meshfit-runtime-checkout") == {**defaults, "logLevel": "debug"},
                           30, what="each group's ConfigMap written")

    # A switch flipped for one namespace changes the ConfigMaps its pods mount, and no other.
    flipped = _degrade(local_cluster, runtime_env, "set", "traceLog=off", "-n", ns, "--for", "2h", "--reason",
                       "INC-1 trace storage full", "-o", "json")
    assert flipped.returncode == 0, flipped.stderr
    [record] = json.loads(flipped.stdout)
    assert (record["parameter"], record["value"], record["namespace"], record["state"]) == ("traceLog", "off", ns, "active")
    assert record["by"] != "unknown"
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop")["traceLog"] == "off"  # type: ignore[index]
                           and _values(local_cluster, ns, "meshfit-runtime-checkout")["traceLog"] == "off",  # type: ignore[index]
                           15, what="the namespace's ConfigMaps degraded")
    assert _values(local_cluster, other, "meshfit-runtime-shop") == defaults
    assert any(e["reason"] == "DegradationSet" and "INC-1" in e["message"] for e in events_for(local_cluster, ns, STORE))
    changed = events_for(local_cluster, ns, "meshfit-runtime-shop")
    assert any(e["reason"] == "RuntimeParametersChanged" and "rpc-mesh.traceLog: on → off" in e["message"]
               for e in changed)
    local_cluster.wait_for(lambda: _metrics(server).get(
        'meshfit_runtime_degradations_active{parameter="traceLog",scope="namespace"}') == 1, 15, what="the gauge")

    # An app override beats the namespace's own value: the namespace's policy says warn, the app rule debug.
    _put_configmap(local_cluster, ns, "meshfit-policy", {"policy.yaml": yaml.safe_dump(
        {"apiVersion": "meshfit.io/v1alpha1", "kind": "NamespacePolicy", "runtime": {"rpc-mesh": {"logLevel": "warn"}}})})
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop")["logLevel"] == "warn",  # type: ignore[index]
                           15, what="the namespace's own value")
    assert _values(local_cluster, ns, "meshfit-runtime-checkout")["logLevel"] == "debug"  # type: ignore[index]
    assert _values(local_cluster, other, "meshfit-runtime-shop")["logLevel"] == "info"  # type: ignore[index]

    # An expired degradation reverts by itself within a reconcile period.
    short = _degrade(local_cluster, runtime_env, "set", "maxConnections=10", "-n", ns, "--app", "shop", "--for", "4s",
                     "--reason", "shed load", "-o", "json")
    assert short.returncode == 0, short.stderr
    short_id = json.loads(short.stdout)[0]["id"]
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop")["maxConnections"] == 10,  # type: ignore[index]
                           10, what="the short degradation applied")
    assert _values(local_cluster, ns, "meshfit-runtime-checkout")["maxConnections"] == 1000  # type: ignore[index]
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop")["maxConnections"] == 1000,  # type: ignore[index]
                           15, what="the expired degradation reverted")
    listed = _degrade(local_cluster, runtime_env, "list", "--all", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    store = json.loads(listed.stdout)
    assert [d["parameter"] for d in store["degradations"]] == ["traceLog"]
    assert [(a["action"], a["degradation"]["id"]) for a in store["audit"]][-1] == ("expired", short_id)
    assert any(e["reason"] == "DegradationExpired" and short_id in e["message"]
               for e in events_for(local_cluster, ns, STORE))

    # Cleared early: the value reverts, the audit says who and why.
    cleared = _degrade(local_cluster, runtime_env, "clear", record["id"], "--reason", "INC-1 resolved")
    assert cleared.returncode == 0, cleared.stderr
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop")["traceLog"] == "on",  # type: ignore[index]
                           15, what="the cleared degradation reverted")
    # The pods were never touched: same UID, same spec.
    assert get_pod(local_cluster, ns, "shop-1")["metadata"]["uid"] == shop["metadata"]["uid"]
    assert annotation(get_pod(local_cluster, ns, "shop-1"), "meshfit.io/runtime") == {
        "configMap": "meshfit-runtime-shop", "app": "shop", "zone": ""}


def test_an_invalid_value_is_refused_with_its_path_and_the_last_good_configuration_kept(
        local_cluster: LocalCluster, runtime_env: JSON) -> None:
    ns, text, server = runtime_env["namespace"], runtime_env["policy"], runtime_env["server"]
    _meshed(local_cluster, ns, "shop-1", "shop", text)
    defaults = {"logLevel": "info", "traceLog": "on", "maxConnections": 1000}
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop") == defaults, 30,
                           what="the group's ConfigMap written")

    refused = _degrade(local_cluster, runtime_env, "set", "traceLog=of", "maxConnections=0", "-n", ns, "--for", "1h",
                       "--reason", "typo")
    assert refused.returncode == 1
    assert "traceLog=of: runtime.sidecars.rpc-mesh.parameters.traceLog: must be one of on, off, got 'of'" in refused.stderr
    assert "maxConnections=0: runtime.sidecars.rpc-mesh.parameters.maxConnections: must be within 1..100000, got 0" \
        in refused.stderr
    assert local_cluster.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{STORE}")[0] == 404

    good = _degrade(local_cluster, runtime_env, "set", "logLevel=warn", "-n", ns, "--for", "1h", "--reason", "quiet")
    assert good.returncode == 0, good.stderr
    local_cluster.wait_for(lambda: _values(local_cluster, ns, "meshfit-runtime-shop")["logLevel"] == "warn",  # type: ignore[index]
                           15, what="the good degradation applied")

    # A policy whose runtime section is broken is refused; the controller keeps the last good one.
    broken = copy.deepcopy(RUNTIME)
    broken["sidecars"]["rpc-mesh"]["traceLog"]["default"] = "sometimes"  # type: ignore[index]
    broken["sidecars"]["rpc-mesh"]["maxConnections"]["default"] = 5  # type: ignore[index]
    _put_configmap(local_cluster, ns, POLICY, {"policy.yaml": _policy_text(broken)})
    # A hand-edited store with one unreadable record: that one is skipped, the good one still applies.
    status, cm = local_cluster.request("GET", f"/api/v1/namespaces/{ns}/configmaps/{STORE}")
    records = json.loads(cm["data"]["degradations.json"])
    records.append({"id": "d-hand", "parameter": "traceLog", "value": "off"})
    cm["data"]["degradations.json"] = json.dumps(records)
    assert local_cluster.request("PUT", f"/api/v1/namespaces/{ns}/configmaps/{STORE}", cm)[0] == 200
    local_cluster.wait_for(lambda: _metrics(server).get("meshfit_runtime_degradations_invalid") == 1, 15,
                           what="the broken record reported")
    before = _metrics(server)["meshfit_runtime_last_sync_timestamp_seconds"]
    local_cluster.wait_for(lambda: _metrics(server)["meshfit_runtime_last_sync_timestamp_seconds"] > before, 15,
                           what="another pass")
    assert _values(local_cluster, ns, "meshfit-runtime-shop") == {**defaults, "logLevel": "warn"}
    assert any(e["reason"] == "DegradationInvalid" and "degradations.json[1]" in e["message"]
               for e in events_for(local_cluster, ns, STORE))
    status, ready = server.get("/readyz")
    assert status == 200, ready
    assert "refused" in server.log_tail() or "invalid" in server.log_tail()
