"""The policy, as frozen dataclasses: what the webhook, the extender and the CLI obey.

A ``Policy`` is built only by :mod:`policy.load`, which validates every field,
so code holding one never re-checks it. Frozen, because one policy object is
shared by every in-flight admission request while a watch may swap in the next.
Kubernetes fragments a sidecar carries verbatim (ports, env, probes, volumes)
are stored as tuples of dicts and deep-copied by the injector before use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal

from policy.annotations import DEFAULT_INJECT_KEY
from policy.freeze import FreezeWindow
from policy.quantity import Quantity
from policy.runtime import RuntimePolicy, Value

Mode = Literal["overcommit", "additive", "carve"]
Variant = Literal["auto", "pod-level", "swap"]
BestEffort = Literal["requests", "besteffort", "skip"]
SmallPods = Literal["shrink", "skip", "leak"]
QOSChange = Literal["skip", "allow"]
ExclusiveCpuPods = Literal["inject", "skip"]
MissedInjections = Literal["report", "repair"]
RuleType = Literal["bugfix", "experiment", "app", "zone"]

API_VERSION = "meshfit.io/v1alpha1"
POLICY_KIND = "MeshPolicy"
NAMESPACE_POLICY_KIND = "NamespacePolicy"
POLICY_KEY = "policy.yaml"
NAMESPACE_POLICY_CONFIGMAP = "meshfit-policy"

#: Version rules win in this order, whatever their order in the file; within one
#: type the first matching rule wins. Pod pins, when allowed, beat them all.
RULE_PRECEDENCE: tuple[RuleType, ...] = ("bugfix", "experiment", "app", "zone")


@dataclass(frozen=True, slots=True)
class Sizing:
    """How big a sidecar is (its limit ``S``), from the app's allocation or fixed."""

    mode: Literal["ratio", "fixed"] = "ratio"
    ratio: dict[str, Fraction] = field(default_factory=lambda: {"cpu": Fraction(1, 4), "memory": Fraction(1, 16)})
    min: dict[str, Quantity] = field(default_factory=dict)
    max: dict[str, Quantity] = field(default_factory=dict)
    fixed: dict[str, Quantity] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpgradeSpec:
    """Slots placed at pod creation so the fleet controller can change the sidecar in place.

    The controller may change a running pod's images but never its resources'
    sum, so every slot it will ever use is placed (and accounted) by the webhook:

    * ``hot``: the sidecar gets two containers, ``NAME`` (live, on the version's
      image) and ``NAME-alt`` (idle, on ``empty_image``); an upgrade starts the
      next version in the idle slot, hands the traffic over, and idles the old one;
    * ``dormant``: the sidecar's slot(s) run ``empty_image`` until the controller
      activates it in place (an image change), with the size an active one gets.
    """

    hot: bool = False
    dormant: bool = False
    #: The image an idle or dormant slot runs; required when ``hot`` or ``dormant``.
    empty_image: str | None = None

    @property
    def slotted(self) -> bool:
        """Whether the sidecar runs in slots (hot, dormant or both): env, annotations, no probes."""
        return self.hot or self.dormant


@dataclass(frozen=True, slots=True)
class SidecarSpec:
    name: str
    image: str
    placement: Literal["native", "legacy"] = "native"
    position: Literal["first", "last"] = "first"
    sizing: Sizing = field(default_factory=Sizing)
    cpu_request_floor: Quantity = field(default_factory=lambda: Quantity.parse("50m"))
    ports: tuple[dict[str, Any], ...] = ()
    env: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    startup_probe: dict[str, Any] | None = None
    readiness_probe: dict[str, Any] | None = None
    liveness_probe: dict[str, Any] | None = None
    security_context: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    image_pull_policy: str = "IfNotPresent"
    app_env: tuple[dict[str, Any], ...] = ()
    upgrade: UpgradeSpec = field(default_factory=UpgradeSpec)


@dataclass(frozen=True, slots=True)
class InjectionPolicy:
    namespace_label: str = DEFAULT_INJECT_KEY
    namespace_label_value: str = "enabled"
    pod_override_key: str = DEFAULT_INJECT_KEY
    excluded_namespaces: tuple[str, ...] = ("kube-system", "kube-public", "kube-node-lease", "meshfit-system")
    host_network: Literal["skip", "inject"] = "skip"
    fail_closed: bool = False
    scheduler_name: str = ""


