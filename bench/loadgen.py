"""Build and run hack/loadgen, the Go HTTP load generator of the webhook benchmark.

Built on first use into ``$MESHFIT_CACHE`` (default ``~/.cache/meshfit``),
keyed by a hash of its source, like the control-plane binaries: a machine
that can run ``make controlplane`` has the Go toolchain this needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import REPO

SOURCE = REPO / "hack" / "loadgen"


class LoadgenError(RuntimeError):
    pass


def binary() -> Path:
    """The built load generator, building it if its source changed."""
    digest = hashlib.sha256()
    for name in ("go.mod", "main.go"):
        digest.update((SOURCE / name).read_bytes())
    cache = Path(os.environ.get("MESHFIT_CACHE", Path.home() / ".cache" / "meshfit"))
    path = cache / f"loadgen-{digest.hexdigest()[:12]}" / "loadgen"
    if path.exists():
        return path
    go = shutil.which("go")
    if go is None:
        raise LoadgenError("the webhook benchmark needs Go (the control plane's toolchain) to build hack/loadgen")
    path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    done = subprocess.run([go, "build", "-trimpath", "-o", str(path), "."], cwd=SOURCE, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise LoadgenError(f"building hack/loadgen failed: {done.stderr.strip()}")
    return path


@dataclass(frozen=True)
class Load:
    """One measurement: closed loop at ``concurrency`` or open loop at ``rate`` requests/s."""

    url: str
    bodies: Path
    cacert: Path | None = None
    concurrency: int = 8
    seconds: float = 3.0
    warmup: float = 0.5
    rate: float = 0.0
    expect: str = '"allowed":true'


def run(load: Load, *, cpus: str | None = None) -> dict[str, Any]:
    """Run the generator (pinned to ``cpus`` with one Go thread when given) and return its JSON."""
    argv = [str(binary()), "-url", load.url, "-bodies", str(load.bodies), "-c", str(load.concurrency),
            "-duration", f"{load.seconds}s", "-warmup", f"{load.warmup}s", "-rate", str(load.rate),
            "-expect", load.expect]
    if load.cacert is not None:
        argv += ["-cacert", str(load.cacert)]
    env = dict(os.environ)
    if cpus is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", cpus, *argv]
        env["GOMAXPROCS"] = str(len(cpus.split(",")))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=load.seconds + load.warmup + 120)
    if done.returncode != 0:
        raise LoadgenError(f"loadgen failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
