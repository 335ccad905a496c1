"""``meshfit policy validate``: check a policy before it reaches the cluster.

The webhook refuses an invalid ConfigMap and keeps the last good policy; this
command lets CI refuse it earlier, with the same path-qualified messages. A
valid policy that still names the shipped placeholder images is a warning on
stderr (exit 0): it would inject sidecars no node can pull.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from cli.errors import CommandError
from cli.inputs import add_filename_option, deprecated_positional, read_texts
from cli.options import DEFAULT_POLICY
from cli.output import add_output_option, structured
from policy.fields import PolicyError
from policy.load import load_policy_file, parse_namespace_policy, parse_policy_text
from policy.model import NAMESPACE_POLICY_KIND, POLICY_KEY

#: The registry of the shipped policy's example images: not a registry anyone can pull from.
PLACEHOLDER_REGISTRY = "registry.example.com"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("policy", help="validate global or namespace policies")
    sub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    sub.required = True
    v = sub.add_parser("validate", help="validate a MeshPolicy or NamespacePolicy (YAML or ConfigMap manifest)",
                       description="Validate each policy (a MeshPolicy or NamespacePolicy, bare or in a ConfigMap "
                                   "manifest); every error is listed with its path. Exit 1 when any is invalid. "
                                   "A policy whose sidecar images are the shipped placeholders "
                                   f"({PLACEHOLDER_REGISTRY}) is valid, with a warning on stderr.")
    add_filename_option(v, what="policies", repeatable=True, required=False)
    v.add_argument("files", nargs="*", metavar="FILE", help=argparse.SUPPRESS)  # deprecated: use -f FILE
    v.add_argument("--global-policy", metavar="FILE", default=None,
                   help="the global policy that bounds namespace policies (default: the shipped one)")
    add_output_option(v)
    v.set_defaults(func=run_validate)


def _kind(text: str, source: str) -> tuple[str, object, str]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommandError(f"{source}: {exc}") from None
    namespace = ""
    if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
        namespace = str((doc.get("metadata") or {}).get("namespace", ""))
        try:
            doc = yaml.safe_load((doc.get("data") or {}).get(POLICY_KEY) or "")
        except yaml.YAMLError as exc:
            raise CommandError(f"{source}: data.{POLICY_KEY}: {exc}") from None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return str(kind), doc, namespace


def images(policy: Any) -> dict[str, list[str]]:
    """Every image each sidecar may run: its image, its per-version images, its empty slot image."""
    out: dict[str, list[str]] = {}
    for spec in policy.sidecars:
        versions = policy.versions.sidecars.get(spec.name)
        out[spec.name] = [spec.image, *(versions.images.values() if versions else ()),
                          *([spec.upgrade.empty_image] if spec.upgrade.empty_image else [])]
    return out


def placeholder_warning(sidecars: dict[str, list[str]]) -> str | None:
    """The warning for sidecars (name → images) still pointing at the placeholder registry, if any do."""
    named = [name for name, found in sidecars.items()
             if any(image.split("/", 1)[0] == PLACEHOLDER_REGISTRY for image in found)]
    if not named:
        return None
    return (f"sidecar(s) {', '.join(named)} use the placeholder image registry {PLACEHOLDER_REGISTRY}: no node can "
            "pull them; set each sidecar's image to your mesh's before applying (docs/install.md#choosing-sidecar-images)")


def run_validate(args: argparse.Namespace) -> int:
    sources = list(args.filename or []) + deprecated_positional(args.files, "FILE", "-f FILE", prog="meshfit policy validate")
    if not sources:
        raise CommandError("give the policies to validate: -f FILE|DIR|- (repeatable)", exit_code=2)
    global_path = Path(args.global_policy) if args.global_policy else DEFAULT_POLICY
    results: list[dict[str, Any]] = []
    for source, text in read_texts(sources):
        entry: dict[str, Any] = {"file": source, "valid": True, "errors": [], "warnings": []}
        try:
            kind, doc, namespace = _kind(text, source)
            if kind == NAMESPACE_POLICY_KIND:
                ns_policy = parse_namespace_policy(doc, load_policy_file(global_path), namespace, source=source)
                entry.update(kind=NAMESPACE_POLICY_KIND, revision=ns_policy.revision,
                             sidecarOverrides=len(ns_policy.sidecars))
                line = (f"{source}: valid NamespacePolicy (revision {ns_policy.revision}, "
                        f"{len(ns_policy.sidecars)} sidecar override(s))")
            else:
                policy = parse_policy_text(text, source=source)
                entry.update(kind="MeshPolicy", revision=policy.revision, mode=policy.resources.mode,
                             sidecars=[s.name for s in policy.sidecars])
                line = (f"{source}: valid MeshPolicy (revision {policy.revision}, mode {policy.resources.mode}, "
                        f"sidecars {', '.join(s.name for s in policy.sidecars)})")
                warning = placeholder_warning(images(policy))
                if warning:
                    entry["warnings"].append(warning)
                    print(f"warning: {source}: {warning}", file=sys.stderr)
            if args.output == "table":
                print(line)
        except PolicyError as exc:
            entry.update(valid=False, errors=[str(e) for e in exc.errors])
            if args.output == "table":
                print(f"{source}: {len(exc.errors)} error(s)")
                for error in exc.errors:
                    print(f"  {error}")
        results.append(entry)
    if args.output != "table":
        sys.stdout.write(structured(results, args.output))
    return 1 if any(not r["valid"] for r in results) else 0
