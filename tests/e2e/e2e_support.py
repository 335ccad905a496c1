"""Plain helpers the end-to-end tests share: pods, waits, policy switching, comparisons.

Fixtures live in ``conftest.py``; what is here is ordinary functions and one
class, so a test reads as calls it can follow.
"""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import yaml

from controlplane.cluster import LocalCluster
from controlplane.meshfit_servers import POLICY_NAME, POLICY_NAMESPACE, MeshfitServer, policy_configmap
from policy.inject import InjectionResult, Namespace, inject
from policy.load import parse_policy_text
from policy.model import Policy

JSON = dict[str, Any]

OPT_IN_LABEL = "meshfit.io/inject"
OPT_IN = {OPT_IN_LABEL: "enabled"}
#: The session's webhook configuration selects only namespaces with this label,
#: so other modules' clusters-mates (and the failure tests' own
#: configurations) never see the session webhook.
SUITE_LABEL = "meshfit.io/e2e-suite"
SUITE_VALUE = "main"
STATUS = "meshfit.io/status"
ACCOUNTING = "meshfit.io/accounting"


# ----------------------------------------------------------------------- pods


def app_pod(
    name: str,
    *,
    requests: Mapping[str, str] | None = None,
    limits: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
) -> JSON:
    """A one-container pod; resources as given (none: BestEffort)."""
    resources: JSON = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    container: JSON = {"name": "app", "image": "registry.invalid/shop/app:1"}
    if resources:
        container["resources"] = resources
    meta: JSON = {"name": name, "labels": {"app.kubernetes.io/name": name, **(labels or {})}}
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: JSON = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


#: Pods created only to see what admission makes of them carry this scheduling
#: gate: the scheduler never places a gated pod, so they cannot fill the nodes
#: other tests create (Pending pods are scheduled the moment any node appears).
ADMISSION_ONLY_GATE = "meshfit.io/e2e-admission-only"


def admission_only(pod: JSON) -> JSON:
    """``pod`` with the :data:`ADMISSION_ONLY_GATE` scheduling gate."""
    gated = copy.deepcopy(pod)
    gated["spec"].setdefault("schedulingGates", []).append({"name": ADMISSION_ONLY_GATE})
    return gated


def _placed(pod: JSON) -> bool:
    """Gated, placed by hand, or tolerating a test's own node pool: it cannot land elsewhere."""
    spec = pod.get("spec") or {}
    return bool(spec.get("schedulingGates") or spec.get("nodeName") or any(
        t.get("key") == NodePool.LABEL for t in spec.get("tolerations") or ()))


def pods_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def create(cluster: LocalCluster, namespace: str, body: JSON, *, dry_run: bool = False,
           collection: str | None = None) -> JSON:
    """POST ``body``; fail the test with the API's message unless it was created.

    A Pod must be gated or bound to the test's own nodes (see
    :func:`admission_only`): one left free to schedule would land on whatever
    node another test creates next and spoil its arithmetic.
    """
    if body.get("kind") == "Pod" and not dry_run:
        assert _placed(body), f"pod {body['metadata'].get('name')}: use admission_only() or a NodePool"
    path = (collection or pods_path(namespace)) + ("?dryRun=All" if dry_run else "")
    status, stored = cluster.request("POST", path, copy.deepcopy(body))
    assert status == 201, f"create {body['kind']} {namespace}/{body['metadata'].get('name')}: HTTP {status}: " \
                          f"{stored.get('message', stored)}"
    return stored


def get_pod(cluster: LocalCluster, namespace: str, name: str) -> JSON:
    status, pod = cluster.request("GET", f"{pods_path(namespace)}/{name}")
    assert status == 200, f"GET pod {namespace}/{name}: HTTP {status}: {pod.get('message', pod)}"
    return pod


def sidecar_names(pod: JSON) -> list[str]:
    """Native sidecars: init containers with ``restartPolicy: Always``."""
    return [c["name"] for c in pod["spec"].get("initContainers") or () if c.get("restartPolicy") == "Always"]


