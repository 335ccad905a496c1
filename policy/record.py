"""The accounting record written on every injected pod (``meshfit.io/accounting``).

Lesson 7 of the field: 250,000 containers had to be re-accounted in place when
the model changed. So each pod carries, in compact JSON, the mode it was
injected under, what its owner's quota paid for (``A``), what each sidecar got,
the resulting effective requests and limits, and the overcommit with where its
exposure lands (``pod``: inside the pod cgroup; ``node``: beyond the pod's
original limit, so the node carries it). The extender sums ``node`` exposure
per node; ``meshfit leak`` sums ``leak`` per namespace.

Quantities are canonical Kubernetes strings, so the record is exact and
readable with ``kubectl get pod -o yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from policy.quantity import Quantity, QuantityError
from policy.resources import RESOURCES

RECORD_VERSION = 1
Exposure = Literal["pod", "node", "none"]


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """One container of a sidecar that has two (a hot-upgrade sidecar, :mod:`policy.slots`)."""

    container: str
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]


@dataclass(frozen=True, slots=True)
class SidecarRecord:
    """What one sidecar got: ``requests`` and ``limits`` are its totals over its containers.

    An ordinary or dormant sidecar is one container named after it, with exactly
    these resources. A hot-upgrade sidecar is two (``NAME``, ``NAME-alt``) whose
    requests split the one request a single sidecar would get (so ``R(pod)`` is the
    same) and which each carry the full limit (so the total limit is twice the
    size); ``slots`` keeps each container's share, in placement order.
    """

    name: str
    version: str
    requests: dict[str, Quantity]
    limits: dict[str, Quantity]
    slots: tuple[SlotRecord, ...] = ()

    @property
    def containers(self) -> tuple[str, ...]:
        """The names of the containers this sidecar owns."""
        return tuple(s.container for s in self.slots) if self.slots else (self.name,)

    def container_resources(self) -> dict[str, tuple[dict[str, Quantity], dict[str, Quantity]]]:
        """``{container: (requests, limits)}``: what each of the sidecar's containers was given."""
        if not self.slots:
            return {self.name: (self.requests, self.limits)}
        return {s.container: (s.requests, s.limits) for s in self.slots}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version, "requests": _fmt(self.requests),
                               "limits": _fmt(self.limits)}
        if self.slots:
            out["slots"] = [{"name": s.container, "requests": _fmt(s.requests), "limits": _fmt(s.limits)}
                            for s in self.slots]
        return out


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    mode: str
    variant: str
    original: dict[str, Quantity]
    sidecars: tuple[SidecarRecord, ...]
    requests: dict[str, Quantity]
    limits: dict[str, Quantity | None]
    overcommit: dict[str, Quantity]
    exposure: Exposure
    leak: dict[str, Quantity] = field(default_factory=dict)
    drift: dict[str, Quantity] = field(default_factory=dict)
    #: The QoS class before and after injection (equal unless the policy allowed a change).
    qos: tuple[str, str] | None = None
    #: How much the sidecars' requests were cut below their policy values to fit a small pod.
    reduced: dict[str, Quantity] = field(default_factory=dict)
    #: Per leaking resource, the policy rule that chose the leak.
    leak_reasons: dict[str, str] = field(default_factory=dict)
    #: Every one of the pod's own containers with its requests before injection (those it
    #: declares): with ``original`` this rebuilds the owner's pod exactly (``meshfit reaccount``).
    own_requests: dict[str, dict[str, Quantity]] = field(default_factory=dict)
    #: The owner's own ``spec.resources`` (cpu/memory requests and limits) before injection, if any:
    #: what the pod-level variant added to it is meshfit's.
    own_pod_level: dict[str, dict[str, Quantity]] = field(default_factory=dict)

    def node_exposure(self) -> dict[str, Quantity]:
        """What this pod may use beyond its quota on its node (zero unless exposure is ``node``)."""
        if self.exposure != "node":
            return {}
        return self.overcommit

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": RECORD_VERSION,
            "mode": self.mode,
            "variant": self.variant,
            "original": _fmt(self.original),
            "sidecars": [s.to_dict() for s in self.sidecars],
            "requests": _fmt(self.requests),
            "limits": _fmt(self.limits),
            "overcommit": _fmt(self.overcommit),
            "exposure": self.exposure,
        }
        if any(self.leak.values()):
            out["leak"] = _fmt(self.leak)
        if any(self.drift.values()):
            out["drift"] = _fmt(self.drift)
        if self.qos is not None:
            out["qos"] = {"before": self.qos[0], "after": self.qos[1]}
        if any(self.reduced.values()):
            out["reduced"] = _fmt(self.reduced)
        if self.own_pod_level:
            out["ownPodLevel"] = {part: _fmt(values) for part, values in self.own_pod_level.items()}
        if self.own_requests:
            out["ownRequests"] = {name: _fmt(values) for name, values in self.own_requests.items()}
        if self.leak_reasons:
            out["leakReason"] = {name: self.leak_reasons[name] for name in RESOURCES if name in self.leak_reasons}
        return out


