"""``meshfit certs``: mint the webhook's serving certificate and check one before it bites.

``generate`` prints only the caBundle on stdout so it composes in scripts
(``CA_BUNDLE=$(meshfit certs generate ...)``); everything meant for a person
goes to stderr. ``check`` exits non-zero on any problem so it can gate a
deploy or a CI job.

``ca``, ``issue``, ``rotate-ca`` and ``bundle`` keep a CA in the directory and
rotate serving certificates under it (:mod:`certs.authority`), which is what
``make manifests`` does: the caBundle changes only in a CA rotation, in steps.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cli.errors import CommandError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="generate or check serving certificates (webhook, extender) and the scheduler's client certificate",
        description="Generate or check the CAs and serving certificates of the webhook and the extender, "
                    "and the client certificate kube-scheduler presents to the extender.",
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

    ca = actions.add_parser(
        "ca", help="create the CA that serving certificates are issued under (kept in DIR with its key)",
        description="Create ca.crt, ca.key and ca-bundle.crt in DIR. Refuses to replace a CA: see rotate-ca.",
    )
    ca.add_argument("--out", required=True, metavar="DIR")
    ca.add_argument("--common-name", default="meshfit webhook CA", help="the CA's name (default: meshfit webhook CA)")
    ca.add_argument("--days", type=int, default=5 * 365, help="validity in days (default 1825)")
    ca.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa")
    ca.set_defaults(func=run_ca)

    issue = actions.add_parser(
        "issue", help="issue a new serving certificate under DIR's CA; the caBundle does not change",
        description="Write a new tls.key and tls.crt in DIR, signed by DIR's ca.crt/ca.key.",
    )
    _serving_args(issue, days=90)
    issue.set_defaults(func=run_issue)

    client = actions.add_parser(
        "client", help="issue a client certificate under DIR's CA (the scheduler's, for a TLS extender)",
        description="Write client.key and client.crt (clientAuth, CN=NAME) in DIR, signed by DIR's ca.crt/ca.key.",
    )
    client.add_argument("--dir", required=True, metavar="DIR", help="directory holding the CA; the pair goes there")
    client.add_argument("--name", default="system:kube-scheduler",
                        help="the certificate's common name (default system:kube-scheduler)")
    client.add_argument("--days", type=int, default=90, help="validity in days (default 90)")
    client.set_defaults(func=run_client)

    rotate = actions.add_parser(
        "rotate-ca", help="rotate DIR's CA in three steps: begin, switch, finish (apply manifests after each)",
        description=(
            "begin: make a new CA, the caBundle carries old and new. switch: issue the serving certificate "
            "under the new CA (the bundle still carries both). finish: the bundle carries the new CA only. "
            "Run 'make manifests' and 'kubectl apply -k manifests/' after each step, and let it land first."
        ),
    )
    rotate.add_argument("step", choices=("begin", "switch", "finish"))
    _serving_args(rotate, days=90, required=False)
    rotate.set_defaults(func=run_rotate_ca)

    bundle = actions.add_parser("bundle", help="print the caBundle (base64) of DIR",
                                description="Print base64 of ca-bundle.crt (or ca.crt) in DIR.")
    bundle.add_argument("dir", metavar="DIR")
    bundle.set_defaults(func=run_bundle)

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


def _serving_args(parser: argparse.ArgumentParser, *, days: int, required: bool = True) -> None:
    if not required:
        parser.add_argument("dir", metavar="DIR")
    else:
        parser.add_argument("--dir", required=True, metavar="DIR", help="directory holding the CA; the pair goes there")
    parser.add_argument("--service", required=required, help="the webhook's Service name (switch: required)")
    parser.add_argument("--namespace", required=required, help="the Service's namespace (switch: required)")
    parser.add_argument("--ip", action="append", default=[], metavar="IP", help="extra IP SAN (repeatable)")
    parser.add_argument("--dns", action="append", default=[], metavar="NAME", help="extra DNS SAN (repeatable)")
    parser.add_argument("--days", type=int, default=days, help=f"serving certificate validity in days (default {days})")
    parser.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")


def _issue_args(args: argparse.Namespace) -> dict[str, Any]:
    if args.days < 1:
        raise CommandError("--days must be at least 1")
    return {"service": args.service, "namespace": args.namespace, "ips": args.ip, "dns_names": args.dns,
            "days": args.days, "cluster_domain": args.cluster_domain}


def run_ca(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, make_ca

    try:
        cert = make_ca(args.out, common_name=args.common_name, days=args.days, key_type=args.key_type)
    except AuthorityError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {args.out}/ca.crt, ca.key, ca-bundle.crt (not after {cert.not_valid_after_utc.isoformat()})",
          file=sys.stderr)
    return 0


def run_issue(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, issue

    try:
        issued = issue(args.dir, **_issue_args(args))
    except (AuthorityError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {args.dir}/tls.crt, tls.key (serial {issued.serial:x}, not after {issued.not_after.isoformat()}, "
          f"issued by {issued.ca_subject})", file=sys.stderr)
    return 0


def run_client(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, issue_client

    if args.days < 1:
        raise CommandError("--days must be at least 1")
    try:
        issued = issue_client(args.dir, common_name=args.name, days=args.days)
    except (AuthorityError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {args.dir}/client.crt, client.key (CN={args.name}, not after {issued.not_after.isoformat()}, "
          f"issued by {issued.ca_subject})", file=sys.stderr)
    return 0


def run_rotate_ca(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, begin_ca_rotation, finish_ca_rotation, switch_ca

    try:
        if args.step == "begin":
            cert = begin_ca_rotation(args.dir)
            done = f"new CA {cert.subject.rfc4514_string()}; the caBundle now carries the old and the new CA"
            then = "apply, let the apiservers take the new caBundle, then: meshfit certs rotate-ca switch"
        elif args.step == "switch":
            if not (args.service and args.namespace):
                raise CommandError("rotate-ca switch issues the serving certificate: give --service and --namespace")
            issued = switch_ca(args.dir, **_issue_args(args))
            done = f"serving certificate {issued.serial:x} issued by the new CA; the caBundle still carries both"
            then = "apply, wait until every replica serves it, then: meshfit certs rotate-ca finish"
        else:
            cert = finish_ca_rotation(args.dir)
            done = f"the caBundle carries {cert.subject.rfc4514_string()} only"
            then = "apply: the rotation is complete"
    except AuthorityError as exc:
        raise CommandError(str(exc)) from None
    print(f"rotate-ca {args.step}: {done}\nnext: make manifests, then {then}", file=sys.stderr)
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    import base64

    from certs.authority import bundle_pem

    try:
        print(base64.b64encode(bundle_pem(args.dir)).decode("ascii"))
    except OSError as exc:
        raise CommandError(f"{args.dir}: {exc.strerror or exc}") from None
    return 0


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
