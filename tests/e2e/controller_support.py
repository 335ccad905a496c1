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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from e2e_support import create, get_pod

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_MANIFEST, MeshfitServer, start_controller
from policy.decision import Namespace
from policy.inject import inject
from policy.load import load_policy_file
from serving.exposition import parse_text

REPO = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]
#: A version whose image the fake kubelet crash-loops (controlplane.kwok.BAD_IMAGE_MARKER).
BAD_VERSION = "1.9.9"


EMPTY_IMAGE = "registry.example.com/meshfit/empty:1"


def policy_document(*, hot: bool = False, dormant: bool = False, **fleet: Any) -> str:
    """The shipped policy, plus a crash-looping version of rpc-mesh, and ``fleet`` settings.

    ``hot``: rpc-mesh gets two slots; ``dormant``: msg-mesh is placed on the empty image, off.
    """
    document = yaml.safe_load(Path(POLICY_MANIFEST).read_text())
    policy = yaml.safe_load(document["data"]["policy.yaml"])
    for sidecar in policy["sidecars"]:
        if hot and sidecar["name"] == "rpc-mesh":
            sidecar["upgrade"] = {"hot": True, "emptyImage": EMPTY_IMAGE}
        if dormant and sidecar["name"] == "msg-mesh":
            sidecar["upgrade"] = {"dormant": True, "emptyImage": EMPTY_IMAGE}
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
    """One ``meshfit controller serve`` replica with leader election on a short lease (4 s)."""

    cluster: LocalCluster
    policy_file: Path
    lease: tuple[str, str]
    identity: str
    workdir: Path
    extra: Sequence[str] = ()
    server: MeshfitServer | None = None

    def start(self) -> ControllerProcess:
        self.server = start_controller(
            self.workdir, self.cluster.kubeconfig_path, name=self.identity, policy_configmap=("", ""),
            extra_args=["--policy", str(self.policy_file),
                        "--leader-elect", "--leader-elect-resource-namespace", self.lease[0],
                        "--leader-elect-resource-name", self.lease[1], "--leader-elect-identity", self.identity,
                        "--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
                        "--leader-elect-retry-period", "0.5", "--log-level", "debug", *self.extra])
        return self

    def metrics(self) -> dict[str, float]:
        assert self.server is not None
        status, text = self.server.get("/metrics")
        assert status == 200, text
        return parse_text(text)

    def kill(self) -> None:
        """SIGKILL: no release of the Lease, no drain; the standby must wait the lease out."""
        assert self.server is not None and self.server.pid is not None
        os.kill(self.server.pid, signal.SIGKILL)
        self.cluster.wait_for(lambda: not self.server.running, 10, what=f"{self.identity} gone")  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.server is not None and self.server.running:
            self.server.stop()


def lease_holder(cluster: LocalCluster, namespace: str, name: str) -> str:
    status, lease = cluster.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    return str((lease.get("spec") or {}).get("holderIdentity") or "") if status == 200 else ""
