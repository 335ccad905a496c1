"""The injection engine: decisions, every resource mode, pod shapes, the patch, idempotency."""

from __future__ import annotations

import copy
import dataclasses

import jsonpatch
import orjson
import pytest
from podshapes import container, java_pod, pod
from policies import default_policy, with_injection, with_resources

from policy.decision import Namespace
from policy.inject import InjectionError, inject
from policy.model import Emergency, NamespacePolicy, SidecarOverride
from policy.quantity import Quantity
from policy.record import parse_record
from policy.resources import pod_limits, pod_requests

SHOP = Namespace("shop", None)


def _inject(p: dict, policy=None, ns: Namespace = SHOP):
    before = copy.deepcopy(p)
    result = inject(p, ns, policy or default_policy())
    assert p == before, "the input pod must not be modified"
    assert jsonpatch.apply_patch(before, result.patch) == result.pod, "the patch must produce the result"
    return result


def _containers(p: dict) -> dict[str, dict]:
    return {c["name"]: c for k in ("initContainers", "containers") for c in p["spec"].get(k) or ()}


# -- decisions ---------------------------------------------------------------
def test_excluded_namespaces_are_never_injected_even_on_pod_opt_in() -> None:
    p = java_pod(annotations={"meshfit.io/inject": "true"})
    result = _inject(p, ns=Namespace("kube-system", None))
    assert not result.injected and "never injected" in result.reason and result.patch == []


def test_namespace_opt_in_and_pod_overrides() -> None:
    enabled = Namespace("shop", {"meshfit.io/inject": "enabled"})
    plain = Namespace("shop", {})
    assert _inject(java_pod(), ns=enabled).injected
    assert not _inject(java_pod(), ns=plain).injected
    assert _inject(java_pod(labels={"meshfit.io/inject": "true"}), ns=plain).injected
    out = _inject(java_pod(annotations={"meshfit.io/inject": "false"}), ns=enabled)
    assert not out.injected and "opts out" in out.reason and out.warnings == []


def test_conflicting_markers_warn_and_the_annotation_wins() -> None:
    p = java_pod(annotations={"meshfit.io/inject": "false"})
    p["metadata"]["labels"]["meshfit.io/inject"] = "true"
    result = _inject(p)
    assert not result.injected
    assert "disagree" in result.warnings[0]


def test_emergency_stop_passes_pods_with_a_warning() -> None:
    policy = dataclasses.replace(default_policy(), emergency=Emergency(stop_injection=True, reason="INC-42"))
    result = _inject(java_pod(), policy)
    assert not result.injected and result.patch == []
    assert "emergency switch: INC-42" in result.warnings[0]


def test_host_network_pods_are_skipped_with_a_warning() -> None:
    result = _inject(pod([container("a", {"cpu": "1"})], hostNetwork=True))
    assert not result.injected and "host network" in result.warnings[0]
    assert _inject(pod([container("a", {"cpu": "1"})], hostNetwork=True), with_injection(host_network="inject")).injected


def test_name_and_port_collisions_are_clear_skips() -> None:
    taken = _inject(pod([container("rpc-mesh", {"cpu": "1"})]))
    assert not taken.injected and "container name 'rpc-mesh' is already used in containers" in taken.reason
    port = _inject(pod([container("a", {"cpu": "1"}, ports=[{"containerPort": 12220}])]))
    assert not port.injected and "port 12220" in port.reason


def test_idempotent_on_an_injected_pod() -> None:
    first = _inject(java_pod())
    second = _inject(first.pod)
    assert not second.injected and "already injected" in second.reason
    assert second.pod == first.pod and second.patch == []


