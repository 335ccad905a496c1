"""``meshfit check``: inspections of the fleet and of the installation, with an exit status for CI.

Like ``linkerd check --proxy``: every inspection runs, every failure is listed
with a one-line hint saying what to do, and the exit status is 1 when any
failed (2 for a usage error). The pod inspections (versions, accounting,
exposure, missed injections; :mod:`policy.inspections`) read one paginated
LIST of every pod, folded page by page; the installation's (certificates,
configuration; :mod:`cli.check_config`) read the MutatingWebhookConfiguration,
the serving certificate and, given ``--scheduler-config``, kube-scheduler's
configuration file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cli.errors import CommandError
from cli.output import structured
from cli.fleet_source import add_source_options, open_client, read_cluster, run_async, table
from policy.fleet_audit import Results
from policy.inspections import CHECKS


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="inspect the fleet and the installation; exit status 1 on any failure (for CI)",
        description="Version and accounting consistency of every meshed pod, node exposure against the ceiling, "
                    "pods that escaped injection, the webhook's certificates and configuration.",
    )
    add_source_options(parser)
    parser.add_argument("--only", metavar="CHECK,...", help=f"run only these checks ({', '.join(CHECKS)})")
    parser.add_argument("--skip", metavar="CHECK,...", help="skip these checks")
    parser.add_argument("--webhook-config", metavar="NAME", default="meshfit-sidecar-injector",
                        help="the MutatingWebhookConfiguration (default: %(default)s)")
    parser.add_argument("--webhook-manifest", metavar="FILE", type=Path, default=None,
                        help="the shipped configuration to compare with (default: manifests/webhook/base/...)")
    certs = parser.add_mutually_exclusive_group()
    certs.add_argument("--cert-dir", metavar="DIR", type=Path, help="the webhook's serving certificate (tls.crt, tls.key, ca.crt)")
    certs.add_argument("--cert-secret", metavar="NS/NAME", default="meshfit-system/meshfit-webhook-tls",
                       help="the Secret the webhook mounts (default: %(default)s)")
    parser.add_argument("--cert-min-days", type=float, default=14.0, metavar="DAYS",
                        help="fail a certificate with fewer days left (default: %(default)s)")
    parser.add_argument("--scheduler-config", metavar="FILE", type=Path,
                        help="kube-scheduler's configuration file: check that it names the extender")
    parser.add_argument("--extender-url", metavar="URL", help="the urlPrefix the scheduler configuration must name")
    parser.add_argument("--max-findings", type=int, default=100, metavar="N",
                        help="findings listed per check and code (default: %(default)s; all are counted)")
    parser.set_defaults(func=run_check)


def _selected(args: argparse.Namespace) -> list[str]:
    def parse(text: str | None) -> list[str]:
        names = [n.strip() for n in (text or "").split(",") if n.strip()]
        unknown = [n for n in names if n not in CHECKS]
        if unknown:
            raise CommandError(f"unknown check(s) {', '.join(unknown)}; known: {', '.join(CHECKS)}", exit_code=2)
        return names

    only, skip = parse(args.only), parse(args.skip)
    return [c for c in CHECKS if (not only or c in only) and c not in skip]


async def _collect(args: argparse.Namespace, results: Results) -> Any:
    from kube.client import ApiError
    from policy.fleet_audit import POD_CHECKS, FleetAudit

    checks = set(results.checks)
    state: dict[str, Any] = {}

    def before(facts: Any) -> None:
        audit = state["audit"] = FleetAudit(facts.policy, [c for c in results.checks if c in POD_CHECKS],
                                            cap=results.cap, namespaces=args.namespace or ())
        audit.results = results
        audit.start(namespace_policies=facts.namespace_policies, namespace_labels=facts.namespace_labels,
                    node_allocatable_=facts.node_allocatable, now=datetime.now(timezone.utc))

    client = open_client(args)
    installed = None
    async with client:
        if checks & set(POD_CHECKS):
            scoped = argparse.Namespace(**{**vars(args), "namespace": None})  # every pod: exposure counts them all
            facts = await read_cluster(client, scoped, lambda pod: state["audit"].add(pod), before_pods=before)
            results.notes.extend(facts.notes)
            state["audit"].finish()
        if checks & {"certificates", "configuration"}:
            try:
                installed = await client.get_json(
                    f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{args.webhook_config}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
        secret = None
        if "certificates" in checks and args.cert_dir is None:
            ns, _, name = args.cert_secret.partition("/")
            try:
                secret = await client.get_json(f"/api/v1/namespaces/{ns}/secrets/{name}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
    return installed, secret


def run_check(args: argparse.Namespace) -> int:
    from cli.check_config import (certificate_findings, load_shipped, scheduler_config_findings,
                                  webhook_config_findings)

    results = Results(_selected(args), args.max_findings)

    async def go() -> Any:
        return await _collect(args, results)

    installed, secret = run_async(go)
    checks = set(results.checks)
    if "certificates" in checks:
        found, notes = certificate_findings(args.cert_dir, secret, args.cert_secret, installed, args.cert_min_days)
        results.checked["certificates"] = len(notes)
        results.notes.extend(notes)
        for f in found:
            results.add(f)
    if "configuration" in checks:
        shipped = load_shipped(args.webhook_manifest) if args.webhook_manifest else load_shipped()
        results.checked["configuration"] = 1
        for f in webhook_config_findings(installed, shipped, args.webhook_config):
            results.add(f)
        if args.scheduler_config is not None:
            results.checked["configuration"] += 1
            for f in scheduler_config_findings(args.scheduler_config, args.extender_url):
                results.add(f)
    failed = any(results.counts.values())
    if args.output != "table":
        sys.stdout.write(structured(as_json(results), args.output))
    else:
        sys.stdout.write(render(results))
    return 1 if failed else 0


def as_json(results: Results) -> dict[str, Any]:
    return {
        "ok": not any(results.counts.values()),
        "checks": {c: {"status": "fail" if results.failures(c) else "pass", "checked": results.checked[c],
                       "failures": results.failures(c)} for c in results.checks},
        "counts": {f"{c}/{code}": n for (c, code), n in sorted(results.counts.items())},
        "findings": [f.to_dict() for f in results.findings],
        "notes": results.notes,
    }


def render(results: Results) -> str:
    rows = [["CHECK", "RESULT", "CHECKED", "FAILURES"]]
    for c in results.checks:
        n = results.failures(c)
        rows.append([c, "FAIL" if n else "ok", str(results.checked[c]), str(n)])
    out = [table(rows)]
    if results.findings:
        out.append("\n")
        for f in results.findings:
            out.append(f"✗ [{f.check}] {f.subject}: {f.message}\n    hint: {f.hint}\n")
        for (c, code), n in sorted(results.counts.items()):
            if n > results.cap:
                out.append(f"  ... {n - results.cap} more {c}/{code} not listed (--max-findings)\n")
    for note in results.notes:
        out.append(f"note: {note}\n")
    out.append("\n" + ("FAILED: see the hints above\n" if any(results.counts.values()) else "all checks passed\n"))
    return "".join(out)
