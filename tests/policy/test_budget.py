"""fit_requests branch by branch, with every expected figure worked out by hand in the comment beside it."""

from __future__ import annotations

import pytest
from policies import default_policy, with_resources

from policy.budget import fit_requests
from policy.quantity import Quantity
from policy.sizing import SidecarSize

Q = Quantity.parse
MI = 2**20 * 10**9  # nano-bytes in a MiB
M = 10**6           # nano-cores in a millicore


def sizes(**requests: tuple[str, str]) -> dict[str, SidecarSize]:
    """Sidecars with (cpu, memory) requests; limits twice the request."""
    return {name: SidecarSize(limits={"cpu": Q(c) + Q(c), "memory": Q(m) + Q(m)}, requests={"cpu": Q(c), "memory": Q(m)})
            for name, (c, m) in requests.items()}


FLOORS = {"a": Q("50m"), "b": Q("50m")}
TWO = sizes(a=("100m", "64Mi"), b=("50m", "64Mi"))   # asks 150m / 128Mi in all


def test_a_pod_with_room_keeps_the_requests() -> None:
    fit = fit_requests(TWO, {"cpu": 150 * M, "memory": 128 * MI}, default_policy().resources, frozenset(), FLOORS)
    assert not fit.skip_code and not fit.reduced and not fit.leak and not fit.warnings
    assert fit.sizes["a"].requests == {"cpu": Q("100m"), "memory": Q("64Mi")}


def test_shrink_cuts_each_resource_to_the_budget_in_proportion() -> None:
    # cpu: 1m each first, then the other 58m split 99:49 in 1m steps -> a 1+39=40m, b 1+19=20m (60m in all)
    # memory: 1Mi each, then 30Mi split 63:63 -> 16Mi each (32Mi in all)
    fit = fit_requests(TWO, {"cpu": 60 * M, "memory": 32 * MI}, with_resources(small_pods="shrink").resources,
                       frozenset(), FLOORS)
    assert not fit.skip_code
    assert fit.sizes["a"].requests["cpu"] + fit.sizes["b"].requests["cpu"] == Q("60m")
    assert fit.sizes["a"].requests["cpu"] == Q("40m") and fit.sizes["b"].requests["cpu"] == Q("20m")
    assert fit.sizes["a"].requests["memory"] == fit.sizes["b"].requests["memory"] == Q("16Mi")
    assert fit.sizes["a"].limits == TWO["a"].limits, "limits never move"
    assert fit.reduced == {"cpu": Q("90m"), "memory": Q("96Mi")}
    assert len(fit.warnings) == 2 and "below the CPU request floor: a, b" in fit.warnings[0]
    assert "cut to what the pod can give (a 40m, b 20m)" in fit.warnings[0]


def test_shrink_needs_a_granule_per_sidecar() -> None:
    policy = with_resources(small_pods="shrink").resources
    at = fit_requests(TWO, {"cpu": 2 * M, "memory": 128 * MI}, policy, frozenset(), FLOORS)
    assert not at.skip_code and at.sizes["a"].requests["cpu"] == at.sizes["b"].requests["cpu"] == Q("1m")
    below = fit_requests(TWO, {"cpu": 2 * M - 1, "memory": 128 * MI}, policy, frozenset(), FLOORS)
    assert below.skip_code == "pod_too_small" and "too little to give each of 2 sidecars a cpu request" in below.skip_reason


def test_skip_names_the_pod_and_the_mesh() -> None:
    fit = fit_requests(TWO, {"cpu": 100 * M, "memory": 128 * MI}, with_resources(small_pods="skip").resources,
                       frozenset(), FLOORS)
    assert fit.skip_code == "pod_too_small"
    assert fit.skip_reason == "the pod requests cpu 100m, less than the sidecars' requests 150m (resources.smallPods: skip)"


def test_leak_is_the_shortfall_unless_the_user_set_the_pod_level_request() -> None:
    policy = with_resources(small_pods="leak").resources
    fit = fit_requests(TWO, {"cpu": 100 * M, "memory": 100 * MI}, policy, frozenset(), FLOORS)
    assert fit.leak == {"cpu": Q("50m"), "memory": Q("28Mi")} and not fit.reduced
    assert fit.leak_reasons == {
        "cpu": "the pod requests cpu 100m, less than the sidecars' requests 150m (resources.smallPods: leak)",
        "memory": "the pod requests memory 100Mi, less than the sidecars' requests 128Mi (resources.smallPods: leak)",
    }
    # the leak is printed in the sidecars' own units: 28Mi, not 29360128
    assert fit.leak["memory"].format() == "28Mi" and fit.leak["cpu"].format() == "50m"
    assert fit.sizes["a"].requests == TWO["a"].requests
    refused = fit_requests(TWO, {"cpu": 100 * M, "memory": 128 * MI}, policy, frozenset({"cpu"}), FLOORS)
    assert refused.skip_code == "pod_level_request" and "meshfit never raises it" in refused.skip_reason


