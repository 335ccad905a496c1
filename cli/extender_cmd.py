"""``meshfit extender``: serve the scheduler extender, or ask it "what if" offline.

``serve`` is what the Deployment runs (and what a person runs against a
cluster with ``--kubeconfig``). ``simulate`` reads a snapshot of Nodes and
Pods plus some pending pods and prints, pod by pod, each node's verdict and
score, placing each pod on its best node before judging the next.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import meshfit_data
from cli import event_loop, server_options
from cli.cluster_options import add_cluster_options, with_hint
from cli.errors import CommandError
from cli.inputs import add_deprecated_alias, add_filename_option
from cli.output import add_output_option, structured
from cli.options import add_namespace_options, add_policy_source_options, policy_for
from cli.server_options import byte_size, seconds

#: The snapshot ``simulate`` reads when given none: three nodes and the pods bound to them.
EXAMPLE_SNAPSHOT_NAME = "manifests/examples/snapshot/cluster.yaml"
EXAMPLE_SNAPSHOT = meshfit_data.path("manifests", "examples", "snapshot", "cluster.yaml")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "extender",
        help="run the kube-scheduler extender, or simulate its verdicts",
        description="The kube-scheduler extender that bounds sidecar overcommit exposure per node.",
    )
    actions = parser.add_subparsers(dest="extender_command", metavar="ACTION")
    actions.required = True

    serve = actions.add_parser(
        "serve",
        help="serve filter, prioritize and bind for kube-scheduler",
        description=(
            "Serve POST /filter, /prioritize and /bind (k8s.io/kube-scheduler/extender/v1), and GET /healthz, "
            "/readyz (200 once the initial lists are in), /metrics and /debug/nodes/NAME. The cache comes "
            "from a list+watch of Nodes and Pods (--kubeconfig, else in-cluster) or from --snapshot."
        ),
    )
    server_options.add_listen_options(serve, port=8888)
    serve.add_argument("--cert-dir", metavar="DIR", dest="tls_cert_dir",
                       help="serve HTTPS with tls.crt/tls.key from DIR, reloaded when they rotate (default: HTTP)")
    add_deprecated_alias(serve, "--tls-cert-dir", dest="tls_cert_dir", replacement="--cert-dir", metavar="DIR")
    serve.add_argument("--tls-client-ca", metavar="FILE",
                       help="with --cert-dir: require client certificates signed by this CA (give the "
                            "scheduler's extenders entry a tlsConfig certFile/keyFile), so only it may bind")
    serve.add_argument("--tls-client-name", action="append", metavar="NAME", dest="tls_client_names",
                       help="with --tls-client-ca: admit only a client certificate whose subject CN or DNS name "
                            "is NAME (repeatable), e.g. system:kube-scheduler when the CA is the cluster's")
    source = serve.add_mutually_exclusive_group()
    add_cluster_options(serve, what="the cluster to list and watch", kubeconfig_group=source)
    source.add_argument("--snapshot", metavar="FILE",
                        help="serve a static cluster state (YAML/JSON stream or List of Nodes and Pods); "
                             "bind is refused")
    server_options.add_policy_options(serve, required=False, without="the schema's defaults")
    serve.add_argument("--assume-ttl", type=seconds, default=30.0, metavar="SECONDS",
                       help="how long a pod this extender bound counts on its node before the watch "
                            "must have confirmed it (default 30)")
    serve.add_argument(
        "--max-body-bytes", type=byte_size, default=8 * 1024 * 1024, metavar="BYTES",
        help="largest scheduler call accepted, e.g. 8Mi (default 8Mi: a pod and 10,000 node names with "
             "nodeCacheCapable: true; raise it, and the memory limit, for full NodeLists); larger gets 413",
    )
    serve.add_argument("--bind-wait", type=seconds, default=0.5, metavar="SECONDS",
                       help="longest a filter waits for the bind of the pod before it (default 0.5; 0 disables)")
    serve.add_argument("--probe-port", type=int, metavar="PORT",
                       help="also serve /healthz, /readyz and /metrics over plain HTTP on this port (for the "
                            "kubelet and Prometheus when the verbs need a client certificate)")
    serve.add_argument("--scheduler-name", action="append", metavar="NAME", dest="scheduler_names",
                       help="a spec.schedulerName whose pods this extender schedules; repeatable "
                            "(default: default-scheduler and meshfit-scheduler). Filters for other pods do "
                            "not count and their binds are refused")
    server_options.add_leader_election_options(
        serve, lease="meshfit-extender",
        what="answer filter/prioritize/bind and be Ready only while holding the Lease; a standby keeps its "
             "cache warm")
    server_options.add_log_level_option(serve)
    serve.set_defaults(func=run_serve)

    sim = actions.add_parser(
        "simulate",
        help="judge pending pods against a snapshot, placing each on its best node",
        description=(
            "For each pod in the -f files, in order: every node's filter verdict and score, then place the "
            "pod on its best node before judging the next. Pods and workloads are taken as written and "
            "injected as the webhook would (a pod that already carries meshfit.io/status is taken as it is); "
            "a workload counts as its replicas. The stock scheduler's fit check applies to every pod; meshfit's "
            "exposure ceilings to pods with node-level exposure."
        ),
    )
    sim.add_argument("--snapshot", metavar="FILE|-", default=None,
                     help=f"Nodes and bound Pods (YAML/JSON stream or List, what kubectl get nodes,pods -A -o yaml "
                          f"prints; default: the example {EXAMPLE_SNAPSHOT_NAME})")
    add_filename_option(sim, what="pods and workloads to place", repeatable=True)
    add_policy_source_options(sim)
    add_namespace_options(sim)
    sim.add_argument("--no-inject", dest="inject", action="store_false",
                     help="take the pods as written, without injecting them first")
    add_output_option(sim)
    sim.add_argument("--top", type=int, default=0, metavar="N",
                     help="show only the N best nodes per pod, plus the failed ones (default: all)")
    sim.add_argument("--observe-only", action="store_true",
                     help="as with emergency.extenderObserveOnly: exposure ceilings report but do not filter")
    sim.set_defaults(func=run_simulate)


def run_serve(args: argparse.Namespace) -> int:
    server_options.start(args)
    from extender.guard import DEFAULT_SCHEDULERS
    from extender.process import ServeOptions, prepare, serve
    from serving.process import StartError

    if args.tls_client_ca and not args.tls_cert_dir:
        raise CommandError("--tls-client-ca needs --cert-dir")
    if args.tls_client_names and not args.tls_client_ca:
        raise CommandError("--tls-client-name needs --tls-client-ca")
    if args.snapshot and args.policy_configmap:
        raise CommandError("--policy-configmap needs a cluster to watch; with --snapshot use --policy")
    if args.context and args.snapshot:
        raise CommandError("--context names a kubeconfig context; with --snapshot there is no cluster")
    if args.leader_elect and args.snapshot:
        raise CommandError("--leader-elect needs a cluster to hold the Lease in; not with --snapshot")
    if args.probe_port is not None and not 0 <= args.probe_port <= 65535:
        raise CommandError(f"--probe-port must be 0..65535, got {args.probe_port}")
    options = ServeOptions(
        host=args.host,
        port=args.port,
        tls_cert_dir=args.tls_cert_dir,
        tls_client_ca=args.tls_client_ca,
        tls_client_names=tuple(args.tls_client_names or ()),
        kubeconfig=args.kubeconfig,
        context=args.context,
        snapshot=args.snapshot,
        policy_file=args.policy,
        policy_configmap=args.policy_configmap,
        assume_ttl=args.assume_ttl,
        bind_wait=args.bind_wait,
        probe_port=args.probe_port,
        schedulers=tuple(args.scheduler_names) if args.scheduler_names else DEFAULT_SCHEDULERS,
        **server_options.leader_election(args),
        max_body_bytes=args.max_body_bytes,
        limits=server_options.connection_limits(args),
    )
    try:
        prepared = prepare(options)
        return event_loop.run(serve(prepared))
    except StartError as exc:
        raise CommandError(with_hint(str(exc).replace("\n", " "))) from None


def pending_pods(args: argparse.Namespace, policy: Any) -> list[dict[str, Any]]:
    """The pods the ``-f`` inputs stand for, as the scheduler will see them: injected, a workload as its replicas."""
    from cli.documents import pods_of, read_documents
    from cli.inject_cmd import inject_template
    from policy.annotations import STATUS
    from policy.inject import InjectionError

    if "-" in args.filename and args.snapshot == "-":
        raise CommandError("-f - and --snapshot -: standard input can be read once")
    pods: list[dict[str, Any]] = []
    for source in args.filename:
        for doc in read_documents(source):
            for pod, ns, owner in pods_of(doc.body, args.namespace):
                meta = dict(pod.get("metadata") or {})
                namespace = ns or "default"
                if args.inject and STATUS not in (meta.get("annotations") or {}):
                    try:
                        _, pod = inject_template(pod, namespace, owner, policy, args)
                    except InjectionError as exc:
                        raise CommandError(f"{doc.label}: {exc}") from None
                    meta = dict(pod.get("metadata") or {})
                base = owner[1] if owner else str(meta.get("name") or meta.get("generateName") or "pod")
                count = replicas(doc.body) if owner else 1
                for i in range(count):
                    name = f"{base}-{i}" if owner else base
                    pods.append({**pod, "apiVersion": "v1", "kind": "Pod",
                                 "metadata": {**meta, "name": name, "namespace": namespace,
                                              "uid": meta.get("uid") or f"simulate-{namespace}-{name}"}})
    return pods


def replicas(workload: dict[str, Any]) -> int:
    """How many pods a workload asks for at once: ``replicas``, a Job's ``parallelism``, else one."""
    spec = workload.get("spec") or {}
    kind = workload.get("kind")
    value = spec.get("parallelism") if kind == "Job" else spec.get("replicas") if kind in (
        "Deployment", "StatefulSet", "ReplicaSet", "ReplicationController") else 1
    return max(1, int(value if isinstance(value, int) else 1))


