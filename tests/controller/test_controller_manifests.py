"""The fleet controller's manifests say what the operator was promised, and grant exactly what it calls.

manifests/controller/ is read the way `kubectl apply -k manifests/` reads it:
the Deployment's arguments are parsed by `meshfit`'s own parser (a renamed flag
fails here, not in a crash-looping pod), and its ports, Lease and policy name
must agree with the RBAC and the NetworkPolicy beside it. On the real
apiserver, the RBAC is stored and every call the controller makes is asked of
the RBAC authorizer as the controller's ServiceAccount (a SubjectAccessReview),
next to calls it must not be able to make.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.main import build_parser
from controller.workloads import PATHS as WORKLOAD_PATHS
from kube.leader import LeaderElectionConfig

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CONTROLLER = MANIFESTS / "controller"
NAMESPACE = "meshfit-system"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:meshfit-controller"

#: The ClusterRole, rule for rule: (apiGroup, resource) -> verbs.
CLUSTER_RULES = {
    ("", "pods"): {"get", "list", "watch", "patch", "update"},
    ("", "pods/resize"): {"patch"},
    ("", "pods/eviction"): {"create"},
    ("", "nodes"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("apps", "replicasets"): {"get"},
    ("apps", "deployments"): {"get", "patch"},
    ("apps", "statefulsets"): {"get", "patch"},
    ("apps", "daemonsets"): {"get", "patch"},
    ("", "namespaces"): {"list"},
    ("meshfit.io", "sidecarrollouts"): {"list", "watch"},
    ("meshfit.io", "sidecarrollouts/status"): {"update"},
    # The namespaces' policies and the runtime ConfigMaps (controller.runtime_sync); no get.
    ("", "configmaps"): {"list", "watch", "create", "update", "delete"},
}
#: ... and by name: none.
CLUSTER_NAMED_RULES: dict[tuple[str, str, str], set[str]] = {}
#: The Roles in meshfit-system: (apiGroup, resource, resourceName or "") -> verbs.
NAMESPACE_RULES = {
    ("", "configmaps", "meshfit-policy"): {"get", "list", "watch"},
    ("", "configmaps", "meshfit-degradations"): {"get", "list", "watch"},
    ("coordination.k8s.io", "leases", ""): {"create"},
    ("coordination.k8s.io", "leases", "meshfit-controller"): {"get", "update"},
}


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    """The controller's objects, from the files the top-level kustomization lists."""
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    found = {}
    for name in listed:
        if name.startswith("controller/"):
            for obj in yaml.safe_load_all((MANIFESTS / name).read_text()):
                if obj:
                    found[obj["kind"], obj["metadata"]["name"]] = obj
    return found


def deployment() -> dict[str, Any]:
    return objects()["Deployment", "meshfit-controller"]


def container() -> dict[str, Any]:
    (only,) = deployment()["spec"]["template"]["spec"]["containers"]
    return only


def arguments() -> argparse.Namespace:
    """The container's command line, as `meshfit` parses it."""
    c = container()
    assert c["command"] == ["meshfit"]
    return build_parser().parse_args(c["args"])


def flatten(rules: list[dict[str, Any]], *, named: bool) -> dict[tuple[str, ...], set[str]]:
    out: dict[tuple[str, ...], set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in rule.get("resourceNames") or ([""] if named else []):
                    out.setdefault((group, resource, name), set()).update(rule["verbs"])
                if not named:
                    assert "resourceNames" not in rule, rule
                    out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def test_every_file_is_in_the_default_install() -> None:
    listed = set(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"])
    for path in CONTROLLER.glob("*.yaml"):
        assert f"controller/{path.name}" in listed, path
    assert {kind for kind, _ in objects()} == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                                               "RoleBinding", "Deployment", "PodDisruptionBudget", "NetworkPolicy",
                                               "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def test_deployment_is_hardened_and_highly_available() -> None:
    d = deployment()
    spec = d["spec"]["template"]["spec"]
    labels = d["spec"]["selector"]["matchLabels"]
    assert labels == {"app.kubernetes.io/name": "meshfit", "app.kubernetes.io/component": "controller"}
    assert d["spec"]["replicas"] == 2
    # A standby is Ready too, so the rollout keeps one replica up while it replaces the other.
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname",
                                       "labelSelector": {"matchLabels": labels}}
    assert d["spec"]["template"]["metadata"]["labels"]["meshfit.io/inject"] == "false"
    assert 5 <= spec["terminationGracePeriodSeconds"] <= 60
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] == 65532
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container()
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert spec["serviceAccountName"] == "meshfit-controller"


