"""The alerts and dashboards under manifests/monitoring/, checked by promtool.

* ``promtool check rules`` on the rules file, ``promtool test rules`` on its
  unit tests (synthetic series: each alert fires when it should and stays
  silent on a blip and on a quiet cluster);
* the PrometheusRule carries exactly the rules file's groups;
* every alert has a runbook section in docs/operations.md and a test that
  sees it fire and one that sees it stay silent;
* every dashboard panel's query parses and evaluates (each becomes a recording
  rule, checked and evaluated by promtool), and every meshfit metric a rule or
  panel names is one the servers export or the documented fleet metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"
RULES = MONITORING / "rules.yaml"
OPERATIONS = REPO / "docs" / "operations.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: promtool is missing (make prometheus installs it)")
        pytest.skip("promtool is missing (make prometheus installs it)")
    return found


def _run(*argv: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = _run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_unit_tests_pass(promtool: str) -> None:
    done = _run(promtool, "test", "rules", "tests/rules_test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_prometheusrule_carries_the_rules_file() -> None:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    default = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert not any("monitoring" in str(r) for r in default.get("resources") or ()), "needs the operator's CRDs"


def _anchors(markdown: str) -> set[str]:
    anchors = set(re.findall(r'<a id="([^"]+)"', markdown))
    for heading in re.findall(r"^#+ (.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_alert_has_a_runbook_and_tests_that_fire_and_stay_silent() -> None:
    anchors = _anchors(OPERATIONS.read_text())
    cases = yaml.safe_load((MONITORING / "tests" / "rules_test.yaml").read_text())["tests"]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test") or ():
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    for alert in _alerts():
        name = alert["alert"]
        url = alert["annotations"]["runbook_url"]
        assert url == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: no runbook section in docs/operations.md"
        assert name in fired, f"{name}: no test sees it fire"
        assert name in silent, f"{name}: no test sees it stay silent"
        assert alert.get("for"), f"{name}: fires on a single evaluation"
        assert alert["labels"]["severity"] in ("critical", "warning")


def _dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((MONITORING / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        assert board["uid"] and board["title"].startswith("meshfit / ")
        for panel in board["panels"]:
            for target in panel.get("targets") or ():
                out.append((path.name, panel["title"], target["expr"]))
    return out


def _concrete(expr: str) -> str:
    """A panel query as Prometheus gets it: Grafana's variables filled in."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def test_every_dashboard_query_parses_and_evaluates(promtool: str, tmp_path: Path) -> None:
    queries = _dashboard_queries()
    assert {name for name, _, _ in queries} == {"fleet-versions.json", "webhook.json", "extender.json", "node-exposure.json"}
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": _concrete(expr)} for i, (_, _, expr) in enumerate(queries)]}]}
    (tmp_path / "dashboards.yaml").write_text(yaml.safe_dump(rules))
    done = _run(promtool, "check", "rules", str(tmp_path / "dashboards.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # evaluated by promtool's engine over a little data, so a query that parses but cannot run fails here
    tests = {"rule_files": ["dashboards.yaml", str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'meshfit_extender_requests_total{verb="filter",code="200"}', "values": "0+10x20"},
            {"series": 'meshfit_fleet_sidecar_pods{sidecar="rpc-mesh",kind="running",version="1.8.0",zone="a",app="web",namespace="shop"}',
             "values": "3x20"},
        ],
        "promql_expr_test": [{"expr": _concrete(expr), "eval_time": "10m", "exp_samples": []}
                             for _, _, expr in queries if "meshfit_extender_requests_total" not in expr
                             and "meshfit_fleet_sidecar_pods" not in expr and "time()" not in expr],
    }]}
    (tmp_path / "dashboards_test.yaml").write_text(yaml.safe_dump(tests))
    done = _run(promtool, "test", "rules", "dashboards_test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


#: Exported by the fleet controller (documented in docs/operations.md#fleet-metrics).
FLEET_METRICS = {"meshfit_fleet_sidecar_pods", "meshfit_fleet_sidecar_disagreeing_pods", "meshfit_fleet_missed_injections",
                 "meshfit_fleet_inspection_failures", "meshfit_fleet_inspection_last_run_timestamp_seconds",
                 "meshfit_fleet_node_exposure_ratio", "meshfit_fleet_nodes_over_ceiling"}


def test_every_meshfit_metric_named_exists() -> None:
    exported = set()
    for server in ("webhook", "extender"):
        source = (REPO / server / "metrics.py").read_text()
        exported |= {f"meshfit_{server}_{m}" for m in re.findall(r'PREFIX \+ f?"(\w+)"', source)}
        exported |= {f"meshfit_{server}_watch_{m}_total" for m in ("restarts", "relists", "errors", "events")}
    docs = OPERATIONS.read_text()
    for metric in FLEET_METRICS:
        assert f"`{metric}" in docs, f"{metric} is not documented"
    texts = [RULES.read_text()] + [expr for _, _, expr in _dashboard_queries()]
    named = {m for text in texts for m in re.findall(r"\b(meshfit_[a-z_]+)", text)}
    for metric in named:
        base = re.sub(r"_(bucket|count|sum)$", "", metric)
        assert base in exported or base in FLEET_METRICS, f"{metric}: no such metric"
