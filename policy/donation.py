"""How much each existing container gives up so the pod's effective request stays ``A``.

Overcommit (and carve) keep ``R(new) == R(original)``. After the sidecars are
placed, the formula ``max(sum_main, max_i init_use(i))`` may exceed the
original aggregate in two places, and each is closed where it arises:

* the main phase — the pod's own containers donate the excess from their
  *requests*, in proportion to those requests (their limits never change in
  overcommit mode). In overcommit mode the pod's own native sidecars (a log
  shipper declared by the app owner) donate with the app containers: their
  requests are part of the budget the owner's quota pays for;
* each regular init container declared after injected native sidecars — it
  donates the excess from its own request (it runs beside the sidecar), reckoned
  with the donors' requests *after* the main phase gave.

An init-heavy pod often needs no donation at all: its init phase already
reserved more than the app uses, and the sidecar fits in that slack. The engine
sizes the sidecars' requests to fit the budget first (:mod:`policy.budget`), so
a plan always closes the gap unless the policy chose an explicit leak.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policy.quantity import SPLIT_GRANULE
from policy.resources import RESOURCES, container_requests, is_native_sidecar


@dataclass(frozen=True, slots=True)
class Donation:
    """``amount`` nano-units of ``resource`` taken from ``spec[field][index]``'s request."""

    field: str
    index: int
    resource: str
    amount: int


def split(amount: int, capacities: Sequence[int], granule: int) -> list[int]:
    """Split ``amount`` in proportion to ``capacities``, never above one, in ``granule`` steps.

    Exact: the parts add up to ``min(amount, sum(capacities))``. Rounding
    remainders go to the largest donors, who feel them least.
    """
    total = sum(capacities)
    amount = min(amount, total)
    if amount <= 0:  # nothing to give, or nowhere to give it: amount is at most the total now
        return [0] * len(capacities)
    parts = [(amount * c // total) // granule * granule for c in capacities]
    left = amount - sum(parts)  # never negative: each part is rounded down
    order = sorted(range(len(capacities)), key=lambda i: -capacities[i])
    for step in (granule, 1):
        for i in order:
            if not left:
                break
            room = capacities[i] - parts[i]
            give = min(left, room) // step * step
            parts[i] += give
            left -= give
    return parts


def plan(spec: Mapping[str, Any], target: Mapping[str, int], injected: set[str], *,
         own_sidecars_donate: bool = True) -> list[Donation]:
    """The donations that bring the aggregate of ``spec`` (sidecars placed) back to ``target``.

    ``target`` is the original container aggregate per resource in nano-units;
    ``injected`` names the containers meshfit added (they never donate).
    ``own_sidecars_donate`` lets the pod's own native sidecars give with the app
    containers (overcommit); carve takes from the app containers only.
    """
    containers = list(spec.get("containers") or ())
    inits = list(spec.get("initContainers") or ())
    requests = [container_requests(c) for c in containers]
    init_requests = [container_requests(c) for c in inits]
    donations: list[Donation] = []
    for name in RESOURCES:
        goal = target[name]
        init_now = [r[name].nanos for r in init_requests]
        sidecars = sum(v for c, v in zip(inits, init_now) if is_native_sidecar(c))
        sum_main = sum(r[name].nanos for r in requests) + sidecars
        donors = [("containers", i, requests[i][name].nanos) for i, c in enumerate(containers)
                  if c.get("name") not in injected]
        if own_sidecars_donate:
            donors += [("initContainers", i, init_now[i]) for i, c in enumerate(inits)
                       if is_native_sidecar(c) and c.get("name") not in injected]
        # split() gives nothing when the main phase is within the goal (an excess of 0 or less)
        amounts = split(sum_main - goal, [d[2] for d in donors], SPLIT_GRANULE[name])
        for (kind, i, _), amount in zip(donors, amounts):
            if amount:
                donations.append(Donation(kind, i, name, amount))
                if kind == "initContainers":
                    init_now[i] -= amount
        before = 0
        for i, c in enumerate(inits):
            if is_native_sidecar(c):
                before += init_now[i]
                continue
            amount = min(init_now[i] + before - goal, init_now[i])  # the excess, at most all it asks
            if amount > 0 and c.get("name") not in injected:
                donations.append(Donation("initContainers", i, name, amount))
    return donations
