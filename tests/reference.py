"""An independent reference for Kubernetes' pod resource accounting, written for tests only.

Tests check the engine, the webhook, the CLI and the extender against this
module, never against ``policy/`` itself, so a bug there cannot also be in the
expected value. It is deliberately plain: exact ``Fraction`` values, the
formulas of ``k8s.io/component-helpers/resource.PodRequests`` and
``pkg/apis/core/helper/qos.ComputePodQOS`` (1.36) written out line by line,
the apiserver's defaulting applied first. Speed does not matter here.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

NAMES = ("cpu", "memory")

_SUFFIX = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_FORM = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def quantity(value: Any) -> Fraction:
    """A Kubernetes quantity as an exact number of units, rounded up to a nano-unit as the apiserver does."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        value = repr(value)
    match = _FORM.match(str(value).strip())
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    exact = Fraction(match.group(1)) * _SUFFIX[match.group(2) or ""]
    nanos = exact * 10**9
    return Fraction(-((-nanos.numerator) // nanos.denominator), 10**9)


def _res(container: dict[str, Any], part: str) -> dict[str, Fraction]:
    values = ((container.get("resources") or {}).get(part)) or {}
    return {n: quantity(values[n]) for n in NAMES if values.get(n) is not None}


def requests_of(container: dict[str, Any]) -> dict[str, Fraction]:
    """A container's requests after defaulting: a request not given takes the limit."""
    out = _res(container, "limits")
    out.update(_res(container, "requests"))
    return out


def limits_of(container: dict[str, Any]) -> dict[str, Fraction]:
    return _res(container, "limits")


def _sidecar(c: dict[str, Any]) -> bool:
    return c.get("restartPolicy") == "Always"


def container_aggregate(spec: dict[str, Any], of: str = "requests") -> dict[str, Fraction | None]:
    """max(Σ main containers + Σ sidecars, max over regular inits of (init + sidecars declared before it)).

    For limits, a container without a limit makes the resource unbounded (None).
    """
    get = requests_of if of == "requests" else limits_of
    out: dict[str, Fraction | None] = {}
    for n in NAMES:
        unbounded = False

        def value(c: dict[str, Any]) -> Fraction:
            nonlocal unbounded
            v = get(c).get(n)
            if v is None:
                if of == "limits":
                    unbounded = True
                return Fraction(0)
            return v

        main = sum((value(c) for c in spec.get("containers") or ()), Fraction(0))
        sidecars_so_far = Fraction(0)
        heaviest_init = Fraction(0)
        for c in spec.get("initContainers") or ():
            if _sidecar(c):
                sidecars_so_far += value(c)
                main += value(c)
            else:
                heaviest_init = max(heaviest_init, value(c) + sidecars_so_far)
        out[n] = None if unbounded else max(main, heaviest_init)
    return out


def pod_level_requests(spec: dict[str, Any]) -> dict[str, Fraction]:
    """spec.resources.requests after defaultPodRequests: only when pod-level limits are set,
    a missing request takes the containers' aggregate if any container declares the resource,
    else the pod-level limit."""
    res = spec.get("resources") or {}
    given = {n: quantity(v) for n, v in (res.get("requests") or {}).items() if n in NAMES and v is not None}
    limits = {n: quantity(v) for n, v in (res.get("limits") or {}).items() if n in NAMES and v is not None}
    if not res.get("limits"):
        return given
    declared = set()
    for kind in ("containers", "initContainers"):
        for c in spec.get(kind) or ():
            declared |= set(requests_of(c))
    aggregate = container_aggregate(spec)
    for n in NAMES:
        if n in given:
            continue
        if n in declared:
            given[n] = aggregate[n]  # type: ignore[assignment]
        elif n in limits:
            given[n] = limits[n]
    return given


def effective_requests(pod: dict[str, Any]) -> dict[str, Fraction]:
    """R(pod): pod-level request where set, else the container aggregate; plus overhead."""
    spec = pod.get("spec") or {}
    aggregate = container_aggregate(spec)
    pod_level = pod_level_requests(spec)
    overhead = spec.get("overhead") or {}
    return {n: pod_level.get(n, aggregate[n] or Fraction(0))
            + (quantity(overhead[n]) if overhead.get(n) is not None else Fraction(0)) for n in NAMES}


def effective_limits(pod: dict[str, Any]) -> dict[str, Fraction | None]:
    """L(pod): pod-level limit where set, else the container aggregate of limits (None: unbounded); plus overhead."""
    spec = pod.get("spec") or {}
    pod_limits = {n: quantity(v) for n, v in ((spec.get("resources") or {}).get("limits") or {}).items()
                  if n in NAMES and v is not None}
    aggregate = container_aggregate(spec, "limits")
    overhead = spec.get("overhead") or {}
    out: dict[str, Fraction | None] = {}
    for n in NAMES:
        base = pod_limits.get(n, aggregate[n])
        out[n] = None if base is None else base + (quantity(overhead[n]) if overhead.get(n) is not None else 0)
    return out


def qos_class(pod: dict[str, Any]) -> str:
    """ComputePodQOS on the defaulted pod."""
    spec = pod.get("spec") or {}
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    if spec.get("resources") is not None:
        res = spec["resources"]
        requests = {n: v for n, v in pod_level_requests(spec).items() if v > 0}
        limits = {n: quantity(v) for n, v in (res.get("limits") or {}).items()
                  if n in NAMES and v is not None and quantity(v) > 0}
        if res.get("limits") and not all(n in limits for n in NAMES):
            guaranteed = False
    else:
        for c in list(spec.get("containers") or ()) + list(spec.get("initContainers") or ()):
            for n, v in requests_of(c).items():
                if v > 0:
                    requests[n] = requests.get(n, Fraction(0)) + v
            found = set()
            for n, v in limits_of(c).items():
                if v > 0:
                    found.add(n)
                    limits[n] = limits.get(n, Fraction(0)) + v
            if not {"cpu", "memory"} <= found:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(n) == v for n, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def sidecar_containers(pod: dict[str, Any], names: set[str]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [c for kind in ("initContainers", "containers") for c in spec.get(kind) or () if c.get("name") in names]


def own_budget(pod: dict[str, Any]) -> dict[str, Fraction]:
    """What the pod's own containers may give the mesh: the pod-level request, else the container aggregate."""
    spec = pod.get("spec") or {}
    aggregate = container_aggregate(spec)
    pod_level = pod_level_requests(spec)
    return {n: pod_level.get(n, aggregate[n] or Fraction(0)) for n in NAMES}
