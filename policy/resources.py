"""A pod's effective requests ``R(pod)`` and limits ``L(pod)``, as Kubernetes computes them.

This is the one definition both the webhook (to keep ``R(new) == A``) and the
extender (to sum a node's pods) use, so it follows
``k8s.io/component-helpers/resource.PodRequests`` with its current (1.33+)
semantics, field for field:

* native sidecars (init containers with ``restartPolicy: Always``) run beside
  the app and add to the main sum, and to every regular init container
  declared after them;
* the pod needs the larger of the main sum and the heaviest init phase;
* pod-level ``spec.resources`` replaces the container aggregate for the
  resources it sets;
* ``spec.overhead`` is added on top;
* a container with a limit and no request is given request = limit, as API
  defaulting does, so offline manifests are accounted like stored ones.

Limits follow the same shape, except that one container without a limit
makes the pod unbounded for that resource (``None``): the kubelet then sets
no pod cgroup limit either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from policy.quantity import ZERO, Format, Quantity

RESOURCES: tuple[str, str] = ("cpu", "memory")

Pod = dict[str, Any]
Resources = dict[str, Quantity]
Limits = dict[str, Quantity | None]


def family(resource: str) -> Format:
    """How meshfit prints a resource it writes: memory in binary units (``96Mi``), CPU in decimal (``250m``)."""
    return "BinarySI" if resource == "memory" else "DecimalSI"


@lru_cache(maxsize=4096)
def q(text: object) -> Quantity:
    """Parse a quantity, cached: a fleet repeats the same few hundred strings."""
    return Quantity.parse(text)


def container_requests(container: Mapping[str, Any]) -> Resources:
    """A container's cpu/memory requests after API defaulting (missing request = limit)."""
    res = container.get("resources") or {}
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    out: Resources = {}
    for name in RESOURCES:
        value = req.get(name)
        if value is None:
            value = lim.get(name)
        out[name] = q(value) if value is not None else ZERO
    return out


def container_limits(container: Mapping[str, Any]) -> Limits:
    res = container.get("resources") or {}
    lim = res.get("limits") or {}
    return {name: (q(lim[name]) if lim.get(name) is not None else None) for name in RESOURCES}


