"""SidecarRollouts on the real apiserver, KWOK as the kubelet, a real Prometheus judging each batch.

The controller runs as its own process (``meshfit controller serve``, leader
election on a Lease); pods are meshed by the webhook's engine and run by KWOK;
a small emitter serves each pod's application series and Prometheus scrapes it
every second. Bakes and intervals are a second or two; every wait is on a
condition, with generous timeouts.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from controller_support import ControllerProcess, annotation, cli, container_status, events_for, lease_holder, meshed
from controller_support import policy_document as base_policy
from e2e_support import get_pod
from prometheus_support import Prometheus, prometheus  # noqa: F401 - the fixture

from controlplane.cluster import LocalCluster

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "manifests" / "crds" / "sidecarrollouts.yaml"
API = "/apis/meshfit.io/v1alpha1"
ERROR_RATIO = ('sum(rate(app_errors_total{namespace=~"{{namespace}}",pod=~"{{pods}}"}[5s])) / '
               'sum(rate(app_requests_total{namespace=~"{{namespace}}",pod=~"{{pods}}"}[5s]))')


@pytest.fixture(scope="module")
def crd(kwok_cluster: LocalCluster) -> LocalCluster:
    """The shipped CRD, installed as `kubectl apply -k manifests/` installs it."""
    doc = yaml.safe_load(CRD.read_text())
    status, body = kwok_cluster.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc)
    assert status in (201, 409), body

    def established() -> bool:
        _, got = kwok_cluster.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                             f"{doc['metadata']['name']}")
        return any(c["type"] == "Established" and c["status"] == "True"
                   for c in (got.get("status") or {}).get("conditions") or ())

    kwok_cluster.wait_for(established, 30, what="the CRD established")
    kwok_cluster.wait_for(lambda: kwok_cluster.request("GET", f"{API}/sidecarrollouts")[0] == 200, 30,
                          what="sidecarrollouts served")
    return kwok_cluster


def write_policy(path: Path, windows: list[dict[str, Any]] | None = None) -> None:
    text = base_policy(freezeWindows=windows) if windows else base_policy()
    path.write_text(text)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    write_policy(path)
    return path


@pytest.fixture
def nodes(crd: LocalCluster, e2e_namespace: str) -> list[str]:
    suffix = e2e_namespace[-6:]
    names = [f"ro-{suffix}-{i}" for i in range(2)]
    for i, name in enumerate(names):
        crd.create_fake_node(name, cpu="32", memory="64Gi", labels={"topology.kubernetes.io/zone": f"zone-{i}"})
    return names


@pytest.fixture
def controllers(crd: LocalCluster, e2e_namespace: str, policy_file: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[ControllerProcess] = []

    def start(identity: str) -> ControllerProcess:
        replica = ControllerProcess(crd, policy_file, (e2e_namespace, "meshfit-controller"), identity, tmp_path,
                                    extra=("--rollout-poll", "0.5"))
        started.append(replica)
        return replica.start()

    yield start
    for replica in started:
        replica.stop()


def fleet(cluster: LocalCluster, ns: str, policy_file: Path, nodes: list[str], emitter: Any, count: int,
          ) -> dict[str, dict[str, Any]]:
    """``count`` meshed pods of two apps over the two nodes (zones), with their series in the emitter."""
    pods: dict[str, dict[str, Any]] = {}
    for i in range(count):
        app, node = ("cart", "shop")[i % 2], nodes[(i // 2) % 2]
        (pod,) = meshed(cluster, ns, policy_file, node, [f"{app}-{i}"], labels={"app.kubernetes.io/name": app,
                                                                                "tier": "ro"})
        pods[pod["metadata"]["name"]] = pod
    emitter.add(ns, *pods)
    return pods


def wait_for_series(cluster: LocalCluster, prometheus: Prometheus, ns: str, count: int) -> None:
    """Prometheus has a rate for every pod: the baseline exists before the rollout starts."""
    query = f'rate(app_requests_total{{namespace="{ns}"}}[5s])'
    cluster.wait_for(lambda: len(prometheus.query(query)) == count, 30, interval=0.5, what="every pod's series scraped")


def rollout(name: str, **spec: Any) -> dict[str, Any]:
    body = {"sidecar": "rpc-mesh", "version": "1.8.1", "selector": {"podSelector": {"matchLabels": {"tier": "ro"}}},
            "batches": [{"count": 1, "bake": "1s"}, {"percent": 100, "bake": "1s"}], "maxUnavailable": "100%",
            "analysis": {"interval": "1s", "count": 2, "inconclusiveDeadline": "30s"}}
    body.update(spec)
    return {"apiVersion": "meshfit.io/v1alpha1", "kind": "SidecarRollout", "metadata": {"name": name}, "spec": body}


def create_rollout(cluster: LocalCluster, ns: str, doc: dict[str, Any]) -> None:
    doc["spec"]["selector"]["namespaces"] = [ns]
    status, body = cluster.request("POST", f"{API}/namespaces/{ns}/sidecarrollouts", doc)
    assert status == 201, body


def get_rollout(cluster: LocalCluster, ns: str, name: str) -> dict[str, Any]:
    status, body = cluster.request("GET", f"{API}/namespaces/{ns}/sidecarrollouts/{name}")
    assert status == 200, body
    return body


def wait_phase(cluster: LocalCluster, ns: str, name: str, *phases: str, step: str | None = None,
               timeout: float = 90) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        got = get_rollout(cluster, ns, name)
        status = got.get("status") or {}
        ok = status.get("phase") in phases and (step is None or status.get("step") == step)
        return got if ok else None

    try:
        return cluster.wait_for(reached, timeout, interval=0.2, what=f"{name} in {phases} {step or ''}")
    except Exception:
        print(json.dumps(get_rollout(cluster, ns, name).get("status"), indent=1)[-6000:])
        raise


def sidecar_version(pod: dict[str, Any]) -> str:
    return next(s["version"] for s in annotation(pod, "meshfit.io/status")["sidecars"] if s["name"] == "rpc-mesh")


class Regressor:
    """Regresses a pod's series as soon as its record says it runs ``version`` (a bad release)."""

    def __init__(self, cluster: LocalCluster, ns: str, emitter: Any, version: str) -> None:
        self.cluster, self.ns, self.emitter, self.version = cluster, ns, emitter, version
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            status, body = self.cluster.request("GET", f"/api/v1/namespaces/{self.ns}/pods")
            for pod in body.get("items") or () if status == 200 else ():
                if "meshfit.io/status" in pod["metadata"].get("annotations", {}) \
                        and sidecar_version(pod) == self.version:
                    self.emitter.regress(self.ns, pod["metadata"]["name"])
            self.stop.wait(0.2)

    def __enter__(self) -> Regressor:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_a_healthy_rollout_completes_batch_by_batch(crd: LocalCluster, e2e_namespace: str, policy_file: Path,
                                                    nodes: list[str], prometheus: Prometheus,  # noqa: F811
                                                    controllers: Any, tmp_path: Path,
                                                    controlplane_bindir: Path) -> None:
    cluster, ns = crd, e2e_namespace
    before = fleet(cluster, ns, policy_file, nodes, prometheus.emitter, 4)
    wait_for_series(cluster, prometheus, ns, 4)
    replica = controllers("ctl-a")
    doc = rollout("healthy", analysis={"interval": "1s", "count": 2, "inconclusiveDeadline": "30s", "prometheus": {
        "address": prometheus.url, "metrics": [{"name": "error-rate", "query": ERROR_RATIO, "maxRatio": 2}]}})
    doc["spec"]["selector"]["namespaces"] = [ns]
    doc["metadata"]["namespace"] = ns
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    made = cli(cluster, "rollout", "create", "-f", str(manifest))
    assert made.returncode == 0, made.stdout + made.stderr
    watched = cli(cluster, "rollout", "status", "healthy", "-n", ns, "--watch", "--timeout", "120")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "Succeeded" in watched.stdout and "Successful" in watched.stdout

    got = get_rollout(cluster, ns, "healthy")
    status = got["status"]
    assert (status["phase"], status["updated"], status["total"]) == ("Succeeded", 4, 4)
    batches = status["batches"]
    assert [len(b["pods"]) for b in batches] == [1, 3] and [b["verdict"] for b in batches] == ["Successful"] * 2
    # The canary was judged against the three pods not yet changed, by the real Prometheus's numbers.
    canary_rounds = [m for m in batches[0]["measurements"] if m["check"] == "error-rate"]
    assert len(canary_rounds) >= 2 and all(m["result"] == "Successful" for m in canary_rounds)
    assert all(0.005 < m["value"] < 0.02 and 0.005 < m["baseline"] < 0.02 for m in canary_rounds), canary_rounds
    # Each batch started after the previous one ended.
    assert batches[1]["started"] >= batches[0]["ended"]
    for name, old in before.items():
        pod = get_pod(cluster, ns, name)
        assert sidecar_version(pod) == "1.8.1"
        assert container_status(pod, "rpc-mesh")["restartCount"] == container_status(old, "rpc-mesh")[
            "restartCount"] + 1
        assert container_status(pod, "app")["restartCount"] == container_status(old, "app")["restartCount"]
        assert pod["metadata"]["uid"] == old["metadata"]["uid"]
        assert annotation(pod, "meshfit.io/target")["generation"] == 1
    reasons = [e["reason"] for e in events_for(cluster, ns, "healthy")]
    assert reasons.count("RolloutBatchStarted") == 2 and "RolloutSucceeded" in reasons
    metrics = replica.metrics()
    assert metrics[f'meshfit_controller_rollout_phase{{rollout="{ns}/healthy",phase="Succeeded"}}'] == 1
    assert metrics['meshfit_controller_rollout_batches_total{verdict="Successful"}'] == 2
    # `kubectl get` alone says where it stands (the CRD's printer columns).
    shown = subprocess.run([str(controlplane_bindir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig_path),
                            "get", "srollout", "-n", ns], capture_output=True, text=True, check=True).stdout
    header, row = shown.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "BATCH", "UPDATED", "TOTAL", "VERSION", "REASON", "AGE"]
    assert row.split()[:7] == ["healthy", "Succeeded", "2/2", "4", "4", "1.8.1", "Completed"]