def is_untouched(stored: JSON, submitted: JSON) -> list[str]:
    """Why ``stored`` is not the submitted pod as plain API defaulting leaves it ([] if it is)."""
    problems = []
    annotations = stored["metadata"].get("annotations") or {}
    for key in (STATUS, ACCOUNTING):
        if key in annotations:
            problems.append(f"has annotation {key}")
    want = [c["name"] for c in submitted["spec"].get("initContainers") or ()]
    if [c["name"] for c in stored["spec"].get("initContainers") or ()] != want:
        problems.append(f"initContainers {[c['name'] for c in stored['spec'].get('initContainers') or ()]}")
    for got, sent in zip(stored["spec"]["containers"], submitted["spec"]["containers"], strict=True):
        if (got.get("resources") or {}) != (sent.get("resources") or {}):
            problems.append(f"container {got['name']} resources {got.get('resources')} != {sent.get('resources')}")
        if any(e["name"].startswith("MESH_") for e in got.get("env") or ()):
            problems.append(f"container {got['name']} got mesh environment")
    if "resources" in stored["spec"] and "resources" not in submitted["spec"]:
        problems.append(f"pod-level resources {stored['spec']['resources']}")
    return problems


def wait_bound(cluster: LocalCluster, namespace: str, name: str, timeout: float = 30.0) -> str:
    """The node the pod gets bound to; fails with its PodScheduled condition if it stays Pending."""

    def node() -> str | None:
        return get_pod(cluster, namespace, name)["spec"].get("nodeName")

    try:
        return cluster.wait_for(node, timeout, interval=0.1, what=f"pod {namespace}/{name} bound")
    except TimeoutError:
        condition = scheduled_condition(get_pod(cluster, namespace, name))
        raise AssertionError(f"pod {namespace}/{name} not bound after {timeout}s; PodScheduled: {condition}") from None


def scheduled_condition(pod: JSON) -> JSON | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled":
            return condition
    return None


def wait_unschedulable(cluster: LocalCluster, namespace: str, name: str, timeout: float = 30.0) -> JSON:
    """The pod's PodScheduled condition once the scheduler has given up on it (reason Unschedulable)."""

    def condition() -> JSON | None:
        pod = get_pod(cluster, namespace, name)
        assert not pod["spec"].get("nodeName"), f"pod {name} was bound to {pod['spec']['nodeName']}"
        found = scheduled_condition(pod)
        return found if found and found.get("reason") == "Unschedulable" else None

    return cluster.wait_for(condition, timeout, interval=0.1, what=f"pod {namespace}/{name} unschedulable")


@dataclass(frozen=True)
class NodePool:
    """Nodes one test made, tainted so that only pods placed with :meth:`place` land there.

    The session cluster holds every test's nodes and every test's pods, and
    pods created without a node in mind (other tests') stay Pending until some
    node appears: the taint keeps them off this pool, and the selector keeps
    this test's pods on it, so the scheduler and the extender judge exactly
    the nodes and pods the test built.
    """

    LABEL: ClassVar[str] = "meshfit.io/e2e-pool"

    value: str
    names: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.LABEL

    def place(self, pod: JSON) -> JSON:
        """``pod`` with the pool's nodeSelector and toleration."""
        placed = copy.deepcopy(pod)
        spec = placed["spec"]
        spec.setdefault("nodeSelector", {})[self.label] = self.value
        spec.setdefault("tolerations", []).append(
            {"key": self.label, "operator": "Equal", "value": self.value, "effect": "NoSchedule"}
        )
        return placed


def node_pool(cluster: LocalCluster, sizes: Sequence[tuple[str, str, str]]) -> NodePool:
    """Create nodes ``(suffix, cpu, memory)`` with one fresh label and a matching NoSchedule taint.

    The taint is in the Node as created: added a moment later, a Pending pod
    of another test could already have been bound there (the scheduler sees
    a node as soon as it exists). So this writes the Node itself instead of
    ``LocalCluster.create_node``, which creates nodes untainted.
    """
    value = uuid.uuid4().hex[:6]
    label = NodePool.LABEL
    taint = {"key": label, "value": value, "effect": "NoSchedule"}
    names = []
    for suffix, cpu, memory in sizes:
        name = f"pool-{value}-{suffix}"
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "kubernetes.io/arch": "amd64", label: value}},
            "spec": {"taints": [taint]},
        }
        status, node = cluster.request("POST", "/api/v1/nodes", body)
        assert status == 201, node
        resources = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "no kubelet: e2e node",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}
        node_status = {"status": {"capacity": resources, "allocatable": resources, "conditions": [ready]}}
        status, node = cluster.request("PATCH", f"/api/v1/nodes/{name}/status", node_status)
        assert status == 200, node
        names.append(name)
    return NodePool(value, tuple(names))


