"""The fleet view and the pod inspections on pods the real engine injected, then aged, edited and escaped."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.fleet import DesiredVersions, FleetView, image_tag, normalise_image, sidecar_states
from policy.inject import inject
from policy.inspections import (NodeExposure, accounting_findings, count_exposure, exposure_findings,
                                missed_injection, version_findings)
from policy.load import load_policy_file
from policy.model import SidecarVersions
from policy.pod_entry import reduce_pod

POLICY = load_policy_file(Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def app(name: str, cpu: str = "1", memory: str = "1Gi") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app.kubernetes.io/name": name}},
            "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1",
                                     "resources": {"requests": {"cpu": cpu, "memory": memory},
                                                   "limits": {"cpu": cpu, "memory": memory}}}]}}


def with_baseline(version: str) -> Any:
    versions = dict(POLICY.versions.sidecars)
    versions["rpc-mesh"] = dataclasses.replace(versions["rpc-mesh"], baseline=version)
    return dataclasses.replace(POLICY, versions=dataclasses.replace(POLICY.versions, sidecars=versions, rules=()))


def running(pod: dict[str, Any], node: str = "n1") -> dict[str, Any]:
    """As the kubelet reports it: every container running its spec's image."""
    pod = copy.deepcopy(pod)
    pod["spec"]["nodeName"] = node
    pod["status"] = {"phase": "Running", **{
        f"{kind[:-1]}Statuses" if kind == "containers" else "initContainerStatuses": [
            {"name": c["name"], "image": c["image"], "imageID": f"{c['image']}@sha256:{'0' * 64}"}
            for c in pod["spec"].get(kind) or ()]
        for kind in ("initContainers", "containers")}}
    return pod


def test_images() -> None:
    assert normalise_image("docker.io/library/nginx:1") == normalise_image("nginx:1") == "nginx:1"
    assert image_tag("registry:5000/mesh/mosn:1.8.0@sha256:abc") == "1.8.0"
    assert image_tag("registry:5000/mesh/mosn") is None


def test_a_fresh_pod_agrees_and_a_stale_one_is_named() -> None:
    policy = with_baseline("1.8.0")
    pod = running(inject(app("web"), Namespace("shop", None), policy, now=NOW).pod)
    assert all(not s.problems for s in sidecar_states(pod, DesiredVersions(policy, {}, NOW)) or ())
    newer = with_baseline("1.8.1")
    states = sidecar_states(pod, DesiredVersions(newer, {}, NOW))
    assert states is not None
    rpc = next(s for s in states if s.sidecar == "rpc-mesh")
    assert rpc.problems == ("stale",) and rpc.running_version == "1.8.0" and rpc.desired_version == "1.8.1"
    findings = version_findings(pod, states)
    assert [f.code for f in findings] == ["stale"] and "1.8.1" in findings[0].message and findings[0].hint


def test_spec_and_running_disagreements() -> None:
    pod = running(inject(app("web"), Namespace("shop", None), POLICY, now=NOW).pod)
    pod["status"]["initContainerStatuses"][0]["image"] = "registry.example.com/mesh/mosn:0.9"
    codes = {c for s in sidecar_states(pod, DesiredVersions(POLICY, {}, NOW)) or () for c in s.problems}
    assert "running_differs_from_spec" in codes and "stale" in codes
    pod["metadata"]["annotations"][STATUS] = "{not json"
    assert sidecar_states(pod, DesiredVersions(POLICY, {}, NOW)) is None
    assert version_findings(pod, None)[0].code == "bad_status"


def test_fleet_counts_by_group() -> None:
    desired = DesiredVersions(with_baseline("1.8.1"), {}, NOW)
    old = with_baseline("1.8.0")
    view = FleetView(desired, ("zone", "app"), {"n1": "zone-a", "n2": "zone-b"}, examples=1)
    for i in range(3):
        view.add(running(inject(app("web"), Namespace("shop", None), old, now=NOW).pod, node="n1"))
    view.add(running(inject(app("web"), Namespace("shop", None), with_baseline("1.8.1"), now=NOW).pod, node="n2"))
    view.add(running(app("plain")))
    assert view.pods_seen == 5 and view.pods_meshed == 4 and view.pods_disagreeing == 3
    cell = view.cells[("rpc-mesh", ("zone-a", "web"))]
    assert cell.pods == 3 and cell.desired == {"1.8.1": 3} and cell.recorded == {"1.8.0": 3}
    assert cell.running == {"1.8.0": 3} and cell.disagreeing == 3 and len(cell.examples) == 1
    assert view.cells[("rpc-mesh", ("zone-b", "web"))].disagreeing == 0


