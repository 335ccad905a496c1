"""The fleet controller as a process for end-to-end tests, and the meshed pods it works on.

``meshfit controller serve`` runs as the Deployment runs it (its own process,
leader election on a Lease, probes and metrics on a port), so a test can kill
it with SIGKILL mid-batch and watch another replica take over.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from e2e_support import create, get_pod

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_MANIFEST
from controlplane.ports import free_port
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file
from serving.exposition import parse_text

REPO = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]
#: A version whose image the fake kubelet crash-loops (controlplane.kwok.BAD_IMAGE_MARKER).
BAD_VERSION = "1.9.9"


def policy_document(**fleet: Any) -> str:
    """The shipped policy, plus a crash-looping version of rpc-mesh, and ``fleet`` settings."""
    document = yaml.safe_load(Path(POLICY_MANIFEST).read_text())
    policy = yaml.safe_load(document["data"]["policy.yaml"])
    rpc = policy["versions"]["sidecars"]["rpc-mesh"]
    rpc["allowed"] = [*rpc["allowed"], BAD_VERSION]
    rpc["images"] = {BAD_VERSION: "registry.example.com/mesh/mosn:1.9.9-crashloop"}
    # No experiment: every pod starts on the baseline, whatever its name hashes to.
    policy["versions"]["rules"] = [r for r in policy["versions"]["rules"] if r["type"] != "experiment"]
    if fleet:
        policy["fleet"] = fleet
    return yaml.safe_dump(policy)


def app(name: str, labels: dict[str, str] | None = None) -> JSON:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "shop", **(labels or {})}},
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/shop/app:1",
                                     "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                   "limits": {"cpu": "2", "memory": "1Gi"}}}]}}


def running(cluster: LocalCluster, namespace: str, name: str) -> JSON | None:
    pod = get_pod(cluster, namespace, name)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or ())
    return pod if ready else None


def meshed(cluster: LocalCluster, namespace: str, policy_file: Path, node: str, names: Sequence[str],
           *, labels: dict[str, str] | None = None, owner: JSON | None = None) -> list[JSON]:
    """Pods as the webhook meshes them under ``policy_file``, bound to ``node``, Running on the fake kubelet."""
    policy = load_policy_file(policy_file)
    out = []
    for name in names:
        result = inject(app(name, labels), Namespace(namespace, None), policy)
        assert result.injected, result.reason
        pod = copy.deepcopy(result.pod)
        pod["spec"]["nodeName"] = node
        if owner is not None:
            pod["metadata"]["ownerReferences"] = [owner]
        create(cluster, namespace, pod)
    for name in names:
        out.append(cluster.wait_for(lambda n=name: running(cluster, namespace, n), 60, what=f"pod {name} running"))
    return out


def container_status(pod: JSON, name: str) -> JSON:
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in (pod.get("status") or {}).get(key) or ():
            if item["name"] == name:
                return dict(item)
    raise AssertionError(f"no status for container {name}")


def spec_image(pod: JSON, name: str) -> str:
    for key in ("initContainers", "containers"):
        for item in (pod.get("spec") or {}).get(key) or ():
            if item["name"] == name:
                return str(item["image"])
    raise AssertionError(f"no container {name}")


def annotation(pod: JSON, key: str) -> Any:
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(key)
    return json.loads(text) if text is not None else None


def events_for(cluster: LocalCluster, namespace: str, name: str) -> list[JSON]:
    status, body = cluster.request("GET", f"/api/v1/namespaces/{namespace}/events?fieldSelector="
                                          f"involvedObject.name={name}")
    assert status == 200, body
    return list(body.get("items") or [])


def cli(cluster: LocalCluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "cli", *args, "--kubeconfig", str(cluster.kubeconfig_path)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@dataclass
class ControllerProcess:
    """One ``meshfit controller serve`` replica."""

    cluster: LocalCluster
    policy_file: Path
    lease: tuple[str, str]
    identity: str
    log_path: Path
    extra: Sequence[str] = ()
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    def start(self) -> ControllerProcess:
        self.port = free_port()
        argv = [sys.executable, "-m", "cli", "controller", "serve",
                "--kubeconfig", str(self.cluster.kubeconfig_path), "--policy", str(self.policy_file),
                "--host", "127.0.0.1", "--probe-port", str(self.port),
                "--leader-elect", "--leader-elect-resource-namespace", self.lease[0],
                "--leader-elect-resource-name", self.lease[1], "--leader-elect-identity", self.identity,
                "--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
                "--leader-elect-retry-period", "0.5", "--log-level", "debug", *self.extra]
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.cluster.wait_for(self.ready, 60, what=f"controller {self.identity} ready")
        return self

    def _get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"controller {self.identity} exited {self.proc.returncode}:\n{self.log_tail()}")
            return 0, ""

    def ready(self) -> bool:
        return self._get("/readyz")[0] == 200

    def metrics(self) -> dict[str, float]:
        status, text = self._get("/metrics")
        assert status == 200, text
        return parse_text(text)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def lease_holder(cluster: LocalCluster, namespace: str, name: str) -> str:
    status, lease = cluster.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    return str((lease.get("spec") or {}).get("holderIdentity") or "") if status == 200 else ""
