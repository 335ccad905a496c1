"""``meshfit certs generate`` / ``meshfit certs check``: output shape and exit codes."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from certs.generate import generate
from cli import certs_cmd
from cli.errors import CommandError
from cli.main import command_name

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> int:
    """Dispatch like ``cli.main`` does, with only the certs command registered."""
    parser = argparse.ArgumentParser(prog="meshfit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    certs_cmd.register(subparsers)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"{command_name(args)}: {exc}", file=sys.stderr)
        return exc.exit_code


def test_generate_prints_the_ca_bundle_alone_on_stdout(tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    code = run(
        [
            "certs",
            "generate",
            "--service",
            "wh",
            "--namespace",
            "mesh",
            "--cert-dir",
            str(out),
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--days",
            "10",
            "--key-type",
            "rsa",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.splitlines()
    assert len(lines) == 1
    assert base64.b64decode(lines[0]) == (out / "ca.crt").read_bytes()
    assert "wh.mesh.svc" in captured.err and "127.0.0.1" in captured.err and "rsa" in captured.err


def test_check_passes_a_good_directory(tmp_path: Path, capsys) -> None:
    generate(tmp_path, service="wh", namespace="mesh", ips=["127.0.0.1"], days=90)
    code = run(
        [
            "certs",
            "check",
            "--cert-dir",
            str(tmp_path),
            "--service",
            "wh",
            "--namespace",
            "mesh",
            "--ip",
            "127.0.0.1",
            "--min-days",
            "30",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "all covered" in captured.out
    assert "chain:       ok" in captured.out
    assert captured.err == ""


def test_check_fails_an_expired_certificate(tmp_path: Path, capsys) -> None:
    generate(tmp_path, service="wh", namespace="mesh", days=1, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    assert run(["certs", "check", "--cert-dir", str(tmp_path)]) == 1
    assert "expired" in capsys.readouterr().err


def test_check_fails_when_expiring_within_min_days(tmp_path: Path, capsys) -> None:
    generate(tmp_path, service="wh", namespace="mesh", days=5)
    assert run(["certs", "check", "--cert-dir", str(tmp_path), "--min-days", "4"]) == 0
    assert run(["certs", "check", "--cert-dir", str(tmp_path), "--min-days", "6"]) == 1
    assert "less than 6" in capsys.readouterr().err


def test_check_fails_on_missing_sans(tmp_path: Path, capsys) -> None:
    generate(tmp_path, service="wh", namespace="mesh")
    assert run(["certs", "check", "--cert-dir", str(tmp_path), "--service", "wh", "--namespace", "other"]) == 1
    assert "wh.other.svc" in capsys.readouterr().err
    assert run(["certs", "check", "--cert-dir", str(tmp_path), "--ip", "10.0.0.1"]) == 1
    assert run(["certs", "check", "--cert-dir", str(tmp_path), "--dns", "elsewhere.example"]) == 1


def test_check_fails_on_key_mismatch(tmp_path: Path, capsys) -> None:
    generate(tmp_path / "a", service="wh", namespace="mesh")
    generate(tmp_path / "b", service="wh", namespace="mesh")
    shutil.copy(tmp_path / "b" / "tls.key", tmp_path / "a" / "tls.key")
    assert run(["certs", "check", "--cert-dir", str(tmp_path / "a")]) == 1
    assert "does not match" in capsys.readouterr().err


def test_check_fails_on_broken_chain(tmp_path: Path, capsys) -> None:
    generate(tmp_path / "a", service="wh", namespace="mesh")
    generate(tmp_path / "b", service="wh", namespace="mesh")
    shutil.copy(tmp_path / "b" / "ca.crt", tmp_path / "a" / "ca.crt")
    assert run(["certs", "check", "--cert-dir", str(tmp_path / "a")]) == 1
    captured = capsys.readouterr()
    assert "BROKEN" in captured.out
    assert "does not chain" in captured.err


def test_check_without_ca_reports_chain_unchecked(tmp_path: Path, capsys) -> None:
    generate(tmp_path, service="wh", namespace="mesh")
    (tmp_path / "ca.crt").unlink()
    assert run(["certs", "check", "--cert-dir", str(tmp_path)]) == 0
    assert "not checked" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["certs", "check", "--cert-dir", "/nonexistent/meshfit-certs"],
        ["certs", "check", "--cert-dir", "/tmp", "--service", "wh"],
        ["certs", "generate", "--service", "wh", "--namespace", "mesh", "--cert-dir", "x", "--days", "0"],
        ["certs", "generate", "--service", "Not_A_Label", "--namespace", "mesh", "--cert-dir", "x"],
        ["certs", "generate", "--service", "wh", "--namespace", "mesh", "--cert-dir", "x", "--ip", "nope"],
    ],
)
def test_user_mistakes_are_one_line_and_non_zero(argv, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(argv) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"meshfit certs {argv[1]}: ") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_console_entry_point(tmp_path: Path) -> None:
    """The real ``meshfit`` parser finds the command (all sub-commands registered)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "certs",
            "generate",
            "--service",
            "wh",
            "--namespace",
            "mesh",
            "--cert-dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert base64.b64decode(proc.stdout.strip()) == (tmp_path / "c" / "ca.crt").read_bytes()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "certs",
            "check",
            str(tmp_path / "c"),
            "--service",
            "wh",
            "--namespace",
            "mesh",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
