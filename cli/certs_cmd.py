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
from cli.inputs import add_deprecated_alias, deprecation
from cli.output import add_output_option, structured


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
            "Create ca.crt, tls.crt and tls.key in --cert-dir for SERVICE.NAMESPACE. "
            "Prints the caBundle (base64 of ca.crt) on stdout."
        ),
    )
    _service_args(gen)
    _cert_dir_option(gen, "directory to write into", old="--out")
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
    _cert_dir_option(ca, "directory to keep the CA in", old="--out")
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
    _cert_dir_option(client, "directory holding the CA; the pair goes there", old="--dir")
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
    _cert_dir_option(bundle, "directory holding ca-bundle.crt or ca.crt", positional=True)
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
    _cert_dir_option(check, "directory holding tls.crt, tls.key and ca.crt", positional=True)
    check.add_argument("--service", help="require the Service's DNS names")
    check.add_argument("-n", "--namespace", help="the Service's namespace (default: meshfit-system)")
    check.add_argument("--ip", action="append", default=[], metavar="IP", help="require this IP SAN (repeatable)")
    check.add_argument("--dns", action="append", default=[], metavar="NAME", help="require this DNS SAN (repeatable)")
    check.add_argument("--min-days", type=float, default=0, help="fail when fewer days than this remain")
    check.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")
    add_output_option(check)
    check.set_defaults(func=run_check)


#: The namespace meshfit's Services are in unless ``-n`` says otherwise (the manifests' and the chart's).
DEFAULT_NAMESPACE = "meshfit-system"
SERVICE_HINT = ("--service NAME names the Service the certificate is for: meshfit-webhook for the webhook, "
                f"meshfit-extender for the extender (with -n NAMESPACE, default {DEFAULT_NAMESPACE})")


def _cert_dir_option(parser: argparse.ArgumentParser, what: str, *, old: str = "", positional: bool = False) -> None:
    """``--cert-dir DIR``, the one name of a certificate directory; ``old`` or a positional DIR kept as aliases."""
    parser.add_argument("--cert-dir", metavar="DIR", default=None, help=f"{what} (required)")
    if old:
        add_deprecated_alias(parser, old, dest="cert_dir", replacement="--cert-dir", metavar="DIR")
    if positional:
        parser.add_argument("legacy_dir", nargs="?", metavar="DIR", help=argparse.SUPPRESS)


def _dir(args: argparse.Namespace) -> str:
    """The ``--cert-dir`` given, or the deprecated positional DIR; a :class:`CommandError` when neither is."""
    legacy = getattr(args, "legacy_dir", None)
    if legacy and args.cert_dir:
        raise CommandError("give the directory once: --cert-dir DIR")
    if legacy:
        deprecation(command_prog(args), "the positional DIR", "--cert-dir DIR")
        return str(legacy)
    if not args.cert_dir:
        raise CommandError("needs --cert-dir DIR: the directory holding (or to hold) the certificates", exit_code=2)
    return str(args.cert_dir)


def command_prog(args: argparse.Namespace) -> str:
    return f"meshfit certs {args.certs_command}"


def _service_args(parser: argparse.ArgumentParser, *, what: str = "") -> None:
    parser.add_argument("--service", help=f"the Service the certificate is for, e.g. meshfit-webhook or "
                                          f"meshfit-extender (required{what})")
    parser.add_argument("-n", "--namespace", default=None, help=f"the Service's namespace (default: {DEFAULT_NAMESPACE})")


def _serving_args(parser: argparse.ArgumentParser, *, days: int, required: bool = True) -> None:
    if not required:
        _cert_dir_option(parser, "directory holding the CA", positional=True)
    else:
        _cert_dir_option(parser, "directory holding the CA; the pair goes there", old="--dir")
    _service_args(parser, what="" if required else " for switch")
    parser.add_argument("--ip", action="append", default=[], metavar="IP", help="extra IP SAN (repeatable)")
    parser.add_argument("--dns", action="append", default=[], metavar="NAME", help="extra DNS SAN (repeatable)")
    parser.add_argument("--days", type=int, default=days, help=f"serving certificate validity in days (default {days})")
    parser.add_argument("--cluster-domain", default="cluster.local", help="cluster DNS domain (default cluster.local)")


def _need_service(args: argparse.Namespace) -> None:
    if not args.service:
        raise CommandError(f"needs --service: {SERVICE_HINT}", exit_code=2)


