"""How big each sidecar is: its size ``S`` (the limit) and guaranteed request ``s``.

Ratio sizing follows the app: a sidecar proxies the app's traffic, so a pod
with four times the CPU gets a mesh with four times the CPU (lesson 1: fixed
small sidecars on high-traffic apps OOMed). The base is the pod's effective
limit where it has one — what the app may really use — else its request.
Clamps keep tiny pods' meshes functional and giant pods' meshes sane.

Every sidecar gets a CPU request of at least the policy floor and a CPU limit
(lesson 4: a share-only sidecar starved and caused response-time jitter).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from policy.annotations import SIZE_PREFIX
from policy.model import SidecarSpec, Sizing
from policy.quantity import SIZE_GRANULE, ZERO, Quantity, QuantityError
from policy.resources import RESOURCES, family


@dataclass(frozen=True, slots=True)
class SidecarSize:
    limits: dict[str, Quantity]
    requests: dict[str, Quantity]
    notes: tuple[str, ...] = ()


def parse_size_annotation(value: str) -> dict[str, Quantity]:
    """``cpu=500m,memory=256Mi`` → quantities; raises ``ValueError`` naming the bad part."""
    out: dict[str, Quantity] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        name, sep, text = part.partition("=")
        name = name.strip()
        if not sep or name not in RESOURCES:
            raise ValueError(f"expected cpu=<quantity>,memory=<quantity>, got {part!r}")
        try:
            out[name] = Quantity.parse(text.strip())
        except QuantityError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return out


def size_sidecar(
    spec: SidecarSpec,
    sizing: Sizing,
    base: Mapping[str, Quantity],
    guaranteed: Mapping[str, Fraction],
    annotations: Mapping[str, str],
    cap: Mapping[str, Quantity | None],
) -> SidecarSize:
    """Size one sidecar.

    ``base`` is the app's allocation per resource; ``cap`` the most the sidecar
    may be given (the pod's own limit in the pod-level variant, where a
    container limit above the pod limit is invalid), ``None`` for no cap.
    """
    notes: list[str] = []
    override: dict[str, Quantity] = {}
    raw = annotations.get(SIZE_PREFIX + spec.name)
    if isinstance(raw, str):
        try:
            override = parse_size_annotation(raw)
        except ValueError as exc:
            notes.append(f"{SIZE_PREFIX}{spec.name} ignored: {exc}")
    limits: dict[str, Quantity] = {}
    requests: dict[str, Quantity] = {}
    for name in RESOURCES:
        granule = SIZE_GRANULE[name]
        if name in override:
            size = override[name].round_up(granule)
        elif sizing.mode == "fixed":
            size = sizing.fixed[name]
        else:
            size = base[name].scale(sizing.ratio[name], granule)
        low, high = sizing.min.get(name), sizing.max.get(name)
        if low is not None and size < low:
            notes.append(f"{name}: {_how(name, override, sizing, base)} = {size}, raised to the minimum {low}")
            size = low
        if high is not None and size > high:
            notes.append(f"{name}: {_how(name, override, sizing, base)} = {size}, lowered to the maximum {high}")
            size = high
        if name == "cpu" and size < spec.cpu_request_floor:
            notes.append(f"cpu: {size} raised to the request floor {spec.cpu_request_floor}")
            size = spec.cpu_request_floor
        limit_cap = cap.get(name)
        if limit_cap is not None and size > limit_cap:
            notes.append(f"{name}: {size} lowered to the pod's limit {limit_cap}")
            size = limit_cap
        if size.nanos <= 0:
            notes.append(f"{name}: size is zero, the sidecar gets no {name} request or limit")
            continue
        request = size.scale(guaranteed[name]).round_down(granule) if guaranteed[name] != 1 else size
        if name == "cpu" and request < spec.cpu_request_floor:
            request = min(spec.cpu_request_floor, size)  # never above the limit, when a cap put it under the floor
        limits[name] = size.with_format(family(name))
        requests[name] = request.with_format(family(name))
    return SidecarSize(limits=limits, requests=requests, notes=tuple(notes))


def _how(name: str, override: Mapping[str, Quantity], sizing: Sizing, base: Mapping[str, Quantity]) -> str:
    """Where the unclamped size came from, for a note (written only when a clamp makes one)."""
    if name in override:
        return f"pod annotation asks {override[name]}"
    if sizing.mode == "fixed":
        return f"fixed {sizing.fixed[name]}"
    return f"{sizing.ratio[name]} of {base[name]}"


def app_allocation(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity | None]) -> dict[str, Quantity]:
    """The base ratio sizing scales: the pod's limit where bounded, else its request."""
    return {name: (limits.get(name) or requests.get(name) or ZERO) for name in RESOURCES}
