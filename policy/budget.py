"""Fitting the sidecars' guaranteed requests into what the pod can give.

Overcommit keeps ``R(new) == A``: the injected sidecars' requests ``Σ s_i`` come
out of the pod's own container aggregate (the *goal*: the pod-level request
where the pod sets one, else ``max(sum_main, max_i init_use(i))``). Every
container the pod already has may donate down to a request of zero, so the
sidecars' requests fit exactly when ``Σ s_i ≤ goal`` — resource by resource.

Where they do not (a *small pod*: an app of 100m/64Mi under a mesh asking
150m/192Mi), ``resources.smallPods`` decides:

* ``shrink`` (default) — the sidecars' requests are cut, in proportion, to sum
  to the goal; every sidecar keeps at least one granule (1m, 1Mi) of each
  request it had per slot it has (a hot-upgrade sidecar's request is split
  between two slots, :mod:`policy.slots`, so it keeps two), its limit is
  untouched, and ``R(new) == A`` holds;
* ``skip`` — the pod is left unmeshed, with the reason;
* ``leak`` — the requests stay; the pod's effective request grows by exactly
  the shortfall ``Σ s_i − goal``, recorded as the leak. A pod-level request the
  user set is never raised, so such a pod is skipped instead.

A resource the pod does not request at all (``goal == 0``) follows
``resources.bestEffort`` for that resource alone: ``requests`` keeps the
sidecars' requests and records them as the leak, ``besteffort`` gives the
sidecars neither request nor limit of it, ``skip`` leaves the pod unmeshed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from policy.donation import split
from policy.model import ResourcePolicy
from policy.quantity import SIZE_GRANULE, Quantity
from policy.resources import RESOURCES
from policy.sizing import SidecarSize


@dataclass(frozen=True, slots=True)
class Fit:
    """The sizes the pod can carry, or why it cannot carry the mesh at all."""

    sizes: dict[str, SidecarSize]
    #: Per resource, how much the sidecars' requests were cut below their policy values.
    reduced: dict[str, Quantity] = field(default_factory=dict)
    #: Per resource, the shortfall the policy chose to leak (``R(new) = A + leak``).
    leak: dict[str, Quantity] = field(default_factory=dict)
    #: Per resource, why it leaks (for the record, ``explain`` and the warning).
    leak_reasons: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    skip_code: str = ""
    skip_reason: str = ""


def fit_requests(sizes: Mapping[str, SidecarSize], goal: Mapping[str, int], policy: ResourcePolicy,
                 user_pod_level: frozenset[str], floors: Mapping[str, Quantity],
                 slots: Mapping[str, int] | None = None) -> Fit:
    """Fit ``sizes``' requests into ``goal`` (nano-units per resource) as ``policy`` says.

    ``user_pod_level`` names the resources whose pod-level request the user set
    (never raised); ``floors`` is each sidecar's CPU request floor, for the warning;
    ``slots`` how many containers each sidecar's request is split between (1 when not given).
    """
    slots = slots or {}
    out = {name: SidecarSize(dict(s.limits), dict(s.requests), s.notes) for name, s in sizes.items()}
    reduced: dict[str, Quantity] = {}
    leak: dict[str, Quantity] = {}
    reasons: dict[str, str] = {}
    warnings: list[str] = []
    notes: list[str] = []
    for r in RESOURCES:
        asking = [(name, s.requests[r]) for name, s in out.items() if r in s.requests]
        total = sum(v.nanos for _, v in asking)
        have = goal[r]
        if total <= have:
            continue
        shown = Quantity(total, asking[0][1].fmt)
        if have == 0:
            if policy.best_effort == "skip":
                return _skip("best_effort_resource", f"the pod requests no {r} and resources.bestEffort is skip")
            if policy.best_effort == "besteffort":
                for name, _ in asking:
                    del out[name].requests[r]
                    out[name].limits.pop(r, None)
                notes.append(f"the pod requests no {r}: the sidecars get no {r} request or limit "
                             "(resources.bestEffort: besteffort)")
                continue
            if r in user_pod_level:
                return _skip("pod_level_request", f"the pod sets its own pod-level {r} request of 0, "
                                                  f"which meshfit never raises")
            leak[r] = shown
            reasons[r] = f"the pod requests no {r}; the sidecars' {r} requests are added (resources.bestEffort: requests)"
            continue
        have_q = Quantity(have, shown.fmt)
        if policy.small_pods == "skip":
            return _skip("pod_too_small", f"the pod requests {r} {have_q}, less than the sidecars' requests {shown} "
                                          "(resources.smallPods: skip)")
        if policy.small_pods == "leak":
            if r in user_pod_level:
                return _skip("pod_level_request", f"the pod's own pod-level {r} request {have_q} is less than the "
                                                  f"sidecars' requests {shown}, and meshfit never raises it")
            leak[r] = Quantity(total - have, shown.fmt)
            reasons[r] = (f"the pod requests {r} {have_q}, less than the sidecars' requests {shown} "
                          "(resources.smallPods: leak)")
            continue
        granule = SIZE_GRANULE[r]
        base = [granule * slots.get(name, 1) for name, _ in asking]
        if have < sum(base):
            hot = [name for name, _ in asking if slots.get(name, 1) > 1]
            if not hot:
                return _skip("pod_too_small", f"the pod requests {r} {have_q}: too little to give each of "
                                              f"{len(asking)} sidecars a {r} request")
            return _skip("pod_too_small", f"the pod requests {r} {have_q}: too little to give each of the "
                                          f"{sum(base) // granule} sidecar slots a {r} request of "
                                          f"{Quantity(granule, shown.fmt)} ({', '.join(hot)}: two hot-upgrade "
                                          "slots, whose requests split one sidecar's)")
        # a hot sidecar asking less than its two slots' minimum has nothing above it to cut
        room = [max(v.nanos - b, 0) if slots.get(name, 1) > 1 else v.nanos - b for (name, v), b in zip(asking, base)]
        rest = split(have - sum(base), room, granule)
        cut_to = []
        for (name, value), b, extra in zip(asking, base, rest):
            new = Quantity(b + extra, value.fmt)
            out[name].requests[r] = new
            cut_to.append(f"{name} {new}")
        reduced[r] = Quantity(total - have, shown.fmt)
        below = [name for name, _ in asking
                 if r == "cpu" and name in floors and out[name].requests[r] < floors[name]]
        warnings.append(
            f"the pod requests {r} {have_q}, less than the sidecars' requests {shown}: their {r} requests are cut "
            f"to what the pod can give ({', '.join(cut_to)}); R(pod) is unchanged (resources.smallPods: shrink)"
            + (f"; below the CPU request floor: {', '.join(below)}" if below else "")
        )
    return Fit(out, reduced, leak, reasons, tuple(warnings), tuple(notes))


def _skip(code: str, reason: str) -> Fit:
    return Fit({}, skip_code=code, skip_reason=reason)
