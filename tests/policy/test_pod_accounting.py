"""Per-pod accounting: requests, node-level exposure and leak, for meshfit pods and others' meshes."""

from __future__ import annotations

import orjson
import pytest
from podshapes import container, java_pod, pod
from policies import default_policy, with_resources

from policy.annotations import ACCOUNTING
from policy.decision import Namespace
from policy.inject import inject
from policy.foreign_mesh import ISTIO_STATUS, LINKERD_VERSION, foreign_leak, foreign_mesh
from policy.namespace_leak import leak_by_namespace
from policy.pod_accounting import account_pod, pod_uid
from policy.quantity import Quantity
from policy.resources import pod_requests


def Q(text: str) -> Quantity:
    return Quantity.parse(text)


def injected(p: dict, **resource_changes) -> dict:
    policy = with_resources(**resource_changes) if resource_changes else default_policy()
    result = inject(p, Namespace(p["metadata"].get("namespace", "shop"), None), policy)
    assert result.injected, result.reason
    return result.pod


def test_plain_pod_is_its_requests_and_nothing_else() -> None:
    acc = account_pod(java_pod())
    assert acc.requests == {"cpu": Q("2100m"), "memory": Q("4224Mi")}
    assert acc.exposure == {"cpu": Q("0"), "memory": Q("0")}
    assert acc.leak == {"cpu": Q("0"), "memory": Q("0")}
    assert acc.mesh is None and acc.record_error is None
    assert not acc.has_exposure and not acc.has_leak


def test_swap_variant_exposes_the_sidecars_sizes_on_the_node() -> None:
    original = java_pod(namespace="shop")
    p = injected(original, variant="swap")
    acc = account_pod(p)
    assert acc.mesh == "meshfit"
    # The invariant R(new) == A: the node is charged exactly what it was before.
    assert acc.requests == pod_requests(original)
    record = orjson.loads(p["metadata"]["annotations"][ACCOUNTING])
    assert record["exposure"] == "node"
    assert acc.exposure == {k: Q(v) for k, v in record["overcommit"].items()}
    assert acc.has_exposure and not acc.has_leak


def test_pod_level_variant_keeps_exposure_inside_the_pod() -> None:
    acc = account_pod(injected(java_pod(namespace="shop"), variant="pod-level"))
    assert acc.mesh == "meshfit"
    assert not acc.has_exposure and not acc.has_leak


def test_additive_mode_leaks_the_sidecars_sizes() -> None:
    original = java_pod(namespace="shop")
    acc = account_pod(injected(original, mode="additive"))
    added = {k: acc.requests[k] - pod_requests(original)[k] for k in ("cpu", "memory")}
    assert acc.leak == added
    assert acc.has_leak and not acc.has_exposure


def test_best_effort_pod_given_a_sidecar_request_records_the_leak() -> None:
    acc = account_pod(injected(pod([container("app")], namespace="shop"), best_effort="requests"))
    assert acc.has_leak
    assert acc.leak == acc.requests  # everything it requests is the sidecars'


def test_istio_sidecar_in_containers_leaks_its_requests() -> None:
    p = pod(
        [container("app", {"cpu": "1", "memory": "1Gi"}),
         container("istio-proxy", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "2", "memory": "1Gi"})],
        [container("istio-init", {"cpu": "10m", "memory": "40Mi"})],
        annotations={ISTIO_STATUS: '{"initContainers":["istio-init"],"containers":["istio-proxy"]}'},
    )
    acc = account_pod(p)
    assert acc.mesh == "istio"
    assert acc.leak == {"cpu": Q("100m"), "memory": Q("128Mi")}
    assert not acc.has_exposure


def test_istio_init_counts_only_when_it_is_the_heaviest_init_phase() -> None:
    heavy_init = container("istio-init", {"cpu": "3", "memory": "64Mi"})
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"}), container("istio-proxy", {"cpu": "100m"})],
            [heavy_init])
    acc = account_pod(p)
    # Without the mesh the pod needs 1 cpu; with it, max(1.1, 3) = 3.
    assert acc.leak == {"cpu": Q("2"), "memory": Q("0")}


def test_istio_native_sidecar_is_found_in_init_containers() -> None:
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"})],
            [container("istio-proxy", {"cpu": "200m", "memory": "256Mi"}, restart="Always")])
    acc = account_pod(p)
    assert acc.mesh == "istio"
    assert acc.leak == {"cpu": Q("200m"), "memory": Q("256Mi")}


