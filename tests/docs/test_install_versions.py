"""docs/install.md's table of tested Kubernetes versions says what the suite really runs against."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "docs" / "install.md"


def _table() -> dict[str, set[str]]:
    """component → versions, from the table under "Kubernetes versions tested"."""
    text = INSTALL.read_text(encoding="utf-8").split("## Kubernetes versions tested", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"v\d+\.\d+\.\d+", cells[1]):
            rows.setdefault(cells[0], set()).add(cells[1])
    return rows


def _pinned(module: str) -> str:
    match = re.search(rf"^\s*{re.escape(module)} (v[\d.]+)", (ROOT / "hack" / "controlplane" / "go.mod").read_text(),
                      re.MULTILINE)
    assert match, f"{module} is not pinned in hack/controlplane/go.mod"
    return match.group(1)


def _kubelet_versions() -> set[str]:
    """Every kubelet version a test gives a KWOK node."""
    found: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        found |= set(re.findall(r'kubelet_version="(v\d+\.\d+\.\d+)"', path.read_text(encoding="utf-8")))
    return found


def test_the_control_plane_row_is_the_pinned_kubernetes() -> None:
    table = _table()
    assert table["kube-apiserver, kube-scheduler"] == {_pinned("k8s.io/kubernetes")}
    assert table["etcd"] == {_pinned("go.etcd.io/etcd/server/v3")}


def test_the_kubelet_rows_are_the_versions_the_tests_give_their_nodes() -> None:
    assert _table()["kubelet (KWOK)"] == _kubelet_versions()
