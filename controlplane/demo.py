"""``meshfit demo``: the whole of meshfit on one machine, in well under a minute.

A new user's first question is "what does it do to my pods?", and the honest
answer needs the real thing: the apiserver calling the webhook, the scheduler
calling the extender. So this builds (if needed) and starts a LocalCluster,
runs ``meshfit webhook serve`` and ``meshfit extender serve`` beside it,
registers both as a cluster would, creates a few nodes of different sizes and
the sample workloads' pods from manifests/examples/, waits for the scheduler,
and prints what happened: where each pod went, what was injected, what its
resources were before and after, and each node's requests, exposure and
headroom as the extender counts them. Then it stops everything, or with
``KEEP=1`` leaves it running for ``kubectl``.

The policy is the shipped one with ``overcommitVariant: swap`` (``--variant``
changes it): with the default pod-level variant the sidecars live inside the
pod's own limit and nodes carry no exposure, so the extender would have
nothing to show.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TextIO

import yaml

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.inject import inject
from policy.load import parse_policy_text
from policy.model import Policy
from policy.quantity import Quantity
from policy.resources import container_limits, container_requests, pod_limits, pod_requests
from policy.workloads import pod_template

from . import binaries
from .client import JSON
from .cluster import LocalCluster
from .meshfit_servers import (
    MANIFESTS,
    MeshfitServer,
    generate_certs,
    install_policy,
    policy_configmap,
    register_webhook,
    shipped_extender_config,
    meshfit_argv,
    start_controller,
    start_extender,
    start_webhook,
    webhook_configuration,
)

NAMESPACE = "shop"
#: The demo's own names for what the install (``kubectl apply -k manifests/``) also creates, so that
#: the install can be applied to the demo's cluster (KEEP=1) without replacing the demo's
#: webhook registration (by URL, on loopback) or its policy (the swap variant).
DEMO_WEBHOOK = "meshfit-demo-sidecar-injector"
DEMO_POLICY = ("meshfit-system", "meshfit-demo-policy")
OPT_IN = {"meshfit.io/inject": "enabled"}
#: Three sizes, so exposure ceilings (a fraction of allocatable) bite differently.
NODES: tuple[tuple[str, str, str], ...] = (
    ("node-small", "4", "8Gi"),
    ("node-medium", "8", "16Gi"),
    ("node-large", "16", "32Gi"),
)
#: Pods made from each workload's template (a Deployment's replicas, a CronJob's runs).
REPLICAS = 2
#: Where each workload kind keeps its pod template.


class Progress:
    """Timestamped progress lines, flushed at once: a slow step must not look like a hang."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {message}", file=self.out, flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class DemoPod:
    """One sample pod: as submitted, and as the API has it now."""

    name: str
    before: JSON
    after: JSON | None = None


# ------------------------------------------------------------------ inputs


def sample_pods(directory: Any = MANIFESTS / "examples") -> list[DemoPod]:
    """Each workload's template as ``REPLICAS`` pods, and each bare Pod once, from the examples."""
    pods: list[DemoPod] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            kind = doc.get("kind")
            if kind == "Pod":
                pods.append(_pod(doc["metadata"]["name"], doc["metadata"], doc["spec"]))
            elif (template := pod_template(doc)) is not None:
                for i in range(1, REPLICAS + 1):
                    name = f"{doc['metadata']['name']}-{i}"
                    pods.append(_pod(name, template.get("metadata") or {}, template["spec"]))
    return pods


def _pod(name: str, metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> DemoPod:
    meta = {k: copy.deepcopy(v) for k, v in metadata.items() if k in ("labels", "annotations")}
    meta["name"] = name
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(dict(spec))}
    return DemoPod(name, body)


#: Two runtime parameters of rpc-mesh, and an app rule: what the demo flips without a restart.
DEMO_RUNTIME = """
runtime:
  sidecars:
    rpc-mesh:
      logLevel: {type: enum, values: [debug, info, warn, error], default: info}
      traceLog: {type: enum, values: ["on", "off"], default: "on"}
  rules:
    - {name: checkout-debug, apps: [checkout], set: {logLevel: debug}, reason: the demo's app rule}
"""