def test_a_regressed_canary_is_stopped_in_the_first_batch_and_rolled_back(
        crd: LocalCluster, e2e_namespace: str, policy_file: Path, nodes: list[str],
        prometheus: Prometheus, controllers: Any) -> None:  # noqa: F811
    cluster, ns = crd, e2e_namespace
    before = fleet(cluster, ns, policy_file, nodes, prometheus.emitter, 4)
    wait_for_series(cluster, prometheus, ns, 4)
    replica = controllers("ctl-a")
    with Regressor(cluster, ns, prometheus.emitter, "1.8.1"):
        create_rollout(cluster, ns, rollout("bad", batches=[{"count": 1, "bake": "3s"}, {"percent": 100}],
                                            analysis={"interval": "1s", "count": 3, "prometheus": {
                                                "address": prometheus.url,
                                                "metrics": [{"name": "error-rate", "query": ERROR_RATIO,
                                                             "maxRatio": 2}]}}))
        got = wait_phase(cluster, ns, "bad", "Failed", step="RolledBack")
    status = got["status"]
    (batch,) = status["batches"]
    (canary,) = [p["pod"].split("/")[1] for p in batch["pods"]]
    assert prometheus.emitter.regressed(ns, canary)
    failed = [m for m in batch["measurements"] if m["result"] == "Failed"]
    assert failed and failed[-1]["check"] == "error-rate" and failed[-1]["value"] > 2 * failed[-1]["baseline"]
    for part in ("error-rate", "value ", "baseline ", "threshold maxRatio 2", canary):
        assert part in status["message"], status["message"]
    assert status["reason"] == "AnalysisFailed"
    aborted = [e for e in events_for(cluster, ns, "bad") if e["reason"] == "RolloutAborted"]
    assert aborted and aborted[0]["type"] == "Warning" and canary in aborted[0]["message"]
    assert "threshold maxRatio 2" in aborted[0]["message"]
    # The canary is back on its previous version, asked with a new generation; no other pod was touched.
    pod = get_pod(cluster, ns, canary)
    assert sidecar_version(pod) == "1.8.0"
    assert annotation(pod, "meshfit.io/target") == {"generation": 2, "sidecars": {"rpc-mesh": {"version": "1.8.0"}}}
    assert container_status(pod, "app")["restartCount"] == container_status(before[canary], "app")["restartCount"]
    for name in set(before) - {canary}:
        assert annotation(get_pod(cluster, ns, name), "meshfit.io/target") is None, name
    assert replica.metrics()['meshfit_controller_rollouts_aborted_total{reason="error-rate"}'] == 1