def test_the_image_is_the_one_the_other_processes_run() -> None:
    extender = yaml.safe_load((MANIFESTS / "extender" / "deployment.yaml").read_text())
    (theirs,) = extender["spec"]["template"]["spec"]["containers"]
    assert container()["image"] == theirs["image"]
    assert container()["image"].split(":")[0] in {i["name"] for i in yaml.safe_load(
        (MANIFESTS / "kustomization.yaml").read_text())["images"]}


def test_the_arguments_are_meshfit_controller_serve() -> None:
    args = arguments()
    assert (args.command, args.controller_command) == ("controller", "serve")
    assert args.policy_configmap == (NAMESPACE, "meshfit-policy")
    assert args.host == "0.0.0.0"
    assert (args.workers, args.qps, args.burst) == (4, 20.0, 40)
    assert args.leader_elect and (args.leader_elect_resource_namespace, args.leader_elect_resource_name) == (
        NAMESPACE, "meshfit-controller")
    # The durations are ones the controller accepts (client-go's rule), with the pod name as identity.
    LeaderElectionConfig(NAMESPACE, "meshfit-controller", "pod_abcd1234",
                         lease_duration=args.leader_elect_lease_duration,
                         renew_deadline=args.leader_elect_renew_deadline,
                         retry_period=args.leader_elect_retry_period)
    assert args.leader_elect_identity == ""  # the default: $POD_NAME and a random suffix


def test_probes_metrics_and_the_network_policy_use_the_probe_port() -> None:
    args = arguments()
    c = container()
    (port,) = c["ports"]
    assert port == {"name": "probes", "containerPort": args.probe_port, "protocol": "TCP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(args.probe_port) and annotations["prometheus.io/path"] == "/metrics"
    policy = objects()["NetworkPolicy", "meshfit-controller"]["spec"]
    assert policy["podSelector"]["matchLabels"] == deployment()["spec"]["selector"]["matchLabels"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": args.probe_port, "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_the_disruption_budget_takes_one_replica_at_a_time() -> None:
    pdb = objects()["PodDisruptionBudget", "meshfit-controller"]["spec"]
    assert pdb["maxUnavailable"] == 1 and "minAvailable" not in pdb
    assert pdb["selector"]["matchLabels"] == deployment()["spec"]["selector"]["matchLabels"]


def test_rbac_is_exactly_what_the_controller_calls() -> None:
    found = objects()
    cluster_rules = found["ClusterRole", "meshfit-controller"]["rules"]
    assert flatten([r for r in cluster_rules if "resourceNames" not in r], named=False) == CLUSTER_RULES
    assert flatten([r for r in cluster_rules if "resourceNames" in r], named=True) == CLUSTER_NAMED_RULES
    namespaced: dict[tuple[str, ...], set[str]] = {}
    for role in ("meshfit-controller-policy", "meshfit-controller-leader-election"):
        assert found["Role", role]["metadata"]["namespace"] == NAMESPACE
        for key, verbs in flatten(found["Role", role]["rules"], named=True).items():
            namespaced.setdefault(key, set()).update(verbs)
    assert namespaced == NAMESPACE_RULES
    # The names the rules give are the ones the command line uses.
    args = arguments()
    assert ("", "configmaps", args.policy_configmap[1]) in NAMESPACE_RULES
    assert ("coordination.k8s.io", "leases", args.leader_elect_resource_name) in NAMESPACE_RULES
    # Every workload kind the recreate action reads is granted (and patched, but for the ReplicaSet it looks through).
    for kind, path in WORKLOAD_PATHS.items():
        resource = path.rsplit("/", 2)[-2]
        assert "get" in CLUSTER_RULES["apps", resource], kind
        assert ("patch" in CLUSTER_RULES["apps", resource]) == (kind != "ReplicaSet"), kind
    # Every binding names the controller's ServiceAccount and nothing else.
    for kind, name in [("ClusterRoleBinding", "meshfit-controller"), ("RoleBinding", "meshfit-controller-policy"),
                       ("RoleBinding", "meshfit-controller-leader-election")]:
        binding = found[kind, name]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "meshfit-controller",
                                        "namespace": NAMESPACE}], name
        assert binding["roleRef"]["name"] == name and binding["roleRef"]["kind"] == kind.replace("Binding", "")