def is_native_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The parts of the formula, kept so a person (and ``explain``) can see why."""

    sum_main: Resources
    max_init: Resources
    aggregate: Resources
    pod_level: Resources
    overhead: Resources
    effective: Resources


def _max(a: Resources, b: Resources) -> Resources:
    return {name: (a[name] if a[name] >= b[name] else b[name]) for name in RESOURCES}


def _zero() -> Resources:
    return {name: ZERO for name in RESOURCES}


def aggregate_container_requests(spec: Mapping[str, Any]) -> tuple[Resources, Resources]:
    """``(sum_main, max_i init_use(i))`` for a pod spec.

    Summed in plain integers, each container's quantities parsed once; a sum
    keeps the family (``fmt``) that :meth:`Quantity.__add__` would give it
    (the running sum's, unless that is zero), so it prints as before.
    """
    main = [container_requests(c) for c in spec.get("containers") or ()]
    inits = [(container_requests(c), is_native_sidecar(c)) for c in spec.get("initContainers") or ()]
    sum_main: Resources = {}
    max_init: Resources = {}
    for name in RESOURCES:
        total, total_fmt = 0, ZERO.fmt
        for req in main:
            value = req[name]
            if not total:
                total_fmt = value.fmt
            total += value.nanos
        side, side_fmt = 0, ZERO.fmt
        most = ZERO
        for req, sidecar in inits:
            value = req[name]
            if sidecar:
                if not side:
                    side_fmt = value.fmt
                side += value.nanos
                if not total:
                    total_fmt = value.fmt
                total += value.nanos
            else:
                use = value.nanos + side
                if use > most.nanos:  # ``_max`` keeps the left one on a tie
                    most = Quantity(use, value.fmt if value.nanos else side_fmt)
        sum_main[name] = Quantity(total, total_fmt)
        max_init[name] = most
    return sum_main, max_init


def _resource_map(source: Mapping[str, Any] | None) -> dict[str, Quantity]:
    source = source or {}
    return {name: q(source[name]) for name in RESOURCES if source.get(name) is not None}


def _declared_requests(spec: Mapping[str, Any]) -> set[str]:
    """The resources some container (regular, init or sidecar) requests, after container defaulting."""
    declared: set[str] = set()
    for kind in ("containers", "initContainers"):
        for c in spec.get(kind) or ():
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                declared.update(name for name in RESOURCES if (res.get(part) or {}).get(name) is not None)
    return declared


def pod_level_requests(spec: Mapping[str, Any]) -> dict[str, Quantity]:
    """Pod-level requests after the apiserver's defaulting (``defaultPodRequests``, 1.36).

    Only where pod-level limits are set: a resource the pod-level requests leave
    out defaults to the containers' aggregate request when some container
    requests it, else to the pod-level limit.
    """
    res = spec.get("resources") or {}
    out = _resource_map(res.get("requests"))
    limits = _resource_map(res.get("limits"))
    if limits:
        declared = _declared_requests(spec)
        aggregate: Resources | None = None
        for name in RESOURCES:
            if name in out:
                continue
            if name in declared:
                if aggregate is None:
                    aggregate = _max(*aggregate_container_requests(spec))
                out[name] = aggregate[name]
            elif name in limits:
                out[name] = limits[name]
    return out


def pod_level_limits(spec: Mapping[str, Any]) -> dict[str, Quantity]:
    return _resource_map((spec.get("resources") or {}).get("limits"))


def explain_requests(pod: Pod) -> Aggregate:
    """``R(pod)`` with every intermediate value."""
    spec = pod.get("spec") or {}
    sum_main, max_init = aggregate_container_requests(spec)
    aggregate = _max(sum_main, max_init)
    pod_level = pod_level_requests(spec)
    overhead = _resource_map(spec.get("overhead"))
    effective = {
        name: pod_level.get(name, aggregate[name]) + overhead.get(name, ZERO) for name in RESOURCES
    }
    return Aggregate(sum_main, max_init, aggregate, pod_level, overhead, effective)


def pod_requests(pod: Pod) -> Resources:
    """``R(pod)``: what the scheduler and ResourceQuota charge for this pod."""
    return explain_requests(pod).effective


def _add_limit(a: Quantity | None, b: Quantity | None) -> Quantity | None:
    return None if a is None or b is None else a + b


def _max_limit(a: Quantity | None, b: Quantity | None) -> Quantity | None:
    if a is None or b is None:
        return None
    return a if a >= b else b


def pod_limits(pod: Pod) -> Limits:
    """``L(pod)``: the pod's effective limit; ``None`` where it is unbounded.

    Each container's limits are read once, not once per resource.
    """
    spec = pod.get("spec") or {}
    pod_level = pod_level_limits(spec)
    overhead = _resource_map(spec.get("overhead"))
    main = [container_limits(c) for c in spec.get("containers") or ()]
    inits = [(container_limits(c), is_native_sidecar(c)) for c in spec.get("initContainers") or ()]
    out: Limits = {}
    for name in RESOURCES:
        if name in pod_level:
            total: Quantity | None = pod_level[name]
        else:
            sum_main: Quantity | None = ZERO
            for lim in main:
                sum_main = _add_limit(sum_main, lim[name])
            sidecars: Quantity | None = ZERO
            max_init: Quantity | None = ZERO
            for lim, sidecar in inits:
                value = lim[name]
                if sidecar:
                    sidecars = _add_limit(sidecars, value)
                    sum_main = _add_limit(sum_main, value)
                else:
                    max_init = _max_limit(max_init, _add_limit(value, sidecars))
            total = _max_limit(sum_main, max_init)
        out[name] = None if total is None else total + overhead.get(name, ZERO)
    return out


def _container_nanos(container: Mapping[str, Any]) -> tuple[int, int]:
    res = container.get("resources")
    if not res:
        return 0, 0
    req = res.get("requests") or {}
    lim = res.get("limits") or {}
    cpu = req.get("cpu")
    if cpu is None:
        cpu = lim.get("cpu")
    mem = req.get("memory")
    if mem is None:
        mem = lim.get("memory")
    return (q(cpu).nanos if cpu is not None else 0, q(mem).nanos if mem is not None else 0)


def requests_nanos(spec: Mapping[str, Any]) -> tuple[int, int]:
    """``R(pod)`` for (cpu, memory) in nano-units: :func:`pod_requests` in plain ints.

    The same formula, kept beside it, for the extender, which accounts every pod
    of a fleet on each relist (250,000 pods) where the Quantity-based form costs
    about 20 µs a pod. tests/policy/test_pod_accounting.py checks on random pods
    that the two agree exactly.
    """
    cpu = mem = 0
    for c in spec.get("containers") or ():
        rc, rm = _container_nanos(c)
        cpu += rc
        mem += rm
    init = spec.get("initContainers")
    if init:
        side_cpu = side_mem = init_cpu = init_mem = 0
        for c in init:
            rc, rm = _container_nanos(c)
            if c.get("restartPolicy") == "Always":
                side_cpu += rc
                side_mem += rm
                cpu += rc
                mem += rm
            else:
                init_cpu = max(init_cpu, rc + side_cpu)
                init_mem = max(init_mem, rm + side_mem)
        cpu = max(cpu, init_cpu)
        mem = max(mem, init_mem)
    res = spec.get("resources")
    if res and (res.get("requests") or res.get("limits")):
        pod_level = pod_level_requests(spec)  # rare: the defaulting rules live in one place
        if "cpu" in pod_level:
            cpu = pod_level["cpu"].nanos
        if "memory" in pod_level:
            mem = pod_level["memory"].nanos
    overhead = spec.get("overhead")
    if overhead:
        if overhead.get("cpu") is not None:
            cpu += q(overhead["cpu"]).nanos
        if overhead.get("memory") is not None:
            mem += q(overhead["memory"]).nanos
    return cpu, mem


def is_best_effort(pod: Pod) -> bool:
    """No container (or pod-level field) requests or limits cpu or memory."""
    spec = pod.get("spec") or {}
    if pod_level_requests(spec) or pod_level_limits(spec):
        return False
    for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            values = res.get(part) or {}
            if any(values.get(name) is not None and q(values[name]) for name in RESOURCES):
                return False
    return True


def format_resources(values: Mapping[str, Quantity | None]) -> dict[str, str]:
    """``{"cpu": "500m", "memory": "1Gi"}``, skipping unbounded entries."""
    return {name: v.format() for name, v in values.items() if v is not None}
