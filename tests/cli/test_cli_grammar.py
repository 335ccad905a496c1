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
