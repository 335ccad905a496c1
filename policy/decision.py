"""Whether a pod is to be injected, and the words that say why (or why not).

Kept apart from the resource arithmetic so that ``meshfit explain`` and the
webhook's ``warnings`` use exactly the sentence the engine decided on. A skip
that a person should notice (an emergency stop, conflicting opt-in markers, a
host-network pod in an opted-in namespace) carries a warning; a plain "not
opted in" does not, or every pod in every other namespace would warn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.annotations import STATUS
from policy.model import NamespacePolicy, Policy, SidecarSpec
from policy.slots import pod_volumes, slot_names


@dataclass(frozen=True, slots=True)
class Namespace:
    """What the engine knows of the pod's namespace.

    ``labels=None`` means "no cluster to ask": the namespace counts as opted in,
    as ``istioctl kube-inject`` assumes; excluded namespaces still never are.
    """

    name: str
    labels: Mapping[str, str] | None = None
    policy: NamespacePolicy | None = None


@dataclass(slots=True)
class Decision:
    inject: bool
    reason: str
    warnings: list[str] = field(default_factory=list)
    sidecars: tuple[SidecarSpec, ...] = ()
    #: A short, fixed code for a skip (metrics labels, alerts); the reason is for people.
    code: str = ""


def _override(meta: Mapping[str, Any], key: str, warnings: list[str]) -> str | None:
    """The pod's own opt-in/opt-out: annotation first, then label."""
    annotation = (meta.get("annotations") or {}).get(key)
    label = (meta.get("labels") or {}).get(key)
    if annotation is not None and label is not None and str(annotation).lower() != str(label).lower():
        warnings.append(f"annotation {key}={annotation} and label {key}={label} disagree; the annotation wins")
    value = annotation if annotation is not None else label
    if value is None:
        return None
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        warnings.append(f"{key}={value!r} is neither \"true\" nor \"false\"; ignored")
        return None
    return text


def decide(pod: Mapping[str, Any], namespace: Namespace, policy: Policy) -> Decision:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    rules = policy.injection
    warnings: list[str] = []

    def skip(code: str, reason: str, warn: bool = False) -> Decision:
        if warn:
            warnings.append(f"meshfit did not inject this pod: {reason}")
        return Decision(False, reason, warnings, code=code)

    if namespace.name in rules.excluded_namespaces:
        return skip("excluded_namespace", f"namespace {namespace.name} is never injected (injection.excludedNamespaces)")
    override = _override(meta, rules.pod_override_key, warnings)
    if override == "false":
        return skip("pod_opt_out", f"the pod opts out ({rules.pod_override_key}=false)")
    if override is None:
        if namespace.labels is not None and namespace.labels.get(rules.namespace_label) != rules.namespace_label_value:
            return skip(
                "namespace_not_opted_in",
                f"namespace {namespace.name} is not opted in "
                f"(label {rules.namespace_label}={rules.namespace_label_value})"
            )
    if policy.emergency.stop_injection:
        why = f": {policy.emergency.reason}" if policy.emergency.reason else ""
        return skip("emergency_stop", f"injection is stopped by the emergency switch{why}", warn=True)
    if STATUS in (meta.get("annotations") or {}):
        return skip("already_injected", f"already injected ({STATUS} is present)")
    if spec.get("hostNetwork") and rules.host_network == "skip":
        return skip("host_network", "the pod uses the host network (injection.hostNetwork: skip)", warn=True)

    overrides = namespace.policy.sidecars if namespace.policy else {}
    sidecars = tuple(s for s in policy.sidecars if overrides.get(s.name) is None or overrides[s.name].enabled)
    if not sidecars:
        return skip("sidecars_disabled", f"every sidecar is disabled for namespace {namespace.name}")

    taken = {c.get("name"): kind for kind in ("containers", "initContainers", "ephemeralContainers")
             for c in spec.get(kind) or () if isinstance(c, Mapping)}
    for sidecar in sidecars:
        for name in slot_names(sidecar):
            if name in taken:
                return skip("container_name_conflict", f"container name {name!r} is already used in {taken[name]}", warn=True)
    ports = {}
    for kind in ("containers", "initContainers"):
        for c in spec.get(kind) or ():
            for p in (c.get("ports") or ()) if isinstance(c, Mapping) else ():
                if isinstance(p, Mapping) and p.get("containerPort") is not None:
                    ports[p["containerPort"]] = c.get("name")
    for sidecar in sidecars:
        for p in sidecar.ports:
            if p.get("containerPort") in ports:
                return skip(
                    "port_conflict",
                    f"port {p['containerPort']} of {sidecar.name} is already used by container {ports[p['containerPort']]!r}",
                    warn=True,
                )
    volumes = {v.get("name"): v for v in spec.get("volumes") or () if isinstance(v, Mapping)}
    for sidecar in sidecars:
        for v in pod_volumes(sidecar):
            if v.get("name") in volumes and volumes[v.get("name")] != v:
                return skip("volume_conflict", f"volume {v.get('name')!r} of {sidecar.name} already exists with another definition", warn=True)
    why = "the pod opts in" if override == "true" else (
        f"namespace {namespace.name} is opted in" if namespace.labels is not None
        else f"namespace {namespace.name} is assumed opted in (no namespace labels given)"
    )
    return Decision(True, why, warnings, sidecars)
