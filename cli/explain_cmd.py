"""``meshfit explain``: for each pod, what the engine would do and why, for a person to read.

Answers the questions on-call asks: is this pod meshed, which version did it
get and which rule decided, what did each rule say, and what happened to its
resources (before → after, with the accounting that quota and the extender see).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from typing import Any

from cli.documents import pods_of, read_documents
from cli.errors import CommandError
from cli.inject_cmd import add_runtime_class_option, inject_template
from cli.output import add_output_option, structured
from cli.options import add_namespace_options, add_policy_source_options, namespace_for, policy_for
from cli.runtime_classes import overheads_from
from policy.degradations import Degradation, check
from policy.inject import InjectionError, InjectionResult
from policy.model import Policy
from policy.quantity import Quantity
from policy.resources import RESOURCES, container_requests, container_limits
from policy.runtime import Setting, group_of, resolve, text_of, window_values

_VARIANT = {
    "pod-level": "pod-level (the pod cgroup stays at the original limit; the overcommit lives inside it)",
    "swap": "swap (no pod-level resources: the pod limit grows by the sidecars' sizes; the node carries it)",
    "none": "none",
    "besteffort": "BestEffort pod (nothing to donate)",
}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("explain", help="say, per pod, whether and how it would be injected, and why")
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="file, directory or - for stdin")
    add_policy_source_options(p)
    add_namespace_options(p)
    add_runtime_class_option(p)
    add_output_option(p, table="the explanation, for a person to read")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = policy_for(args)
    degradations = _degradations(args) if policy.runtime.parameters else []
    out: list[str] = [f"policy revision {policy.revision}, mode {policy.resources.mode}"]
    data: list[dict[str, Any]] = []
    documents = read_documents(args.filename)
    overheads = overheads_from((d.body for d in documents), args.runtime_class)
    failed: list[str] = []
    for doc in documents:
        for pod, ns, owner in pods_of(doc.body, args.namespace):
            meta = pod.get("metadata") or {}
            ns = namespace_for(args, ns).name
            title = f"{owner[0]} {ns}/{owner[1]} (pod template)" if owner else \
                f"Pod {ns}/{meta.get('name') or meta.get('generateName') or '<unnamed>'}"
            try:
                result, _ = inject_template(pod, ns, owner, policy, args, overheads)
            except InjectionError as exc:
                failed.append(f"{doc.label}: {exc}")
                continue
            settings = _runtime(policy, pod, ns, degradations) if result.injected else {}
            out.append("")
            out.extend(explain(title, pod, result))
            out.extend(_runtime_lines(settings))
            data.append({**explain_data(title, pod, result), **({"runtime": _runtime_data(settings)} if settings else {})})
    if args.output == "table":
        sys.stdout.write("\n".join(out) + "\n")
    else:
        sys.stdout.write(structured({"policyRevision": policy.revision, "mode": policy.resources.mode,
                                     "pods": data}, args.output))
    if failed:
        for line in failed[:-1]:
            print(f"meshfit explain: {line}", file=sys.stderr)
        raise CommandError(failed[-1])
    return 0


def _degradations(args: argparse.Namespace) -> list[Degradation]:
    """With a policy read from a cluster, that cluster's degradations (beside the policy); offline, none."""
    if not getattr(args, "policy_configmap", None):
        return []
    from cli.degrade_cmd import read_configmap
    from cli.fleet_source import open_client, run_async
    from policy.degradations import STORE_NAME, read_store

    namespace = args.policy_configmap.partition("/")[0]

    async def read() -> dict[str, Any] | None:
        async with open_client(args) as client:
            return await read_configmap(client, (namespace, STORE_NAME))

    return list(read_store((run_async(read) or {}).get("data")).records)


def _runtime(policy: Policy, pod: Mapping[str, Any], namespace: str,
             degradations: list[Degradation]) -> dict[str, dict[str, Setting]]:
    """The pod's runtime parameters and where each came from (the namespace's own policy is not read offline)."""
    if not policy.runtime.parameters:
        return {}
    now = dt.datetime.now(dt.UTC)
    group = group_of((pod.get("metadata") or {}).get("labels"), namespace, policy.versions.app_label,
                     policy.versions.zone_label)
    accepted = [d for d in (check(policy.runtime, d)[0] for d in degradations) if d is not None]
    return resolve(policy.runtime, group, now=now, degradations=accepted,
                   windows=window_values(policy.fleet.freeze_windows, now))


def _runtime_lines(settings: Mapping[str, Mapping[str, Setting]]) -> list[str]:
    if not settings:
        return []
    lines = ["  runtime parameters:"]
    for sidecar, params in settings.items():
        for name, s in params.items():
            lines.append(f"    {sidecar}.{name} = {text_of(s.value)}  ({s.describe()})")
            lines.extend(f"      also: {other}" for other in s.shadowed)
    return lines


def _runtime_data(settings: Mapping[str, Mapping[str, Setting]]) -> dict[str, Any]:
    return {sidecar: {name: {"value": s.value, "source": s.source, "origin": s.origin, "detail": s.detail,
                             "shadowed": list(s.shadowed)} for name, s in params.items()}
            for sidecar, params in settings.items()}



def _res(values: Mapping[str, Quantity | None]) -> str:
    parts = [f"{name} {values[name]}" for name in RESOURCES if values.get(name) is not None]
    return ", ".join(parts) or "-"