def test_istio_status_names_a_renamed_sidecar() -> None:
    p = pod([container("app", {"cpu": "1"}), container("mesh-agent", {"cpu": "300m"})],
            annotations={ISTIO_STATUS: '{"containers":["mesh-agent"],"initContainers":[]}'})
    assert foreign_mesh(p) == ("istio", frozenset({"mesh-agent"}))
    assert account_pod(p).leak["cpu"] == Q("300m")


def test_istio_status_names_a_renamed_native_sidecar_in_init_containers() -> None:
    p = pod([container("app", {"cpu": "1"})],
            [container("mesh-agent", {"cpu": "300m"}, restart="Always")],
            annotations={ISTIO_STATUS: '{"containers":[],"initContainers":["mesh-agent"]}'})
    assert foreign_mesh(p) == ("istio", frozenset({"mesh-agent"}))
    assert account_pod(p).leak["cpu"] == Q("300m")


def test_foreign_leak_computes_the_pods_requests_or_takes_the_callers() -> None:
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"}),
             container("istio-proxy", {"cpu": "100m", "memory": "128Mi"})])
    names = frozenset({"istio-proxy"})
    assert foreign_leak(p, names) == {"cpu": Q("100m"), "memory": Q("128Mi")}
    # the caller's R(pod), computed once per pod, is taken as given
    given = {"cpu": Q("2"), "memory": Q("2Gi")}
    assert foreign_leak(p, names, given) == {"cpu": Q("1"), "memory": Q("1Gi")}


def test_linkerd_proxy_with_limits_only_leaks_its_defaulted_request() -> None:
    p = pod([container("app", {"cpu": "500m", "memory": "512Mi"}),
             container("linkerd-proxy", lim={"cpu": "1", "memory": "250Mi"})],
            [container("linkerd-init", {"cpu": "10m", "memory": "20Mi"})],
            annotations={LINKERD_VERSION: "stable-2.14.10"})
    acc = account_pod(p)
    assert acc.mesh == "linkerd"
    assert acc.leak == {"cpu": Q("1"), "memory": Q("250Mi")}


def test_pod_level_requests_leave_no_room_for_a_leak() -> None:
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"}), container("istio-proxy", {"cpu": "100m", "memory": "128Mi"})],
            pod_requests={"cpu": "2", "memory": "2Gi"})
    acc = account_pod(p)
    assert acc.mesh == "istio"
    assert not acc.has_leak
    assert acc.requests == {"cpu": Q("2"), "memory": Q("2Gi")}


def test_annotation_without_its_proxy_container_leaks_nothing() -> None:
    p = pod([container("app", {"cpu": "1"})], annotations={LINKERD_VERSION: "stable-2.14.10"})
    acc = account_pod(p)
    assert acc.mesh == "linkerd" and not acc.has_leak


@pytest.mark.parametrize("text", ["not json", '{"v": 1}', '{"v":1,"mode":"overcommit","original":{"cpu":"x"},"requests":{}}', "[]"])
def test_a_bad_record_is_ignored_and_reported(text: str) -> None:
    p = java_pod(annotations={ACCOUNTING: text})
    acc = account_pod(p)
    assert acc.record_error
    assert acc.mesh is None
    assert acc.requests == pod_requests(p)
    assert not acc.has_exposure and not acc.has_leak


def test_binding_phase_and_identity() -> None:
    p = java_pod(namespace="shop")
    p["metadata"]["uid"] = "u-1"
    p["spec"]["nodeName"] = "node-a"
    p["status"] = {"phase": "Running"}
    acc = account_pod(p)
    assert (acc.uid, acc.namespace, acc.name, acc.node, acc.phase) == ("u-1", "shop", "java", "node-a", "Running")
    assert acc.holds_node and not acc.terminal
    p["status"]["phase"] = "Succeeded"
    assert account_pod(p).terminal and not account_pod(p).holds_node
    assert not account_pod(java_pod()).holds_node  # pending: no node


def test_uid_falls_back_to_namespace_and_name() -> None:
    assert pod_uid(java_pod(namespace="shop")) == "shop/java"
    assert pod_uid(java_pod()) == "default/java"
    assert account_pod(java_pod()).namespace == "default"