@dataclass(frozen=True, slots=True)
class ResourcePolicy:
    mode: Mode = "overcommit"
    variant: Variant = "auto"
    #: Whether the cluster has PodLevelResources (on by default since 1.34); ``auto`` follows it.
    pod_level_resources: bool = True
    #: The fraction of a sidecar's size ``S`` that becomes its request ``s``.
    guaranteed: dict[str, Fraction] = field(default_factory=lambda: {"cpu": Fraction(1, 2), "memory": Fraction(1)})
    #: What a pod gets that requests (``A_r > 0``) less than its sidecars' requests:
    #: ``shrink`` cuts the sidecars' requests to what the pod can donate (``R`` unchanged),
    #: ``skip`` leaves it unmeshed, ``leak`` keeps the requests and records ``R > A``.
    small_pods: SmallPods = "shrink"
    #: A result whose QoS class differs from the original: ``skip`` it, or ``allow`` it (recorded, warned).
    qos_change: QOSChange = "skip"
    #: Guaranteed pods with whole-core CPU requests lose the static CPU manager's exclusive
    #: cores when meshed (docs/policy.md): ``inject`` them anyway (noted), or ``skip`` them.
    exclusive_cpu_pods: ExclusiveCpuPods = "inject"
    best_effort: BestEffort = "requests"

    def effective_variant(self) -> Literal["pod-level", "swap"]:
        if self.variant == "auto":
            return "pod-level" if self.pod_level_resources else "swap"
        return self.variant


@dataclass(frozen=True, slots=True)
class VersionRule:
    name: str
    type: RuleType
    version: str
    sidecar: str | None = None
    apps: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    percent: Fraction = Fraction(0)
    expires: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SidecarVersions:
    baseline: str
    allowed: tuple[str, ...]
    images: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    sidecars: dict[str, SidecarVersions] = field(default_factory=dict)
    rules: tuple[VersionRule, ...] = ()
    allow_pod_pin: bool = True
    app_label: str = "app.kubernetes.io/name"
    zone_label: str = "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class Emergency:
    stop_injection: bool = False
    extender_observe_only: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Scheduling:
    """Bounds and weights for the extender (see docs/scheduling.md)."""

    #: Node-level exposure may reach at most this fraction of allocatable.
    exposure_ceiling: dict[str, Fraction] = field(default_factory=lambda: {"cpu": Fraction(1, 4), "memory": Fraction(1, 10)})
    #: How much each resource's headroom counts in the score.
    weights: dict[str, int] = field(default_factory=lambda: {"cpu": 1, "memory": 1})
    #: How heavily exposure counts against headroom, relative to requests.
    exposure_weight: Fraction = Fraction(1)


@dataclass(frozen=True, slots=True)
class FleetPolicy:
    """How the fleet controller changes running pods (``meshfit controller``)."""

    #: A failed in-place change is rolled back to what the pod had.
    rollback: bool = True
    #: How long one in-place change may take before it counts as failed (1..86400).
    timeout_seconds: int = 300
    #: Restarts of a changed container beyond the one the change causes that mean a crash loop (0..100).
    crash_restarts: int = 2
    #: The lowest kubelet (``MAJOR.MINOR``) that restarts a native sidecar alone when its
    #: image changes (kubernetes PR #126525, first released in 1.32); older kubelets leave
    #: the old image running until the pod restarts, so the controller recreates instead.
    sidecar_image_change_kubelet: str = "1.32"
    #: Pods the webhook would inject that carry no record (admitted while it was down):
    #: ``report`` them (an Event on the pod, a metric), or also ``repair`` them by restarting
    #: their workload, as ``kubectl rollout restart`` does (never a bare pod).
    missed_injections: MissedInjections = "report"
    #: Pods injected before the policy declared their sidecars' runtime parameters mount none: ``report``
    #: them, or also ``repair`` them by restarting their workload (the same bounds as missed injections).
    runtime_volumes: MissedInjections = "report"
    #: The most workloads one inspection run restarts to repair missed injections (0..1000).
    repairs_per_run: int = 10
    #: Spans of wall-clock time in which no ``SidecarRollout`` starts a change (:mod:`policy.freeze`).
    freeze_windows: tuple[FreezeWindow, ...] = ()

    def sidecar_image_change_minor(self) -> tuple[int, int]:
        """``sidecar_image_change_kubelet`` as ``(major, minor)``, for comparing kubelet versions."""
        major, minor = self.sidecar_image_change_kubelet.split(".")
        return int(major), int(minor)


@dataclass(frozen=True, slots=True)
class Policy:
    revision: str
    sidecars: tuple[SidecarSpec, ...]
    injection: InjectionPolicy = field(default_factory=InjectionPolicy)
    resources: ResourcePolicy = field(default_factory=ResourcePolicy)
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    emergency: Emergency = field(default_factory=Emergency)
    scheduling: Scheduling = field(default_factory=Scheduling)
    fleet: FleetPolicy = field(default_factory=FleetPolicy)
    #: Runtime parameters of the sidecars (:mod:`policy.runtime`); empty: none declared, nothing mounted.
    runtime: RuntimePolicy = field(default_factory=RuntimePolicy)

    def sidecar(self, name: str) -> SidecarSpec | None:
        for spec in self.sidecars:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True, slots=True)
class SidecarOverride:
    """What a namespace may change about one sidecar, nothing more."""

    enabled: bool = True
    sizing: Sizing | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    namespace: str
    revision: str
    sidecars: dict[str, SidecarOverride] = field(default_factory=dict)
    #: The namespace's own runtime values: sidecar → parameter → value (only ``namespaceOverride`` ones).
    runtime: dict[str, dict[str, Value]] = field(default_factory=dict)
