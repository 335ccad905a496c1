"""One grammar across the commands: the same options mean the same thing everywhere (docs/cli.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli.main import build_parser, main

#: Every command that can read a cluster, as argv prefixes.
CLUSTER_COMMANDS = [
    ("webhook", "serve"), ("extender", "serve"), ("controller", "serve"),
    ("leak",), ("fleet",), ("check",), ("reaccount",),
    ("upgrade",), ("rollback",), ("restart",), ("activate",), ("deactivate",), ("resize",),
]


def _subparser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


@pytest.mark.parametrize("path", CLUSTER_COMMANDS, ids=" ".join)
def test_every_command_that_reads_a_cluster_takes_kubeconfig_and_context(path: tuple[str, ...]) -> None:
    assert {"--kubeconfig", "--context"} <= _options(_subparser(*path))


def test_kubeconfig_env_wins_over_the_service_account(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kube.config import ConfigError, load_config

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "from-env"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(ConfigError, match="from-env"):
        load_config()


def test_a_missing_kubeconfig_says_how_to_give_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["fleet", "--kubeconfig", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"meshfit fleet: cannot load kubeconfig {tmp_path / 'nope'}")
    assert "pass --kubeconfig FILE (and --context NAME), set $KUBECONFIG" in err


def test_errors_name_the_subcommand_and_its_action(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["certs", "check", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("meshfit certs check: ")


#: Every command that prints results, as argv prefixes: each takes -o table|yaml|json.
RESULT_COMMANDS = [
    ("inject",), ("explain",), ("policy", "validate"), ("certs", "check"), ("extender", "simulate"),
    ("leak",), ("fleet",), ("check",), ("reaccount",),
    ("upgrade",), ("rollback",), ("restart",), ("activate",), ("deactivate",), ("resize",),
]


@pytest.mark.parametrize("path", RESULT_COMMANDS, ids=" ".join)
def test_every_command_that_prints_results_takes_the_three_outputs(path: tuple[str, ...]) -> None:
    (output,) = [a for a in _subparser(*path)._actions if "-o" in a.option_strings]
    assert output.option_strings == ["-o", "--output"]
    assert set(output.choices or ()) == {"table", "yaml", "json"}


ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "manifests" / "policy.yaml"


def test_yaml_and_json_carry_the_same_data(capsys: pytest.CaptureFixture[str]) -> None:
    import orjson
    import yaml

    pods = str(ROOT / "manifests" / "examples" / "pods.yaml")
    assert main(["explain", "-f", pods, "-o", "json"]) == 0
    as_json = orjson.loads(capsys.readouterr().out)
    assert main(["explain", "-f", pods, "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == as_json
    decisions = {p["object"]: p["decision"] for p in as_json["pods"]}
    assert decisions["Pod shop/debug-shell"] == "skip" and decisions["Pod shop/ledger"] == "inject"
    assert main(["inject", "-f", pods, "-o", "table"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["OBJECT", "DECISION", "SIDECARS", "REASON"]
    assert any(line.startswith("Pod shop/debug-shell") and " skip " in line for line in table)


def test_policy_validate_warns_about_the_placeholder_images(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    assert main(["policy", "validate", "-f", str(POLICY)]) == 0
    out, err = capsys.readouterr()
    assert "valid MeshPolicy" in out
    assert err.startswith(f"warning: {POLICY}: sidecar(s) rpc-mesh, msg-mesh use the placeholder image registry "
                          "registry.example.com")
    own = tmp_path / "policy.yaml"
    own.write_text(POLICY.read_text().replace("registry.example.com/", "registry.corp.internal/"))
    assert main(["policy", "validate", "-f", str(own)]) == 0
    assert capsys.readouterr().err == ""


def test_policy_validate_reads_a_directory_and_stdin(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import io

    (tmp_path / "a.yaml").write_text(POLICY.read_text())
    (tmp_path / "b.yaml").write_text("apiVersion: meshfit.io/v1alpha1\nkind: MeshPolicy\nsidecars: 3\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(POLICY.read_text()))
    assert main(["policy", "validate", "-f", str(tmp_path), "-f", "-"]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'a.yaml'}: valid MeshPolicy" in out and f"{tmp_path / 'b.yaml'}: 1 error(s)" in out
    assert "<stdin>: valid MeshPolicy" in out


# -- the old spellings: they work as before, and say once what to write instead --------------------------

@pytest.mark.parametrize("old, new", [
    (["certs", "generate", "--service", "meshfit-webhook", "--out", "D"],
     ["certs", "generate", "--service", "meshfit-webhook", "--cert-dir", "D"]),
    (["certs", "ca", "--out", "D"], ["certs", "ca", "--cert-dir", "D"]),
    (["certs", "issue", "--dir", "D", "--service", "s"], ["certs", "issue", "--cert-dir", "D", "--service", "s"]),
    (["certs", "client", "--dir", "D"], ["certs", "client", "--cert-dir", "D"]),
    (["extender", "serve", "--tls-cert-dir", "D"], ["extender", "serve", "--cert-dir", "D"]),
])
def test_a_deprecated_option_spelling_sets_the_same_option(capsys: pytest.CaptureFixture[str], old: list[str],
                                                          new: list[str]) -> None:
    parser = build_parser()
    before = vars(parser.parse_args(new))
    assert capsys.readouterr().err == ""
    after = vars(parser.parse_args(old))
    assert after == before
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is deprecated, use --cert-dir" in err


def test_a_deprecated_positional_still_works_with_a_note(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    from certs.generate import generate

    generate(tmp_path, service="meshfit-webhook", namespace="meshfit-system")
    assert main(["certs", "check", str(tmp_path), "--service", "meshfit-webhook"]) == 0
    out, err = capsys.readouterr()
    assert "all covered" in out
    assert err == "meshfit certs check: the positional DIR is deprecated, use --cert-dir DIR (it still works for now)\n"
    assert main(["certs", "bundle", str(tmp_path)]) == 0
    assert "deprecated" in capsys.readouterr().err
    assert main(["policy", "validate", str(POLICY)]) == 0
    out, err = capsys.readouterr()
    assert "valid MeshPolicy" in out
    assert err.splitlines()[0] == ("meshfit policy validate: the positional FILE is deprecated, use -f FILE "
                                   "(it still works for now)")


@pytest.mark.parametrize("argv", [
    ["certs", "generate", "--cert-dir", "D"],
    ["certs", "issue", "--cert-dir", "D"],
])
def test_a_certificate_command_without_service_says_how(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"meshfit certs {argv[1]}: needs --service: --service NAME names the Service")
    assert "meshfit-webhook for the webhook, meshfit-extender for the extender" in err
    assert not (tmp_path / "D").exists()


def test_namespace_is_the_namespace_worked_in(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pods = str(ROOT / "manifests" / "examples" / "pods.yaml")  # every object names namespace shop
    assert main(["inject", "-f", pods, "-n", "shop", "-o", "table"]) == 0
    capsys.readouterr()
    assert main(["inject", "-f", pods, "-n", "payments"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meshfit inject: the object's namespace 'shop' does not match --namespace 'payments'")
    assert "pass -n shop, or leave -n out" in err
    bare = tmp_path / "pod.yaml"
    bare.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, resources: "
                    "{requests: {cpu: 100m, memory: 64Mi}}}]}\n")
    assert main(["explain", "-f", str(bare), "-n", "payments"]) == 0
    assert "Pod payments/p" in capsys.readouterr().out


def test_cluster_options_without_a_cluster_policy_say_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    pods = str(ROOT / "manifests" / "examples" / "pods.yaml")
    assert main(["explain", "-f", pods, "--context", "prod"]) == 2
    assert "add --policy-from-cluster" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inject", "-f", pods, "--policy", str(POLICY), "--policy-from-cluster"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_policy_from_cluster_reads_the_installed_configmap(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.options as options

    asked: list[str] = []

    async def fake(get: object, args: argparse.Namespace) -> object:
        asked.append(args.policy_configmap)
        from policy.load import load_policy_file
        return load_policy_file(POLICY)

    monkeypatch.setattr(options, "policy_from_args", fake)
    monkeypatch.setattr("cli.cluster_options.cluster_config", lambda args: __import__(
        "kube.config", fromlist=["ClusterConfig"]).ClusterConfig(server="https://127.0.0.1:1"))
    pods = str(ROOT / "manifests" / "examples" / "pods.yaml")
    assert main(["explain", "-f", pods, "--policy-from-cluster"]) == 0
    assert asked == ["meshfit-system/meshfit-policy"]


def test_the_shipped_manifests_use_todays_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    seen = 0
    for path in sorted((ROOT / "manifests").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            spec = (((doc or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in spec.get("containers") or ():
                if container.get("command") == ["meshfit"]:
                    build_parser().parse_args(container["args"])
                    seen += 1
                    assert "deprecated" not in capsys.readouterr().err, f"{path}: {container['args']}"
    assert seen >= 3  # the webhook, the extender, the controller
