"""``meshfit reaccount`` against the real apiserver: resize requests reach it, records follow.

A fleet is injected under one policy (the sidecars' requests half their
size) and stored; ``reaccount --apply`` to another (requests equal to the
size: the field's starving sidecars given their full CPU) must resize every
pod through ``pods/resize``, rewrite the records, keep ``R(pod)`` and the QoS
class (checked with tests/reference.py and the apiserver's own qosClass),
skip with the reason a pod whose QoS would change, resume an interrupted run
from its checkpoint, and find nothing to do the second time.
"""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import reference as ref
import yaml
from e2e_support import create, get_pod

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_MANIFEST
from policy.annotations import ACCOUNTING
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _policy_text(guaranteed_cpu: str, best_effort: str = "requests") -> str:
    """The shipped policy with other guaranteed shares and BestEffort rule, as a MeshPolicy document."""
    document = yaml.safe_load(Path(POLICY_MANIFEST).read_text())
    policy = yaml.safe_load(document["data"]["policy.yaml"])
    policy["resources"]["guaranteed"] = {"cpu": guaranteed_cpu, "memory": "1"}
    policy["resources"]["bestEffort"] = best_effort
    return yaml.safe_dump(policy)


def _pod(name: str, requests: dict[str, str] | None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name}},
            "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1", "resources": resources}]}}