def _fmt(values: Mapping[str, Quantity | None]) -> dict[str, str]:
    return {name: values[name].format() for name in RESOURCES if values.get(name) is not None}  # type: ignore[union-attr]


def _parse(values: Any) -> dict[str, Quantity]:
    if not isinstance(values, Mapping):
        raise ValueError("expected a mapping of quantities")
    return {name: Quantity.parse(values[name]) for name in RESOURCES if name in values}


def _limits(values: Mapping[str, Quantity]) -> dict[str, Quantity | None]:
    """Limits as the engine holds them: every resource present, ``None`` where unbounded."""
    return {name: values.get(name) for name in RESOURCES}


def _qos(value: Any) -> tuple[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("before"), str) or not isinstance(value.get("after"), str):
        raise ValueError("qos must be an object with before and after")
    return value["before"], value["after"]


def _sidecar(data: Any) -> SidecarRecord:
    slots = tuple(SlotRecord(str(s["name"]), _parse(s["requests"]), _parse(s["limits"])) for s in data.get("slots", ()))
    if len(slots) == 1 or len({s.container for s in slots}) != len(slots):
        raise ValueError(f"accounting record is invalid: sidecar {data['name']!r}: slots must name two or more "
                         "distinct containers")
    return SidecarRecord(str(data["name"]), str(data.get("version", "")), _parse(data["requests"]),
                         _parse(data["limits"]), slots)


def parse_record(text: str) -> AccountingRecord:
    """Read a record back; raises ``ValueError`` naming what is wrong.

    The extender treats a bad record as absent (and counts it): a pod edited by
    hand must not make a node unschedulable.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"accounting record is not JSON: {exc}") from None
    if not isinstance(data, Mapping) or data.get("v") != RECORD_VERSION:
        raise ValueError(f"accounting record must be an object with v={RECORD_VERSION}")
    try:
        exposure = data.get("exposure", "none")
        if exposure not in ("pod", "node", "none"):
            raise ValueError(f"unknown exposure {exposure!r}")
        return AccountingRecord(
            mode=str(data["mode"]),
            variant=str(data.get("variant", "")),
            original=_parse(data["original"]),
            sidecars=tuple(_sidecar(s) for s in data.get("sidecars", ())),
            requests=_parse(data["requests"]),
            limits=_limits(_parse(data.get("limits", {}))),
            overcommit=_parse(data.get("overcommit", {})),
            exposure=exposure,
            leak=_parse(data.get("leak", {})),
            drift=_parse(data.get("drift", {})),
            qos=_qos(data.get("qos")),
            reduced=_parse(data.get("reduced", {})),
            leak_reasons={str(k): str(v) for k, v in (data.get("leakReason") or {}).items()},
            own_requests={str(k): _parse(v) for k, v in (data.get("ownRequests") or {}).items()},
            own_pod_level={str(k): _parse(v) for k, v in (data.get("ownPodLevel") or {}).items()},
        )
    except (KeyError, TypeError, AttributeError, QuantityError) as exc:
        raise ValueError(f"accounting record is incomplete or invalid: {exc}") from None
