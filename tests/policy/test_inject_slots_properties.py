"""Property tests: random pods under random policies with hot-upgrade and dormant slots keep the invariants.

Expected values come from ``tests/reference.py`` and from the policy as drawn
(which sidecar is hot or dormant, hence its containers' names), never from the
engine's own figures:

- ``R(new) == A`` exactly, or exactly the leak the policy chose (as for ordinary sidecars);
- the QoS class is unchanged unless the policy allowed it; app containers' limits never move;
- every slot has a CPU request and a CPU limit (unless the policy gave the sidecar no CPU);
- a hot sidecar's two slots share its one recorded request: they add up to it, the
  alt slot has ``⌊s/2⌋`` (whole millicores, whole bytes), each slot at least 1m of CPU,
  and both carry the recorded size as their limit;
- slots run the right image, say their slot in ``MESHFIT_SLOT``, and carry no probes;
- the status record parses and round-trips and says what the policy asked for.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import reference as ref
from hypothesis import event, given
from hypothesis import strategies as st
from test_inject_properties import SKIP_CODES, _run, pods, policies

from policy.model import Policy, UpgradeSpec
from policy.sidecar_status import parse_status

EMPTY = "registry.example.com/mesh/empty:2"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


@st.composite
def slot_policies(draw: st.DrawFn) -> Policy:
    """A random policy of test_inject_properties, each sidecar drawn ordinary, hot, dormant or both."""
    policy = draw(policies())
    sidecars = []
    for spec in policy.sidecars:
        hot, dormant = draw(st.booleans()), draw(st.booleans())
        placement = draw(st.sampled_from(["native", "native", "legacy"]))
        position = draw(st.sampled_from(["first", "last"]))
        sidecars.append(dataclasses.replace(spec, placement=placement, position=position,
                                            upgrade=UpgradeSpec(hot=hot, dormant=dormant, empty_image=EMPTY)))
    return dataclasses.replace(policy, sidecars=tuple(sidecars))


def _slots(policy: Policy) -> dict[str, tuple[str, ...]]:
    """Each sidecar's containers, from the policy alone."""
    return {s.name: (s.name, s.name + "-alt") if s.upgrade.hot else (s.name,) for s in policy.sidecars}


def _by_name(pod: dict) -> dict[str, dict]:
    return {c["name"]: c for k in ("initContainers", "containers") for c in pod["spec"].get(k) or ()}


def _alt_share(total: Fraction, resource: str) -> Fraction:
    """⌊s/2⌋ in whole millicores (CPU) or whole bytes (memory), exactly."""
    step = Fraction(1, 1000) if resource == "cpu" else Fraction(1)
    return math.floor(total / 2 / step) * step


