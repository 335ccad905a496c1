"""``meshfit demo``: a local control plane, the webhook and the extender, and sample pods.

The first command of the README (``make demo`` runs it), so it must work on
a fresh machine with nothing but Go and this venv: it builds the control
plane when the binaries are missing and says so, and it cleans up after
itself unless asked to keep everything running.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

VARIANTS = ("swap", "pod-level", "auto")


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run meshfit against a local control plane and show what it did",
        description=(
            "Start etcd, kube-apiserver and kube-scheduler on 127.0.0.1 (building them first if needed), "
            "the webhook and the extender, a few nodes and the pods of manifests/examples/; print where each "
            "pod went, what was injected, resources before and after, and each node's requests, exposure and "
            "headroom; then stop everything."
        ),
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        default=_truthy(os.environ.get("KEEP")),
        help="keep everything running until Ctrl-C and print the kubeconfig (also: KEEP=1)",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="swap",
        help="the policy's resources.overcommitVariant (default swap: the sidecars' overcommit lands on the "
        "node, which the extender bounds; pod-level keeps it inside each pod's own limit)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from controlplane.demo import run as run_demo

    return run_demo(keep=bool(args.keep), variant=args.variant)