def test_no_data_pauses_as_inconclusive_then_fails_at_the_deadline(
        crd: LocalCluster, e2e_namespace: str, policy_file: Path, nodes: list[str],
        prometheus: Prometheus, controllers: Any) -> None:  # noqa: F811
    cluster, ns = crd, e2e_namespace
    fleet(cluster, ns, policy_file, nodes, prometheus.emitter, 2)
    controllers("ctl-a")
    missing = 'sum(app_saturation_ratio{pod=~"{{pods}}"})'  # no such series: no data, never a pass
    create_rollout(cluster, ns, rollout("nodata", analysis={
        "interval": "1s", "count": 2, "inconclusiveDeadline": "4s",
        "prometheus": {"address": prometheus.url, "metrics": [{"name": "saturation", "query": missing, "max": 0.8}]}}))
    paused = wait_phase(cluster, ns, "nodata", "Paused")["status"]
    assert paused["reason"] == "Inconclusive" and "no data for the batch's pods" in paused["message"]
    deadline = dt.datetime.fromisoformat(paused["deadline"])
    failed = wait_phase(cluster, ns, "nodata", "Failed", step="RolledBack")["status"]
    assert "inconclusive past the deadline" in failed["message"] and "saturation" in failed["message"]
    ended = dt.datetime.fromisoformat(failed["batches"][0]["ended"])
    assert ended >= deadline
    assert all(m["result"] != "Successful" for m in failed["batches"][0]["measurements"]
               if m["check"] == "saturation")
    assert "RolloutInconclusive" in {e["reason"] for e in events_for(cluster, ns, "nodata")}


