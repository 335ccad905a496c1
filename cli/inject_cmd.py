"""``meshfit inject``: the offline injector, like ``istioctl kube-inject``.

Runs the very engine the webhook runs, so what it prints is what the cluster
will store for the same pod in the same namespace.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.documents import dump, read_documents, transform
from cli.errors import CommandError
from cli.options import add_namespace_options, add_policy_option, load_policy, namespace_for
from policy.inject import InjectionError, inject

OWNER_KEY = "ownerReferences"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("inject", help="inject sidecars into Pods and workload manifests",
                              description="Read Pods and workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, "
                                          "Job, CronJob, List), inject into pods and pod templates, pass everything "
                                          "else through, write the stream to stdout.")
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="file, directory or - for stdin")
    add_policy_option(p)
    add_namespace_options(p)
    p.add_argument("-o", "--output", choices=("yaml", "json"), default="yaml")
    p.set_defaults(func=run)


def inject_template(pod: dict[str, Any], namespace: str, owner: tuple[str, str] | None, policy: Any,
                    args: argparse.Namespace) -> Any:
    """Inject one pod or template; a template gets its workload as owner for the duration."""
    subject = pod
    if owner is not None and not (pod.get("metadata") or {}).get(OWNER_KEY):
        meta = {**(pod.get("metadata") or {}), OWNER_KEY: [{"kind": owner[0], "name": owner[1], "controller": True}]}
        subject = {**pod, "metadata": meta}
    result = inject(subject, namespace_for(args, namespace), policy)
    if subject is not pod:
        meta = dict(result.pod["metadata"])
        meta.pop(OWNER_KEY, None)
        return result, {**result.pod, "metadata": meta}
    return result, result.pod


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args)
    documents = read_documents(args.filename)
    out = []
    for doc in documents:
        def on_pod(pod: dict[str, Any], ns: str | None, owner: tuple[str, str] | None) -> dict[str, Any]:
            result, new = inject_template(pod, ns or "", owner, policy, args)
            for warning in result.warnings:
                print(f"warning: {doc.label}: {warning}", file=sys.stderr)
            return new

        try:
            out.append(transform(doc.body, on_pod, args.namespace))
        except InjectionError as exc:
            raise CommandError(f"{doc.label}: {exc}") from None
    sys.stdout.write(dump(out, args.output))
    return 0
