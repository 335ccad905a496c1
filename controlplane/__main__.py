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
    sub.add_parser("bindir", help="print where the binaries are expected")
    args = parser.parse_args(argv)

    if args.command == "bindir":
        print(binaries.bindir())
        return 0

    try:
        bindir = binaries.build() if args.build else binaries.require()
    except binaries.BinariesMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    # SIGTERM as well as Ctrl-C, so `kill` also stops components in order.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalCluster(bindir=bindir, keep_workdir=args.keep) as cluster:
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