def test_namespace_policy_disables_a_sidecar_and_resizes_another() -> None:
    from policy.model import Sizing
    base = default_policy().sidecar("rpc-mesh").sizing
    sizing = dataclasses.replace(base, mode="fixed", fixed={"cpu": Quantity.parse("300m"), "memory": Quantity.parse("96Mi")})
    ns = Namespace("shop", None, NamespacePolicy("shop", "r", {
        "msg-mesh": SidecarOverride(enabled=False), "rpc-mesh": SidecarOverride(sizing=sizing)}))
    result = _inject(java_pod(), ns=ns)
    names = [c["name"] for c in result.pod["spec"]["initContainers"]]
    assert names == ["rpc-mesh"]
    assert _containers(result.pod)["rpc-mesh"]["resources"]["limits"] == {"cpu": "300m", "memory": "96Mi"}
    assert isinstance(sizing, Sizing)


def test_pod_annotation_resizes_within_bounds() -> None:
    result = _inject(java_pod(annotations={"meshfit.io/size-rpc-mesh": "cpu=3,memory=100Mi"}))
    limits = _containers(result.pod)["rpc-mesh"]["resources"]["limits"]
    assert limits == {"cpu": "2", "memory": "100Mi"}  # cpu clamped to the max 2
    assert any("lowered to the maximum 2" in n for n in result.notes)


def test_malformed_pods_raise_injection_error_naming_the_field() -> None:
    with pytest.raises(InjectionError, match=r"spec.containers\[0\].resources.requests.memory: invalid quantity"):
        inject(pod([container("a", {"memory": "12 GB"})]), SHOP, default_policy())
    for bad in ({}, {"spec": []}, {"spec": {"containers": []}}, {"spec": {"containers": [{"image": "x"}]}},
                {"spec": {"containers": "x"}}, {"spec": {"containers": [{"name": "a", "resources": []}]}}):
        with pytest.raises(InjectionError):
            inject(bad, SHOP, default_policy())


