"""R(pod) and L(pod) against the edge cases of Kubernetes' own PodRequests/PodLimits."""

from __future__ import annotations

import pytest
from podshapes import container, pod

from policy.quantity import Quantity
from policy.resources import explain_requests, family, format_resources, is_best_effort, pod_limits, pod_requests, requests_nanos


GIGA = 10**9  # nano-units in one core, or in one byte
Mi = 2**20


def R(p: dict) -> dict[str, str]:
    return {k: v.format() for k, v in pod_requests(p).items()}


def L(p: dict) -> dict[str, str | None]:
    return {k: (v.format() if v is not None else None) for k, v in pod_limits(p).items()}


def test_sum_of_containers() -> None:
    p = pod([container("a", {"cpu": "1", "memory": "1Gi"}), container("b", {"cpu": "500m", "memory": "512Mi"})])
    assert R(p) == {"cpu": "1500m", "memory": "1536Mi"}


def test_request_defaults_to_limit() -> None:
    p = pod([container("a", lim={"cpu": "2", "memory": "1Gi"}), container("b", {"cpu": "100m"}, {"memory": "1Gi"})])
    assert R(p) == {"cpu": "2100m", "memory": "2Gi"}


def test_regular_init_container_larger_than_app_dominates() -> None:
    p = pod([container("a", {"cpu": "1", "memory": "1Gi"})], [container("init", {"cpu": "3", "memory": "512Mi"})])
    assert R(p) == {"cpu": "3", "memory": "1Gi"}


def test_native_sidecar_adds_to_main_and_to_later_init_containers() -> None:
    # upstream: "restartable init container should be counted in the main phase and for init after it"
    p = pod([container("a", {"cpu": "1"})],
            [container("side", {"cpu": "500m"}, restart="Always"), container("init", {"cpu": "2"})])
    assert R(p)["cpu"] == "2500m"  # init 2 + sidecar before it 0.5 > main 1.5


def test_native_sidecar_declared_after_an_init_container_does_not_count_for_it() -> None:
    p = pod([container("a", {"cpu": "1"})],
            [container("init", {"cpu": "2"}), container("side", {"cpu": "500m"}, restart="Always")])
    assert R(p)["cpu"] == "2"


def test_many_sidecars_and_inits_interleaved() -> None:
    p = pod([container("a", {"cpu": "1"})], [
        container("s1", {"cpu": "1"}, restart="Always"),
        container("i1", {"cpu": "1"}),
        container("s2", {"cpu": "1"}, restart="Always"),
        container("i2", {"cpu": "2"}),
    ])
    # main: 1 + 1 + 1 = 3; i1: 1 + 1 = 2; i2: 2 + 2 = 4
    assert R(p)["cpu"] == "4"


def test_overhead_is_added() -> None:
    p = pod([container("a", {"cpu": "1", "memory": "1Gi"})], overhead={"cpu": "250m", "memory": "120Mi"})
    assert R(p) == {"cpu": "1250m", "memory": "1144Mi"}
    assert L(p) == {"cpu": None, "memory": None}


def test_pod_level_requests_replace_the_aggregate_per_resource() -> None:
    p = pod([container("a", {"cpu": "1", "memory": "1Gi"})], pod_requests={"cpu": "2"}, overhead={"cpu": "100m"})
    assert R(p) == {"cpu": "2100m", "memory": "1Gi"}


def test_pod_level_limit_alone_defaults_the_pod_level_request() -> None:
    # defaultPodRequests (1.36): the containers' aggregate where some container requests the
    # resource, the pod-level limit where none does
    p = pod([container("a", {"cpu": "100m"})], pod_limits={"cpu": "1", "memory": "2Gi"})
    assert R(p) == {"cpu": "100m", "memory": "2Gi"}
    assert L(p) == {"cpu": "1", "memory": "2Gi"}