def demo_policy(variant: str) -> str:
    """The shipped policy text, with ``resources.overcommitVariant`` set (comments kept) and :data:`DEMO_RUNTIME`."""
    text: str = policy_configmap()["data"]["policy.yaml"]
    new, count = re.subn(r"(overcommitVariant:\s*)[\w-]+", rf"\g<1>{variant}", text, count=1)
    if count != 1:
        raise RuntimeError("manifests/policy.yaml has no resources.overcommitVariant line to set")
    if re.search(r"^runtime:", new, flags=re.M):
        raise RuntimeError("manifests/policy.yaml has a runtime section already: the demo's would repeat it")
    return new.rstrip("\n") + "\n" + DEMO_RUNTIME


# ------------------------------------------------------------------ the run


def run(*, keep: bool = False, variant: str = "swap", out: TextIO = sys.stdout) -> int:
    """The demo; returns the exit status (0: every pod scheduled and every server stopped cleanly)."""
    say = Progress(out)
    try:
        bindir = _binaries(say)
    except (binaries.BinariesMissing, OSError) as exc:
        say(f"cannot get the control plane: {exc}")
        return 2
    cluster = LocalCluster(bindir=bindir, keep_workdir=keep)
    servers: list[MeshfitServer] = []
    status = 1
    try:
        say("starting etcd, kube-apiserver and kube-scheduler on 127.0.0.1")
        cluster.start()
        say(f"control plane up in {cluster.started_in:.1f}s at {cluster.api_url}")
        policy_text = demo_policy(variant)
        policy = parse_policy_text(policy_text, "demo policy")
        status = _demo(cluster, servers, policy_text, policy, say, out)
        if keep:
            _hold(cluster, servers, say, out)
    except KeyboardInterrupt:
        say("interrupted")
        status = 130
    except Exception as exc:  # a demo reports, it does not dump a traceback on a new user
        cluster.keep_workdir = True
        say(f"FAILED: {type(exc).__name__}: {exc}")
        for server in servers:
            print(f"---- {server.name} log ({server.log_path}), last lines ----\n{server.log_tail(15)}", file=out)
        status = 1
    finally:
        say("stopping the webhook, the extender, the controller and the control plane")
        for server in reversed(servers):
            code = server.stop()
            if code not in (0, None):
                say(f"{server.name} exited with status {code} on SIGTERM (log: {server.log_path})")
                status = status or 1
        cluster.stop()
        if cluster.keep_workdir:
            say(f"logs and data kept in {cluster.workdir}")
        say("done")
    return status


def _binaries(say: Progress) -> Any:
    missing = binaries.missing()
    if os.environ.get(binaries.BIN_ENV) or (missing and not binaries.go_available()):
        return binaries.require()  # raises, saying how to get them, when they are not all there
    if missing:
        say(f"building the control plane ({', '.join(missing)}): a few minutes, once; later runs reuse it")
    else:
        say(f"control plane binaries: {binaries.bindir()}")
    if binaries.go_available():
        return binaries.build()  # a no-op in milliseconds when the pins have not moved
    return binaries.require()


def _demo(cluster: LocalCluster, servers: list[MeshfitServer], policy_text: str, policy: Policy,
          say: Progress, out: TextIO) -> int:
    workdir = cluster.workdir
    install_policy(cluster, policy_text, DEMO_POLICY[1])
    say(f"policy ConfigMap {'/'.join(DEMO_POLICY)}: manifests/policy.yaml with "
        f"overcommitVariant {policy.resources.variant} and rpc-mesh's runtime parameters logLevel, traceLog "
        f"(revision {policy.revision})")
    ca_bundle = generate_certs(workdir / "webhook-certs")
    say("webhook certificate from `meshfit certs generate --ip 127.0.0.1`")

    webhook = start_webhook(workdir, cluster.kubeconfig_path, workdir / "webhook-certs", wait=False,
                            policy_configmap=DEMO_POLICY)
    servers.append(webhook)
    extender = start_extender(workdir, cluster.kubeconfig_path, wait=False, policy_configmap=DEMO_POLICY)
    servers.append(extender)
    webhook.wait_ready()
    extender.wait_ready()
    say(f"webhook ready at {webhook.url}/mutate, extender ready at {extender.url}")

    register_webhook(cluster, webhook_configuration(DEMO_WEBHOOK, webhook.url, ca_bundle))
    cluster.restart_scheduler([shipped_extender_config(extender.url)])
    say(f"registered: MutatingWebhookConfiguration {DEMO_WEBHOOK}; kube-scheduler restarted "
        "with the extender (filter, prioritize, bind)")

    for name, cpu, memory in NODES:
        cluster.create_node(name, cpu=cpu, memory=memory)
    say("nodes: " + ", ".join(f"{n} ({c} CPU, {m})" for n, c, m in NODES))

    pods = sample_pods()
    cluster.create_namespace(NAMESPACE, OPT_IN)
    _wait_injecting(cluster, pods[0].before)
    for pod in pods:
        status, stored = cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod.before)
        if status != 201:
            raise RuntimeError(f"create pod {pod.name}: HTTP {status}: {stored.get('message', stored)}")
    say(f"created {len(pods)} pods in namespace {NAMESPACE} (opted in) from manifests/examples/")

    _wait_scheduled(cluster, pods)
    bound = sum(1 for p in pods if p.after and p.after["spec"].get("nodeName"))
    say(f"scheduled: {bound} of {len(pods)} pods bound")
    reports = _node_reports(cluster, extender, pods)

    print(file=out)
    print(pods_table(pods, policy), file=out)
    print(file=out)
    print(containers_table(pods), file=out)
    print(file=out)
    print(nodes_table(reports, policy), file=out)
    print(file=out)
    upgraded = _upgrade_in_place(cluster, servers, say, out)
    return 0 if bound == len(pods) and upgraded else 1