# -- on the real apiserver -------------------------------------------------------------------------

#: (verb, group, resource, subresource, namespace, name): what the controller does, each by the code that does it.
ALLOWED = [
    # kube.watch.ListWatch of /api/v1/pods and /api/v1/nodes, all namespaces.
    ("list", "", "pods", "", "", ""), ("watch", "", "pods", "", "", ""),
    ("list", "", "nodes", "", "", ""), ("watch", "", "nodes", "", "", ""), ("get", "", "nodes", "", "", "node-1"),
    ("get", "", "pods", "", "shop", "web-0"),
    # Executor._patch_pod (image, slots, status, operation); a whole-pod write; Executor._resize.
    ("patch", "", "pods", "", "shop", "web-0"), ("update", "", "pods", "", "shop", "web-0"),
    ("patch", "", "pods", "resize", "shop", "web-0"),
    ("create", "", "pods", "eviction", "shop", "web-0"),
    # kube.events.EventRecorder, in the pod's namespace.
    ("create", "", "events", "", "shop", ""), ("patch", "", "events", "", "shop", "web-0.1"),
    # Executor._recreate: the ReplicaSet's owner, then the workload's template.
    ("get", "apps", "replicasets", "", "shop", "web-5d8f"),
    *[(verb, "apps", kind, "", "shop", "web") for kind in ("deployments", "statefulsets", "daemonsets")
      for verb in ("get", "patch")],
    # The inspections (controller.inspector through serving.cluster_facts): namespaces, and the namespace
    # policies by name across namespaces (fieldSelector=metadata.name=meshfit-policy).
    ("list", "", "namespaces", "", "", ""), ("list", "", "configmaps", "", "", "meshfit-policy"),
    # controller.runtime_sync: the labelled ConfigMaps of every namespace (labelSelector=meshfit.io/runtime), the
    # namespaces' policies (watched by name), created, updated under the resourceVersion read, deleted when unused;
    # the degradations' store in the policy's namespace, read and updated when a degradation expires.
    ("list", "", "configmaps", "", "", ""), ("watch", "", "configmaps", "", "", ""),
    ("create", "", "configmaps", "", "shop", ""), ("update", "", "configmaps", "", "shop", "meshfit-runtime-web"),
    ("delete", "", "configmaps", "", "shop", "meshfit-runtime-web"),
    *[(verb, "", "configmaps", "", NAMESPACE, "meshfit-degradations") for verb in ("get", "list", "watch", "update")],
    # controller.rollouts: the watch of every SidecarRollout, and their status (PUT under the resourceVersion
    # read); Events on them; the selected namespaces' pods and labels (covered above).
    ("list", "meshfit.io", "sidecarrollouts", "", "", ""), ("watch", "meshfit.io", "sidecarrollouts", "", "", ""),
    ("update", "meshfit.io", "sidecarrollouts", "status", "shop", "r1"),
    # The policy watch (fieldSelector=metadata.name=meshfit-policy) and the Lease.
    *[(verb, "", "configmaps", "", NAMESPACE, "meshfit-policy") for verb in ("get", "list", "watch")],
    ("create", "coordination.k8s.io", "leases", "", NAMESPACE, ""),
    ("get", "coordination.k8s.io", "leases", "", NAMESPACE, "meshfit-controller"),
    ("update", "coordination.k8s.io", "leases", "", NAMESPACE, "meshfit-controller"),
]
DENIED = [
    ("delete", "", "pods", "", "shop", "web-0"), ("create", "", "pods", "", "shop", ""),
    ("create", "", "pods", "binding", "shop", "web-0"), ("patch", "", "pods", "status", "shop", "web-0"),
    ("patch", "", "nodes", "", "", "node-1"), ("delete", "", "events", "", "shop", "web-0.1"),
    ("patch", "apps", "replicasets", "", "shop", "web-5d8f"), ("update", "apps", "deployments", "", "shop", "web"),
    ("delete", "apps", "deployments", "", "shop", "web"),
    ("get", "", "secrets", "", NAMESPACE, "meshfit-webhook-tls"), ("list", "", "secrets", "", "", ""),
    ("get", "", "configmaps", "", NAMESPACE, "meshfit-scheduler-config"),
    ("get", "", "configmaps", "", "shop", "meshfit-policy"), ("get", "", "configmaps", "", "shop", "app-config"),
    ("patch", "", "configmaps", "", "shop", "meshfit-runtime-web"),
    ("update", "coordination.k8s.io", "leases", "", NAMESPACE, "meshfit-extender"),
    ("create", "coordination.k8s.io", "leases", "", "shop", ""),
    ("delete", "coordination.k8s.io", "leases", "", NAMESPACE, "meshfit-controller"),
    # A rollout's spec is the user's: the controller writes only its status.
    ("update", "meshfit.io", "sidecarrollouts", "", "shop", "r1"), ("patch", "meshfit.io", "sidecarrollouts", "", "shop", "r1"),
    ("create", "meshfit.io", "sidecarrollouts", "", "shop", ""), ("delete", "meshfit.io", "sidecarrollouts", "", "shop", "r1"),
]