def test_a_freeze_window_holds_a_rollout_until_it_is_removed_from_the_policy(
        crd: LocalCluster, e2e_namespace: str, policy_file: Path, nodes: list[str],
        prometheus: Prometheus, controllers: Any) -> None:  # noqa: F811
    cluster, ns = crd, e2e_namespace
    pods = fleet(cluster, ns, policy_file, nodes, prometheus.emitter, 2)
    now = dt.datetime.now(dt.UTC)
    window = {"start": (now - dt.timedelta(hours=1)).strftime("%H:%M"),
              "end": (now + dt.timedelta(hours=1)).strftime("%H:%M"), "timezone": "UTC", "reason": "peak hours"}
    write_policy(policy_file, [window])
    controllers("ctl-a")
    create_rollout(cluster, ns, rollout("frozen"))
    held = wait_phase(cluster, ns, "frozen", "Paused")["status"]
    assert held["reason"] == "FreezeWindow" and "peak hours" in held["message"], held
    assert dt.datetime.fromisoformat(held["deadline"]) > now
    time.sleep(2)  # a held rollout stays held: no target is written while the window lasts
    assert all(annotation(get_pod(cluster, ns, n), "meshfit.io/target") is None for n in pods)
    assert get_rollout(cluster, ns, "frozen")["status"]["phase"] == "Paused"
    write_policy(policy_file)  # the window removed: the controller rereads its policy file
    done = wait_phase(cluster, ns, "frozen", "Succeeded")["status"]
    assert done["updated"] == 2
    assert all(sidecar_version(get_pod(cluster, ns, n)) == "1.8.1" for n in pods)