#: The pod the demo upgrades in place, on a node whose kubelet KWOK plays.
UPGRADE_POD = "checkout-0"
UPGRADE_NODE = "node-kwok"
UPGRADE_FROM, UPGRADE_TO = "1.8.0", "1.8.1"


def _upgrade_in_place(cluster: LocalCluster, servers: list[MeshfitServer], say: Progress, out: TextIO) -> bool:
    """The fleet controller's act: one running pod's rpc-mesh upgraded in place, the app untouched.

    The control plane has no kubelet, so KWOK plays one for a node of its own: it runs the pod and
    answers the image change as a 1.36 kubelet does (the sidecar restarted alone, a new imageID).
    """
    kwok_dir = binaries.kwok_build() if binaries.go_available() else binaries.kwok_require()
    cluster.start_kwok(kwok_dir)
    cluster.create_fake_node(UPGRADE_NODE, cpu="8", memory="16Gi", kubelet_version="v1.36.3")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": UPGRADE_POD, "labels": {"app.kubernetes.io/name": "checkout"},
                        "annotations": {"meshfit.io/version": f"rpc-mesh={UPGRADE_FROM}"}},
           "spec": {"nodeName": UPGRADE_NODE,
                    "containers": [{"name": "app", "image": "registry.example.com/shop/checkout:4",
                                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                  "limits": {"cpu": "2", "memory": "1Gi"}}}]}}
    status, stored = cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
    if status != 201:
        raise RuntimeError(f"create pod {UPGRADE_POD}: HTTP {status}: {stored.get('message', stored)}")
    before = cluster.wait_for(lambda: _ready_pod(cluster, UPGRADE_POD), 60, interval=0.1,
                              what=f"{UPGRADE_POD} running on {UPGRADE_NODE}")
    assert before is not None
    say(f"{UPGRADE_POD} running on {UPGRADE_NODE} (kubelet v1.36.3, played by KWOK) with rpc-mesh {UPGRADE_FROM}")
    controller = start_controller(cluster.workdir, cluster.kubeconfig_path, wait=False, policy_configmap=DEMO_POLICY)
    servers.append(controller)
    controller.wait_ready()
    say("fleet controller ready; `meshfit upgrade rpc-mesh 1.8.1 checkout-0 -n shop --wait`:")
    import subprocess

    done = subprocess.run(
        meshfit_argv("upgrade", "rpc-mesh", UPGRADE_TO, UPGRADE_POD, "-n", NAMESPACE, "--wait", "--timeout", "60",
                     "--kubeconfig", str(cluster.kubeconfig_path)),
        capture_output=True, text=True, timeout=120)
    out.write(done.stdout)
    after = _ready_pod(cluster, UPGRADE_POD) or {}
    print(file=out)
    print(upgrade_table(before, after), file=out)
    print(file=out)
    same_pod = (after.get("metadata") or {}).get("uid") == before["metadata"]["uid"]
    degraded = _degrade(cluster, say, out, after or before)
    return done.returncode == 0 and same_pod and degraded


