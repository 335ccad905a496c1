"""``meshfit check``'s installation inspections offline: webhook configuration, scheduler configuration, certificates."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from certs.generate import generate
from cli.check_config import (MANIFEST, certificate_findings, load_shipped, scheduler_config_findings,
                              webhook_config_findings)

REPO = Path(__file__).resolve().parents[2]


def installed(**changes: Any) -> dict[str, Any]:
    """The shipped configuration as the apiserver returns it: clientConfig filled in, defaults present."""
    config = load_shipped()
    hook = config["webhooks"][0]
    hook["clientConfig"] = {"url": "https://127.0.0.1:9443/mutate", "caBundle": "Y2E="}
    for rule in hook["rules"]:
        rule.setdefault("scope", "Namespaced")
    hook.update(changes)
    return config


def test_the_shipped_configuration_matches_itself_and_drift_is_named() -> None:
    shipped = load_shipped(MANIFEST)
    assert webhook_config_findings(installed(), shipped, "x") == []
    found = webhook_config_findings(installed(failurePolicy="Fail", timeoutSeconds=30), shipped, "x")
    assert [f.code for f in found] == ["webhook_failurePolicy", "webhook_timeoutSeconds"]
    assert "Fail" in found[0].message and found[0].hint
    wide = installed()
    wide["webhooks"][0]["namespaceSelector"] = {}
    assert [f.code for f in webhook_config_findings(wide, shipped, "x")] == ["webhook_namespaceSelector"]
    reordered = installed()
    reordered["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"].reverse()
    assert webhook_config_findings(reordered, shipped, "x") == []
    defaulted = installed()
    del defaulted["webhooks"][0]["reinvocationPolicy"]  # the apiserver's default, Never, is what ships
    assert webhook_config_findings(defaulted, shipped, "x") == []
    unconditional = installed()
    del unconditional["webhooks"][0]["matchConditions"]  # every pod sent again, recorded or opted out
    assert [f.code for f in webhook_config_findings(unconditional, shipped, "x")] == ["webhook_matchConditions"]
    again = installed(reinvocationPolicy="IfNeeded")
    assert [f.code for f in webhook_config_findings(again, shipped, "x")] == ["webhook_reinvocationPolicy"]
    no_bundle = installed()
    no_bundle["webhooks"][0]["clientConfig"].pop("caBundle")
    assert [f.code for f in webhook_config_findings(no_bundle, shipped, "x")] == ["webhook_no_ca_bundle"]
    assert [f.code for f in webhook_config_findings(None, shipped, "x")] == ["webhook_not_registered"]


def test_scheduler_configuration(tmp_path: Path) -> None:
    shipped = REPO / "manifests" / "extender" / "scheduler-config.yaml"
    assert scheduler_config_findings(shipped, None) == []
    assert scheduler_config_findings(shipped, "https://meshfit-extender.meshfit-system.svc:8443/") == []
    assert [f.code for f in scheduler_config_findings(shipped, "https://elsewhere:8443")] == ["scheduler_without_extender"]
    config = yaml.safe_load(shipped.read_text())
    del config["extenders"][0]["bindVerb"]
    unbound = tmp_path / "unbound.yaml"
    unbound.write_text(yaml.safe_dump(config))
    assert [f.code for f in scheduler_config_findings(unbound, None)] == ["extender_without_bind"]
    assert [f.code for f in scheduler_config_findings(tmp_path / "absent.yaml", None)] == ["scheduler_config_unreadable"]


def _bundle(directory: Path) -> dict[str, Any]:
    ca = base64.b64encode((directory / "ca.crt").read_bytes()).decode()
    return {"webhooks": [{"name": "inject.meshfit.io", "clientConfig": {"caBundle": ca}}]}


def test_certificates(tmp_path: Path) -> None:
    good, other = tmp_path / "good", tmp_path / "other"
    generate(good, service="meshfit-webhook", namespace="meshfit-system", days=90)
    generate(other, service="meshfit-webhook", namespace="meshfit-system", days=90)
    found, notes = certificate_findings(good, None, "s", _bundle(good), 14)
    assert found == [] and len(notes) == 2 and "days left" in notes[0]
    found, _ = certificate_findings(good, None, "s", _bundle(other), 14)
    assert [f.code for f in found] == ["chain_broken"] and "caBundle" in found[0].hint
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=85)
    found, _ = certificate_findings(good, None, "s", _bundle(good), 14, now=later)
    assert {f.code for f in found} == {"serving_certificate", "ca_bundle_expiring"}
    secret = {"data": {name: base64.b64encode((good / name).read_bytes()).decode() for name in ("tls.crt", "tls.key", "ca.crt")}}
    found, _ = certificate_findings(None, secret, "meshfit-system/meshfit-webhook-tls", copy.deepcopy(_bundle(good)), 14)
    assert found == []
    found, _ = certificate_findings(None, None, "meshfit-system/meshfit-webhook-tls", None, 14)
    assert [f.code for f in found] == ["serving_certificate_not_found"]