# ---------------------------------------------------------------- prediction


def predict(pod: JSON, namespace: str, labels: Mapping[str, str], policy: Policy) -> InjectionResult:
    """What the engine makes of ``pod`` in a namespace with ``labels`` (as the webhook sees it)."""
    body = copy.deepcopy(pod)
    body["metadata"]["namespace"] = namespace
    all_labels = {**labels, "kubernetes.io/metadata.name": namespace}
    return inject(body, Namespace(namespace, all_labels, None), policy)


#: Fields the apiserver fills in when a manifest leaves them out. The engine
#: writes what the policy says and nothing more, so these may appear in the
#: stored pod without the engine having written them; every other difference
#: is a real one.
API_DEFAULTED = frozenset({
    "terminationMessagePath",   # containers: /dev/termination-log
    "terminationMessagePolicy",  # containers: File
    "imagePullPolicy",          # containers: IfNotPresent (Always for :latest)
    "protocol",                 # ports: TCP
    "timeoutSeconds",           # probes: 1
    "successThreshold",         # probes: 1
    "failureThreshold",         # probes: 3
    "periodSeconds",            # probes: 10
    "apiVersion",               # env valueFrom.fieldRef: v1
})
#: The ServiceAccount admission plugin mounts the API token into every
#: container, sidecars included (it runs again after a webhook adds containers).
SERVICE_ACCOUNT_MOUNT = "kube-api-access-"


def differences(stored: Any, expected: Any, path: str = "") -> list[str]:
    """Where ``stored`` differs from ``expected`` other than by API defaulting.

    Dicts: every expected key must be equal; extra stored keys are allowed only
    if they are in :data:`API_DEFAULTED`. Lists: same length, item by item,
    except that ``volumeMounts`` may carry the ServiceAccount token mount in
    addition. Scalars (quantities included) must be identical: the engine
    writes canonical quantities, so the API has nothing to normalise.
    """
    if isinstance(expected, dict) and isinstance(stored, dict):
        out = []
        for key, value in expected.items():
            if key not in stored:
                out.append(f"{path}.{key}: missing (expected {value!r})")
            else:
                out.extend(differences(stored[key], value, f"{path}.{key}"))
        for key in stored.keys() - expected.keys():
            if key in API_DEFAULTED or (key == "volumeMounts" and _only_token_mounts(stored[key])):
                continue
            if key == "resources" and stored[key] == {}:  # the API writes an empty struct
                continue
            out.append(f"{path}.{key}: unexpected {stored[key]!r}")
        return out
    if isinstance(expected, list) and isinstance(stored, list):
        if path.endswith(".volumeMounts"):
            stored = [m for m in stored if not str(m.get("name", "")).startswith(SERVICE_ACCOUNT_MOUNT)
                      or m in expected]
        if len(stored) != len(expected):
            return [f"{path}: {len(stored)} items, expected {len(expected)}: {stored!r} vs {expected!r}"]
        out = []
        for i, (s, e) in enumerate(zip(stored, expected, strict=True)):
            out.extend(differences(s, e, f"{path}[{i}]"))
        return out
    return [] if stored == expected else [f"{path}: {stored!r}, expected {expected!r}"]


def _only_token_mounts(mounts: Any) -> bool:
    return isinstance(mounts, list) and all(
        str(m.get("name", "")).startswith(SERVICE_ACCOUNT_MOUNT) for m in mounts
    )


