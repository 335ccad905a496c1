"""The wheel, installed into a fresh virtualenv outside the checkout, runs the offline commands.

A source checkout hides every missing piece of package data (the default
policy was found through the source tree), so this test builds the wheel,
installs it with ``--no-index`` into a venv under a temporary directory and
runs the commands from there, with the checkout nowhere on ``sys.path``.
Dependencies come from a wheelhouse in ``~/.cache/meshfit/wheelhouse``:
filled from the index once, offline after that.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MESHFIT_CACHE") or Path.home() / ".cache" / "meshfit").expanduser()
WHEELHOUSE = CACHE / "wheelhouse"


def run(argv: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # setuptools reuses build/lib in the source tree: a file since deleted or ignored would live on there
    # and be packaged (hack/image/build.py builds from a copy for the same reason).
    shutil.rmtree(REPO / "build" / "lib", ignore_errors=True)
    done = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)], out)
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("meshfit-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel and its dependencies; returns its bin directory."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home / "v", with_pip=True)
    pip = [str(home / "v/bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    offline = [*pip, "--no-index", "--find-links", str(WHEELHOUSE), "--find-links", str(wheel.parent), str(wheel)]
    done = run(offline, home)
    if done.returncode:
        # First run on this machine: fill the wheelhouse from the index, then install offline.
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        fill = run([sys.executable, "-m", "pip", "download", "--quiet", "-d", str(WHEELHOUSE), str(wheel)], home)
        assert fill.returncode == 0, fill.stderr
        (WHEELHOUSE / wheel.name).unlink(missing_ok=True)
        done = run(offline, home)
    assert done.returncode == 0, done.stderr
    return home / "v/bin"


def test_wheel_carries_the_package_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("meshfit_data/manifests/policy.yaml", "meshfit_data/manifests/examples/payments.yaml",
                   "meshfit_data/manifests/webhook/base/mutatingwebhookconfiguration.yaml",
                   "meshfit_data/manifests/extender/scheduler-config.yaml",
                   "meshfit_data/manifests/controller/deployment.yaml", "meshfit_data/manifests/controller/rbac.yaml",
                   "meshfit_data/manifests/crds/sidecarrollouts.yaml", "controller/rollouts.py",
                   "controller/process.py", "controller/executor.py", "meshfit_data/controlplane/go.mod",
                   "meshfit_data/kwok/go.mod"):
        assert needed in names, needed
    assert not [n for n in names if "/generated/" in n], "the rendered bundle holds a private key"
    assert not [n for n in names if n.startswith(("tests/", "bench/", "hack/"))]


def test_version(installed: Path, tmp_path: Path) -> None:
    done = run([str(installed / "meshfit"), "--version"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["meshfit 0.1.0", "policy schema meshfit.io/v1alpha1",
                                        "accounting record v1 (meshfit.io/accounting)"]


def test_imports_come_from_the_venv(installed: Path, tmp_path: Path) -> None:
    done = run([str(installed / "python"), "-c", "import cli, meshfit_data; print(cli.__file__); "
                "print(meshfit_data.path('manifests', 'policy.yaml'))"], tmp_path)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        assert str(installed.parent) in line and str(REPO) not in line, line


def test_inject_and_explain_with_the_shipped_policy(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "payments.yaml").write_text((REPO / "manifests/examples/payments.yaml").read_text())
    done = run([str(installed / "meshfit"), "inject", "-f", "payments.yaml"], tmp_path)
    assert done.returncode == 0, done.stderr
    (deployment,) = [d for d in yaml.safe_load_all(done.stdout) if d]
    names = [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]]
    assert {"rpc-mesh", "msg-mesh"} <= set(names)
    done = run([str(installed / "meshfit"), "explain", "-f", "payments.yaml"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "decision: inject" in done.stdout and "rpc-mesh 1.8.1 (bugfix rule" in done.stdout


def test_policy_validate_and_certs_generate(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text((REPO / "manifests/policy.yaml").read_text())
    done = run([str(installed / "meshfit"), "policy", "validate", "policy.yaml"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run([str(installed / "meshfit"), "certs", "generate", "--service", "meshfit-webhook",
                "--namespace", "meshfit-system", "--out", "tls"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (tmp_path / "tls").iterdir()} >= {"ca.crt", "tls.crt", "tls.key"}
    done = run([str(installed / "meshfit"), "certs", "check", "tls"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_demo_finds_the_control_plane_pins(installed: Path, tmp_path: Path) -> None:
    """`meshfit demo` builds the control plane from the pins shipped in the package, as in a checkout."""
    done = run([str(installed / "python"), "-c", "from controlplane import binaries; "
                "print(binaries.pins().kubernetes, binaries.BUILD_SCRIPT.is_file() and binaries.KWOK_GO_MOD.is_file(), "
                "binaries.bindir())"], tmp_path)
    assert done.returncode == 0, done.stderr
    ours = subprocess.run([sys.executable, "-c", "from controlplane import binaries; print(binaries.bindir())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    version, script, bindir = done.stdout.split()
    assert version.startswith("v1.") and script == "True"
    assert bindir == ours  # the same cache directory: a checkout's build serves the installed command