@pytest.mark.parametrize(("containers", "init", "memory"), [
    # only an init container asks for memory: the aggregate max(0 main, 256Mi init) = 256Mi
    ([container("a", {"cpu": "100m"})], [container("i", {"memory": "256Mi"})], "256Mi"),
    # a memory limit alone is a request after container defaulting: 512Mi
    ([container("a", {"cpu": "100m"}, {"memory": "512Mi"})], None, "512Mi"),
    # nothing asks for memory: the pod-level limit, 2Gi
    ([container("a", {"cpu": "100m"})], [container("i", {"cpu": "50m"})], "2Gi"),
])
def test_a_request_an_init_container_or_a_limit_declares_defaults_to_the_aggregate(
        containers: list, init: list | None, memory: str) -> None:
    p = pod(containers, init, pod_limits={"cpu": "1", "memory": "2Gi"})
    assert R(p) == {"cpu": "100m", "memory": memory}


def test_a_tie_between_the_main_phase_and_an_init_phase_keeps_the_main_phases_units() -> None:
    # as maxResourceList in component-helpers: the init phase replaces the sum only when greater
    p = pod([container("a", lim={"cpu": "1", "memory": "1Gi"})],
            [container("i", lim={"cpu": "1000m", "memory": "1073741824"})])
    assert L(p) == {"cpu": "1", "memory": "1Gi"}
    q = pod([container("a", lim={"cpu": "1", "memory": "1Gi"})],
            [container("i", lim={"cpu": "1001m", "memory": "1073741825"})])
    assert L(q) == {"cpu": "1001m", "memory": "1073741825"}


def test_limits_are_unbounded_when_any_container_lacks_one() -> None:
    p = pod([container("a", lim={"cpu": "1", "memory": "1Gi"}), container("b", {"cpu": "1"})])
    assert L(p) == {"cpu": None, "memory": None}


def test_limits_follow_the_same_shape_with_sidecars_and_overhead() -> None:
    p = pod([container("a", lim={"cpu": "1", "memory": "1Gi"})],
            [container("s", lim={"cpu": "500m", "memory": "256Mi"}, restart="Always"),
             container("i", lim={"cpu": "3", "memory": "1Gi"})],
            overhead={"cpu": "100m", "memory": "10Mi"})
    assert L(p) == {"cpu": "3600m", "memory": "1290Mi"}


