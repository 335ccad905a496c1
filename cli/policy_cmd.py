"""``meshfit policy validate``: check a policy before it reaches the cluster.

The webhook refuses an invalid ConfigMap and keeps the last good policy; this
command lets CI refuse it earlier, with the same path-qualified messages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from cli.errors import CommandError
from cli.options import DEFAULT_POLICY
from policy.fields import PolicyError
from policy.load import load_policy_file, parse_namespace_policy
from policy.model import NAMESPACE_POLICY_KIND, POLICY_KEY


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("policy", help="validate global or namespace policies")
    sub = p.add_subparsers(dest="policy_command", metavar="ACTION")
    sub.required = True
    v = sub.add_parser("validate", help="validate a MeshPolicy or NamespacePolicy (YAML or ConfigMap manifest)")
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument("--global-policy", metavar="FILE", default=None,
                   help="the global policy that bounds namespace policies (default: the shipped one)")
    v.set_defaults(func=run_validate)


def _kind(path: Path) -> tuple[str, object, str]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"{path}: {exc}") from None
    namespace = ""
    if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
        namespace = str((doc.get("metadata") or {}).get("namespace", ""))
        try:
            doc = yaml.safe_load((doc.get("data") or {}).get(POLICY_KEY) or "")
        except yaml.YAMLError as exc:
            raise CommandError(f"{path}: data.{POLICY_KEY}: {exc}") from None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return str(kind), doc, namespace


def run_validate(args: argparse.Namespace) -> int:
    failed = 0
    global_path = Path(args.global_policy) if args.global_policy else DEFAULT_POLICY
    for name in args.files:
        path = Path(name)
        try:
            kind, doc, namespace = _kind(path)
            if kind == NAMESPACE_POLICY_KIND:
                ns_policy = parse_namespace_policy(doc, load_policy_file(global_path), namespace, source=str(path))
                print(f"{path}: valid NamespacePolicy (revision {ns_policy.revision}, "
                      f"{len(ns_policy.sidecars)} sidecar override(s))")
            else:
                policy = load_policy_file(path)
                print(f"{path}: valid MeshPolicy (revision {policy.revision}, mode {policy.resources.mode}, "
                      f"sidecars {', '.join(s.name for s in policy.sidecars)})")
        except PolicyError as exc:
            failed += 1
            print(f"{path}: {len(exc.errors)} error(s)")
            for error in exc.errors:
                print(f"  {error}")
    return 1 if failed else 0
