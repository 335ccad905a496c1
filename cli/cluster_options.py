"""How every command that can read a cluster is told which one: ``--kubeconfig``, ``$KUBECONFIG``, ``--context``.

kubectl's habits, so a platform team's muscle memory carries over: an explicit
``--kubeconfig FILE``, else ``$KUBECONFIG``, else the pod's service account,
else ``~/.kube/config``; ``--context NAME`` picks a context of whichever
kubeconfig that is (:func:`kube.config.load_config`). A configuration that
cannot be loaded is one line that says how to give a good one.
"""

from __future__ import annotations

import argparse
from typing import Any

from cli.errors import CommandError

#: What to do when no cluster configuration loads; appended to the loader's own reason.
KUBECONFIG_HINT = "pass --kubeconfig FILE (and --context NAME), set $KUBECONFIG, or run in a pod with a service account"

KUBECONFIG_DEFAULT = "$KUBECONFIG, else in-cluster, else ~/.kube/config"


def add_cluster_options(parser: argparse.ArgumentParser, *, what: str = "the cluster to read",
                        kubeconfig_group: Any = None) -> None:
    """``--kubeconfig FILE`` and ``--context NAME``; ``kubeconfig_group`` puts the first in a mutually exclusive group."""
    (kubeconfig_group or parser).add_argument(
        "--kubeconfig", metavar="FILE", help=f"{what} (default: {KUBECONFIG_DEFAULT})")
    parser.add_argument("--context", metavar="NAME", help="the kubeconfig context to use (default: its current-context)")


def with_hint(message: str) -> str:
    """A server's start error, with how to give a cluster when that is what it lacked."""
    if "kubeconfig" in message or "not running in a cluster" in message:
        return f"{message} ({KUBECONFIG_HINT})"
    return message


def cluster_config(args: argparse.Namespace) -> Any:
    """The :class:`kube.config.ClusterConfig` the options name, or a :class:`CommandError` that says how to fix it."""
    from kube.config import ConfigError, load_config

    try:
        return load_config(args.kubeconfig, context=getattr(args, "context", None))
    except ConfigError as exc:
        raise CommandError(f"{exc} ({KUBECONFIG_HINT})") from None