def _running(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    pod = get_pod(cluster, namespace, name)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions") or ())
    return pod if ready else None


def _reaccount(cluster: LocalCluster, *args: str, check: bool = True) -> dict[str, Any]:
    argv = [sys.executable, "-m", "cli", "reaccount", "--kubeconfig", str(cluster.kubeconfig_path), "-o", "json", *args]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


@pytest.fixture
def fleet(kwok_cluster: LocalCluster, e2e_namespace: str, tmp_path: Path) -> tuple[str, list[dict[str, Any]], Path, Path]:
    """Meshed pods running on a fake kubelet's node (KWOK answers each resize as a kubelet does)."""
    local_cluster = kwok_cluster
    old_file, new_file = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old_file.write_text(_policy_text("1/2", best_effort="besteffort"))
    new_file.write_text(_policy_text("1", best_effort="requests"))
    old = load_policy_file(old_file)
    shapes = [
        _pod("web-0", {"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "4Gi"}),
        _pod("web-1", {"cpu": "1", "memory": "2Gi"}),
        _pod("ledger", {"cpu": "1", "memory": "2Gi"}, {"cpu": "1", "memory": "2Gi"}),  # Guaranteed
        _pod("small", {"cpu": "100m", "memory": "64Mi"}),
        _pod("api-0", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"}),
        _pod("api-1", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"}),
        _pod("bare", None),  # BestEffort: the sidecars got nothing; requests now would change its QoS
    ]
    node = f"reaccount-{e2e_namespace[-6:]}"
    local_cluster.create_fake_node(node, cpu="64", memory="256Gi")
    originals = []
    for pod in shapes:
        result = inject(pod, Namespace(e2e_namespace, None), old)
        assert result.injected, result.reason
        bound = copy.deepcopy(result.pod)
        bound["spec"]["nodeName"] = node  # bound by hand, then Running on the fake kubelet
        create(local_cluster, e2e_namespace, bound)
        stored = local_cluster.wait_for(lambda name=bound["metadata"]["name"]: _running(local_cluster, e2e_namespace, name),
                                        60, interval=0.1, what=f"pod {bound['metadata']['name']} running")
        originals.append({"original": pod, "stored": stored})
    return e2e_namespace, originals, old_file, new_file


def test_reaccount_resizes_in_place_then_finds_nothing_to_do(kwok_cluster: LocalCluster, fleet: Any) -> None:
    local_cluster = kwok_cluster
    namespace, pods, _, new_file = fleet
    dry = _reaccount(local_cluster, "-n", namespace, "--policy", str(new_file))
    assert dry["summary"]["writes"] == 0 and dry["summary"]["applied"] is False
    would = {p["name"]: p for p in dry["pods"]}
    assert {n for n, p in would.items() if p["outcome"] == "would-resize"} == {
        "web-0", "web-1", "ledger", "api-0", "api-1"}
    # a small pod's mesh already has all the pod can give: only its record (the cut) changes
    assert would["small"]["outcome"] == "would-record-only"
    assert would["bare"]["outcome"] == "skipped" and would["bare"]["code"] == "qos_change"
    for item in pods:  # a dry run changes nothing
        stored = get_pod(local_cluster, namespace, item["stored"]["metadata"]["name"])
        assert stored["metadata"]["resourceVersion"] == item["stored"]["metadata"]["resourceVersion"]

    applied = _reaccount(local_cluster, "-n", namespace, "--policy", str(new_file), "--apply", "--wait-resize", "60")
    summary = applied["summary"]
    assert summary["resizeStatus"] == {"done": 5, "deferred_or_in_progress": 0}, "each kubelet took its resize"
    assert summary["outcomes"].get("resized") == 5 and summary["skipped"] == {"qos_change": 1}
    assert summary["outcomes"].get("record_only") == 1
    assert summary["writes"] == 11, "two writes per resized pod (the resize and the record), one for a record"
    new = load_policy_file(new_file)
    for item in pods:
        name = item["stored"]["metadata"]["name"]
        stored = get_pod(local_cluster, namespace, name)
        if name == "bare":
            assert stored["metadata"]["resourceVersion"] == item["stored"]["metadata"]["resourceVersion"]
            continue
        fresh = inject(item["original"], Namespace(namespace, None), new)
        # what a fresh injection under the new policy gives, resource for resource
        for kind in ("initContainers", "containers"):
            got = {c["name"]: (ref.requests_of(c), ref.limits_of(c)) for c in stored["spec"].get(kind) or ()}
            want = {c["name"]: (ref.requests_of(c), ref.limits_of(c)) for c in fresh.pod["spec"].get(kind) or ()}
            assert got == want, (name, kind)
        assert ref.effective_requests(stored) == ref.effective_requests(item["stored"]) == \
            ref.effective_requests(item["original"]), f"{name}: R(pod) moved"
        assert stored["status"]["qosClass"] == item["stored"]["status"]["qosClass"]
        # the kubelet reports the new resources for every resized container (its status may follow the
        # resize's end by a sync: waited for, with a deadline)
        def unreported(pod_name: str = name) -> list[str]:
            pod = get_pod(local_cluster, namespace, pod_name)
            reported = {c["name"]: c.get("resources") for k in ("initContainerStatuses", "containerStatuses")
                        for c in pod["status"].get(k) or ()}
            return [c["name"] for kind in ("initContainers", "containers") for c in pod["spec"].get(kind) or ()
                    if (c.get("restartPolicy") == "Always" or kind == "containers")
                    and ref.requests_of({"resources": reported.get(c["name"]) or {}}) != ref.requests_of(c)]

        local_cluster.wait_for(lambda: not unreported(), 30, what=f"{name}: the kubelet reports the new resources")
        assert unreported() == [], name
        record = json.loads(stored["metadata"]["annotations"][ACCOUNTING])
        for sidecar in record["sidecars"]:
            if "cpu" not in record.get("reduced", {}):  # a small pod's mesh has what the pod can give
                assert sidecar["requests"]["cpu"] == sidecar["limits"]["cpu"], "the new policy guarantees the full CPU"
        assert record == json.loads(fresh.pod["metadata"]["annotations"][ACCOUNTING])

    again = _reaccount(local_cluster, "-n", namespace, "--policy", str(new_file), "--apply")
    assert again["summary"]["writes"] == 0 and again["summary"]["outcomes"].get("unchanged") == 6


def test_an_interrupted_run_resumes_from_its_checkpoint(kwok_cluster: LocalCluster, fleet: Any, tmp_path: Path) -> None:
    local_cluster = kwok_cluster
    namespace, pods, _, new_file = fleet
    checkpoint = tmp_path / "checkpoint"
    argv = [sys.executable, "-m", "cli", "reaccount", "--kubeconfig", str(local_cluster.kubeconfig_path), "-n",
            namespace, "--policy", str(new_file), "--apply", "--checkpoint", str(checkpoint), "--qps", "2",
            "--burst", "1", "--concurrency", "1", "-o", "json"]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        local_cluster.wait_for(lambda: checkpoint.exists() and len(checkpoint.read_text().splitlines()) >= 2, 60,
                               interval=0.05, what="two pods re-accounted")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    first = json.loads(out)
    assert first["summary"]["interrupted"] is True, err
    done_first = len(checkpoint.read_text().splitlines())
    assert 2 <= done_first < 7
    second = _reaccount(local_cluster, "-n", namespace, "--policy", str(new_file), "--apply",
                        "--checkpoint", str(checkpoint))
    assert second["summary"]["outcomes"]["checkpointed"] == done_first
    resized = first["summary"]["outcomes"].get("resized", 0) + second["summary"]["outcomes"].get("resized", 0)
    assert resized == 5, json.dumps([first["summary"], second["summary"]])
    third = _reaccount(local_cluster, "-n", namespace, "--policy", str(new_file))
    assert third["summary"]["outcomes"].get("unchanged") == 6 and third["summary"]["skipped"] == {"qos_change": 1}


def test_a_concurrent_writer_is_never_overwritten(kwok_cluster: LocalCluster, fleet: Any) -> None:
    local_cluster = kwok_cluster
    namespace, pods, _, new_file = fleet
    name = "web-1"
    stored = get_pod(local_cluster, namespace, name)
    # another writer changes a sidecar's resources by hand after the record was written
    tampered = json.loads(json.dumps(stored["spec"]["initContainers"][0]["resources"]))
    tampered["limits"]["cpu"] = "1500m"
    status, body = local_cluster.request(
        "PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/resize",
        {"spec": {"initContainers": [{"name": stored["spec"]["initContainers"][0]["name"], "resources": tampered}]}},
        content_type="application/strategic-merge-patch+json")
    assert status == 200, body
    result = _reaccount(local_cluster, "-n", namespace, "--policy", str(new_file), "--apply")
    entry = next(p for p in result["pods"] if p["name"] == name)
    assert entry["outcome"] == "skipped" and entry["code"] == "inconsistent", entry
    after = get_pod(local_cluster, namespace, name)
    assert after["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] == "1500m"


def test_the_record_write_is_a_compare_and_swap(kwok_cluster: LocalCluster, fleet: Any) -> None:
    """A status update (the kubelet's) never fails the record write; another writer's record change does."""
    from policy.reaccount import plan_reaccount

    namespace, _, _, new_file = fleet
    path = f"/api/v1/namespaces/{namespace}/pods/web-0"
    read = get_pod(kwok_cluster, namespace, "web-0")
    plan = plan_reaccount(read, Namespace(namespace, None), load_policy_file(new_file))
    assert plan.action == "resize"
    status, _ = kwok_cluster.request("PATCH", path + "/status", {"status": {"message": "the kubelet wrote"}},
                                     content_type="application/strategic-merge-patch+json")
    assert status == 200
    other = json.loads(json.dumps(read))
    other["metadata"]["annotations"][ACCOUNTING] = read["metadata"]["annotations"][ACCOUNTING].replace('"v":1', '"v":1 ')
    status, _ = kwok_cluster.request("PATCH", path, [{"op": "replace", "path": "/metadata/annotations/meshfit.io~1accounting",
                                                      "value": other["metadata"]["annotations"][ACCOUNTING]}],
                                     content_type="application/json-patch+json")
    assert status == 200
    status, answer = kwok_cluster.request("PATCH", path, plan.record_patch(read), content_type="application/json-patch+json")
    assert status == 422 and answer.get("reason") == "Invalid", answer
    fresh = get_pod(kwok_cluster, namespace, "web-0")
    status, _ = kwok_cluster.request("PATCH", path, plan.record_patch(fresh), content_type="application/json-patch+json")
    assert status == 200, "against what is stored now, after a status update, the swap goes through"


def test_the_pod_level_resize_gate_is_read_from_the_apiserver(local_cluster: LocalCluster) -> None:
    """1.36 runs InPlacePodLevelResourcesVerticalScaling on by default: the metric says so, and reaccount reads it."""
    import asyncio

    from cli.reaccount_cmd import POD_LEVEL_GATE, _pod_level_gate
    from kube.client import ApiClient
    from kube.config import load_config

    async def ask() -> bool:
        async with ApiClient(load_config(str(local_cluster.kubeconfig_path))) as client:
            async with client.session.get(client.url("/metrics"), headers=client.config.headers()) as response:
                body = await response.text()
            line = next(l for l in body.splitlines() if l.startswith("kubernetes_feature_enabled")
                        and f'name="{POD_LEVEL_GATE}"' in l)
            expected = line.rsplit(" ", 1)[-1] in ("1", "1.0")
            return await _pod_level_gate(client) == expected and expected

    assert asyncio.run(ask())