def _runtime_values(cluster: LocalCluster, name: str) -> JSON:
    """The values a runtime ConfigMap holds for rpc-mesh; ``{}`` until it exists."""
    status, cm = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}")
    if status != 200:
        return {}
    return dict(json.loads((cm.get("data") or {}).get("rpc-mesh.json") or "{}"))


def _degrade(cluster: LocalCluster, say: Progress, out: TextIO, pod: JSON) -> bool:
    """An emergency switch: trace logs off for the namespace for ten minutes, delivered to the running pod's file."""
    import subprocess

    volume = next((v for v in pod["spec"].get("volumes") or () if v.get("name") == "meshfit-runtime"), None)
    if volume is None:
        say(f"{UPGRADE_POD} mounts no runtime parameters")
        return False
    name = volume["projected"]["sources"][0]["configMap"]["name"]
    before: JSON = cluster.wait_for(lambda: _runtime_values(cluster, name), 30, what=f"ConfigMap {NAMESPACE}/{name}")
    say(f"{UPGRADE_POD}'s rpc-mesh reads /etc/meshfit/runtime/rpc-mesh.json from ConfigMap {NAMESPACE}/{name}; "
        "`meshfit degrade set traceLog=off -n shop --for 10m --reason ...`:")
    done = subprocess.run(
        meshfit_argv("degrade", "set", "traceLog=off", "-n", NAMESPACE, "--for", "10m",
                     "--reason", "trace collector overloaded (demo)",
                     "--policy-configmap", "/".join(DEMO_POLICY), "--kubeconfig", str(cluster.kubeconfig_path)),
        capture_output=True, text=True, timeout=60)
    out.write(done.stdout + done.stderr)
    def delivered() -> JSON:
        values = _runtime_values(cluster, name)
        return values if values.get("traceLog") == "off" else {}

    after: JSON = cluster.wait_for(delivered, 30, what="the degradation delivered")
    now = _ready_pod(cluster, UPGRADE_POD) or {}
    print(file=out)
    print(table(f"runtime parameters of {NAMESPACE}/{UPGRADE_POD} (rpc-mesh.json)", ["", "before", "after"], [
        ["logLevel (app rule checkout-debug)", str(before.get("logLevel")), str(after.get("logLevel"))],
        ["traceLog (degradation, 10 minutes)", str(before.get("traceLog")), str(after.get("traceLog"))],
        ["pod UID", pod["metadata"]["uid"][:8], (now.get("metadata") or {}).get("uid", "?")[:8]],
        ["restarts (app / rpc-mesh)", _restarts(pod), _restarts(now)],
    ]), file=out)
    print(file=out)
    return done.returncode == 0 and (now.get("metadata") or {}).get("uid") == pod["metadata"]["uid"]


def _restarts(pod: JSON) -> str:
    return f"{_container_status(pod, 'app').get('restartCount', 0)} / " \
           f"{_container_status(pod, 'rpc-mesh').get('restartCount', 0)}"


def _ready_pod(cluster: LocalCluster, name: str) -> JSON | None:
    status, pod = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
    if status != 200:
        return None
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in (pod.get("status") or {}).get("conditions") or ())
    return pod if ready else None


def _container_status(pod: JSON, name: str) -> JSON:
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in (pod.get("status") or {}).get(key) or ():
            if item.get("name") == name:
                return dict(item)
    return {}


def upgrade_table(before: JSON, after: JSON) -> str:
    """The pod before and after its in-place upgrade: same UID and IP, the sidecar restarted, the app not."""
    def row(what: str, read: Any) -> list[str]:
        return [what, str(read(before)), str(read(after))]

    rows = [
        row("pod UID", lambda p: (p.get("metadata") or {}).get("uid", "-")),
        row("pod IP", lambda p: (p.get("status") or {}).get("podIP", "-")),
        row("rpc-mesh image", lambda p: _container_status(p, "rpc-mesh").get("image", "-")),
        row("rpc-mesh restarts", lambda p: _container_status(p, "rpc-mesh").get("restartCount", "-")),
        row("app restarts", lambda p: _container_status(p, "app").get("restartCount", "-")),
    ]
    return table(f"In-place upgrade of {NAMESPACE}/{UPGRADE_POD}", ["", "before", "after"], rows)