@pytest.mark.parametrize(("meta", "uid", "namespace", "name"), [
    # a workload's pod before the apiserver names it: generateName is all it has
    ({"generateName": "web-", "namespace": "shop"}, "shop/web-", "shop", "web-"),
    ({"name": "web-1", "generateName": "web-"}, "default/web-1", "default", "web-1"),
    ({}, "default/", "default", ""),
    # only a non-empty string is a uid
    ({"name": "p", "uid": ""}, "default/p", "default", "p"),
    ({"name": "p", "uid": 42}, "default/p", "default", "p"),
])
def test_identity_of_a_manifest_without_a_uid(meta: dict, uid: str, namespace: str, name: str) -> None:
    p = {"metadata": meta, "spec": {"containers": [container("app", {"cpu": "1"})]}}
    assert pod_uid(p) == uid
    acc = account_pod(p)
    assert (acc.uid, acc.namespace, acc.name) == (uid, namespace, name)


def test_a_pod_without_a_status_is_pending() -> None:
    acc = account_pod(pod([container("app", {"cpu": "1"})]))
    assert acc.phase == "Pending"
    assert not acc.terminal and not acc.holds_node


def test_a_record_that_is_not_a_string_is_reported() -> None:
    p = java_pod(annotations={ACCOUNTING: {"v": 1}})
    acc = account_pod(p)
    assert acc.record_error == "accounting record is not a string"
    assert acc.mesh is None and not acc.has_exposure and not acc.has_leak


def test_leak_by_namespace_sums_and_totals() -> None:
    def in_ns(p: dict, ns: str, phase: str = "Running") -> dict:
        p["metadata"]["namespace"] = ns
        p["status"] = {"phase": phase}
        return p

    istio = pod([container("app", {"cpu": "1", "memory": "1Gi"}), container("istio-proxy", {"cpu": "100m", "memory": "128Mi"})])
    pods = [
        in_ns(injected(java_pod(name="a", namespace="shop"), mode="additive"), "shop"),
        in_ns(injected(java_pod(name="b", namespace="shop"), variant="swap"), "shop"),
        in_ns(istio, "mesh"),
        in_ns(pod([container("app", {"cpu": "1"}), container("istio-proxy", {"cpu": "5"})]), "mesh", "Succeeded"),
        in_ns(java_pod(name="c"), "plain"),
    ]
    rows, total = leak_by_namespace(pods)
    by = {r.namespace: r for r in rows}
    assert [r.namespace for r in rows] == ["mesh", "plain", "shop"]
    assert by["mesh"].pods == 1  # the finished pod is not charged
    assert by["mesh"].leaking == {"istio": 1}
    assert by["mesh"].leak == {"cpu": Q("100m"), "memory": Q("128Mi")}
    assert by["plain"].leaking == {} and not any(v.nanos for v in by["plain"].leak.values())
    assert by["shop"].leaking == {"meshfit": 1}
    assert total.pods == 4
    assert total.leaking == {"istio": 1, "meshfit": 1}
    assert total.leak["cpu"] == by["mesh"].leak["cpu"] + by["shop"].leak["cpu"]
    assert total.requests["memory"] == sum((r.requests["memory"] for r in rows), Q("0"))


# -- the int fast path agrees with the reference --------------------------------------
from example_budget import examples  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from policy.pod_entry import reduce_pod  # noqa: E402
from policy.resources import requests_nanos  # noqa: E402

_cpu = st.sampled_from(["0", "1m", "100m", "250m", "1", "1500m", "2", 3, "0.5"])
_mem = st.sampled_from(["0", "1", "64Mi", "128Mi", "1Gi", "1.5Gi", "100M", "2e9"])


@st.composite
def _resources(draw):  # type: ignore[no-untyped-def]
    out = {}
    for part in ("requests", "limits"):
        values = {}
        if draw(st.booleans()):
            values["cpu"] = draw(_cpu)
        if draw(st.booleans()):
            values["memory"] = draw(_mem)
        if values or draw(st.booleans()):
            out[part] = values
    return out


@st.composite
def _container(draw, names=st.sampled_from(["app", "worker", "istio-proxy", "linkerd-proxy", "istio-init", "log"])):  # type: ignore[no-untyped-def]
    c = {"name": draw(names), "image": "x"}
    if draw(st.booleans()):
        c["resources"] = draw(_resources())
    return c


