"""The kubelet's answers as the controller reads them: container states, images, digests, kubelet versions."""

from __future__ import annotations

import pytest

from controller.containers import (
    alternate_reference,
    container_state,
    digest_of,
    kubelet_at_least,
    reports_image,
    same_image,
    spec_container,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4


def pod_with(status: dict) -> dict:
    return {"spec": {"initContainers": [{"name": "mesh", "image": "m:1", "restartPolicy": "Always"},
                                        {"name": "migrate", "image": "x:1"}],
                     "containers": [{"name": "app", "image": "a:1"}]},
            "status": {"initContainerStatuses": [status], "containerStatuses": [
                {"name": "app", "image": "a:1", "imageID": "a@" + DIGEST, "restartCount": 2, "ready": True,
                 "state": {"running": {}}}]}}


def test_a_status_is_read_field_by_field() -> None:
    pod = pod_with({"name": "mesh", "image": "m:1", "imageID": "m@" + DIGEST, "restartCount": 3, "ready": True,
                    "state": {"running": {}}, "resources": {"limits": {"cpu": "1"}}})
    state = container_state(pod, "mesh")
    assert state is not None
    assert (state.name, state.image, state.image_id, state.restarts, state.ready, state.running,
            state.waiting_reason, state.resources) == ("mesh", "m:1", "m@" + DIGEST, 3, True, True, "",
                                                       {"limits": {"cpu": "1"}})
    assert not state.crash_looping
    app = container_state(pod, "app")
    assert app is not None and (app.name, app.restarts) == ("app", 2)
    assert container_state(pod, "nope") is None


def test_missing_and_malformed_fields_read_as_nothing() -> None:
    pod = pod_with({"name": "mesh", "restartCount": True, "ready": "yes", "state": {"waiting": "odd"},
                    "resources": ["x"]})
    state = container_state(pod, "mesh")
    assert state is not None
    assert (state.image, state.image_id, state.restarts, state.ready, state.running, state.waiting_reason,
            state.resources) == ("", "", 0, False, False, "", None)
    assert container_state({"status": {"initContainerStatuses": [{"name": "mesh", "restartCount": "4"}]}},
                           "mesh").restarts == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("reason", "looping"), [
    ("CrashLoopBackOff", True), ("ErrImagePull", True), ("ImagePullBackOff", True), ("InvalidImageName", True),
    ("ContainerCreating", False), ("PodInitializing", False), ("", False)])
def test_what_counts_as_a_crash_loop(reason: str, looping: bool) -> None:
    state = container_state(pod_with({"name": "mesh", "state": {"waiting": {"reason": reason}}}), "mesh")
    assert state is not None and state.waiting_reason == reason and state.crash_looping is looping


def test_spec_containers_are_found_with_their_place() -> None:
    pod = pod_with({"name": "mesh"})
    mesh, migrate, app = (spec_container(pod, n) for n in ("mesh", "migrate", "app"))
    assert mesh is not None and (mesh.field, mesh.index, mesh.native_sidecar, mesh.image) == (
        "initContainers", 0, True, "m:1")
    assert migrate is not None and (migrate.index, migrate.native_sidecar) == (1, False)
    assert app is not None and (app.field, app.index, app.native_sidecar) == ("containers", 0, False)
    assert spec_container(pod, "nope") is None


@pytest.mark.parametrize(("a", "b", "same"), [
    ("nginx:1", "docker.io/library/nginx:1", True), ("nginx:1", "nginx:2", False),
    ("reg.example.com/m:1", "reg.example.com/m:1", True)])
def test_same_image(a: str, b: str, same: bool) -> None:
    assert same_image(a, b) is same


def _state(image: str) -> object:
    return container_state(pod_with({"name": "mesh", "image": image}), "mesh")


@pytest.mark.parametrize(("reported", "spec", "runs"), [
    ("reg/m:1", "reg/m:1", True),
    ("reg/m:1", "reg/m:1@" + DIGEST, True),     # a digest-pinned spec: the kubelet reports the tag
    ("reg/m:1@" + DIGEST, "reg/m:1@" + DIGEST, True),
    ("reg/m:2", "reg/m:1@" + DIGEST, False),
    ("reg/m:2", "reg/m:1", False),
    ("reg/m:1", "reg/m:2", False),
])
def test_reports_image(reported: str, spec: str, runs: bool) -> None:
    assert reports_image(_state(reported), spec) is runs  # type: ignore[arg-type]


@pytest.mark.parametrize(("kubelet", "minimum", "verdict"), [
    ("v1.32.0", (1, 32), True), ("v1.31.99", (1, 32), False), ("1.33", (1, 32), True), ("v2.0.0", (1, 32), True),
    ("v1.32.0-eks-1", (1, 32), True), ("", (1, 32), None), (None, (1, 32), None), ("latest", (1, 32), None),
    ("v1.9.0", (1, 10), False), ("v1.10.0", (1, 10), True)])
def test_kubelet_at_least(kubelet: str | None, minimum: tuple[int, int], verdict: bool | None) -> None:
    assert kubelet_at_least(kubelet, minimum) is verdict


@pytest.mark.parametrize(("image_id", "digest"), [
    ("docker-pullable://reg/m@" + DIGEST, DIGEST),
    ("reg/m@" + DIGEST, DIGEST),
    ("reg@x/m@" + DIGEST, DIGEST),          # the last @ is the digest's
    ("reg/m@sha256:abc", None),             # not 64 hex digits
    ("reg/m@" + DIGEST + "0", None),
    ("reg/m@" + DIGEST.upper(), None),
    ("sha256:" + "a" * 64, None),           # no @: a bare image id, not a reference
    ("", None)])
def test_digest_of(image_id: str, digest: str | None) -> None:
    assert digest_of(image_id) == digest


@pytest.mark.parametrize(("image", "image_id", "other"), [
    ("reg.example.com:5000/mesh/mosn:1.8.0", "x@" + DIGEST, f"reg.example.com:5000/mesh/mosn:1.8.0@{DIGEST}"),
    (f"reg.example.com:5000/mesh/mosn:1.8.0@{DIGEST}", "", "reg.example.com:5000/mesh/mosn:1.8.0"),
    (f"reg.example.com:5000/mesh/mosn@{DIGEST}", "", None),   # pinned by digest alone: no tag to go back to
    ("reg/m:1", "no-digest", None),
    (f"reg/m:1@{DIGEST}@junk", "", "reg/m:1"),
])
def test_alternate_reference(image: str, image_id: str, other: str | None) -> None:
    assert alternate_reference(image, image_id) == other


def test_an_image_pinned_by_digest_alone_without_a_registry_has_no_other_form() -> None:
    # ``mosn@sha256:...`` has neither a tag nor a registry: there is nothing to go back to.
    assert alternate_reference("mosn@" + DIGEST, "mosn@" + DIGEST) is None
    assert alternate_reference("mosn:1@" + DIGEST, "mosn@" + DIGEST) == "mosn:1"
