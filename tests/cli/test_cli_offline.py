"""The offline commands as a user runs them: inject, explain, policy validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from cli.main import main
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
POLICY = ROOT / "manifests" / "policy.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inject_a_deployment_matches_the_engine_on_its_template(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inject", "-f", str(EXAMPLES / "payments.yaml"))
    assert code == 0
    (deployment,) = list(yaml.safe_load_all(out))
    template = deployment["spec"]["template"]
    assert [c["name"] for c in template["spec"]["initContainers"]] == ["rpc-mesh", "msg-mesh"]
    assert "ownerReferences" not in template["metadata"]
    assert deployment["spec"]["replicas"] == 3  # the workload around it is untouched
    # the same engine on a pod of that Deployment gives the same spec
    original = yaml.safe_load((EXAMPLES / "payments.yaml").read_text())["spec"]["template"]
    pod = {"metadata": {**original["metadata"], "ownerReferences": [
        {"kind": "ReplicaSet", "name": "payments-7f9c", "controller": True}],
        "labels": {**original["metadata"]["labels"], "pod-template-hash": "7f9c"}}, "spec": original["spec"]}
    result = inject(pod, Namespace("shop", None), load_policy_file(POLICY))
    assert result.pod["spec"] == template["spec"]


def test_inject_passes_other_objects_through_in_order_and_handles_lists(capsys: pytest.CaptureFixture[str],
                                                                        tmp_path: Path) -> None:
    code, out, _ = run(capsys, "inject", "-f", str(EXAMPLES / "batch.yaml"), "-o", "json")
    assert code == 0
    body = orjson.loads(out)
    assert body["kind"] == "List"
    cron, cm = body["items"]
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["name"] == "rpc-mesh"
    assert cm == list(yaml.safe_load_all((EXAMPLES / "batch.yaml").read_text()))[1]  # passed through as is
    listed = tmp_path / "list.json"
    listed.write_text(orjson.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
         "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1"}}}]}}]}).decode())
    code, out, _ = run(capsys, "inject", "-f", str(listed), "-o", "json")
    assert orjson.loads(out)["items"][0]["spec"]["initContainers"][0]["name"] == "rpc-mesh"


def test_namespace_labels_gate_injection(capsys: pytest.CaptureFixture[str]) -> None:
    pods = str(EXAMPLES / "pods.yaml")
    _, out, _ = run(capsys, "inject", "-f", pods, "--namespace", "shop")
    assert list(yaml.safe_load_all(out)) == list(yaml.safe_load_all((EXAMPLES / "pods.yaml").read_text()))
    _, out, _ = run(capsys, "inject", "-f", pods, "--namespace", "shop", "--namespace-labels", "meshfit.io/inject=enabled")
    assert "rpc-mesh" in out


def test_a_bad_document_is_reported_by_index_kind_and_name_and_the_others_are_written(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    good = "apiVersion: v1\nkind: Pod\nmetadata: {name: ok%d}\nspec: {containers: [{name: a, resources: {requests: {cpu: 1, memory: 1Gi}}}]}\n"
    bad.write_text(good % 1 + "---\n"
                   "apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\n"
                   "spec: {containers: [{name: a, resources: {limits: {memory: 1GB}}}]}\n---\n" + good % 3)
    code, out, err = run(capsys, "inject", "-f", str(bad))
    assert code == 1
    written = [d["metadata"]["name"] for d in yaml.safe_load_all(out)]
    assert written == ["ok1", "ok3"]
    assert err.strip().splitlines() == [f"meshfit inject: {bad} document 2 (Pod broken): "
                                        "spec.containers[0].resources.limits.memory: invalid quantity '1GB'"]
    code, _, err = run(capsys, "inject", "-f", str(tmp_path / "missing.yaml"))
    assert code == 1 and "no such file" in err


def test_yaml_numbers_are_quantities(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "numbers.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: n}\n"
                 "spec: {containers: [{name: a, resources: {requests: {cpu: 0.15, memory: 128974848}, "
                 "limits: {cpu: 1, memory: 2.0e+9}}}]}\n")
    code, out, err = run(capsys, "inject", "-f", str(f))
    assert code == 0, err
    app = next(c for c in yaml.safe_load(out)["spec"]["containers"] if c["name"] == "a")
    assert app["resources"]["limits"] == {"cpu": 1, "memory": 2.0e+9}  # limits are never rewritten


def test_a_runtime_class_overhead_is_known_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "kata.yaml"
    pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: k}\nspec: {runtimeClassName: kata, containers: "
           "[{name: a, resources: {requests: {cpu: 1, memory: 1Gi}}}]}\n")
    f.write_text(pod)
    code, out, err = run(capsys, "inject", "-f", str(f))
    assert code == 0 and "runtimeClassName kata: its overhead is unknown here" in err
    unknown = yaml.safe_load(out)
    f.write_text("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: kata}\nhandler: kata\n"
                 "overhead: {podFixed: {cpu: 250m, memory: 160Mi}}\n---\n" + pod)
    code, out, err = run(capsys, "inject", "-f", str(f))
    assert code == 0 and "unknown here" not in err
    known = list(yaml.safe_load_all(out))[1]
    assert "overhead" not in known["spec"], "the apiserver adds the overhead itself"
    record = orjson.loads(known["metadata"]["annotations"]["meshfit.io/accounting"])
    assert record["original"] == {"cpu": "1250m", "memory": "1184Mi"}  # A as the webhook will see it
    assert orjson.loads(unknown["metadata"]["annotations"]["meshfit.io/accounting"])["original"] == \
        {"cpu": "1", "memory": "1Gi"}
    code, flagged, _ = run(capsys, "inject", "-f", str(f), "--runtime-class", "kata=cpu=250m,memory=160Mi")
    assert code == 0 and flagged == out


def test_a_skipped_template_comes_back_untouched(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "deploy.yaml"
    text = ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: kube-system}\n"
            "spec:\n  selector: {matchLabels: {app: d}}\n  template:\n    spec:\n"
            "      containers: [{name: a, resources: {limits: {memory: 1GB}}}]\n")
    f.write_text(text)
    code, out, err = run(capsys, "inject", "-f", str(f))
    assert code == 0, err  # excluded namespace decided before the bad quantity is parsed
    assert yaml.safe_load(out) == yaml.safe_load(text)


def test_explain_names_the_namespace_it_assumed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "pod.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, resources: "
                 "{requests: {cpu: 100m, memory: 64Mi}}}]}\n")
    code, out, _ = run(capsys, "explain", "-f", str(f))
    assert code == 0 and "Pod default/p" in out and "None" not in out
    assert "qos:      Burstable → Burstable (unchanged)" in out
    assert "reduced:  the sidecars' requests cut by" in out


def test_invalid_policy_is_reported_by_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\nsidecars:\n"
                      "  - {name: rpc, image: x/y, sizing: {ratio: {cpu: '1.5'}}}\nversions: {sidecars: {rpc: {baseline: '1'}}}\n")
    code, _, err = run(capsys, "inject", "-f", str(EXAMPLES / "pods.yaml"), "--policy", str(policy))
    assert code == 1 and "sidecars[0].sizing.ratio.cpu: must be between 0 and 1, got 1.5" in err
    code, out, _ = run(capsys, "policy", "validate", str(policy), str(POLICY))
    assert code == 1
    assert "sidecars[0].sizing.ratio.cpu" in out and "valid MeshPolicy" in out


def test_explain_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "-f", str(EXAMPLES))
    assert code == 0
    assert "Deployment shop/payments (pod template)" in out
    assert "rpc-mesh 1.8.1 (bugfix rule mosn-1.8.1-conn-leak-fix)" in out
    assert "experiment mosn-1.9-canary" in out and "no-match" in out
    assert "decision: skip — the pod opts out (meshfit.io/inject=false)" in out
    assert "(unchanged: quota and the scheduler see nothing new)" in out


def test_the_console_script_runs_from_stdin() -> None:
    pod = b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"a"}]}}'
    proc = subprocess.run([sys.executable, "-m", "cli", "inject", "-f", "-", "-o", "json"], input=pod,
                          capture_output=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["metadata"]["annotations"]["meshfit.io/status"]


def test_every_command_is_registered_and_none_is_hidden_by_an_import_error(monkeypatch) -> None:
    from cli import main as cli_main

    parser = cli_main.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    import importlib

    expected = [n for m in cli_main.COMMANDS
                for n in getattr(importlib.import_module(f"cli.{m}_cmd"), "COMMAND_NAMES", (m,))]
    assert list(commands.choices) == expected

    listed = cli_main.COMMANDS
    monkeypatch.setitem(sys.modules, "cli.broken_cmd", None)  # importing it raises ImportError
    monkeypatch.setattr(cli_main, "COMMANDS", (*listed, "broken"))
    with pytest.raises(ImportError):
        cli_main.build_parser()
    monkeypatch.setattr(cli_main, "COMMANDS", (*listed, "missing"))
    with pytest.raises(ModuleNotFoundError):
        cli_main.build_parser()
