"""What the webhook adds for runtime parameters: one volume naming the pod's group, a label, a record; nothing else."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import orjson
from podshapes import container, pod
from policies import default_policy
from reference import effective_requests, qos_class
from runtime_policies import runtime_policy

from policy.decision import Namespace
from policy.inject import inject

NS = Namespace("pay", {"meshfit.io/inject": "enabled"})


def _labelled(**labels: str) -> dict[str, Any]:
    return pod([container("app", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})], labels=dict(labels))


def test_the_pod_mounts_its_groups_configmap_and_keeps_its_budget() -> None:
    original = _labelled(**{"app.kubernetes.io/name": "checkout", "topology.kubernetes.io/zone": "eu-1a"})
    result = inject(copy.deepcopy(original), NS, runtime_policy())
    assert result.injected
    new = jsonpatch.apply_patch(original, [op for op in result.patch])
    volumes = [v for v in new["spec"]["volumes"] if v["name"] == "meshfit-runtime"]
    name = volumes[0]["projected"]["sources"][0]["configMap"]["name"]
    assert volumes == [{"name": "meshfit-runtime", "projected": {"defaultMode": 0o444, "sources": [
        {"configMap": {"name": name, "optional": True}}]}}]
    assert name.startswith("meshfit-runtime-checkout-eu-1a-") and len(name) == len("meshfit-runtime-checkout-eu-1a-") + 8
    assert new["metadata"]["labels"]["meshfit.io/runtime"] == "v1"
    assert orjson.loads(new["metadata"]["annotations"]["meshfit.io/runtime"]) == {
        "configMap": name, "app": "checkout", "zone": "eu-1a"}
    sidecars = {c["name"]: c for c in new["spec"]["initContainers"]}
    for sidecar in ("rpc-mesh", "msg-mesh"):
        assert {"name": "meshfit-runtime", "mountPath": "/etc/meshfit/runtime", "readOnly": True} in \
            sidecars[sidecar]["volumeMounts"]
        assert {"name": "MESHFIT_RUNTIME_FILE", "value": f"/etc/meshfit/runtime/{sidecar}.json"} in sidecars[sidecar]["env"]
    app = new["spec"]["containers"][0]
    assert "volumeMounts" not in app or all(m["name"] != "meshfit-runtime" for m in app["volumeMounts"])
    assert effective_requests(new) == effective_requests(original)
    assert qos_class(new) == qos_class(original)


def test_no_runtime_section_no_volume_no_label() -> None:
    original = _labelled(**{"app.kubernetes.io/name": "checkout"})
    result = inject(copy.deepcopy(original), NS, default_policy())
    new = jsonpatch.apply_patch(original, result.patch)
    assert all(v["name"] != "meshfit-runtime" for v in new["spec"].get("volumes") or ())
    assert "meshfit.io/runtime" not in new["metadata"].get("labels", {})


def test_a_pod_without_app_or_zone_labels_mounts_the_namespace_default() -> None:
    original = _labelled()
    new = jsonpatch.apply_patch(original, inject(copy.deepcopy(original), NS, runtime_policy()).patch)
    volume = next(v for v in new["spec"]["volumes"] if v["name"] == "meshfit-runtime")
    assert volume["projected"]["sources"][0]["configMap"]["name"] == "meshfit-runtime"


def test_a_pod_that_has_a_volume_of_that_name_is_told_and_keeps_its_own() -> None:
    original = _labelled()
    original["spec"]["volumes"] = [{"name": "meshfit-runtime", "emptyDir": {}}]
    result = inject(copy.deepcopy(original), NS, runtime_policy())
    new = jsonpatch.apply_patch(original, result.patch)
    assert [v for v in new["spec"]["volumes"] if v["name"] == "meshfit-runtime"] == [{"name": "meshfit-runtime", "emptyDir": {}}]
    assert any("the pod already has a volume named meshfit-runtime: the sidecars mount it, not their runtime "
               "parameters (rename the pod's volume)" in w for w in result.warnings)
    assert "meshfit.io/runtime" not in new["metadata"].get("labels", {})


def test_a_pod_meshed_before_the_runtime_section_is_reported_and_one_meshed_after_is_not() -> None:
    from policy.inspections import runtime_unmounted

    original = _labelled(**{"app.kubernetes.io/name": "web"})
    before = jsonpatch.apply_patch(original, inject(copy.deepcopy(original), NS, default_policy()).patch)
    after = jsonpatch.apply_patch(original, inject(copy.deepcopy(original), NS, runtime_policy()).patch)
    finding = runtime_unmounted(before, runtime_policy())
    assert finding is not None
    assert finding.to_dict() == {
        "check": "runtime", "code": "runtime_unmounted", "subject": "pod default/p",
        "message": "rpc-mesh, msg-mesh read no runtime parameters: the pod was created before the policy declared them",
        "hint": "restart its workload (kubectl rollout restart, or fleet.runtimeVolumes: repair) so that the webhook "
                "mounts them; nothing in place can add a volume"}
    assert runtime_unmounted(after, runtime_policy()) is None
    assert runtime_unmounted(before, default_policy()) is None
    assert runtime_unmounted(original, runtime_policy()) is None  # never meshed: the missed-injection check's
    finished = {**before, "status": {"phase": "Succeeded"}}
    assert runtime_unmounted(finished, runtime_policy()) is None
