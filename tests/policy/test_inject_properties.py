"""Property tests: random pods under random policies keep the invariants of DESIGN.md.

Every expected value comes from ``tests/reference.py`` (an accounting written
apart from ``policy/``), never from the engine's own figures:

- overcommit: ``R(new) == A`` exactly, except where the policy chose a leak
  (``smallPods: leak``, or ``bestEffort: requests`` for a resource the pod does
  not request), and then the leak is exactly the shortfall
  ``Σ sidecar requests − the pod's own budget``; the record says the same;
- the QoS class never changes unless the policy allowed it;
- app containers' limits never change; a user's pod-level values are never raised;
- every sidecar has a CPU request and a CPU limit (unless the policy gave it no CPU),
  at or above the floor unless the pod was too small and the cut was recorded;
- requests <= limits; pod-level fields pass Kubernetes' validation;
- the patch reproduces the result, the input is untouched, injecting again changes nothing;
- a skip leaves the pod as it was and says why.
"""

from __future__ import annotations

import copy
import dataclasses
from fractions import Fraction

import jsonpatch
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from policies import default_policy, with_resources

from policy.decision import Namespace
from policy.inject import inject
from policy.model import Policy, SidecarSpec, Sizing
from policy.quantity import Quantity

NS = Namespace("shop", None)

CPU = st.sampled_from(["1m", "5m", "10m", "50m", "100m", "0.15", "250m", "500m", "1", "1500m", "2", "4", "16"])
MEM = st.sampled_from(["1Mi", "8Mi", "16Mi", "64Mi", "100M", "128974848", "500M", "1Gi", "1536Mi", "4Gi", "32Gi"])
SKIP_CODES = {"pod_too_small", "qos_change", "best_effort", "best_effort_resource", "pod_level_request",
              "exclusive_cpu", "invariant"}


@st.composite
def resources(draw: st.DrawFn, guaranteed: bool = False) -> dict:
    out: dict = {}
    for name, values in (("cpu", CPU), ("memory", MEM)):
        shape = "both-equal" if guaranteed else draw(st.sampled_from(["none", "request", "limit", "both", "both-equal"]))
        if shape == "none":
            continue
        value = draw(values)
        if shape in ("request", "both", "both-equal"):
            out.setdefault("requests", {})[name] = value
        if shape in ("limit", "both", "both-equal"):
            limit = value if shape != "both" else draw(values)
            if Quantity.parse(limit) < Quantity.parse(value):
                limit = value
            out.setdefault("limits", {})[name] = limit
    return out


@st.composite
def pods(draw: st.DrawFn) -> dict:
    guaranteed = draw(st.booleans()) and draw(st.booleans())
    containers = [{"name": f"app{i}", "image": "x", "resources": draw(resources(guaranteed))}
                  for i in range(draw(st.integers(1, 3)))]
    inits = []
    for i in range(draw(st.integers(0, 2))):
        c = {"name": f"init{i}", "image": "x", "resources": draw(resources(guaranteed))}
        if draw(st.booleans()):
            c["restartPolicy"] = "Always"  # the pod's own native sidecar
        inits.append(c)
    spec: dict = {"containers": containers}
    if inits:
        spec["initContainers"] = inits
    if draw(st.integers(0, 4)) == 0:
        spec["overhead"] = {"cpu": draw(st.sampled_from(["10m", "250m"])), "memory": draw(st.sampled_from(["16Mi", "120Mi"]))}
    if draw(st.integers(0, 3)) == 0:
        level: dict = {}
        aggregate = ref.container_aggregate(spec)
        for name, values in (("cpu", CPU), ("memory", MEM)):
            shape = draw(st.sampled_from(["none", "request", "limit", "both"]))
            floor = aggregate[name] or Fraction(0)
            value = draw(values)
            if ref.quantity(value) < floor:
                continue  # Kubernetes refuses a pod-level request below the containers' aggregate
            if shape in ("request", "both"):
                level.setdefault("requests", {})[name] = value
            if shape in ("limit", "both"):
                limits = [ref.limits_of(c).get(name) for k in ("containers", "initContainers") for c in spec.get(k) or ()]
                limit = draw(values)
                if ref.quantity(limit) < ref.quantity(value) or any(v is not None and v > ref.quantity(limit) for v in limits):
                    continue
                level.setdefault("limits", {})[name] = limit
        if level:
            spec["resources"] = level
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": spec}


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    base = default_policy()
    sidecars = []
    for spec in base.sidecars:
        if draw(st.booleans()):
            sizing = Sizing(mode="fixed", fixed={"cpu": Quantity.parse(draw(st.sampled_from(["20m", "100m", "300m"]))),
                                                 "memory": Quantity.parse(draw(st.sampled_from(["8Mi", "64Mi", "256Mi"])))})
        else:
            sizing = Sizing(ratio={"cpu": Fraction(1, draw(st.sampled_from([2, 4, 10]))),
                                   "memory": Fraction(1, draw(st.sampled_from([4, 16])))},
                            min={"cpu": Quantity.parse(draw(st.sampled_from(["10m", "100m"]))),
                                 "memory": Quantity.parse("16Mi")})
        floor = Quantity.parse(draw(st.sampled_from(["10m", "50m", "200m"])))
        sidecars.append(dataclasses.replace(spec, sizing=sizing, cpu_request_floor=floor))
    policy = dataclasses.replace(base, sidecars=tuple(sidecars))
    return with_resources(
        policy,
        variant=draw(st.sampled_from(["auto", "pod-level", "swap"])),
        guaranteed={"cpu": Fraction(1, draw(st.sampled_from([1, 2, 4]))), "memory": Fraction(1, draw(st.sampled_from([1, 2])))},
        small_pods=draw(st.sampled_from(["shrink", "skip", "leak"])),
        best_effort=draw(st.sampled_from(["requests", "besteffort", "skip"])),
        qos_change=draw(st.sampled_from(["skip", "allow"])),
    )


