"""The fake kubelet answers through the real apiserver as a kubelet would.

The fleet controller will judge its operations by what the kubelet reports:
the new image and imageID of a restarted sidecar, its restartCount, readiness,
a crash loop, a resize's conditions and resources. If these stages drifted from
what a kubelet says, the controller's end-to-end tests would pass against a
kubelet that does not exist. Every assertion reads the pod back from
kube-apiserver, and every wait has a deadline.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controlplane import kwok
from controlplane.client import JSON
from controlplane.cluster import LocalCluster

pytestmark = pytest.mark.e2e

SMP = "application/strategic-merge-patch+json"
MESH_1 = "registry.invalid/mesh/rpc-mesh:1.8.0"
MESH_2 = "registry.invalid/mesh/rpc-mesh:1.8.1"
APP_1 = "registry.invalid/shop/app:3"
WAIT = 30.0


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _pod(
    name: str, node: str, *, qos: str = "burstable", mesh_image: str = MESH_1, pod_level: bool = False
) -> JSON:
    """A regular init container, a native sidecar and an app, pinned to ``node``.

    ``pod_level`` adds pod-level resources (1 CPU and 1Gi requested, 2 CPU and
    1Gi limit), as the webhook's pod-level variant writes them.
    """
    if qos == "guaranteed":
        mesh = {"requests": {"cpu": "200m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
        app = {"requests": {"cpu": "1", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
        init = {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}
    else:
        mesh = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
        app = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
        init = {"requests": {"cpu": "100m", "memory": "32Mi"}}
    pod: JSON = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "shop"}},
        "spec": {
            # Through the scheduler, onto this test's node only.
            "nodeSelector": {"kubernetes.io/hostname": node},
            "terminationGracePeriodSeconds": 0,
            "initContainers": [
                {"name": "migrate", "image": "registry.invalid/shop/migrate:3", "resources": init},
                {
                    "name": "rpc-mesh",
                    "image": mesh_image,
                    "restartPolicy": "Always",
                    "resources": mesh,
                },
            ],
            "containers": [{"name": "app", "image": APP_1, "resources": app}],
        },
    }
    if pod_level:
        pod["spec"]["resources"] = {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "1Gi"},
        }
    return pod


def _path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/pods"
    return f"{base}/{name}" if name else base


def _get(cluster: LocalCluster, namespace: str, name: str) -> JSON:
    status, pod = cluster.request("GET", _path(namespace, name))
    assert status == 200, pod
    return pod


def _status(pod: JSON, container: str) -> JSON:
    for s in pod["status"].get("initContainerStatuses", []) + pod["status"].get(
        "containerStatuses", []
    ):
        if s["name"] == container:
            return s
    raise AssertionError(f"no status for container {container!r}: {pod['status']}")


def _condition(pod: JSON, ctype: str) -> JSON | None:
    for c in pod["status"].get("conditions", []):
        if c["type"] == ctype:
            return c
    return None


def _ready(pod: JSON) -> bool:
    c = _condition(pod, "Ready")
    return c is not None and c["status"] == "True"


def _wait_pod(
    cluster: LocalCluster, namespace: str, name: str, predicate: Callable[[JSON], bool], what: str
) -> JSON:
    def check() -> JSON | None:
        pod = _get(cluster, namespace, name)
        return pod if predicate(pod) else None

    result: JSON = cluster.wait_for(check, WAIT, what=f"pod {namespace}/{name}: {what}")
    return result


def _running_pod(cluster: LocalCluster, namespace: str, node: str, **kw: Any) -> JSON:
    name = _name("pod")
    status, body = cluster.request("POST", _path(namespace), _pod(name, node, **kw))
    assert status == 201, body
    return _wait_pod(cluster, namespace, name, _ready, "Ready")


def _set_image(cluster: LocalCluster, namespace: str, name: str, images: dict[str, str]) -> JSON:
    """Change images in place with a pod update (a strategic merge patch of spec)."""
    patch: JSON = {"spec": {}}
    for container, image in images.items():
        key = "containers" if container == "app" else "initContainers"
        patch["spec"].setdefault(key, []).append({"name": container, "image": image})
    status, pod = cluster.request("PATCH", _path(namespace, name), patch, content_type=SMP)
    assert status == 200, pod
    return pod


def _resize(cluster: LocalCluster, namespace: str, name: str, container: str, resources: JSON) -> tuple[int, JSON]:
    key = "containers" if container == "app" else "initContainers"
    patch = {"spec": {key: [{"name": container, "resources": resources}]}}
    return cluster.request("PATCH", _path(namespace, name) + "/resize", patch, content_type=SMP)


@pytest.fixture
def fake_node(kwok_cluster: LocalCluster) -> str:
    name = _name("kwok")
    kwok_cluster.create_fake_node(name, cpu="4", memory="8Gi", kubelet_version="v1.36.3")
    return name


# ------------------------------------------------------------------ nodes


def test_fake_nodes_carry_the_kubelet_version_and_capacity_asked_for(kwok_cluster: LocalCluster) -> None:
    new, old = _name("kwok"), _name("kwok-old")
    kwok_cluster.create_fake_node(new, cpu="4", memory="8Gi", kubelet_version="v1.36.3")
    kwok_cluster.create_fake_node(old, cpu="2", memory="4Gi", kubelet_version="v1.31.0")
    for name, version, cpu, memory in ((new, "v1.36.3", "4", "8Gi"), (old, "v1.31.0", "2", "4Gi")):
        status, node = kwok_cluster.request("GET", f"/api/v1/nodes/{name}")
        assert status == 200, node
        assert node["metadata"]["labels"][kwok.NODE_LABEL] == kwok.NODE_LABEL_VALUE
        assert node["status"]["nodeInfo"]["kubeletVersion"] == version
        assert node["status"]["allocatable"]["cpu"] == cpu
        assert node["status"]["allocatable"]["memory"] == memory
        assert node["status"]["capacity"] == node["status"]["allocatable"]
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
        assert not node["spec"].get("taints")
    assert set(kwok_cluster.fake_nodes) >= {new, old}
    # A 1.36 kubelet declares the features kube-apiserver checks before some
    # pod updates; an older one declares none (the field came with 1.36).
    new_node = kwok_cluster.request("GET", f"/api/v1/nodes/{new}")[1]
    assert "InPlacePodLevelResourcesVerticalScaling" in new_node["status"]["declaredFeatures"]
    assert "InPlacePodVerticalScalingInitContainers" in new_node["status"]["declaredFeatures"]
    old_node = kwok_cluster.request("GET", f"/api/v1/nodes/{old}")[1]
    assert not old_node["status"].get("declaredFeatures")


# ------------------------------------------------------------------- pods


def test_a_pod_on_a_fake_node_runs_and_becomes_ready(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    pod = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    st = pod["status"]
    assert pod["spec"]["nodeName"] == fake_node  # bound by the real scheduler
    assert st["phase"] == "Running"
    node = kwok_cluster.request("GET", f"/api/v1/nodes/{fake_node}")[1]
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(node["spec"]["podCIDR"])
    internal = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    assert st["hostIP"] == internal[0]
    for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        cond = _condition(pod, ctype)
        assert cond is not None and cond["status"] == "True", (ctype, st["conditions"])

    migrate = _status(pod, "migrate")
    assert migrate["state"]["terminated"]["reason"] == "Completed"
    assert migrate["state"]["terminated"]["exitCode"] == 0
    for name, image in (("rpc-mesh", MESH_1), ("app", APP_1)):
        s = _status(pod, name)
        assert s["image"] == image
        assert s["imageID"].endswith(tuple("0123456789abcdef")) and "@sha256:" in s["imageID"]
        assert s["containerID"].startswith("containerd://")
        assert s["started"] is True and s["ready"] is True
        assert "running" in s["state"]
        assert s["restartCount"] == 0
    # The kubelet reports what it allocated; without `resources` in the status,
    # kube-apiserver would refuse every resize of this pod.
    mesh = _status(pod, "rpc-mesh")
    assert mesh["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "64Mi"},
    }
    assert mesh["allocatedResources"] == {"cpu": "100m", "memory": "64Mi"}


def test_pod_ips_stay_unique_on_a_node_when_more_fake_nodes_are_added(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    """Adding a fake node restarts the kwok controller; addresses in use stay in use."""
    first = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    kwok_cluster.create_fake_node(_name("kwok"), cpu="1", memory="1Gi")
    second = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    assert second["status"]["podIP"] != first["status"]["podIP"]
    assert _get(kwok_cluster, e2e_namespace, first["metadata"]["name"])["status"]["podIP"] == first["status"]["podIP"]


def test_changing_a_native_sidecars_image_restarts_only_that_sidecar(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    before = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = before["metadata"]["name"]
    mesh0, app0 = _status(before, "rpc-mesh"), _status(before, "app")

    # kube-apiserver 1.36 allows this update: initContainers[].image is mutable
    # for every init container, native sidecars included.
    updated = _set_image(kwok_cluster, e2e_namespace, name, {"rpc-mesh": MESH_2})
    assert updated["metadata"]["generation"] == before["metadata"]["generation"] + 1

    after = _wait_pod(
        kwok_cluster,
        e2e_namespace,
        name,
        lambda p: _status(p, "rpc-mesh")["image"] == MESH_2 and _ready(p),
        "the sidecar on the new image and the pod Ready again",
    )
    mesh1, app1 = _status(after, "rpc-mesh"), _status(after, "app")
    assert mesh1["restartCount"] == mesh0["restartCount"] + 1
    assert mesh1["imageID"] != mesh0["imageID"]
    assert mesh1["containerID"] != mesh0["containerID"]
    assert mesh1["ready"] is True and "running" in mesh1["state"]
    assert mesh1["lastState"]["terminated"]["containerID"] == mesh0["containerID"]
    # Nothing else moved: the app, the completed init container, the pod itself.
    assert app1 == app0
    assert _status(after, "migrate") == _status(before, "migrate")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["podIP"] == before["status"]["podIP"]
    assert after["status"]["observedGeneration"] == updated["metadata"]["generation"]


@pytest.mark.parametrize(
    ("change", "forbidden"),
    [
        ({"env": [{"name": "MESH_MODE", "value": "hot"}]}, "pod updates may not change fields other than"),
        ({"restartPolicy": None}, "pod updates may not change fields other than"),
        ({"resources": {"requests": {"cpu": "150m"}}}, "pod updates may not change fields other than"),
    ],
    ids=["env", "restartPolicy", "resources-by-update"],
)
def test_the_apiserver_lets_only_a_native_sidecars_image_change_in_place(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str, change: JSON, forbidden: str
) -> None:
    """What the controller may do in place: the image by update, resources by pods/resize."""
    pod = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    patch = {"spec": {"initContainers": [{"name": "rpc-mesh", **change}]}}
    status, body = kwok_cluster.request(
        "PATCH", _path(e2e_namespace, pod["metadata"]["name"]), patch, content_type=SMP
    )
    assert status == 422, body
    assert forbidden in body["message"]
    added = {"spec": {"initContainers": [{"name": "msg-mesh", "image": MESH_1, "restartPolicy": "Always"}]}}
    status, body = kwok_cluster.request(
        "PATCH", _path(e2e_namespace, pod["metadata"]["name"]), added, content_type=SMP
    )
    assert status == 422, body
    assert "may not add or remove containers" in body["message"]


def test_a_sidecar_restarted_for_a_new_image_is_not_ready_until_the_delay_passes(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    before = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = before["metadata"]["name"]
    updated = _set_image(kwok_cluster, e2e_namespace, name, {"rpc-mesh": MESH_2})
    seen: list[tuple[bool, str]] = []
    for event in kwok_cluster.client.watch(
        _path(e2e_namespace) + f"?fieldSelector=metadata.name%3D{name}",
        resource_version=updated["metadata"]["resourceVersion"],
        timeout=WAIT,
    ):
        pod = event["object"]
        mesh = _status(pod, "rpc-mesh")
        if mesh["image"] == MESH_2:
            seen.append((mesh["ready"], _condition(pod, "Ready")["status"]))  # type: ignore[index]
            if mesh["ready"]:
                break
    assert seen and seen[0] == (False, "False"), seen
    assert seen[-1] == (True, "True"), seen


def test_a_bad_image_crash_loops_and_rolling_back_recovers(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    before = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = before["metadata"]["name"]
    bad = f"registry.invalid/mesh/rpc-mesh:{kwok.BAD_IMAGE_MARKER}"
    _set_image(kwok_cluster, e2e_namespace, name, {"rpc-mesh": bad})

    looping = _wait_pod(
        kwok_cluster,
        e2e_namespace,
        name,
        lambda p: _status(p, "rpc-mesh")["image"] == bad and _status(p, "rpc-mesh")["restartCount"] >= 3,
        "the bad sidecar restarted at least three times",
    )
    mesh = _status(looping, "rpc-mesh")
    assert mesh["ready"] is False and mesh["started"] is False
    assert mesh["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert mesh["lastState"]["terminated"]["exitCode"] == 1
    assert mesh["lastState"]["terminated"]["reason"] == "Error"
    ready = _condition(looping, "Ready")
    assert ready is not None and ready["status"] == "False"
    assert "rpc-mesh" in ready["message"]
    assert _status(looping, "app")["restartCount"] == 0

    # Rollback: the previous image, and the sidecar is up again.
    _set_image(kwok_cluster, e2e_namespace, name, {"rpc-mesh": MESH_1})
    back = _wait_pod(
        kwok_cluster,
        e2e_namespace,
        name,
        lambda p: _status(p, "rpc-mesh")["image"] == MESH_1 and _ready(p),
        "the rolled-back sidecar Ready",
    )
    assert _status(back, "rpc-mesh")["restartCount"] > mesh["restartCount"]
    assert _status(back, "app")["restartCount"] == 0


def test_a_bad_image_at_creation_crash_loops_from_the_start(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    name = _name("pod")
    bad = f"registry.invalid/{kwok.BAD_IMAGE_MARKER}/rpc-mesh:1.8.0"
    status, body = kwok_cluster.request(
        "POST", _path(e2e_namespace), _pod(name, fake_node, mesh_image=bad)
    )
    assert status == 201, body
    pod = _wait_pod(
        kwok_cluster,
        e2e_namespace,
        name,
        lambda p: bool(p["status"].get("initContainerStatuses"))
        and _status(p, "rpc-mesh")["restartCount"] >= 2,
        "the bad sidecar restarting",
    )
    assert _status(pod, "rpc-mesh")["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert not _ready(pod)


def test_an_old_kubelet_ignores_a_sidecar_image_change_but_restarts_the_app(
    kwok_cluster: LocalCluster, e2e_namespace: str
) -> None:
    node = _name("kwok-old")
    kwok_cluster.create_fake_node(node, cpu="4", memory="8Gi", kubelet_version="v1.31.0")
    before = _running_pod(kwok_cluster, e2e_namespace, node)
    name = before["metadata"]["name"]
    app_2 = "registry.invalid/shop/app:4"
    # One update changes both; the app's restart proves the kubelet acted on it.
    _set_image(kwok_cluster, e2e_namespace, name, {"rpc-mesh": MESH_2, "app": app_2})
    after = _wait_pod(
        kwok_cluster,
        e2e_namespace,
        name,
        lambda p: _status(p, "app")["image"] == app_2 and _ready(p),
        "the app on its new image",
    )
    assert _status(after, "app")["restartCount"] == 1
    mesh = _status(after, "rpc-mesh")
    assert mesh["image"] == MESH_1, "a pre-1.32 kubelet does not restart a sidecar for its image"
    assert mesh == _status(before, "rpc-mesh")


# ----------------------------------------------------------------- resize


def test_a_feasible_resize_of_a_sidecar_is_reported_in_status(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    before = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = before["metadata"]["name"]
    new = {"requests": {"cpu": "150m", "memory": "96Mi"}, "limits": {"cpu": "300m", "memory": "96Mi"}}
    status, resized = _resize(kwok_cluster, e2e_namespace, name, "rpc-mesh", new)
    assert status == 200, resized
    generation = resized["metadata"]["generation"]

    in_progress: list[JSON] = []
    done: JSON | None = None
    for event in kwok_cluster.client.watch(
        _path(e2e_namespace) + f"?fieldSelector=metadata.name%3D{name}",
        resource_version=resized["metadata"]["resourceVersion"],
        timeout=WAIT,
    ):
        pod = event["object"]
        cond = _condition(pod, "PodResizeInProgress")
        if cond is not None:
            in_progress.append(cond)
        if _status(pod, "rpc-mesh").get("resources") == new and cond is None:
            done = pod
            break
    assert done is not None, "the resize never reached the sidecar's status"
    assert in_progress and in_progress[0]["status"] == "True"
    assert in_progress[0]["observedGeneration"] == generation
    mesh = _status(done, "rpc-mesh")
    assert mesh["allocatedResources"] == new["requests"]
    assert mesh["restartCount"] == 0  # a resize is not a restart
    assert _condition(done, "PodResizePending") is None
    assert _status(done, "app") == _status(before, "app")
    assert done["status"]["qosClass"] == before["status"]["qosClass"]


def test_a_resize_of_pod_level_resources_is_reported_in_the_pods_status(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    """1.36: InPlacePodLevelResourcesVerticalScaling is beta and on; the node declares it."""
    before = _running_pod(kwok_cluster, e2e_namespace, fake_node, pod_level=True)
    assert before["status"]["resources"] == before["spec"]["resources"]
    name = before["metadata"]["name"]
    new = {"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
    patch = {"spec": {"resources": new}}
    status, resized = kwok_cluster.request(
        "PATCH", _path(e2e_namespace, name) + "/resize", patch, content_type=SMP
    )
    assert status == 200, resized
    after = _wait_pod(
        kwok_cluster, e2e_namespace, name,
        lambda p: p["status"].get("resources") == new
        and _condition(p, "PodResizeInProgress") is None,
        "the pod-level resize in status",
    )
    assert after["status"]["allocatedResources"] == new["requests"]
    assert _status(after, "app") == _status(before, "app")


def test_a_pod_level_resize_on_a_node_that_does_not_declare_it_is_refused(
    kwok_cluster: LocalCluster, e2e_namespace: str
) -> None:
    node = _name("kwok-135")
    kwok_cluster.create_fake_node(node, cpu="4", memory="8Gi", kubelet_version="v1.35.2")
    pod = _running_pod(kwok_cluster, e2e_namespace, node, pod_level=True)
    patch = {"spec": {"resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}}
    status, body = kwok_cluster.request(
        "PATCH", _path(e2e_namespace, pod["metadata"]["name"]) + "/resize", patch, content_type=SMP
    )
    assert status == 403, body
    assert "requires features InPlacePodLevelResourcesVerticalScaling" in body["message"]
    assert "not available on node" in body["message"]


def test_the_resize_subresource_changes_resources_only(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    """An image sent to pods/resize is dropped without a word: images go through a pod update."""
    pod = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = pod["metadata"]["name"]
    patch = {"spec": {"initContainers": [{"name": "rpc-mesh", "image": MESH_2}]}}
    status, body = kwok_cluster.request(
        "PATCH", _path(e2e_namespace, name) + "/resize", patch, content_type=SMP
    )
    assert status == 200, body
    assert body["spec"]["initContainers"][1]["image"] == MESH_1
    assert body["metadata"]["generation"] == pod["metadata"]["generation"]


def test_a_resize_beyond_the_nodes_allocatable_is_refused_by_the_apiserver(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    """1.36's PodResizeValidator admission checks allocatable before any kubelet sees it."""
    before = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = before["metadata"]["name"]
    status, body = _resize(
        kwok_cluster, e2e_namespace, name, "app",
        {"requests": {"cpu": "8", "memory": "512Mi"}, "limits": {"cpu": "8", "memory": "512Mi"}},
    )
    assert status == 403, body
    assert "node didn't have enough allocatable resources: cpu" in body["message"]
    assert {"reason": "NodeCapacity"} in body["details"]["causes"]
    after = _get(kwok_cluster, e2e_namespace, name)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_a_resize_the_kubelet_cannot_do_gets_pod_resize_pending_infeasible(
    kwok_cluster: LocalCluster, e2e_namespace: str
) -> None:
    """A Guaranteed pod's CPU on a node with the static CPU manager policy."""
    node = _name("kwok-static")
    kwok_cluster.create_fake_node(node, cpu="4", memory="8Gi", cpu_manager_policy="static")
    before = _running_pod(kwok_cluster, e2e_namespace, node, qos="guaranteed")
    assert before["status"]["qosClass"] == "Guaranteed"
    name = before["metadata"]["name"]
    new = {"requests": {"cpu": "300m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
    status, resized = _resize(kwok_cluster, e2e_namespace, name, "rpc-mesh", new)
    assert status == 200, resized

    pod = _wait_pod(
        kwok_cluster,
        e2e_namespace,
        name,
        lambda p: (_condition(p, "PodResizePending") or {}).get("observedGeneration")
        == resized["metadata"]["generation"],
        "PodResizePending for the resize's generation",
    )
    pending = _condition(pod, "PodResizePending")
    assert pending is not None
    assert pending["status"] == "True" and pending["reason"] == "Infeasible"
    assert "CPU Manager policy" in pending["message"]
    mesh = _status(pod, "rpc-mesh")
    assert mesh["resources"] == _status(before, "rpc-mesh")["resources"]
    assert mesh["allocatedResources"] == _status(before, "rpc-mesh")["allocatedResources"]
    assert _condition(pod, "PodResizeInProgress") is None
    assert _ready(pod)  # an infeasible resize leaves the running pod alone

    # Asking for the old size again withdraws the resize: the condition goes.
    status, body = _resize(kwok_cluster, e2e_namespace, name, "rpc-mesh", _status(before, "rpc-mesh")["resources"])
    assert status == 200, body
    _wait_pod(
        kwok_cluster, e2e_namespace, name,
        lambda p: _condition(p, "PodResizePending") is None, "PodResizePending cleared",
    )


def test_an_old_kubelet_node_gets_no_resize(
    kwok_cluster: LocalCluster, e2e_namespace: str
) -> None:
    """A kubelet that does not report resources: kube-apiserver refuses the resize itself."""
    node = _name("kwok-old")
    kwok_cluster.create_fake_node(node, cpu="4", memory="8Gi", kubelet_version="v1.31.0")
    pod = _running_pod(kwok_cluster, e2e_namespace, node)
    assert "resources" not in _status(pod, "app")
    status, body = _resize(
        kwok_cluster, e2e_namespace, pod["metadata"]["name"], "app",
        {"requests": {"cpu": "600m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
    )
    assert status == 422, body
    assert "Pod running on node without support for resize" in body["message"]


# ----------------------------------------------------------------- delete


def test_deleting_a_pod_on_a_fake_node_completes(
    kwok_cluster: LocalCluster, e2e_namespace: str, fake_node: str
) -> None:
    pod = _running_pod(kwok_cluster, e2e_namespace, fake_node)
    name = pod["metadata"]["name"]
    # A grace period, as a client would ask; the fake kubelet confirms the stop.
    status, body = kwok_cluster.request(
        "DELETE", _path(e2e_namespace, name), {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 30}
    )
    assert status == 200, body
    assert body["metadata"].get("deletionTimestamp")
    kwok_cluster.wait_for(
        lambda: kwok_cluster.request("GET", _path(e2e_namespace, name))[0] == 404,
        WAIT,
        what=f"pod {e2e_namespace}/{name} gone",
    )


def test_without_the_apiservers_check_the_kubelet_calls_a_resize_beyond_allocatable_infeasible(
    controlplane_bindir: Path, kwok_bindir: Path
) -> None:
    """The kubelet's own answer, for clusters that run without PodResizeValidator.

    A cluster of its own: the session cluster keeps the admission chain of a
    default 1.36 apiserver.
    """
    with LocalCluster(
        bindir=controlplane_bindir,
        kwok=True,
        kwok_bindir=kwok_bindir,
        extra_args={"kube-apiserver": ["--disable-admission-plugins=PodResizeValidator"]},
    ) as cluster:
        cluster.create_fake_node("small", cpu="2", memory="4Gi")
        cluster.create_namespace("shop")
        before = _running_pod(cluster, "shop", "small")
        name = before["metadata"]["name"]
        status, resized = _resize(
            cluster, "shop", name, "app",
            {"requests": {"cpu": "500m", "memory": "6Gi"}, "limits": {"cpu": "1", "memory": "6Gi"}},
        )
        assert status == 200, resized
        pod = _wait_pod(
            cluster, "shop", name,
            lambda p: (_condition(p, "PodResizePending") or {}).get("observedGeneration")
            == resized["metadata"]["generation"],
            "PodResizePending for the resize's generation",
        )
        pending = _condition(pod, "PodResizePending")
        assert pending is not None and pending["reason"] == "Infeasible"
        assert pending["message"] == "Node didn't have enough capacity: memory, capacity: 4294967296"
        assert _status(pod, "app")["resources"] == _status(before, "app")["resources"]
