"""LocalCluster: etcd + kube-apiserver + kube-scheduler on loopback, for real.

End-to-end tests must meet the admission chain, validation, defaulting and the
stock scheduler exactly as a production cluster runs them, so this starts the
upstream binaries rather than a fake API. There is no kubelet and no
controller-manager: pods are admitted and bound but never run, and the few
things controllers would do that tests rely on (a ``default`` ServiceAccount per
namespace, Ready untainted nodes) the helpers here do by hand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import ssl
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from . import binaries, config, pki
from . import kwok as _kwok
from .client import JSON, ApiClient, wait_for
from .ports import LOOPBACK, free_port, free_ports
from .process import Component, ComponentExited

T = TypeVar("T")

ETCD = "etcd"
APISERVER = "kube-apiserver"
SCHEDULER = "kube-scheduler"
COMPONENTS: tuple[str, ...] = (ETCD, APISERVER, SCHEDULER)
#: The fake kubelet, started on demand (``kwok=True`` or ``start_kwok()``).
KWOK = "kwok"
#: Every process a cluster may run, in start order (for logs and reports).
ALL_COMPONENTS: tuple[str, ...] = (*COMPONENTS, KWOK)

ADMIN_USER = "meshfit-admin"
SCHEDULER_USER = "system:kube-scheduler"  # bound by RBAC's bootstrap policy

# What a production apiserver has on by default plus the two webhook plugins and
# ResourceQuota named explicitly, since meshfit's contract depends on them. The
# one default switched off is TaintNodesByCondition: it taints every new Node
# not-ready, and the node-lifecycle controller that would lift the taint does
# not run here.
_ENABLE_ADMISSION = "MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota"
_DISABLE_ADMISSION = "TaintNodesByCondition"


class ClusterError(RuntimeError):
    """The cluster could not start; the message includes each component's log tail."""


