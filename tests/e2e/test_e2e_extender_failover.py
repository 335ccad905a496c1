"""Two extender replicas with leader election: the leader is killed in a burst, the standby takes over.

The shipped install runs two replicas on the Lease meshfit-system/meshfit-extender;
only the leader is Ready, and the scheduler reaches it through a Service, whose
endpoints are the ready pods. Here a small TCP proxy plays the Service (it
probes each replica's ``/readyz`` as the kubelet would and sends new
connections to a ready one), the extenders entry is non-ignorable (as for
meshfit-scheduler: no pod is placed without a verdict), and the lease is
short (3 s) to keep the test short.

Judged as the burst tests judge it: after the burst, no node's node-level
exposure (summed from the bound pods' own records) exceeds the ceiling, and
the fleet is still filled to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from e2e_support import ACCOUNTING, PolicyControl, app_pod, create, node_pool, pods_path

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import MeshfitServer, shipped_extender_config, start_extender
from controlplane.ports import LOOPBACK
from policy.resources import q

pytestmark = pytest.mark.e2e

LEASE = 3.0
RENEW = 2.0
RETRY = 0.5
#: Requests 1 CPU / 1Gi, limits 2 CPU / 8Gi: the swap variant exposes 700m CPU and 640Mi per pod.
APP = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}
#: 8-CPU nodes, CPU ceiling 25%: 2 CPU of exposure, so 2 pods (1400m) per node, by exposure alone.
NODES, PER_NODE, BURST = 4, 2, 14


class ReadyProxy:
    """A Service on loopback: new connections go to a backend whose ``/readyz`` answered 200 last."""

    def __init__(self, backends: list[MeshfitServer]) -> None:
        self.backends = backends
        self.ready: MeshfitServer | None = None
        self.listener = socket.create_server((LOOPBACK, 0))
        self.url = f"http://{LOOPBACK}:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._probe, daemon=True),
                         threading.Thread(target=self._accept, daemon=True)]

    def __enter__(self) -> ReadyProxy:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self.listener.close()

    def _probe(self) -> None:
        while not self._stop.is_set():
            ready = None
            for backend in self.backends:
                with contextlib.suppress(OSError):
                    if backend.running and backend.get("/readyz", timeout=0.5)[0] == 200:
                        ready = backend
                        break
            self.ready = ready
            self._stop.wait(0.2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            backend = self.ready
            if backend is None:
                client.close()  # no endpoints: connection refused, as a Service without ready pods
                continue
            port = int(backend.url.rsplit(":", 1)[1])
            try:
                upstream = socket.create_connection((LOOPBACK, port), timeout=2)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def _leader_metric(server: MeshfitServer) -> float | None:
    try:
        return server.metric("meshfit_extender_leader")
    except OSError:
        return None


@pytest.fixture
def replicas(local_cluster: LocalCluster, meshfit_workdir: Any, shipped_policy: str) -> Iterator[list[MeshfitServer]]:
    lease = f"meshfit-extender-{uuid.uuid4().hex[:5]}"
    args = ["--leader-elect", "--leader-elect-resource-namespace", "meshfit-system",
            "--leader-elect-resource-name", lease, "--leader-elect-lease-duration", str(LEASE),
            "--leader-elect-renew-deadline", str(RENEW), "--leader-elect-retry-period", str(RETRY)]
    servers = [start_extender(meshfit_workdir, local_cluster.kubeconfig_path, name=f"extender-replica-{i}-{lease[-5:]}",
                              extra_args=[*args, "--leader-elect-identity", f"replica-{i}"], wait=False)
               for i in range(2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def _exposure(pod: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """The pod's own record of its node-level exposure (cores, bytes)."""
    record = json.loads(pod["metadata"]["annotations"][ACCOUNTING])
    overcommit = record["overcommit"] if record.get("exposure") == "node" else {}
    nano = Decimal(10) ** 9
    return (Decimal(q(overcommit.get("cpu", "0")).nanos) / nano, Decimal(q(overcommit.get("memory", "0")).nanos) / nano)


def test_the_standby_takes_over_when_the_leader_is_killed_in_a_burst(
    local_cluster: LocalCluster, mesh_namespace: Any, policy_control: PolicyControl, replicas: list[MeshfitServer]
) -> None:
    namespace = mesh_namespace()
    pool = node_pool(local_cluster, [(f"n{i}", "8", "64Gi") for i in range(NODES)])
    with policy_control.changed({"resources": {"overcommitVariant": "swap"}}, "e2e-failover-swap") as policy:
        def settled() -> bool:
            leaders = [_leader_metric(s) for s in replicas]
            known = all(s.get(f"/debug/nodes/{n}")[0] == 200 for s in replicas for n in pool.names)
            serving = all(s.metric("meshfit_extender_policy_info", {"revision": policy.revision}) == 1
                          for s in replicas)
            return sorted(leaders) == [0, 1] and known and serving

        local_cluster.wait_for(settled, 40, what="one leader, one warm standby, both knowing the pool")
        leader = next(s for s in replicas if _leader_metric(s) == 1)
        standby = next(s for s in replicas if s is not leader)
        status, text = standby.get("/readyz")
        assert status == 503 and "standby" in text, (status, text)

        with ReadyProxy(replicas) as proxy, \
                local_cluster.scheduler_extenders([shipped_extender_config(proxy.url, ignorable=False)]):
            local_cluster.wait_for(lambda: proxy.ready is leader, 5, what="the proxy routing to the leader")
            names = [f"burst-{i}" for i in range(BURST)]
            for name in names:
                create(local_cluster, namespace, pool.place(app_pod(name, **APP)))

            def bound() -> list[dict[str, Any]]:
                status, listing = local_cluster.request("GET", pods_path(namespace))
                assert status == 200
                return [p for p in listing["items"] if p["spec"].get("nodeName")]

            local_cluster.wait_for(lambda: len(bound()) >= 3, 30, what="a few pods bound by the leader")
            assert leader.pid is not None
            os.kill(leader.pid, signal.SIGKILL)
            killed = time.monotonic()
            before_takeover = len(bound())
            local_cluster.wait_for(lambda: _leader_metric(standby) == 1, LEASE + 5, interval=0.05,
                                   what="the standby taking over")
            takeover = time.monotonic() - killed
            local_cluster.wait_for(lambda: len(bound()) >= NODES * PER_NODE, 60, interval=0.2,
                                   what="the new leader filling the fleet to the ceiling")
            time.sleep(1.0)  # any pod bound past the ceiling would show now
            placed = bound()

    per_node: dict[str, list[Decimal]] = {n: [Decimal(0), Decimal(0)] for n in pool.names}
    for pod in placed:
        cpu, memory = _exposure(pod)
        per_node[pod["spec"]["nodeName"]][0] += cpu
        per_node[pod["spec"]["nodeName"]][1] += memory
    print(f"killed the leader with {before_takeover} of {BURST} pods bound; the standby led after "
          f"{takeover:.2f}s (lease {LEASE:.0f}s); bound {len(placed)}; exposure per node: "
          + ", ".join(f"{n[-2:]} {c}/{m / 2**20}Mi" for n, (c, m) in per_node.items()))
    assert takeover <= LEASE + RETRY * 2.2 + 1.0, takeover
    for node, (cpu, memory) in per_node.items():
        assert cpu <= Decimal(8) / 4, f"{node}: cpu exposure {cpu} over the 25% ceiling"
        assert memory <= Decimal(64 * 2**30) / 10, f"{node}: memory exposure {memory} over the 10% ceiling"
    assert len(placed) == NODES * PER_NODE
