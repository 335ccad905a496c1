"""``meshfit webhook serve`` refuses a configuration it cannot serve with one line and exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main


def test_a_policy_source_is_required(capsys: pytest.CaptureFixture[str], cert_dir: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["webhook", "serve", "--cert-dir", str(cert_dir)])
    assert exc.value.code == 2
    assert "--policy" in capsys.readouterr().err


def test_policy_sources_are_exclusive(capsys: pytest.CaptureFixture[str], cert_dir: Path, policy_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["webhook", "serve", "--cert-dir", str(cert_dir), "--policy", str(policy_path),
              "--policy-configmap", "a/b"])
    assert "not allowed with" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nope", "a/", "/b", "a/b/c"])
def test_configmap_is_namespace_slash_name(capsys: pytest.CaptureFixture[str], cert_dir: Path, value: str) -> None:
    with pytest.raises(SystemExit):
        main(["webhook", "serve", "--cert-dir", str(cert_dir), "--policy-configmap", value])
    assert "NAMESPACE/NAME" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "ok"), [("7Mi", True), ("1048576", True), ("12", False), ("lots", False)])
def test_max_body_bytes(capsys: pytest.CaptureFixture[str], value: str, ok: bool) -> None:
    from cli.server_options import byte_size as _size

    if ok:
        assert _size(value) >= 1024
    else:
        with pytest.raises(Exception):
            _size(value)


def test_broken_policy_file_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], cert_dir: Path, policy_path: Path
) -> None:
    policy_path.write_text(policy_path.read_text().replace("mode: overcommit", "mode: sideways"))
    code = main(["webhook", "serve", "--cert-dir", str(cert_dir), "--policy", str(policy_path), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "resources.mode" in err and err.count("\n") == 1 + err.count("INFO") + err.count("ERROR")


def test_missing_certificate_is_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path, policy_path: Path) -> None:
    code = main(["webhook", "serve", "--cert-dir", str(tmp_path / "none"), "--policy", str(policy_path), "--port", "0"])
    assert code == 1
    assert "meshfit webhook serve: no serving certificate" in capsys.readouterr().err


def test_unusable_kubeconfig_is_exit_1(
    capsys: pytest.CaptureFixture[str], cert_dir: Path, policy_path: Path, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    code = main(["webhook", "serve", "--cert-dir", str(cert_dir), "--policy", str(policy_path), "--port", "0",
                 "--kubeconfig", str(kubeconfig)])
    assert code == 1
    assert "no cluster configuration" in capsys.readouterr().err
