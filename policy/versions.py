"""Which version of each sidecar a pod gets, and why — one precedence, explainable.

Global, per-app, per-zone, experiment and bugfix versions scattered over
config items broke the baseline (docs/design.md#lesson-8). Here one policy holds
the baseline and ordered rules, and a fixed precedence decides:

    pod pin (if allowed) > bugfix > experiment > namespace pin > app > zone > baseline

Within one rule type the first matching rule in file order wins. Every rule
considered gets a verdict (won, no match, expired, shadowed, not allowed), so
``meshfit explain`` can say why each rule did or did not apply.

Experiments pick a stable ``percent`` of *workloads*, not pods: the hash is of
the owning Deployment/StatefulSet/..., so a rollout never mixes versions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from typing import Any

from policy.annotations import VERSION_PIN
from policy.model import RULE_PRECEDENCE, SidecarSpec, SidecarVersions, VersionPolicy, VersionRule

_CRONJOB_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<ts>[0-9]{8,})$")


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """What one version rule did for one sidecar of one pod, and why (for ``meshfit explain``)."""

    rule: str
    type: str
    outcome: str  # won | no-match | expired | shadowed | not-allowed | other-sidecar
    detail: str


@dataclass(frozen=True, slots=True)
class VersionChoice:
    """The version a sidecar gets, the rule that chose it, and every rule's verdict."""

    sidecar: str
    version: str
    image: str
    source: str  # pin | bugfix | experiment | namespace | app | zone | baseline
    rule: str | None
    verdicts: tuple[RuleVerdict, ...]
    warnings: tuple[str, ...] = ()
    #: When the winning rule expires, so the same pod then gets another answer (``None``: never).
    expires: datetime | None = None


def workload_of(pod: Mapping[str, Any], namespace: str) -> str:
    """``namespace/Kind/name`` of the workload that owns the pod.

    A ReplicaSet created by a Deployment is named ``<deployment>-<pod-template-hash>``
    and a Job created by a CronJob ``<cronjob>-<scheduled minute>``; both are
    folded to the owner people think of, so every rollout lands in one bucket.
    """
    meta = pod.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if ref is None:
        labels = meta.get("labels") or {}
        name = labels.get("app.kubernetes.io/name") or labels.get("app") or meta.get("generateName") or meta.get("name") or ""
        return f"{namespace}/Pod/{name}"
    kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        kind, name = "Deployment", name[: -len(template_hash) - 1]
    elif kind == "Job" and (match := _CRONJOB_SUFFIX.match(name)):
        kind, name = "CronJob", match["base"]
    return f"{namespace}/{kind}/{name}"


@lru_cache(maxsize=4096)
def experiment_bucket(rule_name: str, workload: str) -> Fraction:
    """A stable position in [0, 100) for this workload in this experiment.

    Salted with the rule name so that two experiments do not always pick the
    same unlucky workloads. Cached: every pod of a workload asks the same.
    """
    digest = hashlib.sha256(f"{rule_name}\x00{workload}".encode()).digest()
    return Fraction(int.from_bytes(digest[:8], "big") % 1_000_000, 10_000)


def parse_pins(value: str) -> tuple[dict[str, str], str | None]:
    """``"1.8.1"`` pins every sidecar that allows it; ``"rpc-mesh=1.8.1,msg-mesh=2.3.0"`` pins each."""
    named: dict[str, str] = {}
    bare: str | None = None
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if "=" in part:
            name, version = (s.strip() for s in part.split("=", 1))
            named[name] = version
        else:
            bare = part
    return named, bare


