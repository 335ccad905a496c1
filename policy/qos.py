"""A pod's QoS class, as Kubernetes computes it when the pod is created.

The QoS class decides the pod's OOM-kill order and whether the kubelet's
static CPU manager may give it exclusive cores, and Kubernetes fixes it in
``status.qosClass`` at creation. Injection must therefore never move it
silently (docs/design.md, "QoS"), and the engine checks every candidate
result with this function before it keeps it.

It follows ``k8s.io/kubernetes/pkg/apis/core/helper/qos.ComputePodQOS``
(1.36) on the defaulted pod:

* with pod-level ``spec.resources`` set, only the pod-level requests and
  limits count; Guaranteed needs non-zero limits for both cpu and memory and
  requests equal to them;
* otherwise every container and init container counts: Guaranteed needs each
  of them to have non-zero cpu and memory limits, and the *sums* of requests
  to equal the sums of limits;
* zero quantities are ignored; a pod with no non-zero request or limit is
  BestEffort; anything else is Burstable.

API defaulting is applied first, as the apiserver does before it computes the
class: a container's missing request takes its limit; pod-level requests follow
:func:`policy.resources.pod_level_requests`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from policy.resources import RESOURCES, pod_level_requests, q

QOSClass = Literal["Guaranteed", "Burstable", "BestEffort"]


def _positive(values: Mapping[str, Any] | None) -> dict[str, int]:
    """The non-zero cpu/memory quantities of a requests or limits map, in nano-units."""
    out: dict[str, int] = {}
    for name in RESOURCES:
        value = (values or {}).get(name)
        if value is not None:
            nanos = q(value).nanos
            if nanos > 0:
                out[name] = nanos
    return out


def _defaulted(resources: Mapping[str, Any] | None) -> tuple[dict[str, int], dict[str, int]]:
    """(requests, limits) after defaulting: a request missing for a limited resource is the limit."""
    resources = resources or {}
    limits = _positive(resources.get("limits"))
    raw_requests = resources.get("requests") or {}
    requests = _positive(raw_requests)
    for name, value in limits.items():
        if raw_requests.get(name) is None:
            requests[name] = value
    return requests, limits


def pod_qos(pod: Mapping[str, Any]) -> QOSClass:
    """The QoS class Kubernetes gives ``pod`` at creation."""
    spec = pod.get("spec") or {}
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    pod_level = spec.get("resources")
    if pod_level is not None:
        requests = {name: v.nanos for name, v in pod_level_requests(spec).items() if v.nanos > 0}
        limits = _positive(pod_level.get("limits"))
        if (pod_level.get("limits") or {}) and not all(name in limits for name in RESOURCES):
            guaranteed = False
    else:
        for kind in ("containers", "initContainers"):
            for container in spec.get(kind) or ():
                req, lim = _defaulted(container.get("resources"))
                for name, value in req.items():
                    requests[name] = requests.get(name, 0) + value
                for name, value in lim.items():
                    limits[name] = limits.get(name, 0) + value
                if not all(name in lim for name in RESOURCES):
                    guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def exclusive_cpu_candidate(pod: Mapping[str, Any]) -> bool:
    """A Guaranteed pod with a whole-core CPU request: the static CPU manager would pin its containers.

    After injection such a pod no longer gets exclusive cores: the donating app
    containers' requests fall below their limits, and a pod with pod-level
    resources is left in the shared pool unless the kubelet runs the alpha
    ``PodLevelResourceManagers`` gate (1.36).
    """
    if pod_qos(pod) != "Guaranteed":
        return False
    spec = pod.get("spec") or {}
    for container in spec.get("containers") or ():
        requests, _ = _defaulted(container.get("resources"))
        cpu = requests.get("cpu", 0)
        if cpu and cpu % 10**9 == 0:
            return True
    return False