def test_accounting_recomputed_from_the_spec() -> None:
    pod = inject(app("web", "2", "2Gi"), Namespace("shop", None), POLICY, now=NOW).pod
    assert accounting_findings(pod) == []
    record = json.loads(pod["metadata"]["annotations"][ACCOUNTING])
    record["original"]["cpu"] = "3"
    tampered = copy.deepcopy(pod)
    tampered["metadata"]["annotations"][ACCOUNTING] = json.dumps(record)
    assert [f.code for f in accounting_findings(tampered)] == ["requests_differ_from_original"]
    no_limit = copy.deepcopy(pod)
    del no_limit["spec"]["initContainers"][0]["resources"]["limits"]["cpu"]
    codes = {f.code for f in accounting_findings(no_limit)}
    assert {"sidecar_without_cpu_quota", "sidecar_resources_differ"} <= codes
    broken = copy.deepcopy(pod)
    broken["metadata"]["annotations"][ACCOUNTING] = "{"
    assert [f.code for f in accounting_findings(broken)] == ["bad_record"]


def test_exposure_over_the_ceiling_is_exact() -> None:
    swap = dataclasses.replace(POLICY, resources=dataclasses.replace(POLICY.resources, variant="swap"))
    burstable = app("web", "2", "2Gi")
    burstable["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "4"
    pod = running(inject(burstable, Namespace("shop", None), swap, now=NOW).pod)
    entry = reduce_pod(pod)
    assert entry.exp_cpu > 0
    fits = NodeExposure("n1", alloc_cpu=entry.exp_cpu * 4, alloc_memory=entry.exp_memory * 10, known=True)
    count_exposure({"n1": fits}, entry)
    assert exposure_findings([fits], POLICY) == []
    tight = NodeExposure("n1", alloc_cpu=entry.exp_cpu * 4 - 1, alloc_memory=entry.exp_memory * 100, known=True)
    count_exposure({"n1": tight}, entry)
    (finding,) = exposure_findings([tight], POLICY)
    assert finding.subject == "node n1" and "cpu exposure" in finding.message and "memory" not in finding.message


def test_missed_injections() -> None:
    opted = {"meshfit.io/inject": "enabled"}
    escaped = running(app("web"))
    assert missed_injection(escaped, opted, POLICY) is not None
    assert missed_injection(escaped, {}, POLICY) is None
    assert missed_injection(escaped, None, POLICY) is None
    opted_out = copy.deepcopy(escaped)
    opted_out["metadata"]["annotations"] = {"meshfit.io/inject": "false"}
    assert missed_injection(opted_out, opted, POLICY) is None
    meshed = inject(app("web"), Namespace("shop", opted), POLICY, now=NOW).pod
    assert missed_injection(meshed, opted, POLICY) is None
    system = copy.deepcopy(escaped)
    system["metadata"]["namespace"] = "kube-system"
    assert missed_injection(system, opted, POLICY) is None
    done = copy.deepcopy(escaped)
    done["status"]["phase"] = "Succeeded"
    assert missed_injection(done, opted, POLICY) is None


def test_a_sidecar_the_policy_dropped() -> None:
    pod = inject(app("web"), Namespace("shop", None), POLICY, now=NOW).pod
    versions = {k: v for k, v in POLICY.versions.sidecars.items() if k != "msg-mesh"}
    fewer = dataclasses.replace(POLICY, sidecars=tuple(s for s in POLICY.sidecars if s.name != "msg-mesh"),
                                versions=dataclasses.replace(POLICY.versions, sidecars=versions))
    states = sidecar_states(pod, DesiredVersions(fewer, {}, NOW)) or []
    assert {s.sidecar: s.problems for s in states}["msg-mesh"] == ("not_in_policy",)
    assert isinstance(POLICY.versions.sidecars["rpc-mesh"], SidecarVersions)


def test_a_finding_is_written_out_under_the_names_meshfit_check_prints() -> None:
    from policy.inspections import Finding

    found = Finding("versions", "drift", "pod shop/a", "rpc-mesh runs 1.8.0, 1.8.1 is desired", "roll it")
    assert found.to_dict() == {"check": "versions", "code": "drift", "subject": "pod shop/a",
                               "message": "rpc-mesh runs 1.8.0, 1.8.1 is desired", "hint": "roll it"}


def test_an_exposure_finding_gives_the_share_of_allocatable_and_the_figures() -> None:
    gi = 1024**3 * 10**9  # nanos
    node = NodeExposure("n1", alloc_cpu=4 * 10**9, alloc_memory=0, known=True, exp_cpu=15 * 10**8,
                        exp_memory=gi, pods=2)
    (finding,) = exposure_findings([node], POLICY)
    assert finding.message == ("cpu exposure 37.5% of allocatable (ceiling 25%): 1500m of 4; "
                               "memory exposure - of allocatable (ceiling 10%): 1Gi of 0 (2 pods)")


def test_an_image_without_a_tag_or_registry_has_no_tag() -> None:
    assert image_tag("mosn") is None
    assert image_tag("mosn@sha256:abc") is None
    assert image_tag("mosn:1.8.0") == "1.8.0"