def _issue_args(args: argparse.Namespace) -> dict[str, Any]:
    _need_service(args)
    if args.days < 1:
        raise CommandError("--days must be at least 1")
    return {"service": args.service, "namespace": args.namespace or DEFAULT_NAMESPACE, "ips": args.ip, "dns_names": args.dns,
            "days": args.days, "cluster_domain": args.cluster_domain}


def run_ca(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, make_ca

    cert_dir = _dir(args)
    try:
        cert = make_ca(cert_dir, common_name=args.common_name, days=args.days, key_type=args.key_type)
    except AuthorityError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {cert_dir}/ca.crt, ca.key, ca-bundle.crt (not after {cert.not_valid_after_utc.isoformat()})",
          file=sys.stderr)
    return 0


def run_issue(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, issue

    cert_dir = _dir(args)
    try:
        issued = issue(cert_dir, **_issue_args(args))
    except (AuthorityError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {cert_dir}/tls.crt, tls.key (serial {issued.serial:x}, not after {issued.not_after.isoformat()}, "
          f"issued by {issued.ca_subject})", file=sys.stderr)
    return 0


def run_client(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, issue_client

    cert_dir = _dir(args)
    if args.days < 1:
        raise CommandError("--days must be at least 1")
    try:
        issued = issue_client(cert_dir, common_name=args.name, days=args.days)
    except (AuthorityError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {cert_dir}/client.crt, client.key (CN={args.name}, not after {issued.not_after.isoformat()}, "
          f"issued by {issued.ca_subject})", file=sys.stderr)
    return 0


def run_rotate_ca(args: argparse.Namespace) -> int:
    from certs.authority import AuthorityError, begin_ca_rotation, finish_ca_rotation, switch_ca

    cert_dir = _dir(args)
    try:
        if args.step == "begin":
            cert = begin_ca_rotation(cert_dir)
            done = f"new CA {cert.subject.rfc4514_string()}; the caBundle now carries the old and the new CA"
            then = "apply, let the apiservers take the new caBundle, then: meshfit certs rotate-ca switch"
        elif args.step == "switch":
            if not args.service:
                raise CommandError(f"rotate-ca switch issues the serving certificate and needs --service: {SERVICE_HINT}",
                                   exit_code=2)
            issued = switch_ca(cert_dir, **_issue_args(args))
            done = f"serving certificate {issued.serial:x} issued by the new CA; the caBundle still carries both"
            then = "apply, wait until every replica serves it, then: meshfit certs rotate-ca finish"
        else:
            cert = finish_ca_rotation(cert_dir)
            done = f"the caBundle carries {cert.subject.rfc4514_string()} only"
            then = "apply: the rotation is complete"
    except AuthorityError as exc:
        raise CommandError(str(exc)) from None
    print(f"rotate-ca {args.step}: {done}\nnext: make manifests, then {then}", file=sys.stderr)
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    import base64

    from certs.authority import bundle_pem

    cert_dir = _dir(args)
    try:
        print(base64.b64encode(bundle_pem(cert_dir)).decode("ascii"))
    except OSError as exc:
        raise CommandError(f"{cert_dir}: {exc.strerror or exc}") from None
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from certs.generate import generate

    cert_dir = _dir(args)
    _need_service(args)
    if args.days < 1:
        raise CommandError("--days must be at least 1")
    try:
        result = generate(
            cert_dir,
            service=args.service,
            namespace=args.namespace or DEFAULT_NAMESPACE,
            ips=args.ip,
            dns_names=args.dns,
            days=args.days,
            key_type=args.key_type,
            cluster_domain=args.cluster_domain,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot write to {cert_dir}: {exc.strerror or exc}") from exc
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

    cert_dir = _dir(args)
    if args.namespace and not args.service:
        raise CommandError(f"-n/--namespace is the Service's namespace: give --service too ({SERVICE_HINT})",
                           exit_code=2)
    try:
        report = inspect_dir(
            cert_dir,
            service=args.service,
            namespace=(args.namespace or DEFAULT_NAMESPACE) if args.service else None,
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
    problems = report.problems(min_days=args.min_days)
    if args.output == "table":
        print("\n".join(lines))
    else:
        sys.stdout.write(structured({
            "subject": report.subject, "serial": f"{report.serial:x}", "notAfter": report.not_after.isoformat(),
            "daysLeft": round(days_left, 1), "dnsNames": list(report.dns_names),
            "ipAddresses": list(report.ip_addresses), "keyMatches": report.key_matches,
            "chainsToCA": report.chains_to_ca, "required": list(report.required), "missing": list(report.missing),
            "problems": list(problems)}, args.output))
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0
