"""``meshfit certs``: mint the webhook's serving certificate and check one before it bites.

``generate`` prints only the caBundle on stdout so it composes in scripts
(``CA_BUNDLE=$(meshfit certs generate ...)``); everything meant for a person
goes to stderr. ``check`` exits non-zero on any problem so it can gate a
deploy or a CI job.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.errors import CommandError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="generate or check the webhook's serving certificate",
        description="Generate or check the webhook's CA and serving certificate.",
    )
    actions = parser.add_subparsers(dest="certs_command", metavar="ACTION")
    actions.required = True

    gen = actions.add_parser(
        "generate",
        help="create a CA and a serving certificate; print the caBundle",
        description=(
            "Create ca.crt, tls.crt and tls.key in DIR for SERVICE.NAMESPACE. "
            "Prints the caBundle (base64 of ca.crt) on stdout."
        ),
    )
    gen.add_argument("--service", required=True, help="the webhook's Service name")
    gen.add_argument("--namespace", required=True, help="the Service's namespace")
    gen.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    gen.add_argument("--ip", action="append", default=[], metavar="IP", help="extra IP SAN (repeatable)")
    gen.add_argument("--dns", action="append", default=[], metavar="NAME", help="extra DNS SAN (repeatable)")
    gen.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    gen.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa", help="ECDSA P-256 (default) or RSA 2048")
    gen.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")
    gen.set_defaults(func=run_generate)

    check = actions.add_parser(
        "check",
        help="report expiry, SAN coverage, key match and chain; exit 1 on a problem",
        description=(
            "Inspect DIR (tls.crt, tls.key, ca.crt). Exits 1 when the certificate is expired, "
            "expires within --min-days, misses a required SAN, does not match its key, "
            "or does not chain to ca.crt."
        ),
    )
    check.add_argument("dir", metavar="DIR")
    check.add_argument("--service", help="require the Service's DNS names (with --namespace)")
    check.add_argument("--namespace", help="the Service's namespace")
    check.add_argument("--ip", action="append", default=[], metavar="IP", help="require this IP SAN (repeatable)")
    check.add_argument("--dns", action="append", default=[], metavar="NAME", help="require this DNS SAN (repeatable)")
    check.add_argument("--min-days", type=float, default=0, help="fail when fewer days than this remain")
    check.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")
    check.set_defaults(func=run_check)


def run_generate(args: argparse.Namespace) -> int:
    from certs.generate import generate

    if args.days < 1:
        raise CommandError("--days must be at least 1")
    try:
        result = generate(
            args.out,
            service=args.service,
            namespace=args.namespace,
            ips=args.ip,
            dns_names=args.dns,
            days=args.days,
            key_type=args.key_type,
            cluster_domain=args.cluster_domain,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot write to {args.out}: {exc.strerror or exc}") from exc
    sans = [*result.dns_names, *result.ip_addresses]
    print(
        f"wrote {result.ca_cert_path}, {result.cert_path}, {result.key_path} "
        f"({result.key_type}, serial {result.serial:x}, not after {result.not_after.isoformat()})\n"
        f"SANs: {', '.join(sans)}",
        file=sys.stderr,
    )
    print(result.ca_bundle)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from certs.inspect import CertLoadError, inspect_dir

    if bool(args.service) != bool(args.namespace):
        raise CommandError("--service and --namespace go together")
    try:
        report = inspect_dir(
            args.dir,
            service=args.service,
            namespace=args.namespace,
            ips=args.ip,
            dns_names=args.dns,
            cluster_domain=args.cluster_domain,
        )
    except CertLoadError as exc:
        raise CommandError(str(exc)) from exc
    except ValueError as exc:
        raise CommandError(str(exc)) from exc

    days_left = report.seconds_until_expiry / 86400
    chain = {True: "ok", False: "BROKEN", None: "not checked (no ca.crt)"}[report.chains_to_ca]
    lines = [
        f"subject:     {report.subject}",
        f"serial:      {report.serial:x}",
        f"not after:   {report.not_after.isoformat()} ({days_left:.1f} days left)",
        f"SANs:        {', '.join([*report.dns_names, *report.ip_addresses]) or '(none)'}",
        f"key matches: {'yes' if report.key_matches else 'NO'}",
        f"chain:       {chain}",
    ]
    if report.required:
        covered = "all covered" if not report.missing else "MISSING " + ", ".join(report.missing)
        lines.append(f"required:    {covered}")
    print("\n".join(lines))
    problems = report.problems(min_days=args.min_days)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0