@pytest.fixture(scope="module")
def stored_rbac(local_cluster: Any) -> Iterator[Any]:
    """The controller's RBAC, stored (not dry-run) in the session's cluster; removed after."""
    local_cluster.create_namespace(NAMESPACE)
    docs = [obj for (kind, _), obj in objects().items() if kind.startswith(("Cluster", "Role"))]
    paths = []
    for doc in docs:
        kind_path = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
                     "RoleBinding": "rolebindings"}[doc["kind"]]
        ns = f"/namespaces/{doc['metadata']['namespace']}" if "namespace" in doc["metadata"] else ""
        path = f"/apis/rbac.authorization.k8s.io/v1{ns}/{kind_path}/{doc['metadata']['name']}"
        status, body = local_cluster.request("PATCH", f"{path}?fieldManager=meshfit-test&force=true", doc,
                                             content_type="application/apply-patch+yaml")
        assert status in (200, 201), body
        paths.append(path)
    try:
        yield local_cluster
    finally:
        for path in paths:
            local_cluster.request("DELETE", path)


def allowed(cluster: Any, verb: str, group: str, resource: str, subresource: str, namespace: str, name: str) -> bool:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": SERVICE_ACCOUNT,
                       "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}",
                                  "system:authenticated"],
                       "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                              "subresource": subresource, "namespace": namespace, "name": name}}}
    status, body = cluster.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    assert status == 201, body
    return bool(body["status"].get("allowed"))


@pytest.mark.e2e
def test_the_apiserver_allows_every_call_and_no_other(stored_rbac: Any) -> None:
    refused = [call for call in ALLOWED if not allowed(stored_rbac, *call)]
    assert refused == [], f"the shipped RBAC refuses calls the controller makes: {refused}"
    granted = [call for call in DENIED if allowed(stored_rbac, *call)]
    assert granted == [], f"the shipped RBAC grants more than the controller needs: {granted}"