@pytest.mark.parametrize("rule", ["requests", "besteffort", "skip"])
def test_a_resource_the_pod_does_not_request_follows_the_best_effort_rule(rule: str) -> None:
    fit = fit_requests(TWO, {"cpu": 0, "memory": 512 * MI}, with_resources(best_effort=rule).resources,
                       frozenset(), FLOORS)
    if rule == "skip":
        assert fit.skip_code == "best_effort_resource"
        assert fit.skip_reason == "the pod requests no cpu and resources.bestEffort is skip"
        return
    assert not fit.skip_code
    assert fit.sizes["a"].requests["memory"] == Q("64Mi"), "memory has room: untouched"
    if rule == "requests":
        assert fit.leak == {"cpu": Q("150m")} and "bestEffort: requests" in fit.leak_reasons["cpu"]
        assert fit.sizes["a"].requests["cpu"] == Q("100m")
    else:
        for name in ("a", "b"):
            assert "cpu" not in fit.sizes[name].requests and "cpu" not in fit.sizes[name].limits
            assert fit.sizes[name].limits["memory"] == TWO[name].limits["memory"]
        assert fit.notes == ("the pod requests no cpu: the sidecars get no cpu request or limit "
                             "(resources.bestEffort: besteffort)",)
        assert not fit.leak


def test_both_resources_unrequested_are_both_handled() -> None:
    fit = fit_requests(TWO, {"cpu": 0, "memory": 0}, with_resources(best_effort="besteffort").resources,
                       frozenset(), FLOORS)
    assert all(not s.requests and not s.limits for s in fit.sizes.values()) and len(fit.notes) == 2


def test_a_user_pod_level_request_of_zero_is_never_raised() -> None:
    fit = fit_requests(TWO, {"cpu": 0, "memory": 512 * MI}, with_resources(best_effort="requests").resources,
                       frozenset({"cpu"}), FLOORS)
    assert fit.skip_code == "pod_level_request"
    assert fit.skip_reason == "the pod sets its own pod-level cpu request of 0, which meshfit never raises"
    assert fit.sizes == {}


def test_a_hot_sidecar_keeps_a_granule_for_each_of_its_two_slots() -> None:
    # a has two slots: its minimum is 2m / 2Mi, b's 1m / 1Mi, so 3m is the least the pair can be cut to
    policy = with_resources(small_pods="shrink").resources
    slots = {"a": 2, "b": 1}
    at = fit_requests(TWO, {"cpu": 3 * M, "memory": 128 * MI}, policy, frozenset(), FLOORS, slots)
    assert not at.skip_code
    assert (at.sizes["a"].requests["cpu"], at.sizes["b"].requests["cpu"]) == (Q("2m"), Q("1m"))
    # 10m: 2m + 1m first, the other 7m split 98:49 in 1m steps: 7*98//147 = 4, 7*49//147 = 2,
    # the last 1m to the largest, a -> a 2+5 = 7m, b 1+2 = 3m
    ten = fit_requests(TWO, {"cpu": 10 * M, "memory": 128 * MI}, policy, frozenset(), FLOORS, slots)
    assert (ten.sizes["a"].requests["cpu"], ten.sizes["b"].requests["cpu"]) == (Q("7m"), Q("3m"))
    below = fit_requests(TWO, {"cpu": 3 * M - 1, "memory": 128 * MI}, policy, frozenset(), FLOORS, slots)
    assert below.skip_code == "pod_too_small"
    assert below.skip_reason == ("the pod requests cpu 2999999n: too little to give each of the 3 sidecar slots a cpu "
                                 "request of 1m (a: two hot-upgrade slots, whose requests split one sidecar's)")
    memory = fit_requests(TWO, {"cpu": 150 * M, "memory": 3 * MI - 1}, policy, frozenset(), FLOORS, slots)
    assert memory.skip_code == "pod_too_small" and "3 sidecar slots a memory request of 1Mi" in memory.skip_reason
    # without slots given, every sidecar is one container, as before
    assert not fit_requests(TWO, {"cpu": 2 * M, "memory": 128 * MI}, policy, frozenset(), FLOORS).skip_code


def test_an_unrequested_resource_does_not_stop_the_next_one_being_fitted() -> None:
    # cpu 0 under bestEffort: requests leaks the sidecars' 150m; memory 64Mi < 128Mi is still
    # shrunk: 1Mi each, then 62Mi split 63:63 -> 31Mi each -> 32Mi each, 64Mi cut
    fit = fit_requests(TWO, {"cpu": 0, "memory": 64 * MI}, with_resources(best_effort="requests").resources,
                       frozenset(), FLOORS)
    assert not fit.skip_code
    assert fit.leak == {"cpu": Q("150m")} and fit.reduced == {"memory": Q("64Mi")}
    assert fit.sizes["a"].requests["memory"] == fit.sizes["b"].requests["memory"] == Q("32Mi")


