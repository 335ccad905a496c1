"""helm, crane and the image, for the image and chart tests: built when missing.

``make test`` builds them before pytest starts (``make tools image``); these
fixtures build them too, so one test file run alone needs nothing more. As
with the control plane: without Go the tests skip, except under ``CI=true``,
where a missing tool is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS_BUILD = REPO / "hack" / "tools" / "build.sh"
IMAGE_BUILD = REPO / "hack" / "image" / "build.py"
IMAGE_OUT = REPO / "build" / "image"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing(what: str) -> None:
    """Skip, or under CI=true fail: CI never passes by leaving a part untested."""
    if _in_ci():
        pytest.fail(f"CI=true: {what}")
    pytest.skip(what)


def tools_bindir() -> Path:
    """The directory holding helm and crane, built from hack/tools/go.mod if need be."""
    bindir = Path(subprocess.run(["bash", str(TOOLS_BUILD), "--print-bindir"], check=True,
                                 capture_output=True, text=True).stdout.strip())
    if shutil.which("go"):  # the build checks its stamp first: 0.02 s when nothing changed
        done = subprocess.run(["bash", str(TOOLS_BUILD)], capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"hack/tools/build.sh failed:\n{done.stderr[-3000:]}")
    elif not all(os.access(bindir / b, os.X_OK) for b in ("helm", "crane")):
        _missing("helm and crane are built from their Go modules and there is no `go` on PATH")
    return bindir


@pytest.fixture(scope="session")
def tools() -> Path:
    return tools_bindir()


@pytest.fixture(scope="session")
def helm(tools: Path) -> Path:
    return tools / "helm"


@pytest.fixture(scope="session")
def crane(tools: Path) -> Path:
    return tools / "crane"


@dataclass(frozen=True)
class Image:
    """What ``make image`` wrote, read back from the OCI layout."""

    out: Path
    layout: Path
    tarball: Path
    digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    summary: dict[str, Any]

    def blob(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def read_image(out: Path) -> Image:
    layout = out / "oci"
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads((layout / "blobs/sha256" / entry["digest"].split(":")[1]).read_text())
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    summary = json.loads((out / "image.json").read_text())
    return Image(out, layout, Path(summary["tarball"]), entry["digest"], manifest, config, summary)


def build_image(out: Path = IMAGE_OUT, env: dict[str, str] | None = None) -> Image:
    done = subprocess.run([sys.executable, str(IMAGE_BUILD), "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=1800)
    if done.returncode:
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            _missing("the image is assembled from Debian packages: apt-get and dpkg-deb are needed")
        pytest.fail(f"hack/image/build.py failed:\n{done.stderr[-3000:]}")
    return read_image(out)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="session")
def image() -> Image:
    """build/image as `make image` left it, rebuilt when it is missing, from another commit or the tree is edited."""
    try:
        current = read_image(IMAGE_OUT)
        revision = current.config["config"]["Labels"]["org.opencontainers.image.revision"]
        if revision == _git("rev-parse", "HEAD") and not _git("status", "--porcelain"):
            return current
    except (OSError, ValueError, KeyError):
        pass
    return build_image()
