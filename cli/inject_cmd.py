"""``meshfit inject``: the offline injector, like ``istioctl kube-inject``.

Runs the very engine the webhook runs, so what it prints is what the cluster
will store for the same pod in the same namespace.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from cli.documents import dump, read_documents, transform
from cli.errors import CommandError
from cli.fleet_source import table
from cli.output import add_output_option
from cli.options import add_namespace_options, add_policy_source_options, namespace_for, policy_for
from cli.runtime_classes import overheads_from, with_overhead, without_overhead
from policy.inject import InjectionError, inject

OWNER_KEY = "ownerReferences"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("inject", help="inject sidecars into Pods and workload manifests",
                              description="Read Pods and workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet, "
                                          "Job, CronJob, List), inject into pods and pod templates, pass everything "
                                          "else through, write the stream to stdout. A document that cannot be "
                                          "injected is reported with its index, kind and name and left out; the "
                                          "others are written, and the exit status is 1.")
    p.add_argument("-f", "--filename", required=True, metavar="FILE", help="file, directory or - for stdin")
    add_policy_source_options(p)
    add_namespace_options(p)
    add_runtime_class_option(p)
    add_output_option(p, default="yaml", table="one row per pod or template: what was decided, not the manifests")
    p.set_defaults(func=run)


def add_runtime_class_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime-class", metavar="NAME=cpu=Q,memory=Q", action="append", default=[],
                        help="the overhead a RuntimeClass adds at admission (repeatable); RuntimeClass "
                             "documents in the input count too")


def inject_template(pod: dict[str, Any], namespace: str, owner: tuple[str, str] | None, policy: Any,
                    args: argparse.Namespace, overheads: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """Inject one pod or template as admission would see it; a skip returns the very object given.

    A template gets its workload as owner for the duration (experiments bucket by
    workload), and a RuntimeClass's overhead for the computation only.
    """
    subject, overhead_warning = with_overhead(pod, overheads or {})
    added_overhead = subject is not pod
    if owner is not None and not (subject.get("metadata") or {}).get(OWNER_KEY):
        meta = {**(subject.get("metadata") or {}), OWNER_KEY: [{"kind": owner[0], "name": owner[1], "controller": True}]}
        subject = {**subject, "metadata": meta}
    result = inject(subject, namespace_for(args, namespace), policy)
    if overhead_warning:
        result.warnings.append(overhead_warning)
    if not result.injected:
        return result, pod
    new = result.pod
    if owner is not None and subject is not pod and not (pod.get("metadata") or {}).get(OWNER_KEY):
        meta = dict(new["metadata"])
        meta.pop(OWNER_KEY, None)
        new = {**new, "metadata": meta}
    if added_overhead:
        new = without_overhead(new)
    return result, new


def run(args: argparse.Namespace) -> int:
    policy = policy_for(args)
    documents = read_documents(args.filename)
    overheads = overheads_from((d.body for d in documents), args.runtime_class)
    out = []
    failed = []
    rows = [["OBJECT", "DECISION", "SIDECARS", "REASON"]]
    for doc in documents:
        def on_pod(pod: dict[str, Any], ns: str | None, owner: tuple[str, str] | None) -> dict[str, Any]:
            result, new = inject_template(pod, ns or "", owner, policy, args, overheads)
            for warning in result.warnings:
                print(f"warning: {doc.label}: {warning}", file=sys.stderr)
            meta = pod.get("metadata") or {}
            name = f"{owner[0]} {ns or 'default'}/{owner[1]}" if owner else \
                f"Pod {ns or 'default'}/{meta.get('name') or meta.get('generateName') or '<unnamed>'}"
            rows.append([name, "inject" if result.injected else "skip",
                         ", ".join(f"{c.sidecar} {c.version}" for c in result.versions.values()) or "-",
                         result.reason])
            return new  # type: ignore[no-any-return]

        try:
            out.append(transform(doc.body, on_pod, args.namespace))
        except InjectionError as exc:
            failed.append(f"{doc.label}: {exc}")
    if args.output == "table":
        sys.stdout.write(table(rows))
    else:
        sys.stdout.write(dump(out, args.output) if out else "")
    if failed:
        for line in failed[:-1]:
            print(f"meshfit inject: {line}", file=sys.stderr)
        raise CommandError(failed[-1] if len(failed) == 1 else
                           f"{failed[-1]}\n{len(failed)} of {len(documents)} documents could not be injected "
                           "and were left out")
    return 0
