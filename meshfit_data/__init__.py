"""The files the ``meshfit`` command reads at run time, shipped inside the package.

The default policy, the example workloads, the manifests the demo registers
and the Go pins of the control plane and of KWOK live at the top of the source
tree (``manifests/``, ``hack/controlplane/``, ``hack/kwok/``), where operators
and kustomize expect them. In a checkout this package holds symlinks to those directories; the
wheel carries copies as package data. Every reader goes through :func:`path`,
so an installed ``meshfit`` (``pipx install meshfit``, the container image)
finds them exactly as a checkout does, and nothing outside the package is
ever looked up relative to a source file.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def path(*parts: str) -> Path:
    """A shipped file or directory, e.g. ``path("manifests", "policy.yaml")``.

    pip and the image install packages unpacked, so the resource is a plain
    file; in a checkout the symlink is resolved, so messages name
    ``manifests/…`` rather than the link.
    """
    target = resources.files(__name__).joinpath(*parts)
    if not isinstance(target, Path):
        raise RuntimeError(f"meshfit_data is not installed as files ({target!r}); reinstall meshfit with pip")
    return Path(os.path.realpath(target))