# -- what RBAC cannot say: the ValidatingAdmissionPolicy on the controller's ConfigMap writes --------------------
@pytest.fixture(scope="module")
def as_controller(stored_rbac: Any) -> Iterator[Any]:
    """The admission policy stored, and a client that authenticates as the controller's ServiceAccount."""
    from controlplane.client import ApiClient

    cluster = stored_rbac
    found = objects()
    stored = []
    for kind, plural in (("ValidatingAdmissionPolicy", "validatingadmissionpolicies"),
                         ("ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings")):
        path = f"/apis/admissionregistration.k8s.io/v1/{plural}/meshfit-controller-configmaps"
        status, body = cluster.request("PATCH", f"{path}?fieldManager=meshfit-test&force=true",
                                       found[kind, "meshfit-controller-configmaps"],
                                       content_type="application/apply-patch+yaml")
        assert status in (200, 201), body
        stored.append(path)
    sa = found["ServiceAccount", "meshfit-controller"]
    status, body = cluster.request("PATCH", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/meshfit-controller"
                                            "?fieldManager=meshfit-test&force=true", sa,
                                   content_type="application/apply-patch+yaml")
    assert status in (200, 201), body
    status, body = cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/meshfit-controller/token",
                                   {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                    "spec": {"expirationSeconds": 600}})
    assert status == 201, body
    client = ApiClient(cluster.api_url, body["status"]["token"], cluster.ca_path)
    namespace = f"vap-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(namespace)
    for name, labels in (("app-config", {}), ("meshfit-runtime-old", {"meshfit.io/runtime": "v1"})):
        status, body = cluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"a": "1"}})
        assert status == 201, body
    for name in ("meshfit-policy", "meshfit-degradations"):
        cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
    # The policy takes effect asynchronously: wait until it refuses what it must.
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}}
    cluster.wait_for(lambda: client.request("POST", f"/api/v1/namespaces/{namespace}/configmaps?dryRun=All",
                                            probe)[0] == 403, 30, what="the admission policy in force")
    try:
        yield client, namespace
    finally:
        for path in stored:
            cluster.request("DELETE", path)


def _write(client: Any, method: str, path: str, body: Any = None) -> int:
    status, _ = client.request(method, path, body)
    return int(status)


def _cm(name: str, labels: dict[str, str], rv: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if rv:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "2"}}


@pytest.mark.e2e
def test_the_controller_may_write_its_runtime_configmaps_and_the_store_and_no_other(
        as_controller: Any, stored_rbac: Any) -> None:
    client, ns = as_controller
    runtime = {"meshfit.io/runtime": "v1"}
    base = f"/api/v1/namespaces/{ns}/configmaps"
    assert _write(client, "POST", base, _cm("meshfit-runtime-web", runtime)) == 201
    status, cm = stored_rbac.request("GET", f"{base}/meshfit-runtime-web")
    assert _write(client, "PUT", f"{base}/meshfit-runtime-web",
                  _cm("meshfit-runtime-web", runtime, cm["metadata"]["resourceVersion"])) == 200
    assert _write(client, "DELETE", f"{base}/meshfit-runtime-web") == 200
    # Another application's ConfigMap: not created, not taken over by labelling it, not deleted.
    assert _write(client, "POST", base, _cm("app-other", {})) == 403
    status, app = stored_rbac.request("GET", f"{base}/app-config")
    assert _write(client, "PUT", f"{base}/app-config", _cm("app-config", runtime, app["metadata"]["resourceVersion"])) == 403
    assert _write(client, "DELETE", f"{base}/app-config") == 403
    # A runtime ConfigMap cannot be turned into something else by dropping the label.
    status, old = stored_rbac.request("GET", f"{base}/meshfit-runtime-old")
    assert _write(client, "PUT", f"{base}/meshfit-runtime-old",
                  _cm("meshfit-runtime-old", {}, old["metadata"]["resourceVersion"])) == 403
    # In meshfit-system: the store may be updated, the global policy may not.
    system = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    status, store = stored_rbac.request("GET", f"{system}/meshfit-degradations")
    assert _write(client, "PUT", f"{system}/meshfit-degradations",
                  _cm("meshfit-degradations", {}, store["metadata"]["resourceVersion"])) == 200
    status, policy = stored_rbac.request("GET", f"{system}/meshfit-policy")
    assert _write(client, "PUT", f"{system}/meshfit-policy",
                  _cm("meshfit-policy", {}, policy["metadata"]["resourceVersion"])) == 403
