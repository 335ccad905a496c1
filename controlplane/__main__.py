"""``python -m controlplane up``: a LocalCluster to poke at by hand, until Ctrl-C.

Kept deliberately small; tests use LocalCluster directly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import binaries
from .cluster import LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start etcd, kube-apiserver and kube-scheduler; stop on Ctrl-C")
    up.add_argument("--build", action="store_true", help="run hack/controlplane/build.sh first")
    up.add_argument(
        "--keep", action="store_true", help="keep the work dir (logs, etcd data) after stopping"
    )
    up.add_argument(
        "--kwok",
        action="store_true",
        help="also run KWOK's fake kubelet, with one fake node per --fake-node",
    )
    up.add_argument(
        "--fake-node",
        action="append",
        default=[],
        metavar="NAME[=KUBELET_VERSION]",
        help="a fake node (4 CPU, 8Gi) whose kubelet KWOK plays, e.g. kwok-1 or old-1=v1.31.0; implies --kwok",
    )
    sub.add_parser("bindir", help="print where the binaries are expected")
    args = parser.parse_args(argv)

    if args.command == "bindir":
        print(binaries.bindir())
        return 0

    kwok = args.kwok or bool(args.fake_node)
    try:
        bindir = binaries.build() if args.build else binaries.require()
        kwok_bindir = (binaries.kwok_build() if args.build else binaries.kwok_require()) if kwok else None
    except binaries.BinariesMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    # SIGTERM as well as Ctrl-C, so `kill` also stops components in order.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalCluster(
        bindir=bindir, keep_workdir=args.keep, kwok=kwok, kwok_bindir=kwok_bindir
    ) as cluster:
        for spec in args.fake_node:
            name, _, version = spec.partition("=")
            cluster.create_fake_node(name, cpu="4", memory="8Gi", kubelet_version=version or "v1.36.3")
            print(f"fake node {name} (kubelet {version or 'v1.36.3'}, 4 CPU, 8Gi)")
        print(f"cluster up in {cluster.started_in:.1f}s: {cluster.api_url}")
        print(f"export KUBECONFIG={cluster.kubeconfig_path}")
        print(f"logs: {cluster.workdir}/*.log   (Ctrl-C to stop)", flush=True)
        try:
            while not stop.wait(3600):
                pass
        except KeyboardInterrupt:
            pass
        print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
