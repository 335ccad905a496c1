"""meshfit's two servers beside a LocalCluster, wired the way a cluster wires them.

The end-to-end tests and ``meshfit demo`` both need the same thing: the
webhook and the extender running as real ``meshfit ... serve`` processes (the
console command a Deployment runs, not an in-process app), the webhook
registered with a MutatingWebhookConfiguration whose caBundle comes from
``meshfit certs generate``, and the extender named in the scheduler's
configuration. Keeping that wiring here means the demo shows exactly what the
tests prove.

Only loopback: the apiserver calls ``https://127.0.0.1:PORT/mutate`` through
``clientConfig.url`` and the scheduler calls ``http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import copy
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import meshfit_data

from .client import JSON, wait_for
from .cluster import LocalCluster
from .ports import LOOPBACK, free_port
from .process import Component, ComponentExited

MANIFESTS = meshfit_data.path("manifests")
POLICY_MANIFEST = MANIFESTS / "policy.yaml"
WEBHOOK_MANIFEST = MANIFESTS / "webhook" / "base" / "mutatingwebhookconfiguration.yaml"
SCHEDULER_CONFIG_MANIFEST = MANIFESTS / "extender" / "scheduler-config.yaml"

POLICY_NAMESPACE = "meshfit-system"
POLICY_NAME = "meshfit-policy"
WEBHOOK_SERVICE = "meshfit-webhook"

MWC_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def meshfit_argv(*args: str) -> list[str]:
    """The ``meshfit`` console command, run by this very interpreter (the venv's)."""
    return [sys.executable, "-m", "cli", *args]


def generate_certs(out_dir: Path) -> str:
    """``meshfit certs generate --ip 127.0.0.1`` into ``out_dir``; returns the caBundle it prints.

    The command is run rather than imported so the tests exercise what an
    operator types; the IP SAN is what lets the apiserver verify a
    ``clientConfig.url`` of ``https://127.0.0.1:PORT``.
    """
    done = subprocess.run(
        meshfit_argv(
            "certs", "generate",
            "--service", WEBHOOK_SERVICE,
            "--namespace", POLICY_NAMESPACE,
            "--cert-dir", str(out_dir),
            "--ip", LOOPBACK,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"meshfit certs generate failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip()


class MeshfitServer:
    """One ``meshfit <kind> serve`` child process, its URL and its log.

    A :class:`controlplane.process.Component` underneath, so it gets the same
    log file, SIGTERM-then-SIGKILL stop and death-with-the-parent as etcd and
    kube-apiserver.
    """

    def __init__(self, name: str, workdir: Path, argv: Sequence[str], url: str,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.url = url
        self.argv = list(argv)
        self.log_path = workdir / f"{name}.log"
        self._ssl = ssl_context
        self._component = Component(name, self.log_path)

    @property
    def running(self) -> bool:
        return self._component.running

    @property
    def pid(self) -> int | None:
        return self._component.pid

    def start(self, timeout: float = 60.0) -> None:
        """Start and return once ``/readyz`` answers 200 (policy loaded, watches synced)."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting (to start several at once; then :meth:`wait_ready`)."""
        self._component.start(self.argv)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            self._component.check_alive()
            return self.get("/readyz")[0] == 200

        wait_for(ready, timeout, interval=0.1, what=f"{self.name} {self.url}/readyz", fatal=(ComponentExited,))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; the exit status (0 when it shut down cleanly)."""
        return self._component.stop(timeout)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``path``: (status, body text); connection errors raise ``OSError``."""
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if self._ssl is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self._ssl))
        try:
            with urllib.request.build_opener(*handlers).open(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """One sample from ``/metrics`` (``None`` if absent); labels must all match."""
        return metric_value(self.get("/metrics")[1], name, labels)

    def log_tail(self, lines: int = 40) -> str:
        return self._component.log_tail(lines)


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """Parse one sample out of a Prometheus text exposition."""
    wanted = [f'{k}="{v}"' for k, v in (labels or {}).items()]
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name or not all(w in label_text for w in wanted):
            continue
        return float(value)
    return None


def start_webhook(
    workdir: Path,
    kubeconfig: Path,
    cert_dir: Path,
    *,
    name: str = "webhook",
    port: int | None = None,
    policy_configmap: tuple[str, str] = (POLICY_NAMESPACE, POLICY_NAME),
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
    wait: bool = True,
) -> MeshfitServer:
    """``meshfit webhook serve`` on loopback, watching the policy ConfigMap; waits for ready unless not ``wait``."""
    return _start_serve(
        "webhook", name, workdir, kubeconfig, port, policy_configmap,
        ["--cert-dir", str(cert_dir), *extra_args],
        ssl.create_default_context(cafile=str(cert_dir / "ca.crt")),
        timeout=timeout, wait=wait,
    )


def start_extender(
    workdir: Path,
    kubeconfig: Path,
    *,
    name: str = "extender",
    port: int | None = None,
    policy_configmap: tuple[str, str] = (POLICY_NAMESPACE, POLICY_NAME),
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
    wait: bool = True,
) -> MeshfitServer:
    """``meshfit extender serve`` on loopback over HTTP, list+watching the cluster; waits for ready unless not ``wait``."""
    return _start_serve(
        "extender", name, workdir, kubeconfig, port, policy_configmap, extra_args, None, timeout=timeout, wait=wait
    )


def start_controller(
    workdir: Path,
    kubeconfig: Path,
    *,
    name: str = "controller",
    port: int | None = None,
    policy_configmap: tuple[str, str] = (POLICY_NAMESPACE, POLICY_NAME),
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
    wait: bool = True,
) -> MeshfitServer:
    """``meshfit controller serve`` watching the cluster, probes on loopback; waits for ready unless not ``wait``.

    ``policy_configmap`` ``("", "")``: none (``extra_args`` then names ``--policy FILE``).
    """
    return _start_serve(
        "controller", name, workdir, kubeconfig, port, policy_configmap, extra_args, None, timeout=timeout,
        wait=wait, port_flag="--probe-port",
    )


def _start_serve(
    kind: str,
    name: str,
    workdir: Path,
    kubeconfig: Path,
    port: int | None,
    policy_configmap: tuple[str, str],
    args: Sequence[str],
    ssl_context: ssl.SSLContext | None,
    *,
    timeout: float,
    wait: bool,
    port_flag: str = "--port",
) -> MeshfitServer:
    """``meshfit KIND serve`` with the options every server takes (cli/server_options.py), plus ``args``.

    ``port_flag``: the controller has no serving port, only ``--probe-port``.
    """
    port = port or free_port()
    source = ["--policy-configmap", "/".join(policy_configmap)] if all(policy_configmap) else []
    server = MeshfitServer(
        name,
        workdir,
        meshfit_argv(
            kind, "serve",
            "--host", LOOPBACK,
            port_flag, str(port),
            "--kubeconfig", str(kubeconfig),
            *source,
            *args,
        ),
        f"{'https' if ssl_context else 'http'}://{LOOPBACK}:{port}",
        ssl_context,
    )
    if wait:
        server.start(timeout)
    else:
        server.launch()
    return server


# ----------------------------------------------------------------- objects


def policy_configmap(policy_text: str | None = None, name: str = POLICY_NAME) -> JSON:
    """The shipped policy ConfigMap (manifests/policy.yaml), optionally with another policy.yaml and name."""
    cm: JSON = yaml.safe_load(POLICY_MANIFEST.read_text())
    cm["metadata"]["name"] = name
    if policy_text is not None:
        cm["data"]["policy.yaml"] = policy_text
    return cm


def apply_object(cluster: LocalCluster, collection: str, body: JSON) -> JSON:
    """Create ``body`` in ``collection``, or replace it if it exists; returns what the API stored."""
    status, stored = cluster.request("POST", collection, body)
    if status == 409:
        name = body["metadata"]["name"]
        status, current = cluster.request("GET", f"{collection}/{name}")
        _expect(status, current, f"GET {collection}/{name}")
        replacement = copy.deepcopy(body)
        replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        status, stored = cluster.request("PUT", f"{collection}/{name}", replacement)
    _expect(status, stored, f"apply {body.get('kind')} {body['metadata'].get('name')}")
    return stored


def install_policy(cluster: LocalCluster, policy_text: str | None = None, name: str = POLICY_NAME) -> JSON:
    """Put the policy ConfigMap ``name`` (and its namespace) in the cluster; create or replace."""
    status, ns = cluster.request("GET", f"/api/v1/namespaces/{POLICY_NAMESPACE}")
    if status == 404:
        cluster.create_namespace(POLICY_NAMESPACE)
    return apply_object(
        cluster, f"/api/v1/namespaces/{POLICY_NAMESPACE}/configmaps", policy_configmap(policy_text, name)
    )


def webhook_configuration(
    name: str,
    url: str,
    ca_bundle: str,
    *,
    failure_policy: str = "Ignore",
    timeout_seconds: int = 5,
    namespace_expressions: Sequence[Mapping[str, Any]] = (),
) -> JSON:
    """The shipped MutatingWebhookConfiguration, pointed at ``url`` instead of the Service.

    Everything else (rules, selectors that keep system namespaces away,
    reinvocation, side effects) stays as shipped, so what the tests call is
    what operators install. ``namespace_expressions`` are appended to the
    shipped namespaceSelector, to confine a configuration to some namespaces.
    """
    config: JSON = yaml.safe_load(WEBHOOK_MANIFEST.read_text())
    config["metadata"]["name"] = name
    for hook in config["webhooks"]:
        hook["clientConfig"] = {"url": f"{url}/mutate", "caBundle": ca_bundle}
        hook["failurePolicy"] = failure_policy
        hook["timeoutSeconds"] = timeout_seconds
        selector = hook.setdefault("namespaceSelector", {})
        selector.setdefault("matchExpressions", []).extend(dict(e) for e in namespace_expressions)
    return config


def register_webhook(cluster: LocalCluster, config: JSON) -> JSON:
    return apply_object(cluster, MWC_PATH, config)


def unregister_webhook(cluster: LocalCluster, name: str) -> None:
    status, body = cluster.request("DELETE", f"{MWC_PATH}/{name}")
    if status not in (200, 404):
        _expect(status, body, f"delete MutatingWebhookConfiguration {name}")


def extender_config(url: str, *, ignorable: bool = False, weight: int = 5, http_timeout: str = "5s") -> JSON:
    """One ``extenders:`` entry of a KubeSchedulerConfiguration for the meshfit extender.

    ``nodeCacheCapable``: the scheduler sends node names only, the extender
    has its own watch-fed cache. ``bindVerb``: the extender binds, so a pod it
    placed counts on its node before the watch shows the binding.
    ``managedResources`` stays empty: meshfit is interested in every pod.
    """
    return {
        "urlPrefix": url,
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "bindVerb": "bind",
        "weight": weight,
        "enableHTTPS": url.startswith("https://"),
        "nodeCacheCapable": True,
        "ignorable": ignorable,
        "httpTimeout": http_timeout,
        "managedResources": [],
    }


def shipped_extender_config(url: str, *, ignorable: bool | None = None) -> JSON:
    """The ``extenders:`` entry of manifests/extender/scheduler-config.yaml, pointed at ``url``.

    What operators put in their scheduler's configuration is what the tests
    and the demo run; only the address changes (and ``ignorable`` if given).
    Without that file (a checkout that predates it) the entry of
    :func:`extender_config` stands in, ignorable as the shipped one is.
    """
    if SCHEDULER_CONFIG_MANIFEST.exists():
        config = yaml.safe_load(SCHEDULER_CONFIG_MANIFEST.read_text())
        entry: JSON = copy.deepcopy(config["extenders"][0])
        entry["urlPrefix"] = url
        entry["enableHTTPS"] = url.startswith("https://")
        entry.pop("tlsConfig", None)
    else:
        entry = extender_config(url, ignorable=True)
    if ignorable is not None:
        entry["ignorable"] = ignorable
    return entry


def _expect(status: int, body: JSON, what: str) -> None:
    if not 200 <= status < 300:
        raise RuntimeError(f"{what}: HTTP {status}: {body.get('message', body)}")