def _run(p: dict, policy: Policy):
    original = copy.deepcopy(p)
    result = inject(p, NS, policy)
    assert p == original, "the input pod must not be modified"
    if not result.injected:
        assert result.pod is p and result.patch == []
        assert result.skip_code and result.reason
        return original, result
    assert jsonpatch.apply_patch(original, result.patch) == result.pod
    again = inject(result.pod, NS, policy)
    assert not again.injected and again.skip_code == "already_injected"
    for kind in ("containers", "initContainers"):
        for c in result.pod["spec"].get(kind) or ():
            req, lim = ref.requests_of(c), ref.limits_of(c)
            assert all(req.get(n, 0) <= v for n, v in lim.items()), c["name"]
    return original, result


def _sidecar_specs(policy: Policy, result) -> dict[str, SidecarSpec]:
    return {name: policy.sidecar(name) for name in result.sizes}


@given(pods(), policies())
def test_overcommit_keeps_the_budget_or_leaks_exactly_what_policy_chose(p: dict, policy: Policy) -> None:
    original, result = _run(p, policy)
    rp = policy.resources
    if not result.injected:
        assert result.skip_code in SKIP_CODES | {"already_injected"}, result.reason
        if result.skip_code == "qos_change":
            assert rp.qos_change == "skip"
        if result.skip_code == "pod_too_small" and rp.small_pods == "leak":
            assert "limit" in result.reason  # only the pod-level limit can refuse a leaking pod
        return
    new = result.pod
    names = set(result.sizes)
    sidecars = ref.sidecar_containers(new, names)
    budget = ref.own_budget(original)
    before, after = ref.effective_requests(original), ref.effective_requests(new)
    qos_before = ref.qos_class(original)
    for n in ref.NAMES:
        asked = sum((ref.requests_of(c).get(n, Fraction(0)) for c in sidecars), Fraction(0))
        may_leak = rp.small_pods == "leak" or (budget[n] == 0 and rp.best_effort == "requests")
        expected = max(Fraction(0), asked - budget[n]) if may_leak else Fraction(0)
        assert after[n] - before[n] == expected, (n, after[n], before[n], asked, budget[n])
        recorded = result.record.leak.get(n)
        assert (recorded.units if recorded else 0) == expected
        if expected:
            assert any("R(pod) grows" in w for w in result.warnings), "a leak is never silent"
        if n in result.record.reduced:
            assert asked == budget[n], "a shrunk mesh takes the whole budget, no more"
            assert any("cut" in w for w in result.warnings)
    qos_after = ref.qos_class(new)
    if qos_after != qos_before:
        assert rp.qos_change == "allow" or (qos_before == "BestEffort" and rp.best_effort == "requests")
        assert any("QoS class changes" in w for w in result.warnings)
    assert result.record.qos == (qos_before, qos_after)
    # the app's limits never move; its own pod-level values are never rewritten
    old = {c["name"]: c for k in ("containers", "initContainers") for c in original["spec"].get(k) or ()}
    for kind in ("containers", "initContainers"):
        for c in new["spec"].get(kind) or ():
            if c["name"] in old:
                assert ref.limits_of(c) == ref.limits_of(old[c["name"]])
    old_level = original["spec"].get("resources") or {}
    for part in ("requests", "limits"):
        for n, v in (old_level.get(part) or {}).items():
            assert new["spec"]["resources"][part][n] == v
    # every sidecar has a CPU request and a CPU limit, at the floor unless recorded as cut
    specs = _sidecar_specs(policy, result)
    gave_no_cpu = budget["cpu"] == 0 and rp.best_effort == "besteffort"
    for c in sidecars:
        req, lim = ref.requests_of(c), ref.limits_of(c)
        if gave_no_cpu:
            assert "cpu" not in req and "cpu" not in lim
            continue
        assert req.get("cpu", 0) > 0 and "cpu" in lim, c
        if "cpu" not in result.record.reduced:
            assert req["cpu"] >= specs[c["name"]].cpu_request_floor.units
    # pod-level fields pass Kubernetes' validation
    level = new["spec"].get("resources")
    if level:
        pod_req = ref.pod_level_requests(new["spec"])
        pod_lim = {n: ref.quantity(v) for n, v in (level.get("limits") or {}).items()}
        aggregate = ref.container_aggregate(new["spec"])
        for n in ref.NAMES:
            if n in pod_req:
                assert aggregate[n] <= pod_req[n]
            if n in pod_lim:
                assert pod_req.get(n, 0) <= pod_lim[n]
                for kind in ("containers", "initContainers"):
                    for c in new["spec"].get(kind) or ():
                        assert ref.limits_of(c).get(n, 0) <= pod_lim[n]
        assert ref.effective_limits(new) == ref.effective_limits(original), "the pod cgroup keeps its limit"
    elif result.record.variant == "swap":
        sizes = {n: sum((ref.limits_of(c).get(n, Fraction(0)) for c in sidecars), Fraction(0)) for n in ref.NAMES}
        for n, v in ref.effective_limits(original).items():
            if v is not None:
                assert ref.effective_limits(new)[n] == v + sizes[n]


