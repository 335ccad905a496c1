"""``meshfit controller serve``: the fleet controller that carries out the targets written on pods."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from cli import server_options
from cli.cluster_options import add_cluster_options, with_hint
from cli.errors import CommandError
from cli.server_options import positive_int, seconds


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "controller",
        help="run the fleet controller (in-place upgrades, hot upgrades, activation, restarts, resizes)",
        description="The fleet controller: changes running pods' sidecars as their meshfit.io/target asks.",
    )
    actions = parser.add_subparsers(dest="controller_command", metavar="ACTION")
    actions.required = True
    serve = actions.add_parser(
        "serve",
        help="watch pods with a meshfit.io/target and carry the targets out",
        description=(
            "Watch pods, nodes and the policy; for each pod whose meshfit.io/target differs from its "
            "meshfit.io/status, make the cheapest change that works, judge it by the kubelet's answer and record "
            "it in meshfit.io/operation, with an Event. GET /healthz, /readyz (200 once the lists are in) and "
            "/metrics on --probe-port."
        ),
    )
    add_cluster_options(serve, what="the cluster to watch and change")
    server_options.add_policy_options(serve, required=False, without="the schema's defaults: no sidecars")
    serve.add_argument("--host", default="0.0.0.0", help="address of the probe port (default 0.0.0.0)")
    serve.add_argument("--probe-port", type=int, default=8080, metavar="PORT",
                       help="/healthz, /readyz and /metrics over plain HTTP (default 8080; 0 picks one)")
    serve.add_argument("--workers", type=positive_int, default=4, metavar="N",
                       help="pods worked on at once: the cap on concurrent operations (default 4)")
    serve.add_argument("--qps", type=float, default=20.0, metavar="N",
                       help="writes per second to the apiserver, across all pods (default 20)")
    serve.add_argument("--burst", type=positive_int, default=40, metavar="N", help="write burst (default 40)")
    serve.add_argument("--inspect-interval", type=seconds, default=300.0, metavar="SECONDS",
                       help="run meshfit check's pod inspections every SECONDS in the leader and export them as "
                            "meshfit_fleet_* gauges; missed injections get Events (and repairs, as the policy says); "
                            "0 disables (default 300)")
    serve.add_argument("--runtime-interval", type=server_options.positive_seconds, default=10.0, metavar="SECONDS",
                       help="bring the runtime parameters' ConfigMaps in line with the policy and the degradations "
                            "at least every SECONDS (and at once on any change); an expired degradation reverts "
                            "within this period (default 10)")
    serve.add_argument("--degradations", metavar="NS/NAME", default=None,
                       help="the ConfigMap holding the degradations (default: meshfit-degradations in the policy "
                            "ConfigMap's namespace, or meshfit-system)")
    serve.add_argument("--rollout-poll", type=server_options.positive_seconds, default=2.0, metavar="SECONDS",
                       help="how often a SidecarRollout whose pods are changing is looked at again when nothing "
                            "else is due (default 2)")
    server_options.add_leader_election_options(
        serve, lease="meshfit-controller",
        what="act only while holding the Lease; a standby keeps its watches warm, and a leader that loses the "
             "Lease exits")
    server_options.add_log_level_option(serve)
    serve.set_defaults(func=run_serve, port=0)


def _store(args: argparse.Namespace) -> tuple[str, str]:
    from policy.degradations import STORE_NAME

    if args.degradations:
        namespace, sep, name = args.degradations.partition("/")
        if not sep or not namespace or not name:
            raise CommandError(f"--degradations must be NS/NAME, got {args.degradations!r}", exit_code=2)
        return namespace, name
    return (args.policy_configmap[0] if args.policy_configmap else "meshfit-system"), STORE_NAME


def run_serve(args: argparse.Namespace) -> int:
    server_options.start(args)
    from controller.process import ServeOptions, prepare, serve
    from serving.process import StartError

    if not 0 <= args.probe_port <= 65535:
        raise CommandError(f"--probe-port must be 0..65535, got {args.probe_port}")
    if args.qps <= 0:
        raise CommandError(f"--qps must be above 0, got {args.qps}")
    options = ServeOptions(
        kubeconfig=args.kubeconfig,
        context=args.context,
        policy_file=args.policy,
        policy_configmap=args.policy_configmap,
        host=args.host,
        probe_port=args.probe_port,
        workers=args.workers,
        qps=args.qps,
        burst=args.burst,
        inspect_interval=args.inspect_interval,
        rollout_poll=args.rollout_poll,
        runtime_interval=args.runtime_interval,
        degradations=_store(args),
        **server_options.leader_election(args),
    )
    try:
        prepared = prepare(options)
        return asyncio.run(serve(prepared))
    except StartError as exc:
        raise CommandError(with_hint(str(exc).replace("\n", " "))) from None
