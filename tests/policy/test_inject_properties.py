"""Property tests: random pod shapes must keep the invariants of DESIGN.md.

For every generated pod, in every mode:
- the patch reproduces the result and the input is untouched;
- ``R(new) == A + leak`` exactly (the record never lies), and in overcommit mode
  the leak is zero whenever the donors had enough to give;
- app containers' limits never change in overcommit mode;
- every sidecar has a CPU request at or above the floor and a CPU limit;
- every container keeps request <= limit; pod-level fields pass Kubernetes'
  validation (aggregate requests <= pod requests, each limit <= pod limit);
- injecting the result again changes nothing.
"""

from __future__ import annotations

import copy

import jsonpatch
from hypothesis import given
from hypothesis import strategies as st
from policies import default_policy, with_resources

from policy.decision import Namespace
from policy.inject import inject
from policy.quantity import ZERO, Quantity
from policy.resources import (
    RESOURCES,
    aggregate_container_requests,
    container_limits,
    container_requests,
    is_best_effort,
    pod_level_limits,
    pod_level_requests,
    pod_limits,
    pod_requests,
)

CPU = st.sampled_from(["10m", "100m", "250m", "500m", "1", "1500m", "2", "4", "16"])
MEM = st.sampled_from(["16Mi", "64Mi", "128Mi", "500M", "1Gi", "1536Mi", "4Gi", "32Gi"])


@st.composite
def resources(draw: st.DrawFn) -> dict:
    out: dict = {}
    for name, values in (("cpu", CPU), ("memory", MEM)):
        shape = draw(st.sampled_from(["none", "request", "limit", "both"]))
        if shape == "none":
            continue
        value = draw(values)
        if shape in ("request", "both"):
            out.setdefault("requests", {})[name] = value
        if shape in ("limit", "both"):
            limit = value if shape == "limit" else draw(values)
            if Quantity.parse(limit) < Quantity.parse(value):
                limit = value
            out.setdefault("limits", {})[name] = limit
    return out


@st.composite
def pods(draw: st.DrawFn) -> dict:
    n = draw(st.integers(1, 3))
    containers = [{"name": f"app{i}", "image": "x", "resources": draw(resources())} for i in range(n)]
    inits = []
    for i in range(draw(st.integers(0, 3))):
        c = {"name": f"init{i}", "image": "x", "resources": draw(resources())}
        if draw(st.booleans()):
            c["restartPolicy"] = "Always"
        inits.append(c)
    spec: dict = {"containers": containers}
    if inits:
        spec["initContainers"] = inits
    if draw(st.booleans()):
        spec["overhead"] = {"cpu": draw(CPU), "memory": draw(MEM)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": spec}


NS = Namespace("shop", None)


def _check_common(original: dict, result) -> None:
    assert jsonpatch.apply_patch(original, result.patch) == result.pod
    again = inject(result.pod, NS, default_policy())
    assert not again.injected and again.pod == result.pod
    new = result.pod
    for kind in ("containers", "initContainers"):
        for c in new["spec"].get(kind) or ():
            req, lim = container_requests(c), container_limits(c)
            for r in RESOURCES:
                assert req[r].nanos >= 0
                if lim[r] is not None:
                    assert req[r] <= lim[r], (c["name"], r)
    record = result.record
    A, R = pod_requests(original), pod_requests(new)
    for r in RESOURCES:
        assert R[r] == A[r] + record.leak.get(r, ZERO), r
        assert record.requests[r] == R[r] and record.original[r] == A[r]


def _sidecars(result) -> list[dict]:
    names = {s for s in result.sizes}
    return [c for c in result.pod["spec"]["initContainers"] if c["name"] in names]


@given(pods(), st.sampled_from(["pod-level", "swap"]))
def test_overcommit_invariants(p: dict, variant: str) -> None:
    original = copy.deepcopy(p)
    policy = with_resources(variant=variant)
    result = inject(p, NS, policy)
    assert p == original
    assert result.injected
    _check_common(original, result)
    new = result.pod
    for old_c, new_c in zip(original["spec"]["containers"], new["spec"]["containers"]):
        assert container_limits(new_c) == container_limits(old_c)
    if not is_best_effort(original):
        for c in _sidecars(result):
            spec = policy.sidecar(c["name"])
            assert Quantity.parse(c["resources"]["requests"]["cpu"]) >= spec.cpu_request_floor
            assert "cpu" in c["resources"]["limits"]
    # donors with enough to give keep the invariant exactly
    s_total = {r: sum((s.requests.get(r, ZERO) for s in result.sizes.values()), ZERO) for r in RESOURCES}
    app_total = {r: sum((container_requests(c)[r] for c in original["spec"]["containers"]), ZERO) for r in RESOURCES}
    regular_inits = [c for c in original["spec"].get("initContainers") or () if c.get("restartPolicy") != "Always"]
    for r in RESOURCES:
        inits_can_give = all(container_requests(c)[r] >= s_total[r] for c in regular_inits)
        if app_total[r] >= s_total[r] and inits_can_give and not is_best_effort(original):
            assert r not in result.record.leak, r
    if new["spec"].get("resources"):
        pod_req, pod_lim = pod_level_requests(new["spec"]), pod_level_limits(new["spec"])
        sum_main, max_init = aggregate_container_requests(new["spec"])
        for r in RESOURCES:
            if r in pod_req:
                assert max(sum_main[r], max_init[r]) <= pod_req[r]
            if r in pod_lim:
                assert pod_req.get(r, ZERO) <= pod_lim[r]
                for kind in ("containers", "initContainers"):
                    for c in new["spec"].get(kind) or ():
                        lim = container_limits(c)[r]
                        assert lim is None or lim <= pod_lim[r]
        assert pod_limits(new) == pod_limits(original)


@given(pods())
def test_additive_leaks_exactly_what_it_adds(p: dict) -> None:
    original = copy.deepcopy(p)
    result = inject(p, NS, with_resources(mode="additive"))
    _check_common(original, result)
    for old_c, new_c in zip(original["spec"]["containers"], result.pod["spec"]["containers"]):
        assert old_c.get("resources") == new_c.get("resources")


@given(pods())
def test_carve_never_leaks_when_the_app_can_give(p: dict) -> None:
    original = copy.deepcopy(p)
    result = inject(p, NS, with_resources(mode="carve"))
    _check_common(original, result)
    for new_c in result.pod["spec"]["containers"]:
        old_c = next(c for c in original["spec"]["containers"] if c["name"] == new_c["name"])
        for r in RESOURCES:
            old_l, new_l = container_limits(old_c)[r], container_limits(new_c)[r]
            assert (old_l is None) == (new_l is None)
            if old_l is not None:
                assert new_l <= old_l
