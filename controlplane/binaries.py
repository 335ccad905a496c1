"""Where the control-plane binaries live, and how to get them.

The binaries are built from the Go modules pinned in ``hack/controlplane/go.mod``
by ``hack/controlplane/build.sh`` into a cache directory outside the repository
(so ``git clean`` never costs a 20-minute rebuild). The path rule here must stay
the same as build.sh's: ``${MESHFIT_CACHE:-~/.cache/meshfit}/k8s-<v>-etcd-<v>/bin``.
``MESHFIT_CONTROLPLANE_BIN`` points at any other directory holding the three
binaries and kubectl (a prebuilt set, a distro package), and then nothing is built.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import meshfit_data

#: The programs build.sh makes: the three a LocalCluster runs, in start order,
#: then kubectl, for rendering the kustomizations and for people poking at a demo.
BINARIES: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-scheduler", "kubectl")

#: Overrides the computed bin dir; nothing is built when it is set.
BIN_ENV = "MESHFIT_CONTROLPLANE_BIN"
#: The cache root, shared with build.sh.
CACHE_ENV = "MESHFIT_CACHE"

HACK_DIR = meshfit_data.path("controlplane")
BUILD_SCRIPT = HACK_DIR / "build.sh"
GO_MOD = HACK_DIR / "go.mod"


@dataclass(frozen=True)
class Pins:
    """The upstream versions go.mod pins; they name the cache directory."""

    kubernetes: str
    etcd: str


class BinariesMissing(RuntimeError):
    """The bin dir lacks some binaries; the message says which and how to build."""


def _require_version(go_mod_text: str, module: str) -> str:
    # Same rule as build.sh's awk: a require line (not a `=>` replace line)
    # whose first field is the module and second a version.
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", re.MULTILINE)
    for match in pattern.finditer(go_mod_text):
        line_end = go_mod_text.find("\n", match.end())
        line = go_mod_text[match.start() : line_end if line_end != -1 else None]
        if "=>" not in line:
            return match.group(1)
    raise ValueError(f"{GO_MOD}: no require line for {module}")


def pins(go_mod: Path = GO_MOD) -> Pins:
    """Read the kubernetes and etcd versions from go.mod."""
    text = go_mod.read_text()
    return Pins(
        kubernetes=_require_version(text, "k8s.io/kubernetes"),
        etcd=_require_version(text, "go.etcd.io/etcd/server/v3"),
    )


def bindir() -> Path:
    """The directory the binaries are (or will be) in; nothing is checked."""
    override = os.environ.get(BIN_ENV)
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "meshfit").expanduser()
    p = pins()
    return cache / f"k8s-{p.kubernetes}-etcd-{p.etcd}" / "bin"


def missing(directory: Path | None = None) -> list[str]:
    """Names of the binaries not present (or not executable) in ``directory``."""
    d = directory or bindir()
    return [b for b in BINARIES if not os.access(d / b, os.X_OK)]


def require(directory: Path | None = None) -> Path:
    """The bin dir if complete, else raise BinariesMissing saying how to fix it."""
    d = directory or bindir()
    absent = missing(d)
    if absent:
        hint = (
            f"{BIN_ENV} is set, so nothing is built"
            if os.environ.get(BIN_ENV)
            else "run `make controlplane` (needs Go; a cold build takes a few minutes)"
        )
        raise BinariesMissing(f"missing in {d}: {', '.join(absent)}; {hint}")
    return d


def go_available() -> bool:
    """Whether build.sh can run at all here."""
    return shutil.which(os.environ.get("GO", "go")) is not None


def build() -> Path:
    """Run build.sh (a no-op when its stamp matches) and return the bin dir.

    Progress goes to the caller's stderr, since a cold build is long enough
    that silence looks like a hang.
    """
    if os.environ.get(BIN_ENV):
        return require()
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    return require()


# ------------------------------------------------------------------- KWOK
#
# The fake kubelet lives in a Go module of its own (hack/kwok/go.mod), built by
# hack/kwok/build.sh into ${MESHFIT_CACHE:-~/.cache/meshfit}/kwok-<v>/bin: its
# client libraries follow KWOK's release, and its pins must not move the control
# plane's stamp. ``MESHFIT_KWOK_BIN`` points at a directory holding ``kwok``.

KWOK_BINARIES: tuple[str, ...] = ("kwok",)
KWOK_BIN_ENV = "MESHFIT_KWOK_BIN"
KWOK_HACK_DIR = meshfit_data.path("kwok")
KWOK_BUILD_SCRIPT = KWOK_HACK_DIR / "build.sh"
KWOK_GO_MOD = KWOK_HACK_DIR / "go.mod"


def kwok_version(go_mod: Path = KWOK_GO_MOD) -> str:
    """The sigs.k8s.io/kwok version hack/kwok/go.mod pins."""
    return _require_version(go_mod.read_text(), "sigs.k8s.io/kwok")


def kwok_bindir() -> Path:
    """The directory ``kwok`` is (or will be) in; nothing is checked."""
    override = os.environ.get(KWOK_BIN_ENV)
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "meshfit").expanduser()
    return cache / f"kwok-{kwok_version()}" / "bin"


def kwok_missing(directory: Path | None = None) -> list[str]:
    d = directory or kwok_bindir()
    return [b for b in KWOK_BINARIES if not os.access(d / b, os.X_OK)]


def kwok_require(directory: Path | None = None) -> Path:
    """The KWOK bin dir if complete, else raise BinariesMissing saying how to fix it."""
    d = directory or kwok_bindir()
    absent = kwok_missing(d)
    if absent:
        hint = (
            f"{KWOK_BIN_ENV} is set, so nothing is built"
            if os.environ.get(KWOK_BIN_ENV)
            else "run `make controlplane` (needs Go; a cold build of kwok takes about 2.5 minutes)"
        )
        raise BinariesMissing(f"missing in {d}: {', '.join(absent)}; {hint}")
    return d


def kwok_build() -> Path:
    """Run hack/kwok/build.sh (a no-op when its stamp matches) and return the bin dir."""
    if os.environ.get(KWOK_BIN_ENV):
        return kwok_require()
    subprocess.run(["bash", str(KWOK_BUILD_SCRIPT)], check=True, stdout=subprocess.DEVNULL)
    return kwok_require()
