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
from collections.abc import Callable
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


@dataclass(frozen=True)
class BinarySet:
    """Binaries one build script makes into a cache directory of their own, found the same way.

    ``override_env`` names a directory that holds them already (then nothing is
    built); ``cache_dir`` names the cache subdirectory for the current pins.
    """

    binaries: tuple[str, ...]
    override_env: str
    script: Path
    cache_dir: Callable[[], str]
    build_hint: str

    def bindir(self) -> Path:
        """The directory the binaries are (or will be) in; nothing is checked."""
        override = os.environ.get(self.override_env)
        if override:
            return Path(override).expanduser()
        cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "meshfit").expanduser()
        return cache / self.cache_dir() / "bin"

    def missing(self, directory: Path | None = None) -> list[str]:
        """Names of the binaries not present (or not executable) in ``directory``."""
        d = directory or self.bindir()
        return [b for b in self.binaries if not os.access(d / b, os.X_OK)]

    def require(self, directory: Path | None = None) -> Path:
        """The bin dir if complete, else raise BinariesMissing saying how to fix it."""
        d = directory or self.bindir()
        absent = self.missing(d)
        if absent:
            hint = (f"{self.override_env} is set, so nothing is built" if os.environ.get(self.override_env)
                    else self.build_hint)
            raise BinariesMissing(f"missing in {d}: {', '.join(absent)}; {hint}")
        return d

    def build(self) -> Path:
        """Run the build script (a no-op when its stamp matches) and return the bin dir.

        Progress goes to the caller's stderr, since a cold build is long enough
        that silence looks like a hang.
        """
        if os.environ.get(self.override_env):
            return self.require()
        subprocess.run(["bash", str(self.script)], check=True, stdout=subprocess.DEVNULL)
        return self.require()


def _control_plane_dir() -> str:
    p = pins()
    return f"k8s-{p.kubernetes}-etcd-{p.etcd}"


CONTROL_PLANE = BinarySet(BINARIES, BIN_ENV, BUILD_SCRIPT, _control_plane_dir,
                          "run `make controlplane` (needs Go; a cold build takes a few minutes)")


def bindir() -> Path:
    """The directory the control-plane binaries are (or will be) in; nothing is checked."""
    return CONTROL_PLANE.bindir()


def missing(directory: Path | None = None) -> list[str]:
    """Names of the control-plane binaries not present (or not executable) in ``directory``."""
    return CONTROL_PLANE.missing(directory)


def require(directory: Path | None = None) -> Path:
    """The control-plane bin dir if complete, else raise BinariesMissing saying how to fix it."""
    return CONTROL_PLANE.require(directory)


def go_available() -> bool:
    """Whether build.sh can run at all here."""
    return shutil.which(os.environ.get("GO", "go")) is not None


def build() -> Path:
    """Run hack/controlplane/build.sh (a no-op when its stamp matches) and return the bin dir."""
    return CONTROL_PLANE.build()


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


KWOK = BinarySet(KWOK_BINARIES, KWOK_BIN_ENV, KWOK_BUILD_SCRIPT, lambda: f"kwok-{kwok_version()}",
                 "run `make controlplane` (needs Go; a cold build of kwok takes about 2.5 minutes)")


def kwok_bindir() -> Path:
    """The directory ``kwok`` is (or will be) in; nothing is checked."""
    return KWOK.bindir()


def kwok_missing(directory: Path | None = None) -> list[str]:
    return KWOK.missing(directory)


def kwok_require(directory: Path | None = None) -> Path:
    """The KWOK bin dir if complete, else raise BinariesMissing saying how to fix it."""
    return KWOK.require(directory)


def kwok_build() -> Path:
    """Run hack/kwok/build.sh (a no-op when its stamp matches) and return the bin dir."""
    return KWOK.build()