def _wait_injecting(cluster: LocalCluster, probe: JSON) -> None:
    """Until a dry-run pod in the demo namespace comes back injected.

    The apiserver learns of the webhook configuration, and the webhook of
    the new namespace's label, through watches: a pod created a moment too
    early would pass unmeshed.
    """

    def injected() -> bool:
        status, body = cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All", probe)
        return status == 201 and STATUS in (body["metadata"].get("annotations") or {})

    cluster.wait_for(injected, 30, interval=0.1, what="the webhook injecting in namespace shop")


def _wait_scheduled(cluster: LocalCluster, pods: list[DemoPod], timeout: float = 30.0) -> None:
    """Until every pod is bound or the scheduler has said why not."""

    def settled() -> bool:
        status, listing = cluster.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
        if status != 200:
            return False
        by_name = {p["metadata"]["name"]: p for p in listing["items"]}
        for pod in pods:
            pod.after = by_name.get(pod.name)
        return all(_placed_or_refused(p.after) for p in pods)

    cluster.wait_for(settled, timeout, interval=0.1, what="the scheduler placing the demo pods")


def _placed_or_refused(pod: JSON | None) -> bool:
    if pod is None:
        return False
    if pod["spec"].get("nodeName"):
        return True
    return any(c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _node_reports(cluster: LocalCluster, extender: MeshfitServer, pods: list[DemoPod]) -> list[JSON]:
    """The extender's view of each node, once its watch has seen every binding."""
    expected = {name: 0 for name, _, _ in NODES}
    for pod in pods:
        node = (pod.after or {}).get("spec", {}).get("nodeName")
        if node in expected:
            expected[node] += 1
    reports: list[JSON] = []

    def caught_up() -> bool:
        reports.clear()
        for name in expected:
            status, text = extender.get(f"/debug/nodes/{name}")
            if status != 200:
                return False
            reports.append(json.loads(text))
        return all(r.get("pods") == expected[r["name"]] and not r.get("assumedPods") for r in reports)

    cluster.wait_for(caught_up, 15, interval=0.1, what="the extender's watch catching up")
    return reports


def _hold(cluster: LocalCluster, servers: list[MeshfitServer], say: Progress, out: TextIO) -> None:
    """KEEP=1: leave everything up until Ctrl-C or SIGTERM."""
    webhook, extender = servers[0], servers[1]
    print(
        "KEEP=1: everything stays up until you press Ctrl-C (or run `kill "
        f"{os.getpid()}`); everything stops with this process.\n"
        f"  export KUBECONFIG={cluster.kubeconfig_path}\n"
        f"  kubectl get pods -n {NAMESPACE} -o wide\n"
        f"  curl -s {extender.url}/debug/nodes/node-large\n"
        f"  curl -sk {webhook.url}/metrics\n"
        f"  logs: {cluster.workdir}/*.log",
        file=out,
        flush=True,
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl-C is how KEEP=1 is meant to end
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(file=out)


# ------------------------------------------------------------------ tables


def table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A plain left-aligned text table under a title."""
    all_rows = [list(header), *(list(r) for r in rows)]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    lines = [title]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in all_rows]
    return "\n".join(lines)


def pair(values: Mapping[str, Quantity | None]) -> str:
    """``cpu/memory``; ``-`` for a resource with no value (no limit)."""
    return "/".join(_q(values.get(r), r) for r in ("cpu", "memory"))


def _q(value: Quantity | None, resource: str) -> str:
    if value is None:
        return "-"
    if resource == "memory":
        return _memory(value)
    return value.format()


def _memory(value: Quantity) -> str:
    """Whole Mi or Gi when exact, as people write memory."""
    nanos = value.nanos
    if nanos == 0:
        return "0"
    for unit, size in (("Gi", 2**30), ("Mi", 2**20)):
        whole = size * 10**9
        if nanos % whole == 0:
            return f"{nanos // whole}{unit}"
    return Quantity(nanos, "BinarySI").format()


def _sidecars(pod: JSON | None) -> list[JSON]:
    status = ((pod or {}).get("metadata", {}).get("annotations") or {}).get(STATUS)
    return list(json.loads(status).get("sidecars", [])) if status else []


def pods_table(pods: list[DemoPod], policy: Policy) -> str:
    rows = []
    for pod in pods:
        after = pod.after or pod.before
        sidecars = _sidecars(pod.after)
        if sidecars:
            mesh = ", ".join(f"{s['name']} {s['version']} ({s['source']})" for s in sidecars)
        else:
            labels = {**OPT_IN, "kubernetes.io/metadata.name": NAMESPACE}
            reason = inject(copy.deepcopy(pod.before), Namespace(NAMESPACE, labels, None), policy).reason
            mesh = f"none: {reason}"
        record = json.loads(((after["metadata"].get("annotations") or {}).get(ACCOUNTING)) or "{}")
        exposure = "-"
        if record.get("exposure") == "node":
            exposure = pair({k: Quantity.parse(v) for k, v in record["overcommit"].items()})
        node = after["spec"].get("nodeName") or "Pending"
        rows.append([pod.name, node, pair(pod_requests(pod.before)), pair(pod_requests(after)),
                     pair(pod_limits(pod.before)), pair(pod_limits(after)), exposure, mesh])
    return table(
        f"Pods in namespace {NAMESPACE} (R = effective request, L = effective limit; cpu/memory)",
        ["POD", "NODE", "R BEFORE", "R AFTER", "L BEFORE", "L AFTER", "NODE EXPOSURE", "SIDECARS (version, rule)"],
        rows,
    )


def containers_table(pods: list[DemoPod]) -> str:
    rows = []
    for pod in pods:
        after = pod.after or pod.before
        injected = {s["name"] for s in _sidecars(pod.after)}
        before = {c["name"]: c for c in pod.before["spec"].get("containers", []) +
                  pod.before["spec"].get("initContainers", [])}
        if "resources" in after["spec"]:
            res = after["spec"]["resources"]
            rows.append([pod.name, "(pod level)", "pod", "-",
                         pair({k: Quantity.parse(v) for k, v in (res.get("requests") or {}).items()}),
                         "-", pair({k: Quantity.parse(v) for k, v in (res.get("limits") or {}).items()})])
        listed = [("init", c) for c in after["spec"].get("initContainers", [])]
        listed += [("app", c) for c in after["spec"].get("containers", [])]
        for role, container in listed:
            name = container["name"]
            if name in injected:
                role = "sidecar"
            elif container.get("restartPolicy") == "Always":
                role = "own sidecar"
            old = before.get(name)
            rows.append([
                pod.name, name, role,
                pair(container_requests(old)) if old else "-", pair(container_requests(container)),
                pair(container_limits(old)) if old else "-", pair(container_limits(container)),
            ])
    return table(
        "Containers, before and after admission (cpu/memory)",
        ["POD", "CONTAINER", "ROLE", "REQUESTS BEFORE", "REQUESTS AFTER", "LIMITS BEFORE", "LIMITS AFTER"],
        rows,
    )


def nodes_table(reports: list[JSON], policy: Policy) -> str:
    weight = Fraction(policy.scheduling.exposure_weight)
    rows = []
    for report in reports:
        alloc = {r: Quantity.parse(v) for r, v in report["allocatable"].items()}
        req = {r: Quantity.parse(v) for r, v in report["requested"].items()}
        exp = {r: Quantity.parse(v) for r, v in report["exposure"].items()}
        headroom = {}
        for r in ("cpu", "memory"):
            nanos = alloc[r].nanos - req[r].nanos - weight * exp[r].nanos
            headroom[r] = Quantity(max(0, int(nanos)), "BinarySI" if r == "memory" else "DecimalSI")
        rows.append([
            report["name"], pair(alloc), str(report["pods"]),
            f"{pair(req)} ({_percent(req, alloc)})",
            f"{pair(exp)} ({_percent(exp, alloc)})",
            f"{pair(headroom)} ({_percent(headroom, alloc)})",
        ])
    ceiling = policy.scheduling.exposure_ceiling
    return table(
        "Nodes, as the extender counts them (/debug/nodes/NAME; cpu/memory, % of allocatable); "
        f"exposure ceiling {_fraction_percent(ceiling['cpu'])} cpu, {_fraction_percent(ceiling['memory'])} memory",
        ["NODE", "ALLOCATABLE", "PODS", "REQUESTED", "EXPOSURE", "HEADROOM"],
        rows,
    )


def _percent(part: Mapping[str, Quantity], whole: Mapping[str, Quantity]) -> str:
    out = []
    for r in ("cpu", "memory"):
        if whole[r].nanos <= 0:
            out.append("-")
        else:
            out.append(f"{100 * part[r].nanos / whole[r].nanos:.0f}%")
    return "/".join(out)


def _fraction_percent(value: Fraction) -> str:
    return f"{float(value) * 100:g}%"