def run_simulate(args: argparse.Namespace) -> int:
    from extender.cache import ClusterCache
    from extender.scoring import Scorer
    from extender.simulate import simulate
    from extender.snapshot import SnapshotError, load_snapshot, load_text

    policy = policy_for(args)
    snapshot = args.snapshot or str(EXAMPLE_SNAPSHOT)
    try:
        snap = load_text(sys.stdin.read(), "<stdin>") if snapshot == "-" else load_snapshot(snapshot)
    except SnapshotError as exc:
        raise CommandError(str(exc)) from None
    if not snap.nodes:
        raise CommandError(f"{snapshot}: no Node objects in the snapshot (kubectl get nodes,pods -A -o yaml makes one)")
    pods = pending_pods(args, policy)
    if not pods:
        raise CommandError("no Pods or workloads in " + ", ".join(args.filename))
    cache = ClusterCache()
    cache.sync_nodes(snap.nodes)
    cache.sync_pods(snap.pods)
    observe_only = args.observe_only or policy.emergency.extender_observe_only
    outcomes = simulate(cache, Scorer(policy.scheduling), pods, observe_only=observe_only)
    if args.output != "table":
        sys.stdout.write(structured([o.to_dict() for o in outcomes], args.output))
    else:
        sys.stdout.write(render_table(outcomes, top=args.top))
    return 0 if all(o.chosen for o in outcomes) else 1


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render_table(outcomes: list[Any], *, top: int = 0) -> str:
    """One block per pod: its figures, one row per node, and where it went."""
    lines: list[str] = []
    for outcome in outcomes:
        req = ", ".join(f"{k} {v}" for k, v in outcome.requests.items()) or "none"
        exp = ", ".join(f"{k} {v}" for k, v in outcome.exposure.items() if v != "0") or "none"
        mesh = outcome.mesh or "no mesh"
        lines.append(f"pod {outcome.namespace}/{outcome.name} ({mesh}): requests {req}; node-level exposure {exp}")
        verdicts = outcome.verdicts
        passed = sorted((v for v in verdicts if v.passed), key=lambda v: (-(v.score or 0), v.node))
        failed = [v for v in verdicts if not v.passed]
        shown = passed[:top] if top > 0 else passed
        rows = [["NODE", "VERDICT", "SCORE", "CPU REQ", "MEM REQ", "CPU EXP", "MEM EXP", "WHY"]]
        for v in [*shown, *failed]:
            rows.append([
                v.node,
                "pass" if v.passed else f"FAIL ({v.reason})",
                "-" if v.score is None else str(v.score),
                v.requested["cpu"], v.requested["memory"], v.exposure["cpu"], v.exposure["memory"],
                v.message,
            ])
        lines.extend("  " + line for line in _columns(rows))
        if len(shown) < len(passed):
            lines.append(f"  ... {len(passed) - len(shown)} more passing node(s)")
        if outcome.chosen:
            lines.append(f"  -> placed on {outcome.chosen} (score {outcome.score})")
        else:
            lines.append(f"  -> UNSCHEDULABLE: {len(failed)} node(s) failed")
        lines.append("")
    lines.append("(REQ and EXP columns: requests and node-level exposure after placing the pod, % of allocatable)")
    return "\n".join(lines) + "\n"
