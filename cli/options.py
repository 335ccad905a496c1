"""Options the offline commands share: which policy, which namespace, what it is labelled."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import meshfit_data
from cli.errors import CommandError
from policy.decision import Namespace
from policy.fields import PolicyError
from policy.load import load_policy_file
from policy.model import Policy

#: The default policy ships with the project; found from the repository or an installed tree.
DEFAULT_POLICY = meshfit_data.path("manifests", "policy.yaml")


def add_policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", metavar="FILE", default=None,
                        help=f"policy YAML or ConfigMap manifest (default: {DEFAULT_POLICY.relative_to(DEFAULT_POLICY.parents[1])})")


def add_namespace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", "-n", metavar="NS", default=None,
                        help="namespace of objects that name none; with it, the namespace's labels are "
                             "exactly --namespace-labels (without it, every namespace counts as opted in)")
    parser.add_argument("--namespace-labels", metavar="K=V,...", default=None,
                        help="labels of the --namespace namespace, e.g. meshfit.io/inject=enabled")


def load_policy(args: argparse.Namespace) -> Policy:
    path = Path(args.policy) if args.policy else DEFAULT_POLICY
    if not path.exists():
        raise CommandError(f"policy file {path} does not exist")
    try:
        return load_policy_file(path)
    except PolicyError as exc:
        raise CommandError(exc.one_line()) from None


def parse_labels(text: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CommandError(f"--namespace-labels: expected key=value, got {part!r}")
        labels[key.strip()] = value.strip()
    return labels


def namespace_for(args: argparse.Namespace, object_namespace: str | None) -> Namespace:
    """The namespace context of one object.

    With ``--namespace`` the user told us the labels, so opt-in is checked; an
    object in another namespace, or no ``--namespace`` at all, is assumed opted
    in, as ``istioctl kube-inject`` does.
    """
    name = object_namespace or args.namespace or "default"
    if args.namespace is not None and name == args.namespace:
        return Namespace(name, parse_labels(args.namespace_labels))
    if args.namespace_labels and args.namespace is None:
        raise CommandError("--namespace-labels needs --namespace")
    return Namespace(name, None)


async def policy_from_args(get: Callable[[str], Awaitable[dict[str, Any]]], args: argparse.Namespace) -> Policy:
    """The policy a cluster command works with: ``--policy FILE``, else the ConfigMap ``--policy-configmap NS/NAME``.

    ``get`` reads one API path (the caller's client, rate-limited or not).
    """
    from kube.client import ApiError
    from policy.load import policy_from_configmap

    if args.policy:
        return load_policy(args)
    ns, _, name = args.policy_configmap.partition("/")
    if not ns or not name:
        raise CommandError(f"--policy-configmap: expected NAMESPACE/NAME, got {args.policy_configmap!r}")
    try:
        configmap = await get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
    except ApiError as exc:
        raise CommandError(f"reading the policy ConfigMap {ns}/{name}: {exc} (or pass --policy FILE)") from None
    try:
        return policy_from_configmap(configmap)
    except PolicyError as exc:
        raise CommandError(exc.one_line()) from None