def injection_differences(stored: JSON, expected: JSON) -> list[str]:
    """Compare what the engine decides: containers, init containers, pod resources, meshfit annotations."""
    out = []
    for key in ("containers", "initContainers"):
        got = stored["spec"].get(key) or []
        want = expected["spec"].get(key) or []
        out.extend(differences(got, want, f"spec.{key}"))
    if stored["spec"].get("resources") != expected["spec"].get("resources"):
        out.append(f"spec.resources: {stored['spec'].get('resources')!r}, "
                   f"expected {expected['spec'].get('resources')!r}")
    got_ann = stored["metadata"].get("annotations") or {}
    want_ann = expected["metadata"].get("annotations") or {}
    for key in sorted(k for k in {*got_ann, *want_ann} if k.startswith("meshfit.io/")):
        if got_ann.get(key) != want_ann.get(key):
            out.append(f"annotation {key}: {got_ann.get(key)!r}, expected {want_ann.get(key)!r}")
    return out


# --------------------------------------------------------------------- policy


def deep_merge(base: Mapping[str, Any], edits: Mapping[str, Any]) -> JSON:
    out = copy.deepcopy(dict(base))
    for key, value in edits.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class PolicyControl:
    """Edits of the global policy ConfigMap, and waits until both servers serve the result.

    Every change is undone on the way out of :meth:`changed` (blocks nest:
    the inner one restores the outer one's policy), and every wait is on the
    servers' own reports (the webhook's ``/readyz``, the extender's
    ``policy_info`` metric), never a sleep.
    """

    cluster: LocalCluster
    webhook: MeshfitServer
    extender: MeshfitServer
    base_text: str

    def __post_init__(self) -> None:
        self.base = parse_policy_text(self.base_text, "manifests/policy.yaml")
        #: What is in force: (policy.yaml text, its revision, its parsed document).
        self.current: tuple[str, str, JSON] = (self.base_text, self.base.revision, yaml.safe_load(self.base_text))

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{POLICY_NAMESPACE}/configmaps/{POLICY_NAME}"

    def put_text(self, text: str) -> None:
        """Replace the ConfigMap's ``policy.yaml`` with ``text``, valid or not."""
        status, current = self.cluster.request("GET", self.path)
        assert status == 200, current
        body = policy_configmap(text)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        status, stored = self.cluster.request("PUT", self.path, body)
        assert status == 200, f"update policy ConfigMap: HTTP {status}: {stored.get('message', stored)}"

    def text(self, edits: Mapping[str, Any], revision: str) -> str:
        """The policy in force with ``edits`` merged in, as YAML, labelled ``revision``."""
        return yaml.safe_dump(deep_merge(self.current[2], {**edits, "revision": revision}), sort_keys=False)

    def apply(self, text: str) -> Policy:
        """Put a valid policy and wait until both servers serve it."""
        policy = parse_policy_text(text, "test policy")  # a typo in a test fails here, not in the servers
        self.put_text(text)
        self.wait_serving(policy.revision)
        self.current = (text, policy.revision, yaml.safe_load(text))
        return policy

    def serving(self, revision: str) -> bool:
        status, text = self.webhook.get("/readyz")
        webhook_ok = status == 200 and f"[+] policy: revision {revision} from" in text
        webhook_ok = webhook_ok and "[!] policy: last update refused" not in text
        info = self.extender.metric("meshfit_extender_policy_info", {"revision": revision})
        return webhook_ok and info == 1

    def wait_serving(self, revision: str, timeout: float = 20.0) -> float:
        """Seconds until both servers serve ``revision`` (and the webhook reports no refusal)."""
        started = time.monotonic()
        self.cluster.wait_for(lambda: self.serving(revision), timeout, interval=0.1,
                              what=f"webhook and extender serving policy {revision}")
        return time.monotonic() - started

    @contextlib.contextmanager
    def restoring(self) -> Iterator[None]:
        """Whatever the block puts in the ConfigMap, the policy in force before it is back after it."""
        previous = self.current
        try:
            yield
        finally:
            self.apply(previous[0])

    @contextlib.contextmanager
    def changed(self, edits: Mapping[str, Any], revision: str) -> Iterator[Policy]:
        """The policy in force with ``edits`` (nested dicts, merged) inside the block."""
        with self.restoring():
            yield self.apply(self.text(edits, revision))