# -- overcommit, pod-level ------------------------------------------------------
def test_overcommit_pod_level_keeps_requests_and_limits_of_the_pod() -> None:
    p = java_pod()
    result = _inject(p)
    new = result.pod
    assert pod_requests(new) == pod_requests(p)
    assert pod_limits(new) == pod_limits(p)
    assert new["spec"]["resources"] == {"requests": {"cpu": "2100m", "memory": "4224Mi"},
                                        "limits": {"cpu": "4200m", "memory": "4224Mi"}}
    app = _containers(new)["app"]
    assert app["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}  # app limits never change
    rpc = _containers(new)["rpc-mesh"]
    assert rpc["restartPolicy"] == "Always" and rpc["startupProbe"]["tcpSocket"]["port"] == 12220
    assert new["spec"]["initContainers"][0]["name"] == "rpc-mesh"  # before any app init container
    record = parse_record(new["metadata"]["annotations"]["meshfit.io/accounting"])
    assert record.mode == "overcommit" and record.variant == "pod-level" and record.exposure == "pod"
    assert record.overcommit == {"cpu": Quantity.parse("1250m"), "memory": Quantity.parse("392Mi")}
    assert not record.leak and not record.node_exposure()


def test_app_containers_learn_where_the_mesh_is_but_keep_their_own_values() -> None:
    p = java_pod()
    p["spec"]["containers"][0]["env"].append({"name": "MESH_RPC_ADDR", "value": "mine"})
    env = {e["name"]: e["value"] for e in _containers(_inject(p).pod)["app"]["env"]}
    assert env["MESH_ENABLED"] == "true" and env["MESH_RPC_ADDR"] == "mine"


def test_init_heavy_pod_fits_the_mesh_into_the_init_slack() -> None:
    p = pod([container("app", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
            [container("migrate", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})])
    result = _inject(p)
    assert pod_requests(result.pod) == pod_requests(p)
    assert _containers(result.pod)["app"]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_existing_native_sidecars_and_overhead_keep_the_invariant() -> None:
    p = pod([container("app", {"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})],
            [container("istio-proxy", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "1", "memory": "1Gi"}, restart="Always")],
            overhead={"cpu": "250m", "memory": "160Mi"})
    result = _inject(p)
    assert pod_requests(result.pod) == pod_requests(p)
    own = _containers(result.pod)["istio-proxy"]["resources"]
    # the pod's own native sidecar is part of the owner's budget: it donates with the app, limits kept
    assert own["limits"] == p["spec"]["initContainers"][0]["resources"]["limits"]
    assert Quantity.parse(own["requests"]["cpu"]) < Quantity.parse("100m")
    assert Quantity.parse(own["requests"]["memory"]) < Quantity.parse("128Mi")


def test_limits_only_pod_keeps_its_quota() -> None:
    p = pod([container("app", lim={"cpu": "1", "memory": "2Gi"})])
    result = _inject(p)
    assert pod_requests(result.pod) == pod_requests(p) == {"cpu": Quantity.parse("1"), "memory": Quantity.parse("2Gi")}
    assert _containers(result.pod)["app"]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_existing_pod_level_resources_are_kept() -> None:
    p = pod([container("app", {"cpu": "500m", "memory": "1Gi"})], pod_requests={"cpu": "2", "memory": "2Gi"},
            pod_limits={"cpu": "2", "memory": "2Gi"})
    result = _inject(p)
    assert result.pod["spec"]["resources"] == p["spec"]["resources"]
    assert _containers(result.pod)["app"]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_pod_level_resources_are_kept_in_the_form_the_user_wrote() -> None:
    # an offline manifest is not canonicalised by an apiserver: 2000m and 2048Mi stay as written
    given = {"requests": {"cpu": "2000m", "memory": "2048Mi"}, "limits": {"cpu": "2.5", "memory": "3072Mi"}}
    p = pod([container("app", {"cpu": "500m", "memory": "1Gi"})], pod_requests=given["requests"],
            pod_limits=given["limits"], overhead={"cpu": "250m", "memory": "64Mi"})
    result = _inject(p)
    assert result.injected and result.record.variant == "pod-level"
    assert result.pod["spec"]["resources"] == given


def test_the_pod_level_cap_on_a_sidecar_is_the_pods_own_limit_not_counting_overhead() -> None:
    # msg-mesh's limit of 200m/128Mi is cut to the pod's own 100m/100Mi; the RuntimeClass
    # overhead (50m/32Mi) is the runtime's, not room for a sidecar
    p = pod([container("app", {"cpu": "100m", "memory": "100Mi"}, {"cpu": "100m", "memory": "100Mi"})],
            overhead={"cpu": "50m", "memory": "32Mi"})
    result = _inject(p)
    assert result.injected and result.record.variant == "pod-level"
    assert result.pod["spec"]["resources"]["limits"] == {"cpu": "100m", "memory": "100Mi"}
    assert _containers(result.pod)["msg-mesh"]["resources"]["limits"] == {"cpu": "100m", "memory": "100Mi"}
    assert pod_requests(result.pod) == pod_requests(p)


def test_sidecar_never_exceeds_a_small_pod_limit_in_the_pod_level_variant() -> None:
    p = pod([container("app", {"cpu": "400m", "memory": "200Mi"}, {"cpu": "400m", "memory": "200Mi"})])
    result = _inject(p)
    assert result.record.variant == "pod-level"
    for c in result.pod["spec"]["initContainers"]:
        lim = c["resources"]["limits"]
        assert Quantity.parse(lim["cpu"]) <= Quantity.parse("400m")
        assert Quantity.parse(lim["memory"]) <= Quantity.parse("200Mi")


def test_a_small_guaranteed_pod_keeps_its_budget_and_its_qos() -> None:
    # 100m/64Mi cannot donate the mesh's 100m/128Mi of requests (rpc-mesh 50m/64Mi at its minimum,
    # msg-mesh 50m/64Mi capped to the pod's limit): the memory requests are cut to 64Mi in all.
    p = pod([container("app", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "100m", "memory": "64Mi"})])
    result = _inject(p)
    assert result.record.variant == "pod-level" and result.record.exposure == "pod"
    assert pod_requests(result.pod) == pod_requests(p) and not result.record.leak
    assert result.record.qos == ("Guaranteed", "Guaranteed")
    assert result.record.reduced == {"memory": Quantity.parse("64Mi")}
    sidecars = [c for c in result.pod["spec"]["initContainers"]]
    assert [c["resources"]["requests"]["memory"] for c in sidecars] == ["32Mi", "32Mi"]
    assert any("cut to what the pod can give" in w for w in result.warnings)


def test_a_small_pod_under_skip_or_leak() -> None:
    p = pod([container("app", {"cpu": "100m", "memory": "64Mi"})])
    skipped = _inject(p, with_resources(small_pods="skip"))
    assert not skipped.injected and skipped.skip_code == "pod_too_small" and skipped.pod is p
    assert "smallPods: skip" in skipped.reason and skipped.warnings
    leaky = _inject(p, with_resources(small_pods="leak"))
    # the shipped sizes: rpc-mesh 50m/64Mi (minimum 100m/64Mi, half the CPU guaranteed), msg-mesh 100m/128Mi
    assert leaky.record.leak == {"cpu": Quantity.parse("50m"), "memory": Quantity.parse("128Mi")}
    assert pod_requests(leaky.pod) == {"cpu": Quantity.parse("150m"), "memory": Quantity.parse("192Mi")}
    assert any("R(pod) grows by cpu 50m, memory 128Mi" in w for w in leaky.warnings)
    assert "smallPods: leak" in leaky.record.leak_reasons["cpu"]


def test_the_users_pod_level_request_is_never_raised() -> None:
    own = pod([container("app", {"cpu": "50m"})], pod_requests={"memory": "100Mi"},
              pod_limits={"cpu": "100m", "memory": "200Mi"})
    result = _inject(own)
    assert result.injected and result.pod["spec"]["resources"]["requests"]["memory"] == "100Mi"
    assert pod_requests(result.pod) == pod_requests(own)
    refused = _inject(own, with_resources(small_pods="leak"))
    assert not refused.injected and refused.skip_code == "pod_level_request" and "never raises" in refused.reason


@pytest.mark.parametrize(("pod_level_resources", "variant"), [(True, "pod-level"), (False, "swap")])
def test_the_auto_variant_follows_whether_the_cluster_has_pod_level_resources(pod_level_resources: bool,
                                                                               variant: str) -> None:
    result = _inject(java_pod(), with_resources(variant="auto", pod_level_resources=pod_level_resources))
    assert result.injected and result.record.variant == variant
    assert ("resources" in result.pod["spec"]) is pod_level_resources


def test_a_guaranteed_pod_under_the_swap_variant_takes_the_pod_level_variant_or_is_skipped() -> None:
    p = pod([container("app", {"cpu": "1500m", "memory": "4Gi"}, {"cpu": "1500m", "memory": "4Gi"})])
    kept = _inject(p, with_resources(variant="swap"))
    assert kept.record.variant == "pod-level" and kept.record.qos == ("Guaranteed", "Guaranteed")
    assert any("swap variant refused" in n for n in kept.notes)
    no_pod_level = with_resources(variant="swap", pod_level_resources=False)
    skipped = _inject(p, no_pod_level)
    assert not skipped.injected and skipped.skip_code == "qos_change"
    assert "Guaranteed to Burstable" in skipped.reason
    allowed = _inject(p, with_resources(no_pod_level, qos_change="allow"))
    assert allowed.record.qos == ("Guaranteed", "Burstable") and any("QoS class changes" in w for w in allowed.warnings)


# -- overcommit, swap ---------------------------------------------------------------
def test_swap_variant_moves_exposure_to_the_node() -> None:
    p = java_pod()
    result = _inject(p, with_resources(variant="swap"))
    assert "resources" not in result.pod["spec"]
    assert pod_requests(result.pod) == pod_requests(p)
    record = result.record
    assert record.variant == "swap" and record.exposure == "node"
    limits = pod_limits(result.pod)
    assert limits["cpu"] == pod_limits(p)["cpu"] + record.overcommit["cpu"]
    assert record.node_exposure() == record.overcommit


# -- BestEffort -------------------------------------------------------------------
def test_best_effort_policies() -> None:
    p = pod([container("app")])
    leaky = _inject(p)
    sidecar_cpu = sum((s.requests["cpu"] for s in leaky.sizes.values()), Quantity(0))
    assert leaky.injected and leaky.record.leak["cpu"] == sidecar_cpu == Quantity.parse("150m")
    assert any("BestEffort" in w and "R(pod) grows" in w for w in leaky.warnings)
    skipped = _inject(p, with_resources(best_effort="skip"))
    assert not skipped.injected and "BestEffort" in skipped.warnings[0]
    bare = _inject(p, with_resources(best_effort="besteffort"))
    assert bare.injected and not bare.record.leak
    assert all(c["resources"] == {} for c in bare.pod["spec"]["initContainers"])


# -- additive and carve -------------------------------------------------------------
def test_additive_leaks_the_sidecars_on_top() -> None:
    p = java_pod()
    result = _inject(p, with_resources(mode="additive"))
    assert result.record.leak == {"cpu": Quantity.parse("1250m"), "memory": Quantity.parse("392Mi")}
    assert _containers(result.pod)["app"]["resources"] == p["spec"]["containers"][0]["resources"]
    rpc = _containers(result.pod)["rpc-mesh"]["resources"]
    assert rpc["requests"] == rpc["limits"]


def test_carve_takes_the_sidecars_out_of_the_app_and_records_drift() -> None:
    p = java_pod()
    result = _inject(p, with_resources(mode="carve"))
    assert pod_requests(result.pod) == pod_requests(p)
    assert not result.record.leak and result.record.exposure == "none"
    assert result.record.drift == {"cpu": Quantity.parse("1250m"), "memory": Quantity.parse("392Mi")}
    # the 1250m / 392Mi go 2000:100 and 4096Mi:128Mi: cpu app 1190m + the last 1m, log shipper 59m;
    # memory app 380Mi + the last 1Mi, log shipper 11Mi; each limit falls by its request's amount
    by_name = _containers(result.pod)
    assert by_name["app"]["resources"] == {"requests": {"cpu": "809m", "memory": "3715Mi"},
                                           "limits": {"cpu": "2809m", "memory": "3715Mi"}}
    assert by_name["log-shipper"]["resources"] == {"requests": {"cpu": "41m", "memory": "117Mi"},
                                                   "limits": {"cpu": "141m", "memory": "117Mi"}}
    written = orjson.loads(result.pod["metadata"]["annotations"]["meshfit.io/accounting"])
    assert written["drift"] == {"cpu": "1250m", "memory": "392Mi"}  # in the donors' own units


# -- the rest of the pod ---------------------------------------------------------
def test_managed_fields_and_unrelated_fields_are_left_alone() -> None:
    p = java_pod()
    p["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    p["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    result = _inject(p)
    assert result.pod["metadata"]["managedFields"] == p["metadata"]["managedFields"]
    assert result.pod["spec"]["tolerations"] == p["spec"]["tolerations"]
    assert not any("managedFields" in op["path"] or "tolerations" in op["path"] for op in result.patch)


def test_patch_escapes_annotation_keys_and_stays_small_on_giant_pods() -> None:
    p = java_pod()
    p["spec"]["containers"][0]["env"] = [{"name": f"V{i}", "value": "x" * 20} for i in range(1500)]
    result = _inject(p)
    paths = [op["path"] for op in result.patch]
    assert "/metadata/annotations" in paths or "/metadata/annotations/meshfit.io~1status" in paths
    assert len(orjson.dumps(result.patch)) < 8000


def test_scheduler_name_is_assigned_by_policy() -> None:
    result = _inject(java_pod(), with_injection(scheduler_name="meshfit-scheduler"))
    assert result.pod["spec"]["schedulerName"] == "meshfit-scheduler"
    custom = java_pod(schedulerName="gang")
    assert _inject(custom, with_injection(scheduler_name="meshfit-scheduler")).pod["spec"]["schedulerName"] == "gang"
