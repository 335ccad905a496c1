"""The files the components read: static tokens, kubeconfigs, scheduler config.

All are written as JSON, which every Kubernetes config loader accepts (YAML is
a superset), so caller-supplied pieces such as an ``extenders:`` list are copied
byte-for-byte in meaning, with no YAML re-typing of strings like ``on`` or ``1e3``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StaticUser:
    """One line of kube-apiserver's ``--token-auth-file``."""

    token: str
    name: str
    uid: str
    groups: tuple[str, ...] = ()


def write_token_file(path: Path, users: list[StaticUser]) -> Path:
    """CSV: token,user,uid,"group1,group2" (the format kube-apiserver parses)."""
    lines = []
    for u in users:
        line = f"{u.token},{u.name},{u.uid}"
        if u.groups:
            line += ',"' + ",".join(u.groups) + '"'
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def write_kubeconfig(path: Path, *, server: str, ca_path: Path, user: str, token: str) -> Path:
    """A one-cluster, one-user kubeconfig with a token (usable by kubectl too)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "meshfit-local",
                "cluster": {"server": server, "certificate-authority": str(ca_path)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "meshfit-local", "context": {"cluster": "meshfit-local", "user": user}}
        ],
        "current-context": "meshfit-local",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def write_scheduler_config(
    path: Path,
    *,
    kubeconfig: Path,
    extenders: list[dict[str, Any]] | None = None,
    client_qps: float | None = None,
    client_burst: int | None = None,
    scheduler_name: str | None = None,
) -> Path:
    """A ``KubeSchedulerConfiguration`` (v1): no leader election, optional extenders.

    ``scheduler_name``: its one profile's ``schedulerName`` (a second
    scheduler beside the default one, which only takes pods naming it); the
    default profile (``default-scheduler``) when ``None``.

    Leader election is off because there is exactly one scheduler and waiting
    for a lease would only slow startup and restarts. ``client_qps`` and
    ``client_burst`` lift the scheduler's client rate limit (50 QPS, burst 100
    by default), which otherwise caps binding at a few dozen pods a second and
    would hide what a scheduling benchmark measures.
    """
    connection: dict[str, Any] = {"kubeconfig": str(kubeconfig)}
    if client_qps is not None:
        connection["qps"] = client_qps
    if client_burst is not None:
        connection["burst"] = client_burst
    config: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": connection,
        "leaderElection": {"leaderElect": False},
    }
    if scheduler_name is not None:
        config["profiles"] = [{"schedulerName": scheduler_name}]
    if extenders:
        config["extenders"] = [dict(e) for e in extenders]
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path