def test_a_leader_change_mid_rollout_resumes_it(crd: LocalCluster, e2e_namespace: str, policy_file: Path,
                                                nodes: list[str], prometheus: Prometheus,  # noqa: F811
                                                controllers: Any) -> None:
    cluster, ns = crd, e2e_namespace
    before = fleet(cluster, ns, policy_file, nodes, prometheus.emitter, 6)
    first = controllers("ctl-a")
    cluster.wait_for(lambda: lease_holder(cluster, ns, "meshfit-controller") == "ctl-a", 30, what="ctl-a leads")
    second = controllers("ctl-b")
    create_rollout(cluster, ns, rollout("failover", batches=[{"count": 2, "bake": "1s"},
                                                             {"percent": 100, "bake": "4s"}]))
    # Mid-rollout: batch 2's targets written, its bake under way.
    wait_phase(cluster, ns, "failover", "Progressing", step="Baking", timeout=90)
    cluster.wait_for(lambda: get_rollout(cluster, ns, "failover")["status"].get("batch") == 1
                     and get_rollout(cluster, ns, "failover")["status"]["step"] == "Baking", 60, interval=0.1,
                     what="batch 2 baking")
    first.kill()
    cluster.wait_for(lambda: lease_holder(cluster, ns, "meshfit-controller") == "ctl-b", 30, interval=0.1,
                     what="ctl-b takes over")
    status = wait_phase(cluster, ns, "failover", "Succeeded")["status"]
    assert [len(b["pods"]) for b in status["batches"]] == [2, 4]
    assert [b["verdict"] for b in status["batches"]] == ["Successful", "Successful"]
    for name, old in before.items():
        pod = get_pod(cluster, ns, name)
        assert sidecar_version(pod) == "1.8.1"
        # Changed once: one target generation, one restart of the sidecar, none of the app.
        assert annotation(pod, "meshfit.io/target")["generation"] == 1, name
        assert container_status(pod, "rpc-mesh")["restartCount"] == container_status(old, "rpc-mesh")[
            "restartCount"] + 1, name
        assert container_status(pod, "app")["restartCount"] == container_status(old, "app")["restartCount"]
    assert second.metrics()["meshfit_controller_leader"] == 1


def test_a_manual_gate_is_promoted_and_an_abort_rolls_the_current_batch_back(
        crd: LocalCluster, e2e_namespace: str, policy_file: Path, nodes: list[str],
        prometheus: Prometheus, controllers: Any) -> None:  # noqa: F811
    cluster, ns = crd, e2e_namespace
    pods = fleet(cluster, ns, policy_file, nodes, prometheus.emitter, 3)
    controllers("ctl-a")
    create_rollout(cluster, ns, rollout("gated", batches=[{"count": 1, "bake": "1s", "pause": True},
                                                          {"percent": 100, "bake": "10m"}]))
    gate = wait_phase(cluster, ns, "gated", "Paused")["status"]
    assert gate["reason"] == "ManualGate" and "meshfit rollout promote" in gate["message"]
    (canary,) = [p["pod"].split("/")[1] for p in gate["batches"][0]["pods"]]
    refused = cli(cluster, "rollout", "promote", "nosuch", "-n", ns)
    assert refused.returncode != 0
    promoted = cli(cluster, "rollout", "promote", "gated", "-n", ns, "-o", "json")
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["spec"]["promotedBatch"] == 0
    baking = wait_phase(cluster, ns, "gated", "Progressing", step="Baking")["status"]
    assert baking["batch"] == 1 and len(baking["batches"][1]["pods"]) == 2
    paused = cli(cluster, "rollout", "pause", "gated", "-n", ns)
    assert paused.returncode == 0 and "paused" in paused.stdout
    assert wait_phase(cluster, ns, "gated", "Paused")["status"]["reason"] == "Paused"
    assert cli(cluster, "rollout", "resume", "gated", "-n", ns).returncode == 0
    wait_phase(cluster, ns, "gated", "Progressing")
    aborted = cli(cluster, "rollout", "abort", "gated", "-n", ns)
    assert aborted.returncode == 0, aborted.stderr
    status = wait_phase(cluster, ns, "gated", "Aborted", step="RolledBack")["status"]
    assert "aborted by the user" in status["message"] and status["batches"][1]["verdict"] == "Aborted"
    # The current batch is back on its version; the canary, which passed its analysis, keeps the new one.
    for name in pods:
        assert sidecar_version(get_pod(cluster, ns, name)) == ("1.8.1" if name == canary else "1.8.0"), name
    shown = cli(cluster, "rollout", "status", "gated", "-n", ns, "-o", "json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"]["phase"] == "Aborted"
    watched = cli(cluster, "rollout", "status", "gated", "-n", ns, "--watch")
    assert watched.returncode == 1 and "Aborted" in watched.stdout