@given(pods())
def test_the_default_policy_never_leaks_on_a_pod_that_requests_both_resources(p: dict) -> None:
    """The issue's promise: under the shipped policy, R(new) == A and the QoS class is kept, or a skip says why."""
    original, result = _run(p, default_policy())
    budget = ref.own_budget(original)
    if budget["cpu"] == 0 or budget["memory"] == 0:
        return  # a resource not requested at all follows resources.bestEffort (documented leak)
    if not result.injected:
        assert result.skip_code in {"pod_too_small", "qos_change"} and result.warnings
        return
    assert ref.effective_requests(result.pod) == ref.effective_requests(original)
    assert ref.qos_class(result.pod) == ref.qos_class(original)
    assert not result.record.leak


@given(pods())
def test_additive_leaks_exactly_the_sidecars_sizes(p: dict) -> None:
    original, result = _run(p, with_resources(mode="additive", qos_change="allow"))
    if not result.injected:
        return
    sidecars = ref.sidecar_containers(result.pod, set(result.sizes))
    for c in sidecars:
        assert ref.requests_of(c) == ref.limits_of(c)
    grown = {n: ref.effective_requests(result.pod)[n] - ref.effective_requests(original)[n] for n in ref.NAMES}
    sizes = {n: sum((ref.limits_of(c).get(n, Fraction(0)) for c in sidecars), Fraction(0)) for n in ref.NAMES}
    pinned = ref.pod_level_requests(original["spec"])  # a pod-level request holds R; the sidecars fit under it
    expected = {n: Fraction(0) if n in pinned else sizes[n] for n in ref.NAMES}
    assert grown == expected  # every injected sidecar is placed first, so it adds to every phase
    assert {n: v.units for n, v in result.record.leak.items()} == {n: v for n, v in expected.items() if v}
    for old_c, new_c in zip(original["spec"]["containers"], result.pod["spec"]["containers"]):
        assert old_c.get("resources") == new_c.get("resources")


@given(pods())
def test_carve_takes_what_it_gives_from_limits_too(p: dict) -> None:
    original, result = _run(p, with_resources(mode="carve", qos_change="allow"))
    if not result.injected:
        return
    drift = Fraction(0)
    old = {c["name"]: c for c in original["spec"]["containers"]}
    for c in result.pod["spec"]["containers"]:
        for n in ref.NAMES:
            given_up = ref.requests_of(old[c["name"]]).get(n, Fraction(0)) - ref.requests_of(c).get(n, Fraction(0))
            old_l, new_l = ref.limits_of(old[c["name"]]).get(n), ref.limits_of(c).get(n)
            assert (old_l is None) == (new_l is None)
            if old_l is not None:
                assert old_l - new_l == given_up, "carve lowers the limit by exactly the request it takes"
            if n == "cpu":
                drift += given_up
    recorded = result.record.drift.get("cpu")
    assert (recorded.units if recorded else 0) == drift
    leak = {n: ref.effective_requests(result.pod)[n] - ref.effective_requests(original)[n] for n in ref.NAMES}
    assert {n: v.units for n, v in result.record.leak.items()} == {n: v for n, v in leak.items() if v}
