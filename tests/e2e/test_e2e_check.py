"""``meshfit check`` and ``meshfit fleet`` against the real apiserver, pods running on KWOK's fake kubelets.

A clean fleet (pods injected offline by the engine under the policy in force,
bound to the test's own fake nodes, Running as their kubelet reports them)
passes every inspection, the webhook's configuration (the shipped manifest)
and certificates included, and ``check`` exits 0. Then four things go wrong,
each the way it does in a cluster: a pod injected under an older baseline
keeps running its old sidecar (stale), a pod's record is edited by hand
(tampered), a pod bound past the extender takes its node over the exposure
ceiling, and a pod is created in an opted-in namespace while the webhook does
not answer (``failurePolicy: Ignore``: admitted unmeshed). ``check`` names each
with its hint and exits 1; ``fleet`` counts what an independent count of the
stored pods says.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import OPT_IN, create, get_pod

from certs.generate import generate
from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_MANIFEST, register_webhook, unregister_webhook, webhook_configuration
from controlplane.ports import free_port
from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _policy_file(path: Path, baseline: str) -> Path:
    """The shipped policy, swap variant (nodes carry exposure), no version rules, rpc-mesh at ``baseline``."""
    document = yaml.safe_load(Path(POLICY_MANIFEST).read_text())
    policy = yaml.safe_load(document["data"]["policy.yaml"])
    policy["resources"]["overcommitVariant"] = "swap"
    policy["versions"]["rules"] = []
    policy["versions"]["sidecars"]["rpc-mesh"]["baseline"] = baseline
    policy.pop("revision", None)
    path.write_text(yaml.safe_dump(policy))
    return path


def _app(name: str, app: str, cpu: str = "500m", limit: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": app}},
            "spec": {"containers": [{"name": "app", "image": f"registry.example.com/{app}:1",
                                     "resources": {"requests": {"cpu": cpu, "memory": "512Mi"},
                                                   "limits": {"cpu": limit, "memory": "512Mi"}}}]}}


def _running(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = get_pod(cluster, namespace, name)
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return pod if statuses and all("running" in (s.get("state") or {}) for s in statuses) else None


def _meshfit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_check_finds_each_fault_with_its_hint_and_fleet_counts_match(kwok_cluster: LocalCluster, e2e_namespace: str,
                                                                     tmp_path: Path) -> None:
    cluster = kwok_cluster
    ns = e2e_namespace
    cluster.create_namespace(ns, {"meshfit.io/e2e-test": "true", **OPT_IN})  # opted in, not the suite's webhook
    current_file = _policy_file(tmp_path / "current.yaml", "1.8.1")
    current = load_policy_file(current_file)
    older = load_policy_file(_policy_file(tmp_path / "older.yaml", "1.8.0"))
    roomy, hot = f"check-roomy-{ns[-6:]}", f"check-hot-{ns[-6:]}"
    cluster.create_fake_node(roomy, cpu="64", memory="256Gi", labels={"topology.kubernetes.io/zone": "zone-a"})
    cluster.create_fake_node(hot, cpu="4", memory="8Gi", labels={"topology.kubernetes.io/zone": "zone-b"})

    certs = tmp_path / "certs"
    generate(certs, service="meshfit-webhook", namespace="meshfit-system", ips=["127.0.0.1"])
    bundle = base64.b64encode((certs / "ca.crt").read_bytes()).decode()
    mwc = f"meshfit-check-{ns[-6:]}"
    # The shipped configuration, pointed at a port nobody listens on: the webhook is down.
    register_webhook(cluster, webhook_configuration(mwc, f"https://127.0.0.1:{free_port()}", bundle))

    def meshed(name: str, app: str, policy: Any, node: str, **resources: str) -> dict[str, Any]:
        result = inject(_app(name, app, **resources), Namespace(ns, OPT_IN), policy)
        assert result.injected, result.reason
        pod = copy.deepcopy(result.pod)
        pod["spec"]["nodeName"] = node
        return create(cluster, ns, pod)

    def wait_running(name: str) -> dict[str, Any]:
        return cluster.wait_for(lambda: _running(cluster, ns, name), 60, interval=0.1, what=f"pod {name} running")

    def check(*extra: str) -> tuple[int, dict[str, Any]]:
        done = _meshfit("check", "--kubeconfig", str(cluster.kubeconfig_path), "--policy", str(current_file),
                        "-n", ns, "--webhook-config", mwc, "--cert-dir", str(certs), "-o", "json", *extra)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)

    try:
        for i in range(3):
            meshed(f"web-{i}", "web", current, roomy)
        meshed("api-0", "api", current, roomy)
        for name in ("web-0", "web-1", "web-2", "api-0"):
            wait_running(name)

        code, clean = check()
        assert clean["findings"] == [] and code == 0, json.dumps(clean, indent=1)
        assert clean["checks"]["versions"]["checked"] == 4 and clean["checks"]["accounting"]["checked"] == 4
        assert clean["checks"]["exposure"]["checked"] == 1 and clean["checks"]["certificates"]["checked"] == 2
        table = _meshfit("check", "--kubeconfig", str(cluster.kubeconfig_path), "--policy", str(current_file),
                         "-n", ns, "--webhook-config", mwc, "--cert-dir", str(certs))
        assert table.returncode == 0 and "all checks passed" in table.stdout, table.stdout + table.stderr

        # 1. stale: injected under the older baseline, still running rpc-mesh 1.8.0
        meshed("web-old", "web", older, roomy)
        # 2. tampered: the record claims the owner paid for more CPU than the pod requests
        stored = wait_running("web-1")
        record = json.loads(stored["metadata"]["annotations"][ACCOUNTING])
        record["original"]["cpu"] = "2"
        status, body = cluster.request("PATCH", f"/api/v1/namespaces/{ns}/pods/web-1",
                                       {"metadata": {"annotations": {ACCOUNTING: json.dumps(record)}}},
                                       content_type="application/merge-patch+json")
        assert status == 200, body
        # 3. over the ceiling: bound by hand to a 4-CPU node, 1.2 CPU of node-level exposure (ceiling 25%: 1)
        meshed("big", "batch", current, hot, cpu="2", limit="4")
        # 4. escaped: created while the webhook does not answer, admitted unmeshed (failurePolicy: Ignore)
        escaped = _app("escaped", "web")
        escaped["spec"]["nodeName"] = roomy
        stored_escaped = create(cluster, ns, escaped)
        assert STATUS not in (stored_escaped["metadata"].get("annotations") or {})
        for name in ("web-old", "big", "escaped"):
            wait_running(name)
        # the apiserver counts what the alerts read (manifests/monitoring/rules.yaml), with the labels they match
        status, metrics = cluster.request("GET", "/metrics")
        lines = metrics["text"].splitlines()
        assert any(line.startswith("apiserver_admission_webhook_fail_open_count{") and 'name="inject.meshfit.io"' in line
                   and 'type="admit"' in line for line in lines)
        calls = [line for line in lines if line.startswith("apiserver_admission_webhook_request_total{")
                 and 'name="inject.meshfit.io"' in line]
        assert any('code="200"' not in line for line in calls), calls
        assert any(line.startswith("apiserver_admission_webhook_admission_duration_seconds_bucket{")
                   and 'name="inject.meshfit.io"' in line and 'le="0.5"' in line for line in lines)

        code, found = check()
        assert code == 1
        by = {(f["check"], f["code"], f["subject"]): f for f in found["findings"]}
        stale = by[("versions", "stale", f"pod {ns}/web-old")]
        assert "runs 1.8.0" in stale["message"] and "1.8.1" in stale["message"] and "upgrade" in stale["hint"]
        tampered = by[("accounting", "requests_differ_from_original", f"pod {ns}/web-1")]
        assert "meshfit reaccount" in tampered["hint"]
        over = by[("exposure", "over_ceiling", f"node {hot}")]
        assert "cpu exposure" in over["message"] and "ceiling 25%" in over["message"] and over["hint"]
        missed = by[("missed-injections", "missed_injection", f"pod {ns}/escaped")]
        assert "rollout restart" in missed["hint"]
        assert set(by) == {("versions", "stale", f"pod {ns}/web-old"),
                           ("accounting", "requests_differ_from_original", f"pod {ns}/web-1"),
                           ("exposure", "over_ceiling", f"node {hot}"),
                           ("missed-injections", "missed_injection", f"pod {ns}/escaped")}, json.dumps(found, indent=1)
        assert {c: v["status"] for c, v in found["checks"].items()} == {
            "versions": "fail", "accounting": "fail", "exposure": "fail", "missed-injections": "fail",
            "runtime": "pass", "certificates": "pass", "configuration": "pass"}
        # The shipped policy declares no runtime parameters: the runtime check judges no pod.
        assert found["checks"]["runtime"]["checked"] == 0, found["checks"]["runtime"]

        table = _meshfit("check", "--kubeconfig", str(cluster.kubeconfig_path), "--policy", str(current_file),
                         "-n", ns, "--webhook-config", mwc, "--cert-dir", str(certs))
        assert table.returncode == 1 and table.stdout.count("    hint: ") == 4, table.stdout + table.stderr
        assert f"[versions] pod {ns}/web-old: rpc-mesh: runs 1.8.0" in table.stdout

        # the configuration drifts: someone made the webhook fail closed with a long timeout
        status, live = cluster.request("GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{mwc}")
        live["webhooks"][0]["failurePolicy"] = "Fail"
        live["webhooks"][0]["timeoutSeconds"] = 30
        status, body = cluster.request("PUT", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{mwc}", live)
        assert status == 200, body
        scheduler = tmp_path / "scheduler.yaml"
        scheduler.write_text(yaml.safe_dump({"apiVersion": "kubescheduler.config.k8s.io/v1",
                                             "kind": "KubeSchedulerConfiguration", "profiles": []}))
        code, drift = check("--only", "configuration", "--scheduler-config", str(scheduler))
        assert code == 1
        assert {f["code"] for f in drift["findings"]} == {"webhook_failurePolicy", "webhook_timeoutSeconds",
                                                          "scheduler_without_extender"}
        code, shipped = check("--only", "configuration", "--scheduler-config",
                              str(REPO / "manifests" / "extender" / "scheduler-config.yaml"))
        assert {f["code"] for f in shipped["findings"]} == {"webhook_failurePolicy", "webhook_timeoutSeconds"}

        # meshfit fleet against an independent count of the stored pods
        done = _meshfit("fleet", "--kubeconfig", str(cluster.kubeconfig_path), "--policy", str(current_file),
                        "-n", ns, "--by", "zone,app", "-o", "json")
        assert done.returncode == 0, done.stderr
        fleet = json.loads(done.stdout)
        status, listed = cluster.request("GET", f"/api/v1/namespaces/{ns}/pods")
        zones = {roomy: "zone-a", hot: "zone-b"}
        expected: Counter[tuple[str, str, str, str]] = Counter()
        for pod in listed["items"]:
            annotations = pod["metadata"].get("annotations") or {}
            if STATUS not in annotations:
                continue
            running = {s["name"]: s["image"] for s in pod["status"].get("initContainerStatuses") or ()}
            for sidecar in json.loads(annotations[STATUS])["sidecars"]:
                version = running[sidecar["name"]].rsplit(":", 1)[1]
                expected[(sidecar["name"], zones[pod["spec"]["nodeName"]],
                          pod["metadata"]["labels"]["app.kubernetes.io/name"], version)] += 1
        got: Counter[tuple[str, str, str, str]] = Counter()
        for cell in fleet["cells"]:
            for version, n in cell["running"].items():
                got[(cell["sidecar"], cell["group"]["zone"], cell["group"]["app"], version)] += n
        assert got == expected
        shown = _meshfit("fleet", "--kubeconfig", str(cluster.kubeconfig_path), "--policy", str(current_file),
                         "-n", ns, "--by", "zone,app")
        assert shown.returncode == 0 and f"{ns}/web-old" in shown.stdout and "1.8.1×3, 1.8.0×1" in shown.stdout, shown.stdout
        assert fleet["pods"] == {"listed": 7, "meshed": 6, "disagreeing": 1, "badStatus": 0}
        web_a = next(c for c in fleet["cells"] if c["sidecar"] == "rpc-mesh" and c["group"] == {"zone": "zone-a", "app": "web"})
        assert web_a["desired"] == {"1.8.1": 4} and web_a["recorded"] == {"1.8.1": 3, "1.8.0": 1}
        assert web_a["examples"] == [{"pod": f"{ns}/web-old", "problems": ["stale"]}]
    finally:
        unregister_webhook(cluster, mwc)
