"""How much each existing container gives up so the pod's effective request stays ``A``.

Overcommit (and carve) keep ``R(new) == R(original)``. After the sidecars are
placed, the formula ``max(sum_main, max_i init_use(i))`` may exceed the
original aggregate in two places, and each is closed where it arises:

* the main phase — the app containers donate the excess from their
  *requests*, in proportion to those requests (their limits never change in
  overcommit mode);
* each regular init container declared after injected native sidecars — it
  donates the excess from its own request (it runs beside the sidecar).

An init-heavy pod often needs no donation at all: its init phase already
reserved more than the app uses, and the sidecar fits in that slack. Where a
donor has too little to give (a request of zero, a BestEffort container), the
shortfall is not hidden: the caller sees ``R(new) > A`` and records the leak.
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
    if amount <= 0 or total <= 0:
        return [0] * len(capacities)
    parts = [(amount * c // total) // granule * granule for c in capacities]
    left = amount - sum(parts)
    order = sorted(range(len(capacities)), key=lambda i: -capacities[i])
    for step in (granule, 1):
        for i in order:
            if left <= 0:
                break
            room = capacities[i] - parts[i]
            give = min(left, room) // step * step
            parts[i] += give
            left -= give
    return parts


def plan(spec: Mapping[str, Any], target: Mapping[str, int], injected: set[str]) -> list[Donation]:
    """The donations that bring the aggregate of ``spec`` (sidecars placed) back to ``target``.

    ``target`` is the original container aggregate per resource in nano-units;
    ``injected`` names the containers meshfit added (they never donate).
    """
    containers = list(spec.get("containers") or ())
    inits = list(spec.get("initContainers") or ())
    requests = [container_requests(c) for c in containers]
    init_requests = [container_requests(c) for c in inits]
    donations: list[Donation] = []
    for name in RESOURCES:
        goal = target[name]
        sidecars = sum(r[name].nanos for c, r in zip(inits, init_requests) if is_native_sidecar(c))
        sum_main = sum(r[name].nanos for r in requests) + sidecars
        excess = sum_main - goal
        if excess > 0:
            donors = [i for i, c in enumerate(containers) if c.get("name") not in injected]
            amounts = split(excess, [requests[i][name].nanos for i in donors], SPLIT_GRANULE[name])
            donations += [Donation("containers", i, name, a) for i, a in zip(donors, amounts) if a]
        before = 0
        for i, (c, r) in enumerate(zip(inits, init_requests)):
            if is_native_sidecar(c):
                before += r[name].nanos
                continue
            excess = r[name].nanos + before - goal
            if excess > 0 and c.get("name") not in injected:
                amount = min(excess, r[name].nanos)
                if amount:
                    donations.append(Donation("initContainers", i, name, amount))
    return donations
