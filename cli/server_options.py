"""Options the two serving commands share: where to listen, which policy, which cluster, how loud.

``meshfit webhook serve`` and ``meshfit extender serve`` read the same global
policy from the same kinds of source and run the same way in a pod, so an
operator who learned one command line knows the other; the options, their
checks and their wording are written once, here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from cli.errors import CommandError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("debug", "info", "warning", "error")


def configmap_ref(text: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` as a pair."""
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {text!r}")
    return namespace, name


def seconds(text: str) -> float:
    """A non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def byte_size(text: str) -> int:
    """A byte count, plain or with a suffix (``7Mi``, ``512Ki``, ``8M``); at least 1024."""
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            number, multiplier = text[: -len(suffix)], factor
            break
    else:
        number, multiplier = text, 1
    try:
        value = int(number) * multiplier
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a byte count such as 7340032 or 7Mi, got {text!r}") from None
    if value < 1024:
        raise argparse.ArgumentTypeError(f"must be at least 1024 bytes, got {value}")
    return value


def positive_seconds(text: str) -> float:
    """A positive number of seconds."""
    value = seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_listen_options(parser: argparse.ArgumentParser, *, port: int) -> None:
    """Where to listen, and the limits every connection is held to (``serving.connections``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 in a pod)")
    parser.add_argument("--port", type=int, default=port, help=f"port to listen on (default {port}; 0 picks a free one)")
    # The defaults are written once, in ConnectionLimits; the help repeats them.
    parser.add_argument("--header-timeout", type=positive_seconds, default=10.0, metavar="SECONDS",
                        help="TLS handshake plus request headers must arrive within this (default 10)")
    parser.add_argument("--body-timeout", type=positive_seconds, default=30.0, metavar="SECONDS",
                        help="a request body must arrive within this after its headers; else 408 (default 30)")
    parser.add_argument("--idle-timeout", type=positive_seconds, default=120.0, metavar="SECONDS",
                        help="close a kept-alive connection idle this long (default 120)")
    parser.add_argument("--max-connections", type=positive_int, default=1000, metavar="N",
                        help="open connections per port; at the cap a new one replaces the slowest waiting one, "
                             "or is closed when all are busy (default 1000)")


def connection_limits(args: argparse.Namespace) -> Any:
    """The ``serving.connections.ConnectionLimits`` the listen options say (imported late: aiohttp)."""
    from serving.connections import ConnectionLimits

    return ConnectionLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
    )


def add_policy_options(parser: argparse.ArgumentParser, *, required: bool, without: str = "") -> None:
    """``--policy FILE`` or ``--policy-configmap NS/NAME``; ``without`` says what serves when neither is given."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--policy", metavar="FILE",
                        help="a policy file (YAML or ConfigMap manifest), reloaded when it changes"
                             + (f" (default: {without})" if without else ""))
    source.add_argument("--policy-configmap", metavar="NS/NAME", type=configmap_ref,
                        help="watch the global policy ConfigMap NS/NAME (e.g. meshfit-system/meshfit-policy)")


def add_leader_election_options(parser: argparse.ArgumentParser, *, lease: str, what: str) -> None:
    """``--leader-elect`` and the Lease's name and client-go's three durations; ``what`` says what leading means."""
    election = parser.add_argument_group("leader election (several replicas, one acts)")
    election.add_argument("--leader-elect", action="store_true", help=what)
    election.add_argument("--leader-elect-resource-namespace", default="meshfit-system", metavar="NS")
    election.add_argument("--leader-elect-resource-name", default=lease, metavar="NAME")
    election.add_argument("--leader-elect-identity", default="", metavar="ID",
                          help="this candidate's holderIdentity (default: $POD_NAME or the host name, "
                               "plus a random suffix)")
    election.add_argument("--leader-elect-lease-duration", type=seconds, default=15.0, metavar="SECONDS",
                          help="how long a standby waits after the leader's last renewal before taking over "
                               "(default 15)")
    election.add_argument("--leader-elect-renew-deadline", type=seconds, default=10.0, metavar="SECONDS",
                          help="how long the leader keeps leading without a successful renewal (default 10)")
    election.add_argument("--leader-elect-retry-period", type=seconds, default=2.0, metavar="SECONDS",
                          help="how often candidates try to acquire and the leader renews (default 2)")


def leader_election(args: argparse.Namespace) -> dict[str, Any]:
    """The ``leader_elect_*`` fields of a server's ServeOptions, from :func:`add_leader_election_options`."""
    return {
        "leader_elect_lease": (
            (args.leader_elect_resource_namespace, args.leader_elect_resource_name) if args.leader_elect else None
        ),
        "leader_elect_identity": args.leader_elect_identity or _identity(),
        "leader_elect_lease_duration": args.leader_elect_lease_duration,
        "leader_elect_renew_deadline": args.leader_elect_renew_deadline,
        "leader_elect_retry_period": args.leader_elect_retry_period,
    }


def _identity() -> str:
    """client-go's usual holder identity: the pod (or host) name and a random suffix, unique per process."""
    import os
    import socket
    import uuid

    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)


def start(args: argparse.Namespace) -> None:
    """What every serving command does first: log to stderr at ``--log-level``, and check ``--port``."""
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format=LOG_FORMAT, stream=sys.stderr)
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be 0..65535, got {args.port}")