def test_besteffort_drops_a_request_whose_sidecar_sets_no_limit_of_it() -> None:
    # a asks 100m with no cpu limit: there is no limit to drop, and nothing fails
    unbounded = {"a": SidecarSize(limits={"memory": Q("64Mi")}, requests={"cpu": Q("100m"), "memory": Q("64Mi")})}
    fit = fit_requests(unbounded, {"cpu": 0, "memory": 512 * MI}, with_resources(best_effort="besteffort").resources,
                       frozenset(), FLOORS)
    assert not fit.skip_code
    assert fit.sizes["a"].requests == {"memory": Q("64Mi")} and fit.sizes["a"].limits == {"memory": Q("64Mi")}


def test_a_hot_sidecar_asking_less_than_its_two_slots_minimum_gets_the_minimum_and_no_more() -> None:
    # a (two slots) asks 1m, under its 2m minimum: it has nothing to cut, so all of the 47m left
    # after the minimums (2m + 1m) goes to b: a 2m, b 1m + 47m = 48m, 50m in all
    fit = fit_requests(sizes(a=("1m", "64Mi"), b=("100m", "64Mi")), {"cpu": 50 * M, "memory": 128 * MI},
                       with_resources(small_pods="shrink").resources, frozenset(), {}, {"a": 2})
    assert (fit.sizes["a"].requests["cpu"], fit.sizes["b"].requests["cpu"]) == (Q("2m"), Q("48m"))


def test_shrinking_never_raises_the_request_of_a_sidecar_that_asks_for_none() -> None:
    # a asks 0 cpu (one slot, whether or not slots names it): it stays at 0 and b takes the whole 50m
    policy = with_resources(small_pods="shrink").resources
    zero = sizes(a=("0", "64Mi"), b=("100m", "64Mi"))
    for slots in ({}, {"a": 1, "b": 1}):
        fit = fit_requests(zero, {"cpu": 50 * M, "memory": 128 * MI}, policy, frozenset(), {}, slots)
        assert (fit.sizes["a"].requests["cpu"], fit.sizes["b"].requests["cpu"]) == (Q("0"), Q("50m"))


def test_every_hot_sidecar_is_named_when_the_pod_cannot_give_each_slot_a_granule() -> None:
    fit = fit_requests(TWO, {"cpu": 4 * M - 1, "memory": 128 * MI}, with_resources(small_pods="shrink").resources,
                       frozenset(), FLOORS, {"a": 2, "b": 2})
    assert fit.skip_reason == ("the pod requests cpu 3999999n: too little to give each of the 4 sidecar slots a cpu "
                               "request of 1m (a, b: two hot-upgrade slots, whose requests split one sidecar's)")


@pytest.mark.parametrize(("floors", "below"), [
    ({"a": Q("40m"), "b": Q("20m")}, ""),                       # cut exactly to the floors: not below
    ({"a": Q("40m") + Quantity(1), "b": Q("20m")}, "a"),        # one nano-core above the cut
    ({"a": Q("40m") + Quantity(1), "b": Q("20m") + Quantity(1)}, "a, b"),
    ({}, ""),                                                   # no floor given, none to be below
])
def test_the_floor_warning_names_the_sidecars_cut_below_their_cpu_floor(floors: dict, below: str) -> None:
    # TWO cut to 60m / 32Mi: a 40m, b 20m (see the shrink test); memory has no floor
    fit = fit_requests(TWO, {"cpu": 60 * M, "memory": 32 * MI}, with_resources(small_pods="shrink").resources,
                       frozenset(), floors)
    cpu, memory = fit.warnings
    assert cpu.endswith(f"; below the CPU request floor: {below}") if below else "floor" not in cpu
    assert "floor" not in memory


def test_a_hot_sidecar_under_its_minimum_does_not_blur_the_others_shares() -> None:
    # minimums a 2m (two slots), b 1m, c 1m; a has nothing above its minimum to cut, so the 33m
    # left goes 66:33 to b and c exactly: 22m and 11m -> a 2m, b 23m, c 12m, 37m in all
    three = sizes(a=("1m", "64Mi"), b=("67m", "64Mi"), c=("34m", "64Mi"))
    fit = fit_requests(three, {"cpu": 37 * M, "memory": 192 * MI}, with_resources(small_pods="shrink").resources,
                       frozenset(), {}, {"a": 2})
    assert [fit.sizes[n].requests["cpu"] for n in "abc"] == [Q("2m"), Q("23m"), Q("12m")]