def explain(title: str, pod: dict[str, Any], result: InjectionResult) -> list[str]:
    lines = [title]
    verdict = "inject" if result.injected else "skip"
    lines.append(f"  decision: {verdict} — {result.reason}")
    for warning in result.warnings:
        lines.append(f"  warning:  {warning}")
    if not result.injected or result.record is None:
        return lines
    record = result.record
    lines.append(f"  mode:     {record.mode}, variant {_VARIANT.get(record.variant, record.variant)}")
    lines.append("  versions:")
    for choice in result.versions.values():
        rule = f" rule {choice.rule}" if choice.rule and choice.source != "pin" else ""
        lines.append(f"    {choice.sidecar} {choice.version} ({choice.source}{rule}) → {choice.image}")
        for v in choice.verdicts:
            if v.outcome != "other-sidecar":
                lines.append(f"      {v.type:<10} {v.rule:<28} {v.outcome}: {v.detail}")
        if choice.source == "baseline":
            lines.append(f"      {'baseline':<10} {'':<28} won: no rule above it applies")
    lines.append("  sidecars:")
    for name, size in result.sizes.items():
        lines.append(f"    {name:<12} requests {_res(size.requests):<28} limits {_res(size.limits)}")
    for note in result.notes:
        lines.append(f"    note: {note}")
    lines.append("  containers (requests / limits):")
    before = {c["name"]: c for k in ("initContainers", "containers") for c in (pod.get("spec") or {}).get(k) or ()}
    for kind in ("initContainers", "containers"):
        for c in result.pod["spec"].get(kind) or ():
            old = before.get(c["name"])
            now = f"{_res(container_requests(c))} / {_res(container_limits(c))}"
            was = f"{_res(container_requests(old))} / {_res(container_limits(old))}" if old else "(new)"
            mark = "   ← changed" if old and was != now else ""
            tag = " [sidecar]" if c.get("restartPolicy") == "Always" else " [init]" if kind == "initContainers" else ""
            lines.append(f"    {c['name'] + tag:<24} {was:<44} → {now}{mark}")
    limits_before = result.before_limits or {}
    lines.append(f"  pod R:    {_res(record.original)} → {_res(record.requests)}"
                 f"{'   (unchanged: quota and the scheduler see nothing new)' if record.original == record.requests else ''}")
    lines.append(f"  pod L:    {_res(limits_before) if limits_before else '-'} → {_res(record.limits)}")
    if record.overcommit:
        where = "inside the pod's limit" if record.exposure == "pod" else "on the node, beyond the pod's limit"
        lines.append(f"  overcommit: {_res(record.overcommit)} ({where})")
    if record.qos is not None:
        same = " (unchanged)" if record.qos[0] == record.qos[1] else "   ← changed"
        lines.append(f"  qos:      {record.qos[0]} → {record.qos[1]}{same}")
    if record.reduced:
        lines.append(f"  reduced:  the sidecars' requests cut by {_res(record.reduced)} to fit the pod's own budget")
    if record.leak:
        lines.append(f"  leak:     {_res(record.leak)}")
        for name, why in record.leak_reasons.items():
            lines.append(f"            {name}: {why}")
    else:
        lines.append("  leak:     none")
    if record.drift:
        lines.append(f"  drift:    {_res(record.drift)} taken from the app containers")
    return lines


def _quantities(values: Mapping[str, Quantity | None] | None) -> dict[str, str]:
    return {name: str(values[name]) for name in RESOURCES if values and values.get(name) is not None}


def explain_data(title: str, pod: dict[str, Any], result: InjectionResult) -> dict[str, Any]:
    """What :func:`explain` says, as data for ``-o json|yaml``: the same facts under stable keys."""
    data: dict[str, Any] = {"object": title, "decision": "inject" if result.injected else "skip",
                            "reason": result.reason, "warnings": list(result.warnings)}
    if not result.injected or result.record is None:
        return data
    record = result.record
    before = {c["name"]: c for k in ("initContainers", "containers") for c in (pod.get("spec") or {}).get(k) or ()}
    data.update({
        "mode": record.mode,
        "variant": record.variant,
        "versions": [{"sidecar": c.sidecar, "version": c.version, "image": c.image, "source": c.source,
                      "rule": c.rule, "verdicts": [{"type": v.type, "rule": v.rule, "outcome": v.outcome,
                                                    "detail": v.detail}
                                                   for v in c.verdicts if v.outcome != "other-sidecar"]}
                     for c in result.versions.values()],
        "sidecars": {name: {"requests": _quantities(size.requests), "limits": _quantities(size.limits)}
                     for name, size in result.sizes.items()},
        "notes": list(result.notes),
        "containers": [
            {"name": c["name"], "kind": kind,
             "sidecar": c.get("restartPolicy") == "Always",
             "before": None if c["name"] not in before else {
                 "requests": _quantities(container_requests(before[c["name"]])),
                 "limits": _quantities(container_limits(before[c["name"]]))},
             "after": {"requests": _quantities(container_requests(c)), "limits": _quantities(container_limits(c))}}
            for kind in ("initContainers", "containers") for c in result.pod["spec"].get(kind) or ()],
        "pod": {"requestsBefore": _quantities(record.original), "requestsAfter": _quantities(record.requests),
                "limitsBefore": _quantities(result.before_limits), "limitsAfter": _quantities(record.limits)},
        "overcommit": _quantities(record.overcommit),
        "exposure": record.exposure,
        "qos": list(record.qos) if record.qos is not None else None,
        "reduced": _quantities(record.reduced),
        "leak": _quantities(record.leak),
        "leakReasons": dict(record.leak_reasons),
        "drift": _quantities(record.drift),
    })
    return data