def resolve_version(
    pod: Mapping[str, Any],
    namespace: str,
    spec: SidecarSpec,
    versions: VersionPolicy,
    namespace_pin: str | None,
    now: datetime,
) -> VersionChoice:
    """The version of ``spec`` for ``pod`` under the one precedence (see the module docstring)."""
    sidecar = versions.sidecars[spec.name]
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    app = labels.get(versions.app_label) or labels.get("app") or ""
    zone = labels.get(versions.zone_label) or ""
    verdicts: list[RuleVerdict] = []
    warnings: list[str] = []
    winner: tuple[str, str, str | None] | None = None  # (version, source, rule)
    winner_expires: datetime | None = None

    def allowed(version: str) -> bool:
        return version in sidecar.allowed

    # 1. pod pin
    pin_value = annotations.get(VERSION_PIN)
    if isinstance(pin_value, str) and pin_value.strip():
        named, bare = parse_pins(pin_value)
        pin = named.get(spec.name, bare)
        if pin is not None:
            if not versions.allow_pod_pin:
                warnings.append(f"{spec.name}: pod pin {pin!r} ignored: the policy does not allow pod pins")
                verdicts.append(RuleVerdict(VERSION_PIN, "pin", "not-allowed", "pod pins are disabled by policy"))
            elif not allowed(pin):
                warnings.append(f"{spec.name}: pod pin {pin!r} ignored: not an allowed version ({', '.join(sidecar.allowed)})")
                verdicts.append(RuleVerdict(VERSION_PIN, "pin", "not-allowed", f"{pin} is not in the allowed set"))
            else:
                winner = (pin, "pin", VERSION_PIN)
                verdicts.append(RuleVerdict(VERSION_PIN, "pin", "won", f"the pod pins {spec.name}={pin}"))

    # 2. rules by precedence, the namespace pin slotted between experiment and app
    by_type: dict[str, list[VersionRule]] = {t: [] for t in RULE_PRECEDENCE}
    for rule in versions.rules:
        by_type[rule.type].append(rule)
    workload = workload_of(pod, namespace)
    for kind in RULE_PRECEDENCE:
        if kind == "app" and namespace_pin is not None:
            if winner is not None:
                verdicts.append(RuleVerdict("namespace", "namespace", "shadowed", f"pins {namespace_pin}, but {winner[1]} won first"))
            elif allowed(namespace_pin):
                winner = (namespace_pin, "namespace", f"{namespace}/meshfit-policy")
                verdicts.append(RuleVerdict("namespace", "namespace", "won", f"namespace {namespace} pins {namespace_pin}"))
        for rule in by_type[kind]:
            verdict = _judge(rule, spec.name, allowed, namespace, app, zone, workload, now)
            if verdict.outcome == "matched":
                if winner is None:
                    winner = (rule.version, rule.type, rule.name)
                    winner_expires = rule.expires
                    verdict = RuleVerdict(rule.name, rule.type, "won", verdict.detail)
                else:
                    verdict = RuleVerdict(rule.name, rule.type, "shadowed", f"matched, but {winner[1]} rule {winner[2]} won first")
            verdicts.append(verdict)

    version, source, rule_name = winner or (sidecar.baseline, "baseline", None)
    image = image_of(spec, sidecar, version)
    return VersionChoice(spec.name, version, image, source, rule_name, tuple(verdicts), tuple(warnings),
                         winner_expires)


def _judge(rule: VersionRule, sidecar: str, allowed: Any, namespace: str, app: str, zone: str,
           workload: str, now: datetime) -> RuleVerdict:
    def verdict(outcome: str, detail: str) -> RuleVerdict:
        return RuleVerdict(rule.name, rule.type, outcome, detail)

    if rule.sidecar is not None and rule.sidecar != sidecar:
        return verdict("other-sidecar", f"applies to {rule.sidecar}")
    if rule.expires is not None and rule.expires <= now:
        return verdict("expired", f"expired at {rule.expires.isoformat()}")
    if not allowed(rule.version):
        return verdict("not-allowed", f"{rule.version} is not an allowed version of {sidecar}")
    if rule.namespaces and namespace not in rule.namespaces:
        return verdict("no-match", f"namespace {namespace} not in {list(rule.namespaces)}")
    if rule.apps and app not in rule.apps:
        return verdict("no-match", f"app {app or '(no app label)'} not in {list(rule.apps)}")
    if rule.zones and zone not in rule.zones:
        return verdict("no-match", f"zone {zone or '(no zone label)'} not in {list(rule.zones)}")
    if rule.type == "experiment":
        bucket = experiment_bucket(rule.name, workload)
        # shown as a decimal: a percent of 12.5 is a Fraction, which would print as "25/2"
        share = f"{float(rule.percent):g}%"
        if bucket >= rule.percent:
            return verdict("no-match", f"workload {workload} is at {float(bucket):.2f}, outside the first {share}")
        return verdict("matched", f"workload {workload} is at {float(bucket):.2f}, inside the first {share} → {rule.version}")
    why = rule.reason or "matched"
    return verdict("matched", f"{why} → {rule.version}")


def image_of(spec: SidecarSpec, versions: SidecarVersions, version: str) -> str:
    """The image of ``version`` of a sidecar: the policy's ``images`` entry, else ``image:version``.

    The webhook injects it and the fleet controller upgrades to it, so both read it here.
    """
    return versions.images.get(version) or f"{spec.image}:{version}"