@pytest.mark.parametrize(("p", "requests", "nanos"), [
    # two native sidecars, then a regular init container: the init phase is 2 + 0.5 + 0.25 and
    # 2Gi + 256Mi + 128Mi, more than the main phase (1 + 0.75, 1Gi + 384Mi)
    (pod([container("a", {"cpu": "1", "memory": "1Gi"})],
         [container("s1", {"cpu": "500m", "memory": "256Mi"}, restart="Always"),
          container("s2", {"cpu": "250m", "memory": "128Mi"}, restart="Always"),
          container("i", {"cpu": "2", "memory": "2Gi"})]),
     {"cpu": "2750m", "memory": "2432Mi"}, (2750 * GIGA // 1000, 2432 * Mi * GIGA)),
    # the same sidecars, a light init container: the main phase wins
    (pod([container("a", {"cpu": "1", "memory": "1Gi"})],
         [container("s1", {"cpu": "500m", "memory": "256Mi"}, restart="Always"),
          container("s2", {"cpu": "250m", "memory": "128Mi"}, restart="Always"),
          container("i", {"cpu": "100m", "memory": "64Mi"})]),
     {"cpu": "1750m", "memory": "1408Mi"}, (1750 * GIGA // 1000, 1408 * Mi * GIGA)),
    # pod-level requests without pod-level limits replace the containers' aggregate
    (pod([container("a", {"cpu": "1", "memory": "1Gi"})], pod_requests={"cpu": "3", "memory": "2Gi"}),
     {"cpu": "3", "memory": "2Gi"}, (3 * GIGA, 2048 * Mi * GIGA)),
    (pod([container("a", {"cpu": "1", "memory": "1Gi"})], pod_requests={"memory": "512Mi"}, overhead={"cpu": "100m"}),
     {"cpu": "1100m", "memory": "512Mi"}, (1100 * GIGA // 1000, 512 * Mi * GIGA)),
])
def test_the_int_form_gives_the_same_requests(p: dict, requests: dict[str, str], nanos: tuple[int, int]) -> None:
    assert R(p) == requests
    assert requests_nanos(p["spec"]) == nanos


def test_format_resources_leaves_unbounded_entries_out() -> None:
    assert format_resources({"cpu": Quantity.parse("1500m"), "memory": None}) == {"cpu": "1500m"}
    p = pod([container("a", {"cpu": "1"}, {"memory": "1Gi"})])
    assert format_resources(pod_limits(p)) == {"memory": "1Gi"}
    assert format_resources(pod_requests(p)) == {"cpu": "1", "memory": "1Gi"}


def test_best_effort() -> None:
    assert is_best_effort(pod([container("a")]))
    assert is_best_effort(pod([container("a", {"cpu": "0"})]))
    assert not is_best_effort(pod([container("a", {"cpu": "1m"})]))
    assert not is_best_effort(pod([container("a")], pod_limits={"memory": "1Gi"}))
    assert pod_requests(pod([container("a")]))["cpu"] == Quantity(0)


def test_every_workload_kind_has_its_template_found() -> None:
    from policy.workloads import TEMPLATE_PATHS, pod_template

    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}
    for kind, path in TEMPLATE_PATHS.items():
        body: dict = {"kind": kind}
        node = body
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = template
        assert pod_template(body) is template, kind
    assert pod_template({"kind": "ConfigMap", "spec": {"template": template}}) is None
    assert pod_template({"kind": "Deployment", "spec": "broken"}) is None


def _units(values: dict) -> dict[str, str]:
    return {k: v.format() for k, v in values.items()}


def test_each_phase_prints_in_the_units_of_its_first_non_zero_part() -> None:
    # sidecars 256Mi (binary) then 67108864 (decimal): 320Mi in all, printed in the first one's units;
    # the regular init container asks no memory, so its phase is the sidecars' 320Mi, in their units
    p = pod([container("a", {"cpu": "100m"})],
            [container("s1", {"memory": "256Mi"}, restart="Always"),
             container("s2", {"memory": "67108864"}, restart="Always"),
             container("i", {"cpu": "50m"})])
    agg = explain_requests(p)
    assert _units(agg.sum_main) == {"cpu": "100m", "memory": "320Mi"}
    assert _units(agg.max_init) == {"cpu": "50m", "memory": "320Mi"}


def test_a_tie_keeps_the_units_of_the_phase_met_first() -> None:
    # two regular init phases of 1Gi: the first one's units; the main phase ties the init phase: its units
    p = pod([container("a", {"memory": "1Gi"})],
            [container("i1", {"memory": "1Gi"}), container("i2", {"memory": "1073741824"})])
    agg = explain_requests(p)
    assert agg.max_init["memory"].format() == "1Gi"
    q = pod([container("a", {"memory": "1Gi"})], [container("i", {"memory": "1073741824"})])
    assert explain_requests(q).aggregate["memory"].format() == "1Gi" and R(q)["memory"] == "1Gi"


@pytest.mark.parametrize("pod_level", [{"pod_requests": {"cpu": "1"}}, {"pod_limits": {"memory": "1Gi"}}])
def test_pod_level_requests_or_limits_alone_make_a_pod_not_best_effort(pod_level: dict) -> None:
    assert not is_best_effort(pod([container("a")], **pod_level))
    assert is_best_effort(pod([container("a")]))


def test_cpu_is_printed_in_decimal_units_even_at_a_multiple_of_1024_cores() -> None:
    # 1024 cores would print as 1Ki in binary units; memory of the same count is 1Ki
    assert Quantity.parse("1024").with_format(family("cpu")).format() == "1024"
    assert Quantity.parse("1024").with_format(family("memory")).format() == "1Ki"