class LocalCluster:
    """A throwaway single-node-less control plane; use as a context manager.

    >>> with LocalCluster() as c:                       # doctest: +SKIP
    ...     c.create_node("n1", cpu="4", memory="8Gi")
    ...     status, pod = c.request("POST", "/api/v1/namespaces/default/pods", body)

    ``extenders`` is copied verbatim into the KubeSchedulerConfiguration's
    ``extenders:`` list. ``extra_args`` maps a component name to flags appended
    to its command line (e.g. ``{"kube-apiserver": ["--v=4"]}``).
    ``scheduler_qps``/``scheduler_burst`` set the scheduler's
    ``clientConnection.qps``/``burst`` (benchmarks; the defaults of 50/100
    throttle binding).

    ``kwok=True`` also starts KWOK's controller as a fake kubelet for the nodes
    made by :meth:`create_fake_node` (see :mod:`controlplane.kwok`); other
    nodes stay as they are, with pods that are bound and never run.
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        workdir: Path | None = None,
        extenders: Sequence[Mapping[str, Any]] | None = None,
        extra_args: Mapping[str, Sequence[str]] | None = None,
        service_cluster_ip_range: str = "10.96.0.0/16",
        start_timeout: float = 120.0,
        keep_workdir: bool = False,
        scheduler_qps: float | None = None,
        scheduler_burst: int | None = None,
        kwok: bool = False,
        kwok_bindir: Path | None = None,
        kwok_timing: _kwok.Timing | None = None,
    ) -> None:
        unknown = set(extra_args or ()) - set(ALL_COMPONENTS)
        if unknown:
            raise ValueError(
                f"extra_args: unknown components {sorted(unknown)}; known: {ALL_COMPONENTS}"
            )
        self._bindir = bindir
        self._owns_workdir = workdir is None
        self._workdir_arg = workdir
        self._extenders = [dict(e) for e in extenders or ()]
        self._extra_args = {k: list(v) for k, v in (extra_args or {}).items()}
        self.service_cluster_ip_range = service_cluster_ip_range
        self.start_timeout = start_timeout
        self.keep_workdir = keep_workdir
        self.scheduler_qps = scheduler_qps
        self.scheduler_burst = scheduler_burst
        self._kwok_wanted = kwok
        self._kwok_bindir = kwok_bindir
        self._stages = _kwok.StageSet(timing=kwok_timing or _kwok.Timing())
        self._kwok_port = 0
        self._kwok_pod_cidrs = 0

        self.workdir: Path = Path()
        self.token = secrets.token_hex(16)
        self._scheduler_token = secrets.token_hex(16)
        self._etcd_port = 0
        self._etcd_peer_port = 0
        self._apiserver_port = 0
        self.scheduler_port = 0
        self._client: ApiClient | None = None
        self._ca: pki.CertificateAuthority | None = None
        self._components: dict[str, Component] = {}
        self.started_in: float | None = None

    # ------------------------------------------------------------------ paths

    @property
    def api_url(self) -> str:
        return f"https://{LOOPBACK}:{self._apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self._etcd_port}"

    @property
    def ca_path(self) -> Path:
        """The CA that signed the apiserver's (and scheduler's) serving certs."""
        return self.workdir / "pki" / "ca.crt"

    @property
    def kubeconfig_path(self) -> Path:
        """Admin (system:masters) kubeconfig; works with kubectl and the kubernetes client."""
        return self.workdir / "admin.kubeconfig"

    @property
    def scheduler_config_path(self) -> Path:
        return self.workdir / "scheduler-config.json"

    @property
    def extenders(self) -> list[dict[str, Any]]:
        """The extenders the running (or next) scheduler is configured with."""
        return [dict(e) for e in self._extenders]

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            raise RuntimeError("the cluster is not started")
        return self._client

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, kube-apiserver and kube-scheduler, each waited on for health."""
        t0 = time.monotonic()
        bindir = binaries.require(self._bindir)
        self._bindir = bindir
        if self._workdir_arg is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="meshfit-cluster-"))
        else:
            self.workdir = self._workdir_arg
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._components = {
            name: Component(name, self.workdir / f"{name}.log") for name in ALL_COMPONENTS
        }
        try:
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._prepare_default_namespace()
            self.start_scheduler(self._extenders)
            if self._kwok_wanted:
                self.start_kwok()
        except BaseException as exc:
            report = self._failure_report()
            # Keep the logs of a real failure; an interrupt just cleans up.
            self.keep_workdir = self.keep_workdir or isinstance(exc, Exception)
            self.stop()
            if isinstance(exc, Exception):
                if isinstance(exc, ComponentExited):  # its tail is in the report
                    exc_text = f"{exc.name} exited with status {exc.status}"
                else:
                    exc_text = str(exc)
                raise ClusterError(
                    f"local cluster failed to start: {exc_text}\n"
                    f"(work dir kept: {self.workdir})\n{report}"
                ) from exc
            raise
        self.started_in = time.monotonic() - t0

    def stop(self, timeout: float = 10.0) -> None:
        """Stop in reverse start order (SIGTERM, SIGKILL after ``timeout``)."""
        for name in reversed(ALL_COMPONENTS):
            comp = self._components.get(name)
            if comp is not None:
                comp.stop(timeout)
        self._client = None
        if self._owns_workdir and not self.keep_workdir and self.workdir != Path():
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -------------------------------------------------------------- scheduler

    def start_scheduler(self, extenders: Sequence[Mapping[str, Any]] | None = None) -> None:
        """(Re)write the scheduler config with ``extenders`` and start the scheduler.

        Returns once its ``/readyz`` answers ok, i.e. its informers have synced
        and it is scheduling.
        """
        self._extenders = [dict(e) for e in extenders or ()]
        config.write_scheduler_config(
            self.scheduler_config_path,
            kubeconfig=self.workdir / "scheduler.kubeconfig",
            extenders=self._extenders,
            client_qps=self.scheduler_qps,
            client_burst=self.scheduler_burst,
        )
        # A fresh port per start: a restarted scheduler never races the
        # previous one's socket.
        self.scheduler_port = free_port()
        pki_dir = self.workdir / "pki"
        self._components[SCHEDULER].start(
            [
                str(self._binary(SCHEDULER)),
                f"--config={self.scheduler_config_path}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={self.scheduler_port}",
                f"--tls-cert-file={pki_dir / 'kube-scheduler.crt'}",
                f"--tls-private-key-file={pki_dir / 'kube-scheduler.key'}",
                *self._extra_args.get(SCHEDULER, ()),
            ]
        )
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        url = f"https://{LOOPBACK}:{self.scheduler_port}/readyz"
        self.wait_for(lambda: _http_ok(url, ctx), self.start_timeout, what=f"{SCHEDULER} {url}")

    def stop_scheduler(self, timeout: float = 10.0) -> None:
        """Stop only the scheduler; pods created meanwhile stay Pending."""
        self._components[SCHEDULER].stop(timeout)

    def restart_scheduler(self, extenders: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Stop the scheduler and start it again with ``extenders`` (None: none)."""
        self.stop_scheduler()
        self.start_scheduler(extenders)

    @contextlib.contextmanager
    def scheduler_extenders(self, extenders: Sequence[Mapping[str, Any]]) -> Iterator[None]:
        """Run the scheduler with ``extenders`` inside the block, then restore.

        For tests sharing one session cluster: whatever the block does, the
        next test gets the scheduler configuration it had before.
        """
        previous = self.extenders
        self.restart_scheduler(extenders)
        try:
            yield
        finally:
            self.restart_scheduler(previous)

    def second_scheduler(self, scheduler_name: str,
                         extenders: Sequence[Mapping[str, Any]] | None = None) -> SecondScheduler:
        """Another kube-scheduler process whose one profile is ``scheduler_name``, not started yet.

        A second process, not a second profile of this one: a
        KubeSchedulerConfiguration's ``extenders`` apply to every profile it
        has, so a scheduler that calls an extender only for some pods must be
        a process of its own (``manifests/extender/second-scheduler.yaml``).
        """
        name = f"{SCHEDULER}-{scheduler_name}"
        config_path = self.workdir / f"scheduler-config-{scheduler_name}.json"
        config.write_scheduler_config(
            config_path,
            kubeconfig=self.workdir / "scheduler.kubeconfig",
            extenders=[dict(e) for e in extenders or ()],
            client_qps=self.scheduler_qps,
            client_burst=self.scheduler_burst,
            scheduler_name=scheduler_name,
        )
        port = free_port()
        pki_dir = self.workdir / "pki"
        argv = [
            str(self._binary(SCHEDULER)),
            f"--config={config_path}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--tls-cert-file={pki_dir / 'kube-scheduler.crt'}",
            f"--tls-private-key-file={pki_dir / 'kube-scheduler.key'}",
            *self._extra_args.get(SCHEDULER, ()),
        ]
        return SecondScheduler(Component(name, self.workdir / f"{name}.log"), argv,
                               f"https://{LOOPBACK}:{port}/readyz", ssl.create_default_context(cafile=str(self.ca_path)),
                               self.start_timeout)

    # ------------------------------------------------------------------- kwok

    @property
    def kwok_running(self) -> bool:
        comp = self._components.get(KWOK)
        return comp is not None and comp.running

    @property
    def kwok_config_path(self) -> Path:
        """The stages (and nothing else) the kwok controller reads at start."""
        return self.workdir / "kwok-stages.yaml"

    @property
    def fake_nodes(self) -> dict[str, _kwok.FakeNode]:
        """The nodes KWOK plays, by name."""
        return dict(self._stages.nodes)

    def start_kwok(self, bindir: Path | None = None) -> None:
        """Start KWOK's controller as the fake kubelet of the nodes labelled for it.

        It manages only nodes labelled ``kwok.x-k8s.io/node=fake`` (those
        :meth:`create_fake_node` makes), plays the stages of
        :mod:`controlplane.kwok` written to :attr:`kwok_config_path`, and acts
        as the admin user. ``bindir`` holds ``kwok`` (default: the cache
        ``hack/kwok/build.sh`` fills). Returns once its ``/healthz`` answers.
        """
        if self.kwok_running:
            return
        if bindir is not None:
            self._kwok_bindir = bindir
        if self._kwok_bindir is None:
            self._kwok_bindir = binaries.kwok_require()
        else:
            binaries.kwok_require(self._kwok_bindir)
        self._kwok_wanted = True
        _kwok.write_config(self.kwok_config_path, self._stages)
        home = self.workdir / "kwok-home"  # no ~/.kwok/kwok.yaml of the user's leaks in
        home.mkdir(exist_ok=True)
        self._kwok_port = free_port()
        self._components[KWOK].start(
            [
                str(self._kwok_bindir / "kwok"),
                f"--config={self.kwok_config_path}",
                f"--kubeconfig={self.kubeconfig_path}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={_kwok.NODE_LABEL}={_kwok.NODE_LABEL_VALUE}",
                f"--server-address={LOOPBACK}:{self._kwok_port}",
                f"--node-ip={LOOPBACK}",
                *self._extra_args.get(KWOK, ()),
            ],
            env={**os.environ, "HOME": str(home)},
        )
        url = f"http://{LOOPBACK}:{self._kwok_port}/healthz"
        self.wait_for(lambda: _http_ok(url), self.start_timeout, what=f"{KWOK} {url}")

    def stop_kwok(self, timeout: float = 10.0) -> None:
        """Stop the fake kubelet; pods keep the status it last wrote."""
        comp = self._components.get(KWOK)
        if comp is not None:
            comp.stop(timeout)

    def restart_kwok(self) -> None:
        """Stop and start the fake kubelet, which re-reads its stages."""
        self.stop_kwok()
        self.start_kwok()

    def create_fake_node(
        self,
        name: str,
        cpu: str = "8",
        memory: str = "16Gi",
        pods: str = "110",
        labels: Mapping[str, str] | None = None,
        *,
        kubelet_version: str = "v1.36.3",
        cpu_manager_policy: str = "none",
        ephemeral_storage: str = "100Gi",
    ) -> JSON:
        """A Ready node whose kubelet KWOK plays, with ``kubelet_version`` in its nodeInfo.

        Like :meth:`create_node` (capacity = allocatable, no taints), plus the
        ``kwok.x-k8s.io/node=fake`` label, a ``podCIDR`` and an ``InternalIP``
        of its own (pod and host IPs differ across fake nodes),
        ``status.nodeInfo`` and the ``status.declaredFeatures`` a kubelet of
        that version declares. Its stages carry
        its allocatable (for resize feasibility) and what a kubelet of that
        version does (:class:`controlplane.kwok.KubeletProfile`), so adding it
        restarts a running kwok controller (a fraction of a second) to read them.
        ``cpu_manager_policy="static"`` makes CPU resizes of its Guaranteed pods
        Infeasible, as a kubelet with that policy answers them.
        """
        if cpu_manager_policy not in ("none", "static"):
            raise ValueError(f"cpu_manager_policy: {cpu_manager_policy!r}; known: none, static")
        profile = _kwok.KubeletProfile.for_version(kubelet_version)
        self._kwok_pod_cidrs += 1
        index = self._kwok_pod_cidrs
        node = self.create_node(
            name,
            cpu,
            memory,
            pods,
            {_kwok.NODE_LABEL: _kwok.NODE_LABEL_VALUE, **(labels or {})},
            ephemeral_storage=ephemeral_storage,
            pod_cidr=f"10.{64 + index // 256}.{index % 256}.0/24",
            internal_ip=f"10.63.{index // 256}.{index % 256}",
            declared_features=profile.declared_features,
            ready_message=f"kwok plays this node's kubelet ({kubelet_version})",
            node_info={
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "containerRuntimeVersion": "containerd://2.1.0",
                "kernelVersion": "6.12.0",
                "osImage": "meshfit fake node (KWOK)",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        )
        self._stages.nodes[name] = _kwok.FakeNode(
            name=name,
            cpu_millis=_kwok.cpu_millis(cpu),
            memory_bytes=_kwok.memory_bytes(memory),
            kubelet=profile,
            cpu_manager_policy=cpu_manager_policy,
        )
        if self.kwok_running:
            self.restart_kwok()
        return node

    # ---------------------------------------------------------------- helpers

    def request(
        self,
        method: str,
        path: str,
        body: JSON | list[Any] | None = None,
        *,
        content_type: str | None = None,
    ) -> tuple[int, JSON]:
        """One JSON request as the admin: (status, body dict). See ApiClient.request."""
        return self.client.request(method, path, body, content_type=content_type)

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 30.0,
        *,
        interval: float = 0.1,
        what: str = "condition",
    ) -> T:
        """Poll ``predicate`` until truthy; fail at once if a component has died."""

        def checked() -> T:
            for comp in self._components.values():
                comp.check_alive()
            return predicate()

        return wait_for(checked, timeout, interval=interval, what=what, fatal=(ComponentExited,))

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> JSON:
        """Create (or label, if it exists) a namespace and its ``default`` ServiceAccount.

        The ServiceAccount admission plugin rejects pods whose ServiceAccount
        does not exist, and the controller that creates ``default`` in every
        namespace is not running here.
        """
        meta: JSON = {"name": name}
        if labels:
            meta["labels"] = dict(labels)
        status, ns = self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": meta},
        )
        if status == 409:
            patch = {"metadata": {"labels": dict(labels or {})}}
            status, ns = self.request("PATCH", f"/api/v1/namespaces/{name}", patch)
        _expect(status, ns, f"create namespace {name}")
        self._ensure_default_service_account(name)
        return ns

    def create_node(
        self,
        name: str,
        cpu: str,
        memory: str,
        pods: str = "110",
        labels: Mapping[str, str] | None = None,
        *,
        ephemeral_storage: str = "100Gi",
        pod_cidr: str | None = None,
        node_info: Mapping[str, str] | None = None,
        internal_ip: str | None = None,
        declared_features: Sequence[str] = (),
        ready_message: str = "node created by meshfit's LocalCluster (no kubelet)",
    ) -> JSON:
        """A schedulable Node: capacity = allocatable, ``Ready=True``, no taints.

        Status is written through the ``/status`` subresource, as a kubelet
        would; a create ignores it. ``pod_cidr`` sets ``spec.podCIDR``;
        ``node_info`` is written as ``status.nodeInfo``; ``internal_ip`` adds
        an ``InternalIP`` address; ``declared_features`` is
        ``status.declaredFeatures``, which kube-apiserver consults before a pod
        update that needs one (e.g. resizing pod-level resources).
        """
        node_labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **(labels or {}),
        }
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": node_labels},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {},
        }
        status, node = self.request("POST", "/api/v1/nodes", body)
        _expect(status, node, f"create node {name}")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        resources = {
            "cpu": cpu,
            "memory": memory,
            "pods": pods,
            "ephemeral-storage": ephemeral_storage,
        }
        addresses = [{"type": "Hostname", "address": name}]
        if internal_ip:
            addresses.insert(0, {"type": "InternalIP", "address": internal_ip})
        node_status: JSON = {
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": ready_message,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ],
                "addresses": addresses,
            }
        }
        if node_info:
            node_status["status"]["nodeInfo"] = dict(node_info)
        if declared_features:
            node_status["status"]["declaredFeatures"] = sorted(declared_features)

        status, node = self.request("PATCH", f"/api/v1/nodes/{name}/status", node_status)
        _expect(status, node, f"set status of node {name}")
        if node.get("spec", {}).get("taints"):
            # Only when a caller re-enabled TaintNodesByCondition via extra_args.
            status, node = self.request(
                "PATCH", f"/api/v1/nodes/{name}", {"spec": {"taints": None}}
            )
            _expect(status, node, f"untaint node {name}")
        return node

    def create_resource_quota(self, namespace: str, name: str, hard: Mapping[str, str]) -> JSON:
        """A ResourceQuota that admission enforces at once.

        The ResourceQuota admission plugin refuses every pod in a namespace
        whose quota has no ``status.hard`` yet, and the controller that would
        fill it is not running; so this writes ``status`` itself (hard = spec,
        used = 0). Admission then raises ``status.used`` on each admitted pod;
        nothing lowers it again when pods are deleted.
        """
        body: JSON = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": name},
            "spec": {"hard": dict(hard)},
        }
        base = f"/api/v1/namespaces/{namespace}/resourcequotas"
        status, quota = self.request("POST", base, body)
        _expect(status, quota, f"create ResourceQuota {namespace}/{name}")
        quota_status = {"status": {"hard": dict(hard), "used": {k: "0" for k in hard}}}
        status, quota = self.request("PATCH", f"{base}/{name}/status", quota_status)
        _expect(status, quota, f"set status of ResourceQuota {namespace}/{name}")
        return quota

    def log_tail(self, component: str, lines: int = 40) -> str:
        """The last ``lines`` lines of a component's log (etcd, kube-apiserver, kube-scheduler, kwok)."""
        if component not in ALL_COMPONENTS:
            raise KeyError(f"unknown component {component!r}; known: {ALL_COMPONENTS}")
        comp = self._components.get(component)
        return comp.log_tail(lines) if comp else ""

    def log_path(self, component: str) -> Path:
        if component not in ALL_COMPONENTS:
            raise KeyError(f"unknown component {component!r}; known: {ALL_COMPONENTS}")
        return self.workdir / f"{component}.log"

    # -------------------------------------------------------------- internals

    def _binary(self, name: str) -> Path:
        assert self._bindir is not None
        return self._bindir / name

    def _failure_report(self, lines: int = 40) -> str:
        parts = []
        for name in ALL_COMPONENTS:
            tail = self.log_tail(name, lines)
            if tail:
                parts.append(
                    f"---- {name} ({self.log_path(name)}), last {lines} lines ----\n{tail}"
                )
        return "\n".join(parts)

    def _write_credentials(self) -> None:
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(exist_ok=True)
        self._ca = ca = pki.new_ca()
        pki.write_ca(ca, self.ca_path)
        pki.issue_serving_cert(
            ca,
            pki_dir,
            APISERVER,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(LOOPBACK,),
        )
        pki.issue_serving_cert(ca, pki_dir, SCHEDULER)
        pki.write_service_account_keys(pki_dir)
        config.write_token_file(
            pki_dir / "tokens.csv",
            [
                config.StaticUser(self.token, ADMIN_USER, "meshfit-admin", ("system:masters",)),
                config.StaticUser(self._scheduler_token, SCHEDULER_USER, "kube-scheduler"),
            ],
        )
        self._etcd_port, self._etcd_peer_port, self._apiserver_port = free_ports(3)
        config.write_kubeconfig(
            self.kubeconfig_path,
            server=self.api_url,
            ca_path=self.ca_path,
            user=ADMIN_USER,
            token=self.token,
        )
        config.write_kubeconfig(
            self.workdir / "scheduler.kubeconfig",
            server=self.api_url,
            ca_path=self.ca_path,
            user=SCHEDULER_USER,
            token=self._scheduler_token,
        )

    def _start_etcd(self) -> None:
        peer = f"http://{LOOPBACK}:{self._etcd_peer_port}"
        self._components[ETCD].start(
            [
                str(self._binary(ETCD)),
                "--name=meshfit",
                f"--data-dir={self.workdir / 'etcd-data'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=meshfit={peer}",
                # A test cluster's data dies with the test: durability buys
                # nothing and fsync costs seconds on a busy CI disk.
                "--unsafe-no-fsync",
                "--log-level=warn",
                *self._extra_args.get(ETCD, ()),
            ]
        )
        url = f"{self.etcd_url}/health"
        self.wait_for(
            lambda: json.loads(_http_body(url)).get("health") == "true",
            self.start_timeout,
            what=f"{ETCD} {url}",
        )

    def _start_apiserver(self) -> None:
        pki_dir = self.workdir / "pki"
        self._components[APISERVER].start(
            [
                str(self._binary(APISERVER)),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={self._apiserver_port}",
                f"--tls-cert-file={pki_dir / 'kube-apiserver.crt'}",
                f"--tls-private-key-file={pki_dir / 'kube-apiserver.key'}",
                f"--client-ca-file={self.ca_path}",
                f"--token-auth-file={pki_dir / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={self.service_cluster_ip_range}",
                f"--enable-admission-plugins={_ENABLE_ADMISSION}",
                f"--disable-admission-plugins={_DISABLE_ADMISSION}",
                # The `kubernetes` Service's endpoints would be 127.0.0.1, which
                # Endpoints validation rejects on every reconcile; nothing here
                # reaches the apiserver through the Service anyway.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                *self._extra_args.get(APISERVER, ()),
            ]
        )
        self._client = ApiClient(self.api_url, self.token, self.ca_path)

        def ready() -> bool:
            status, body = self.request("GET", "/readyz")
            return status == 200 and body.get("text", "").strip() == "ok"

        self.wait_for(
            ready, self.start_timeout, interval=0.2, what=f"{APISERVER} {self.api_url}/readyz"
        )

    def _prepare_default_namespace(self) -> None:
        # The apiserver creates `default` itself, shortly after /readyz.
        self.wait_for(
            lambda: self.request("GET", "/api/v1/namespaces/default")[0] == 200,
            self.start_timeout,
            what="namespace default",
        )
        self._ensure_default_service_account("default")

    def _ensure_default_service_account(self, namespace: str) -> None:
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
        status, sa = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
        if status != 409:
            _expect(status, sa, f"create ServiceAccount {namespace}/default")


def _expect(status: int, body: JSON, what: str) -> None:
    if not 200 <= status < 300:
        raise RuntimeError(f"{what}: HTTP {status}: {body.get('message', body)}")


def _http_body(url: str, ctx: ssl.SSLContext | None = None) -> bytes:
    # An opener without proxy handlers: everything here is loopback.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ctx is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    with urllib.request.build_opener(*handlers).open(url, timeout=5) as resp:
        body: bytes = resp.read()
        return body


class SecondScheduler:
    """A kube-scheduler beside the cluster's own (:meth:`LocalCluster.second_scheduler`)."""

    def __init__(self, component: Component, argv: list[str], ready_url: str, ctx: ssl.SSLContext,
                 start_timeout: float) -> None:
        self.component = component
        self.argv = argv
        self.ready_url = ready_url
        self._ctx = ctx
        self._start_timeout = start_timeout

    @property
    def pid(self) -> int | None:
        return self.component.pid

    def launch(self) -> None:
        """Start the process without waiting (to start it with another; then :meth:`wait_ready`)."""
        self.component.start(self.argv)

    def wait_ready(self) -> None:
        """Until ``/readyz`` is ok: its informers have synced and it is scheduling."""
        def ready() -> bool:
            self.component.check_alive()
            return _http_ok(self.ready_url, self._ctx)

        wait_for(ready, self._start_timeout, interval=0.1, what=f"{self.component.name} {self.ready_url}",
                 fatal=(ComponentExited,))

    def stop(self, timeout: float = 10.0) -> None:
        self.component.stop(timeout)


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    return _http_body(url, ctx).strip() == b"ok"