_RECORDS = [
    None,
    "not json",
    '{"v":1,"mode":"overcommit","variant":"swap","original":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"1","memory":"1Gi"},'
    '"limits":{"cpu":"2700m","memory":"2304Mi"},"overcommit":{"cpu":"700m","memory":"256Mi"},"exposure":"node"}',
    '{"v":1,"mode":"additive","variant":"","original":{"cpu":"1","memory":"1Gi"},"requests":{"cpu":"1700m","memory":"1280Mi"},'
    '"limits":{},"overcommit":{},"exposure":"none","leak":{"cpu":"700m","memory":"256Mi"}}',
    '{"v":1,"mode":"overcommit","variant":"pod-level","original":{"cpu":"1"},"requests":{"cpu":"1"},"overcommit":{"cpu":"1"},"exposure":"pod"}',
]


@st.composite
def _pods(draw):  # type: ignore[no-untyped-def]
    spec = {"containers": draw(st.lists(_container(), min_size=1, max_size=3))}
    init = draw(st.lists(st.tuples(_container(), st.booleans()), max_size=4))
    if init:
        spec["initContainers"] = [{**c, "restartPolicy": "Always"} if native else c for c, native in init]
    if draw(st.booleans()):
        spec["resources"] = draw(_resources())
    if draw(st.booleans()):
        spec["overhead"] = {k: v for k, v in (("cpu", draw(_cpu)), ("memory", draw(_mem))) if draw(st.booleans())}
    if draw(st.booleans()):
        spec["nodeName"] = "node-a"
    annotations = {}
    record = draw(st.sampled_from(_RECORDS))
    if record is not None:
        annotations[ACCOUNTING] = record
    if draw(st.integers(0, 5)) == 0:
        annotations[draw(st.sampled_from([ISTIO_STATUS, LINKERD_VERSION]))] = '{"containers":["worker"]}'
    meta = {"name": "p", "namespace": draw(st.sampled_from(["a", "b"]))}
    if annotations:
        meta["annotations"] = annotations
    if draw(st.booleans()):
        meta["uid"] = "u-1"
    return {"metadata": meta, "spec": spec,
            "status": {"phase": draw(st.sampled_from(["Pending", "Running", "Succeeded", "Failed"]))}}


@settings(max_examples=examples(2000))
@given(_pods())
def test_int_figures_equal_the_reference(pod: dict) -> None:
    acc = account_pod(pod)
    f = reduce_pod(pod)
    assert requests_nanos(pod["spec"]) == (acc.requests["cpu"].nanos, acc.requests["memory"].nanos)
    assert (f.uid, f.namespace, f.node, f.terminal, f.mesh, f.record_error) == (
        acc.uid, acc.namespace, acc.node, acc.terminal, acc.mesh, acc.record_error)
    assert (f.cpu, f.memory) == (acc.requests["cpu"].nanos, acc.requests["memory"].nanos)
    assert (f.exp_cpu, f.exp_memory) == (acc.exposure["cpu"].nanos, acc.exposure["memory"].nanos)
    assert (f.leak_cpu, f.leak_memory) == (acc.leak["cpu"].nanos, acc.leak["memory"].nanos)


def test_int_figures_of_injected_pods() -> None:
    for variant in ("swap", "pod-level"):
        p = injected(java_pod(namespace="shop"), variant=variant)
        acc, f = account_pod(p), reduce_pod(p)
        assert (f.cpu, f.exp_cpu, f.exp_memory, f.mesh) == (
            acc.requests["cpu"].nanos, acc.exposure["cpu"].nanos, acc.exposure["memory"].nanos, "meshfit")


def test_the_first_look_for_another_mesh_is_its_records_or_its_proxies_names() -> None:
    from policy.foreign_mesh import maybe_foreign

    plain = pod([container("app", {"cpu": "1"})])
    assert maybe_foreign(plain, {}) is False
    assert maybe_foreign(plain, {ISTIO_STATUS: "{}"}) is True
    assert maybe_foreign(plain, {LINKERD_VERSION: "stable-2.14.10"}) is True
    assert maybe_foreign(pod([container("app"), container("istio-proxy")]), {}) is True
    assert maybe_foreign(pod([container("app")], [container("linkerd-proxy", restart="Always")]), {}) is True
