"""The installation's own inspections for ``meshfit check``: certificates and configuration.

* **certificates**: the webhook's serving certificate (a ``--cert-dir`` or the
  Secret the Deployment mounts) and the MutatingWebhookConfiguration's
  ``caBundle``: days left on each, the pair matching, the chain from the
  serving certificate to the bundle (:mod:`certs.inspect`);
* **configuration**: the MutatingWebhookConfiguration in the cluster against
  the shipped manifest (selectors, failurePolicy, timeouts, sideEffects,
  reinvocation, matchPolicy, rules), and a kube-scheduler configuration file
  that names the extender.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from policy.inspections import Finding

MANIFEST = Path(__file__).resolve().parent.parent / "manifests" / "webhook" / "base" / "mutatingwebhookconfiguration.yaml"

#: What the apiserver fills in for a field the object leaves out (admissionregistration.k8s.io/v1).
_DEFAULTS: dict[str, Any] = {
    "failurePolicy": "Fail",
    "matchPolicy": "Equivalent",
    "reinvocationPolicy": "Never",
    "timeoutSeconds": 10,
    "namespaceSelector": {},
    "objectSelector": {},
    "matchConditions": [],
}
#: The fields compared, in the order findings name them.
COMPARED = ("failurePolicy", "timeoutSeconds", "sideEffects", "reinvocationPolicy", "matchPolicy",
            "admissionReviewVersions", "namespaceSelector", "objectSelector", "matchConditions", "rules")

_CERT_HINT = "renew the serving certificate (`meshfit certs generate`, or let cert-manager renew it) and update caBundle"


def _rules(rules: Any) -> list[dict[str, Any]]:
    out = []
    for rule in rules or ():
        r = dict(rule)
        r.setdefault("scope", "*")
        out.append({k: (sorted(v) if isinstance(v, list) else v) for k, v in sorted(r.items())})
    return out


def _selector(sel: Any) -> dict[str, Any]:
    sel = dict(sel or {})
    exprs = [{**e, "values": sorted(e.get("values") or [])} for e in sel.get("matchExpressions") or ()]
    out: dict[str, Any] = {}
    if exprs:
        out["matchExpressions"] = sorted(exprs, key=lambda e: (e.get("key", ""), e.get("operator", "")))
    if sel.get("matchLabels"):
        out["matchLabels"] = dict(sel["matchLabels"])
    return out


def _value(hook: Mapping[str, Any], key: str) -> Any:
    value = hook.get(key, _DEFAULTS.get(key))
    if key == "rules":
        return _rules(value)
    if key in ("namespaceSelector", "objectSelector"):
        return _selector(value)
    return value


def webhook_config_findings(installed: Mapping[str, Any] | None, shipped: Mapping[str, Any], name: str) -> list[Finding]:
    """The cluster's MutatingWebhookConfiguration against the shipped one, field by field."""
    subject = f"mutatingwebhookconfiguration {name}"
    if installed is None:
        return [Finding("configuration", "webhook_not_registered", subject, "not found in the cluster",
                        "install it: `make manifests` then `kubectl apply -k manifests/` (or --webhook-config NAME)")]
    out: list[Finding] = []
    hooks = {h.get("name"): h for h in installed.get("webhooks") or ()}
    for want in shipped.get("webhooks") or ():
        hook = hooks.get(want.get("name"))
        if hook is None:
            out.append(Finding("configuration", "webhook_missing", subject, f"no webhook {want.get('name')}",
                               "re-apply the shipped manifest (kubectl apply -k manifests/)"))
            continue
        for key in COMPARED:
            if key not in want:
                continue
            got, expected = _value(hook, key), _value(want, key)
            if got != expected:
                out.append(Finding("configuration", f"webhook_{key}", f"{subject} webhook {want['name']}",
                                   f"{key} is {_short(got)}, shipped {_short(expected)}",
                                   "re-apply the shipped manifest, or change it in manifests/webhook/ if the "
                                   "difference is meant"))
        if not (hook.get("clientConfig") or {}).get("caBundle"):
            out.append(Finding("configuration", "webhook_no_ca_bundle", f"{subject} webhook {want['name']}",
                               "clientConfig.caBundle is empty: the apiserver cannot verify the webhook",
                               "fill it in (`make manifests`, or cert-manager's CA injector)"))
    return out


