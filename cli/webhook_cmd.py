"""``meshfit webhook serve``: the mutating admission webhook.

Everything a mistake at start can be (a broken policy file, a missing
certificate, an unusable kubeconfig, a taken port) is reported as one line
and a non-zero exit, so a bad rollout fails its first pod instead of
serving nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cli import event_loop, server_options
from cli.cluster_options import add_cluster_options, with_hint
from cli.errors import CommandError
from cli.server_options import byte_size, seconds


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "webhook",
        help="run the mutating admission webhook",
        description="The mutating admission webhook that injects sidecars on pod CREATE.",
    )
    actions = parser.add_subparsers(dest="webhook_command", metavar="ACTION")
    actions.required = True
    serve = actions.add_parser(
        "serve",
        help="serve /mutate over HTTPS",
        description=(
            "Serve POST /mutate (AdmissionReview v1 and v1beta1), GET /healthz, /readyz and /metrics over HTTPS. "
            "Rotated certificate files and policy changes are picked up without a restart."
        ),
    )
    serve.add_argument("--cert-dir", required=True, metavar="DIR", help="directory holding tls.crt and tls.key")
    server_options.add_listen_options(serve, port=9443)
    server_options.add_policy_options(serve, required=True)
    add_cluster_options(serve, what="the cluster to watch namespace labels and namespace policies in "
                                    "(given, it implies those watches)")
    serve.add_argument(
        "--cluster",
        action="store_true",
        help="watch namespaces and namespace policies even with --policy FILE and no --kubeconfig "
        "(without a cluster every namespace counts as opted in)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=byte_size,
        default=7 * 1024 * 1024,
        metavar="BYTES",
        help="largest AdmissionReview accepted, e.g. 7Mi (default 7Mi); larger gets 413",
    )
    serve.add_argument("--policy-interval", type=seconds, default=2.0, metavar="SECONDS",
                       help="how often to poll the policy file (default 2)")
    serve.add_argument("--cert-interval", type=seconds, default=2.0, metavar="SECONDS",
                       help="how often to poll the certificate files (default 2)")
    serve.add_argument(
        "--shutdown-delay",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="after SIGTERM, report not ready and keep serving this long before closing the listener "
        "(default 0; a few seconds in a cluster)",
    )
    serve.add_argument("--shutdown-timeout", type=seconds, default=30.0, metavar="SECONDS",
                       help="longest wait for in-flight requests at shutdown (default 30)")
    serve.add_argument(
        "--answer-cache",
        type=int,
        default=512,
        metavar="N",
        help="remember the engine's verdict for up to N distinct pods (replicas of one ReplicaSet are identical); "
        "0 turns it off (default 512)",
    )
    server_options.add_log_level_option(serve)
    serve.add_argument("--access-log", action="store_true", help="log every request (off: it costs throughput)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    server_options.start(args)
    # Imported here so `meshfit --help` and the offline commands never pay for aiohttp.
    from serving.process import StartError
    from webhook.process import ServeOptions, serve

    options = ServeOptions(
        cert_dir=Path(args.cert_dir),
        host=args.host,
        port=args.port,
        policy_file=Path(args.policy) if args.policy else None,
        policy_configmap=args.policy_configmap,
        kubeconfig=args.kubeconfig,
        context=args.context,
        cluster=bool(args.cluster),
        max_body_bytes=args.max_body_bytes,
        policy_interval=args.policy_interval or 2.0,
        cert_interval=args.cert_interval or 2.0,
        shutdown_delay=args.shutdown_delay,
        shutdown_timeout=args.shutdown_timeout,
        access_log=bool(args.access_log),
        answer_cache_entries=max(0, args.answer_cache),
        limits=server_options.connection_limits(args),
    )
    try:
        return event_loop.run(serve(options))
    except StartError as exc:
        raise CommandError(with_hint(str(exc).replace("\n", " "))) from None