@given(pods(), slot_policies())
def test_slotted_pods_keep_every_invariant(p: dict, policy: Policy) -> None:
    original, result = _run(p, policy)
    rp = policy.resources
    if not result.injected:
        assert result.skip_code in SKIP_CODES | {"already_injected"}, result.reason
        event(f"skipped: {result.skip_code}")
        return
    event("injected with " + ", ".join(sorted({"hot" if s.upgrade.hot else "dormant" if s.upgrade.dormant else "plain"
                                               for s in policy.sidecars})))
    new = result.pod
    slots = _slots(policy)
    every = {c for names in slots.values() for c in names}
    containers = _by_name(new)
    assert every <= set(containers)
    sidecar_containers = ref.sidecar_containers(new, every)
    budget = ref.own_budget(original)
    before, after = ref.effective_requests(original), ref.effective_requests(new)
    # R(new) == A, or exactly the leak the policy chose
    for n in ref.NAMES:
        asked = sum((ref.requests_of(c).get(n, Fraction(0)) for c in sidecar_containers), Fraction(0))
        may_leak = rp.small_pods == "leak" or (budget[n] == 0 and rp.best_effort == "requests")
        expected = max(Fraction(0), asked - budget[n]) if may_leak else Fraction(0)
        assert after[n] - before[n] == expected, (n, after[n], before[n], asked, budget[n])
        if rp.mode == "overcommit" and not may_leak:
            assert after[n] == before[n]
    # the QoS class is kept unless the policy allowed the change
    qos_before, qos_after = ref.qos_class(original), ref.qos_class(new)
    if qos_after != qos_before:
        assert rp.qos_change == "allow" or (qos_before == "BestEffort" and rp.best_effort == "requests")
    # app containers' limits never move, and no app container is mistaken for a slot
    old = {c["name"]: c for k in ("containers", "initContainers") for c in original["spec"].get(k) or ()}
    assert not set(old) & every
    for name, c in containers.items():
        if name in old:
            assert ref.limits_of(c) == ref.limits_of(old[name])
    gave_no_cpu = budget["cpu"] == 0 and rp.best_effort == "besteffort"
    assert result.record is not None
    records = {s.name: s for s in result.record.sidecars}
    status = parse_status(new["metadata"]["annotations"]["meshfit.io/status"])
    assert status.to_json() == new["metadata"]["annotations"]["meshfit.io/status"]
    annotations = new["metadata"]["annotations"]
    for spec in policy.sidecars:
        names = slots[spec.name]
        record = records[spec.name]
        mine = [containers[c] for c in names]
        # every slot has a CPU request and a CPU limit
        for c in mine:
            req, lim = ref.requests_of(c), ref.limits_of(c)
            if gave_no_cpu:
                assert "cpu" not in req and "cpu" not in lim
            else:
                assert req.get("cpu", 0) > 0 and "cpu" in lim, c
            assert all(req.get(n, 0) <= v for n, v in lim.items())
        # the slots' requests add up to the sidecar's one recorded request; both carry its limit
        for n in ref.NAMES:
            total = sum((ref.requests_of(c).get(n, Fraction(0)) for c in mine), Fraction(0))
            assert total == (record.requests[n].units if n in record.requests else 0), (spec.name, n)
            limits = [ref.limits_of(c).get(n) for c in mine]
            assert len(set(limits)) == 1, "every slot has the sidecar's full limit"
            if limits[0] is not None:
                assert record.limits[n].units == limits[0] * len(mine)
        if spec.upgrade.hot:
            live, alt = (ref.requests_of(c) for c in mine)
            for n in ref.NAMES:
                if n in live:
                    total = live[n] + alt[n]
                    assert alt[n] == _alt_share(total, n) and live[n] == total - alt[n]
            if not gave_no_cpu:
                assert live["cpu"] >= Fraction(1, 1000) and alt["cpu"] >= Fraction(1, 1000)
            # adjacent, in the same list
            kind = "initContainers" if spec.placement == "native" else "containers"
            order = [c["name"] for c in new["spec"][kind]]
            assert order.index(names[1]) == order.index(names[0]) + 1
        # the right images, the slot's own name, no probes on slots; ordinary sidecars keep theirs
        version = result.versions[spec.name]
        expected_live = EMPTY if spec.upgrade.dormant else version.image
        assert mine[0]["image"] == expected_live
        if spec.upgrade.hot:
            assert mine[1]["image"] == EMPTY
        slotted = spec.upgrade.hot or spec.upgrade.dormant
        for i, c in enumerate(mine):
            env = {e["name"]: e for e in c.get("env") or ()}
            assert ("MESHFIT_SLOT" in env) == slotted
            if slotted:
                assert env["MESHFIT_SLOT"]["value"] == c["name"]
                assert not set(PROBES) & set(c)
                key = "meshfit.io/slot-" + c["name"]
                assert annotations[key] == (version.version if i == 0 and not spec.upgrade.dormant else "")
            else:
                assert all((p in c) == (getattr(spec, {"startupProbe": "startup_probe", "readinessProbe": "readiness_probe",
                                                       "livenessProbe": "liveness_probe"}[p]) is not None) for p in PROBES)
        entry = status.sidecar(spec.name)
        assert entry is not None and entry.slots == names and entry.live == spec.name
        assert entry.active == (not spec.upgrade.dormant)
        assert entry.empty_image == (EMPTY if slotted else None)
    # the swap variant: the pod's limit grows by every sidecar container's limit, slots included
    # (where every phase gets them: native sidecars placed first, or no regular init container to run
    # beside; a legacy sidecar is a regular container, absent while an init container runs)
    regular_inits = [c for c in original["spec"].get("initContainers") or () if c.get("restartPolicy") != "Always"]
    everywhere = all(s.position == "first" and s.placement == "native" for s in policy.sidecars) or not regular_inits
    if result.record.variant == "swap" and not new["spec"].get("resources") and everywhere:
        grown = {n: sum((ref.limits_of(c).get(n, Fraction(0)) for c in sidecar_containers), Fraction(0)) for n in ref.NAMES}
        for n, v in ref.effective_limits(original).items():
            if v is not None:
                assert ref.effective_limits(new)[n] == v + grown[n]