def _short(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text if len(text) <= 160 else text[:157] + "..."


def load_shipped(path: Path = MANIFEST) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def scheduler_config_findings(path: Path, extender_url: str | None) -> list[Finding]:
    """The scheduler configuration file names the extender (filter and prioritize; bind, for bursts)."""
    subject = f"scheduler configuration {path}"
    hint = "add the extenders entry of manifests/extender/scheduler-config.yaml and restart kube-scheduler"
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as exc:
        return [Finding("configuration", "scheduler_config_unreadable", subject, str(exc).splitlines()[0],
                        "pass the file kube-scheduler reads with --config")]
    configs = [d for d in docs if d.get("kind") == "KubeSchedulerConfiguration"]
    if not configs:
        return [Finding("configuration", "scheduler_config_unreadable", subject, "no KubeSchedulerConfiguration",
                        "pass the file kube-scheduler reads with --config")]
    entries = [e for c in configs for e in c.get("extenders") or () if isinstance(e, dict)]
    ours = [e for e in entries if e.get("filterVerb") and e.get("prioritizeVerb")
            and (extender_url is None or str(e.get("urlPrefix", "")).rstrip("/") == extender_url.rstrip("/"))]
    if not ours:
        which = f" with urlPrefix {extender_url}" if extender_url else " with filterVerb and prioritizeVerb"
        return [Finding("configuration", "scheduler_without_extender", subject, f"no extenders entry{which}", hint)]
    out = []
    entry = ours[0]
    if not entry.get("bindVerb"):
        out.append(Finding("configuration", "extender_without_bind", subject,
                           f"the extenders entry {entry.get('urlPrefix')} has no bindVerb: bursts can overshoot the ceilings",
                           "add `bindVerb: bind` (docs/scheduling.md#bursts-why-the-extender-binds)"))
    return out


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.1f} days"


def certificate_findings(cert_dir: Path | None, secret: Mapping[str, Any] | None, secret_name: str,
                         installed: Mapping[str, Any] | None, min_days: float,
                         now: dt.datetime | None = None) -> tuple[list[Finding], list[str]]:
    """Findings and what was checked (``"serving certificate: 87.0 days left"``, for the report)."""
    from certs.generate import CA_CERT_FILE, CERT_FILE, KEY_FILE
    from certs.inspect import CertLoadError, chain_error, inspect_dir, load_cert

    now = now or dt.datetime.now(dt.UTC)
    findings: list[Finding] = []
    notes: list[str] = []
    serving = None
    with tempfile.TemporaryDirectory() as tmp:
        directory = cert_dir
        subject = f"certificate {cert_dir}" if cert_dir else f"secret {secret_name}"
        if directory is None and secret is not None:
            directory = Path(tmp)
            for key in (CERT_FILE, KEY_FILE, CA_CERT_FILE):
                value = (secret.get("data") or {}).get(key)
                if value:
                    try:
                        (directory / key).write_bytes(base64.b64decode(value))
                    except (binascii.Error, ValueError):
                        pass
        if directory is None:
            findings.append(Finding("certificates", "serving_certificate_not_found", subject,
                                    "no --cert-dir given and the Secret does not exist",
                                    "pass --cert-dir DIR or --cert-secret NS/NAME (the Secret the webhook mounts)"))
        else:
            try:
                report = inspect_dir(directory, now=now)
                serving = load_cert(directory / CERT_FILE)
            except CertLoadError as exc:
                findings.append(Finding("certificates", "serving_certificate_unreadable", subject, str(exc), _CERT_HINT))
            else:
                notes.append(f"serving certificate: {_days(report.seconds_until_expiry)} left")
                for problem in report.problems(min_days):
                    findings.append(Finding("certificates", "serving_certificate", subject, problem, _CERT_HINT))
    if installed is not None:
        for hook in installed.get("webhooks") or ():
            bundle = (hook.get("clientConfig") or {}).get("caBundle")
            where = f"caBundle of webhook {hook.get('name')}"
            if not bundle:
                continue
            try:
                from cryptography import x509

                ca = x509.load_pem_x509_certificate(base64.b64decode(bundle))
            except (ValueError, binascii.Error) as exc:
                findings.append(Finding("certificates", "ca_bundle_unreadable", where, f"not a PEM certificate: {exc}",
                                        "fill caBundle with the CA that signed the serving certificate (`make manifests`)"))
                continue
            left = (ca.not_valid_after_utc - now).total_seconds()
            notes.append(f"{where}: {_days(left)} left")
            if left <= 0:
                findings.append(Finding("certificates", "ca_bundle_expired", where,
                                        f"the CA expired at {ca.not_valid_after_utc.isoformat()}", _CERT_HINT))
            elif left < min_days * 86400:
                findings.append(Finding("certificates", "ca_bundle_expiring", where,
                                        f"the CA expires in {_days(left)}, less than {min_days:g}", _CERT_HINT))
            if serving is not None:
                error = chain_error(serving, ca)
                if error:
                    findings.append(Finding("certificates", "chain_broken", where,
                                            f"the serving certificate does not chain to it: {error}",
                                            "the apiserver rejects the webhook's TLS: put the serving certificate's "
                                            "CA into caBundle, or re-issue the certificate from that CA"))
    return findings, notes
