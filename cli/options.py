"""Options the offline commands share: which policy, which namespace, what it is labelled.

The policy is ``--policy FILE``, else the ConfigMap the cluster serves
(``--policy-configmap NS/NAME``, or ``--policy-from-cluster`` for the
installed one), else the shipped ``manifests/policy.yaml``. ``-n NS`` is the
namespace the command works in, as kubectl's: objects that name none are in
it, and an object that names another is refused rather than guessed about.
"""

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


def add_policy_option(parser: Any) -> None:
    parser.add_argument("--policy", metavar="FILE", default=None,
                        help=f"policy YAML or ConfigMap manifest (default: {DEFAULT_POLICY.relative_to(DEFAULT_POLICY.parents[1])})")


#: The global policy ConfigMap the manifests and the chart install.
INSTALLED_POLICY = "meshfit-system/meshfit-policy"


def add_policy_source_options(parser: argparse.ArgumentParser) -> None:
    """``--policy FILE`` | ``--policy-configmap NS/NAME`` | ``--policy-from-cluster``, and the cluster options."""
    from cli.cluster_options import add_cluster_options

    source = parser.add_mutually_exclusive_group()
    add_policy_option(source)
    source.add_argument("--policy-configmap", metavar="NS/NAME", default=None,
                        help="the policy a cluster serves, from this ConfigMap")
    source.add_argument("--policy-from-cluster", action="store_true",
                        help=f"the policy the cluster serves: --policy-configmap {INSTALLED_POLICY}")
    add_cluster_options(parser, what="with --policy-configmap or --policy-from-cluster: the cluster to read")


def policy_for(args: argparse.Namespace) -> Policy:
    """The policy an offline command works with: a file, the cluster's ConfigMap, or the shipped one."""
    if getattr(args, "policy_from_cluster", False):
        args.policy_configmap = INSTALLED_POLICY
    if not getattr(args, "policy_configmap", None):
        if getattr(args, "kubeconfig", None) or getattr(args, "context", None):
            raise CommandError("--kubeconfig and --context are for reading the policy from a cluster: "
                               "add --policy-from-cluster (or --policy-configmap NS/NAME)", exit_code=2)
        return load_policy(args)
    from cli.cluster_options import cluster_config
    from cli.fleet_source import run_async
    from kube.client import ApiClient

    config = cluster_config(args)

    async def read() -> Policy:
        async with ApiClient(config, timeout=30.0) as client:
            return await policy_from_args(client.get_json, args)

    return run_async(read)  # type: ignore[no-any-return]


def add_namespace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", metavar="NS", default=None,
                        help="the namespace to work in: objects that name none are in it, one that names another "
                             "is refused; with it, the namespace's labels are exactly --namespace-labels (without "
                             "it, every namespace counts as opted in)")
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
    object that names another namespace is refused, as ``kubectl apply -n``
    refuses it. Without ``--namespace`` every namespace is assumed opted in, as
    ``istioctl kube-inject`` does.
    """
    name = object_namespace or args.namespace or "default"
    if args.namespace is not None and name != args.namespace:
        raise CommandError(f"the object's namespace {name!r} does not match --namespace {args.namespace!r}: "
                           f"pass -n {name}, or leave -n out", exit_code=2)
    if args.namespace is not None:
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
    ref = args.policy_configmap
    ns, name = ref if isinstance(ref, tuple) else (str(ref).partition("/")[0], str(ref).partition("/")[2])
    if not ns or not name:
        raise CommandError(f"--policy-configmap: expected NAMESPACE/NAME, got {ref!r}")
    try:
        configmap = await get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
    except ApiError as exc:
        raise CommandError(f"reading the policy ConfigMap {ns}/{name}: {exc} (or pass --policy FILE)") from None
    try:
        return policy_from_configmap(configmap)
    except PolicyError as exc:
        raise CommandError(exc.one_line()) from None
