"""The policy reader's sidecar and resources sections: each field's exact error, and each default.

A policy is edited by hand; the message a mistake gets (its path and text) is what
the operator reads in ``kubectl describe`` or the webhook's refusal, so it is pinned
exactly here, one bad or missing field per case. Fields left out take the defaults
docs/policy.md documents; every accepted value of a choice is read as written.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest

from policy.fields import PolicyError
from policy.load import parse_policy
from policy.model import Policy, SidecarSpec
from policy.quantity import Quantity

_BASE: dict[str, Any] = {
    "apiVersion": "meshfit.io/v1alpha1",
    "kind": "MeshPolicy",
    "sidecars": [{"name": "mesh", "image": "reg.example/mesh"}],
    "versions": {"sidecars": {"mesh": {"baseline": "1.0"}}},
}


def _doc(sidecar: dict[str, Any] | None = None, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    """The smallest valid policy, with ``sidecar`` merged into its one sidecar and ``resources`` set."""
    doc = copy.deepcopy(_BASE)
    doc["sidecars"][0].update(sidecar or {})
    if resources is not None:
        doc["resources"] = resources
    return doc


def _errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(PolicyError) as info:
        parse_policy(doc)
    return [(e.path, e.message) for e in info.value.errors]


def _sidecar(**fields: Any) -> SidecarSpec:
    return parse_policy(_doc(fields)).sidecars[0]


def _resources(**fields: Any) -> Policy:
    return parse_policy(_doc(resources=fields))


# -- sidecar: one bad or missing field, its exact errors ------------------------
@pytest.mark.parametrize(("sidecar", "expected"), [
    pytest.param({"name": "Mesh_1"}, [
        ("sidecars[0].name", "must be a DNS label (lowercase letters, digits, '-'), got 'Mesh_1'"),
        # the versions section names "mesh", which is no longer a sidecar
        ("versions.sidecars.mesh", "names no sidecar (known: Mesh_1)"),
        ("versions.sidecars.Mesh_1", "is required: every sidecar needs a baseline version"),
    ], id="name-not-a-dns-label"),
    pytest.param({"image": None}, [("sidecars[0].image", "is required")], id="image-missing"),
    pytest.param({"image": ""}, [("sidecars[0].image", "is required")], id="image-empty"),
    pytest.param({"image": "reg.example/mesh:1.0"}, [
        ("sidecars[0].image", "is the repository only; versions choose the tag, got 'reg.example/mesh:1.0'"),
    ], id="image-with-tag"),
    # a digest without any ':' is still refused, for its '@'
    pytest.param({"image": "reg.example/mesh@abc"}, [
        ("sidecars[0].image", "is the repository only; versions choose the tag, got 'reg.example/mesh@abc'"),
    ], id="image-with-digest"),
    pytest.param({"cpuRequestFloor": "0"}, [
        ("sidecars[0].cpuRequestFloor", "must be positive, got '0'"),
    ], id="floor-zero"),
    pytest.param({"ports": [{"name": "grpc"}]}, [
        ("sidecars[0].ports[0].containerPort", "is required and must be an integer"),
    ], id="port-without-number"),
    pytest.param({"ports": [{"containerPort": 15001}, {"containerPort": "15002"}]}, [
        ("sidecars[0].ports[1].containerPort", "is required and must be an integer"),
    ], id="port-number-as-text"),
    pytest.param({"env": [{"value": "1"}]}, [("sidecars[0].env[0].name", "is required")], id="env-without-name"),
    pytest.param({"env": [{"name": ""}]}, [("sidecars[0].env[0].name", "is required")], id="env-empty-name"),
    pytest.param({"env": [{"name": 5}]}, [("sidecars[0].env[0].name", "is required")], id="env-name-not-text"),
    pytest.param({"appEnv": [{"name": "A"}, {"name": ""}]}, [
        ("sidecars[0].appEnv[1].name", "is required"),
    ], id="app-env-empty-name"),
    pytest.param({"imagePullPolicy": "always"}, [
        ("sidecars[0].imagePullPolicy", "must be one of Always, IfNotPresent, Never, got 'always'"),
    ], id="pull-policy-case"),
    pytest.param({"sizing": {"fixed": {"memory": "0"}}}, [
        ("sidecars[0].sizing.fixed.memory", "must be positive, got '0'"),
    ], id="fixed-zero"),
    pytest.param({"sizing": {"min": {"cpu": "200m"}, "max": {"cpu": "199m"}}}, [
        ("sidecars[0].sizing.min.cpu", "must not exceed max.cpu (199m), got 200m"),
    ], id="min-above-max"),
    # the floor is 50m unless set: a fixed CPU of 49m is one below it
    pytest.param({"sizing": {"mode": "fixed", "fixed": {"cpu": "49m", "memory": "64Mi"}}}, [
        ("sidecars[0].sizing.fixed.cpu", "must be at least cpuRequestFloor (50m), got 49m"),
    ], id="fixed-cpu-below-floor"),
])
def test_a_bad_sidecar_field_gets_its_exact_errors(sidecar: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _errors(_doc(sidecar)) == expected


def test_a_sidecar_without_a_name_is_told_so() -> None:
    errors = _errors(_doc({"name": None}))
    assert [e for e in errors if e[0].startswith("sidecars[")] == [("sidecars[0].name", "is required")]


@pytest.mark.parametrize("image", [
    "mesh",
    "reg.example/mesh",
    "reg.example:5000/mesh",          # a registry port is no tag: only the last component may carry one
    "reg.example/team:x/mesh",        # a ':' in a middle component is not the tag either
])
def test_an_image_repository_without_a_tag_is_accepted(image: str) -> None:
    assert _sidecar(image=image).image == image


# -- sidecar: defaults and values read through ----------------------------------
def test_a_sidecar_with_only_its_name_and_image_takes_the_documented_defaults() -> None:
    spec = _sidecar()
    assert spec.placement == "native" and spec.position == "first"
    assert spec.cpu_request_floor == Quantity(50_000_000)  # 50m = 0.05 cpu = 5e7 nano-cpus
    assert spec.image_pull_policy == "IfNotPresent"
    assert spec.command == () and spec.args == ()
    assert spec.liveness_probe is None and spec.ports == () and spec.env == ()
    assert (spec.upgrade.hot, spec.upgrade.dormant, spec.upgrade.empty_image) == (False, False, None)


def test_the_sidecar_fields_are_read_as_written() -> None:
    probe = {"httpGet": {"path": "/live", "port": 15020}}
    spec = _sidecar(placement="legacy", position="last", command=["/mesh"], args=["--proxy", "-v"],
                    livenessProbe=probe, cpuRequestFloor="10m", ports=[{"containerPort": 15001}])
    assert (spec.placement, spec.position) == ("legacy", "last")
    assert spec.command == ("/mesh",) and spec.args == ("--proxy", "-v")
    assert spec.liveness_probe == probe
    assert spec.cpu_request_floor == Quantity(10_000_000)
    assert spec.ports == ({"containerPort": 15001},)


@pytest.mark.parametrize("value", ["Always", "IfNotPresent", "Never"])
def test_every_image_pull_policy_is_accepted(value: str) -> None:
    assert _sidecar(imagePullPolicy=value).image_pull_policy == value


@pytest.mark.parametrize(("cpu", "accepted"), [("49m", False), ("50m", True), ("51m", True)])
def test_a_fixed_cpu_may_equal_the_floor(cpu: str, accepted: bool) -> None:
    doc = _doc({"sizing": {"mode": "fixed", "fixed": {"cpu": cpu, "memory": "64Mi"}}})
    if accepted:
        assert parse_policy(doc).sidecars[0].sizing.fixed["cpu"] == Quantity.parse(cpu)
    else:
        with pytest.raises(PolicyError):
            parse_policy(doc)


@pytest.mark.parametrize(("low", "accepted"), [("199m", True), ("200m", True), ("201m", False)])
def test_a_minimum_may_equal_the_maximum(low: str, accepted: bool) -> None:
    doc = _doc({"sizing": {"min": {"cpu": low}, "max": {"cpu": "200m"}}})
    if accepted:
        assert parse_policy(doc).sidecars[0].sizing.min == {"cpu": Quantity.parse(low)}
    else:
        with pytest.raises(PolicyError):
            parse_policy(doc)


def test_a_minimum_without_a_maximum_is_accepted() -> None:
    sizing = _sidecar(sizing={"min": {"cpu": "10m", "memory": "32Mi"}, "max": {"memory": "64Mi"}}).sizing
    assert sizing.min == {"cpu": Quantity(10_000_000), "memory": Quantity(32 * 2**20 * 10**9, "BinarySI")}
    assert sizing.max == {"memory": Quantity(64 * 2**20 * 10**9, "BinarySI")}


def test_zero_minimums_and_maximums_are_accepted() -> None:
    sizing = _sidecar(sizing={"min": {"cpu": "0"}, "max": {"cpu": "0", "memory": "0"}}).sizing
    assert sizing.min == {"cpu": Quantity(0)} and sizing.max == {"cpu": Quantity(0), "memory": Quantity(0)}


# -- upgrade ----------------------------------------------------------------------
def test_a_bad_empty_image_of_a_hot_sidecar_is_one_error_not_two() -> None:
    assert _errors(_doc({"upgrade": {"hot": True, "emptyImage": "pause image"}})) == [
        ("sidecars[0].upgrade.emptyImage", "must be an image reference without spaces, got 'pause image'"),
    ]


def test_a_missing_empty_image_is_reported_even_after_other_errors() -> None:
    assert _errors(_doc({"image": "reg.example/mesh:1", "upgrade": {"dormant": True}})) == [
        ("sidecars[0].image", "is the repository only; versions choose the tag, got 'reg.example/mesh:1'"),
        ("sidecars[0].upgrade.emptyImage", "is required when hot or dormant: the image an idle or dormant slot runs"),
    ]


_HANDOFF = "meshfit-mesh-handoff"  # meshfit-NAME-handoff, at /var/run/meshfit/handoff


@pytest.mark.parametrize(("mount", "refused"), [
    ({"name": _HANDOFF, "mountPath": "/elsewhere"}, True),
    ({"name": "certs", "mountPath": "/var/run/meshfit/handoff"}, True),
    ({"name": "certs", "mountPath": "/etc/certs"}, False),
])
def test_a_hot_sidecar_may_not_mount_the_handoff_volume(mount: dict[str, str], refused: bool) -> None:
    doc = _doc({"upgrade": {"hot": True, "emptyImage": "pause"}, "volumeMounts": [mount]})
    if refused:
        assert _errors(doc) == [
            ("sidecars[0].volumeMounts[0]", f"{_HANDOFF} at /var/run/meshfit/handoff is meshfit's handoff volume"),
        ]
    else:
        assert parse_policy(doc).sidecars[0].volume_mounts == ({"name": "certs", "mountPath": "/etc/certs"},)


# -- resources ------------------------------------------------------------------
def test_resources_left_out_take_the_documented_defaults() -> None:
    r = parse_policy(_doc()).resources
    assert (r.mode, r.variant, r.pod_level_resources) == ("overcommit", "auto", True)
    assert r.guaranteed == {"cpu": Fraction(1, 2), "memory": Fraction(1)}
    assert (r.best_effort, r.small_pods, r.qos_change, r.exclusive_cpu_pods) == ("requests", "shrink", "skip", "inject")


def test_the_guaranteed_shares_are_read_as_written() -> None:
    assert _resources(guaranteed={"cpu": 1, "memory": "1/4"}).resources.guaranteed == {
        "cpu": Fraction(1), "memory": Fraction(1, 4)}


@pytest.mark.parametrize(("field", "attribute", "value"), [
    ("overcommitVariant", "variant", "pod-level"),
    ("overcommitVariant", "variant", "swap"),
    ("bestEffort", "best_effort", "besteffort"),
    ("bestEffort", "best_effort", "skip"),
    ("smallPods", "small_pods", "skip"),
    ("smallPods", "small_pods", "leak"),
    ("qosChange", "qos_change", "allow"),
    ("exclusiveCpuPods", "exclusive_cpu_pods", "skip"),
])
def test_every_resources_choice_is_accepted(field: str, attribute: str, value: str) -> None:
    assert getattr(_resources(**{field: value}).resources, attribute) == value


@pytest.mark.parametrize(("variant", "pod_level", "refused"), [
    ("pod-level", False, True),
    ("pod-level", True, False),
    ("auto", False, False),
    ("swap", False, False),
])
def test_the_pod_level_variant_needs_pod_level_resources(variant: str, pod_level: bool, refused: bool) -> None:
    doc = _doc(resources={"overcommitVariant": variant, "podLevelResources": pod_level})
    if refused:
        assert _errors(doc) == [("resources.overcommitVariant", "pod-level needs podLevelResources: true")]
    else:
        r = parse_policy(doc).resources
        assert (r.variant, r.pod_level_resources) == (variant, pod_level)


# -- sizing -----------------------------------------------------------------------
def test_the_sizing_ratio_is_read_as_written_and_defaults_to_a_quarter_and_a_sixteenth() -> None:
    assert _sidecar().sizing.ratio == {"cpu": Fraction(1, 4), "memory": Fraction(1, 16)}
    assert _sidecar(sizing={"ratio": {"cpu": "1/2"}}).sizing.ratio == {"cpu": Fraction(1, 2), "memory": Fraction(1, 16)}


def test_a_fixed_sizing_needs_every_resource_fixed() -> None:
    assert _errors(_doc({"sizing": {"mode": "fixed", "fixed": {"cpu": "100m"}}})) == [
        ("sidecars[0].sizing.fixed.memory", "is required when mode is fixed"),
    ]
    assert _errors(_doc({"sizing": {"mode": "fixed"}})) == [
        ("sidecars[0].sizing.fixed.cpu", "is required when mode is fixed"),
        ("sidecars[0].sizing.fixed.memory", "is required when mode is fixed"),
    ]


def test_the_kubernetes_fragments_of_a_sidecar_are_copied_as_given() -> None:
    startup, readiness = {"tcpSocket": {"port": 15001}}, {"httpGet": {"path": "/ready", "port": 15020}}
    security, lifecycle = {"runAsUser": 1337}, {"preStop": {"exec": {"command": ["/drain"]}}}
    mounts, volumes = [{"name": "certs", "mountPath": "/etc/certs"}], [{"name": "certs", "secret": {"secretName": "c"}}]
    env, app_env = [{"name": "MESH", "value": "1"}], [{"name": "HTTP_PROXY", "value": "localhost:15001"}]
    spec = _sidecar(startupProbe=startup, readinessProbe=readiness, securityContext=security, lifecycle=lifecycle,
                    volumeMounts=mounts, volumes=volumes, env=env, appEnv=app_env)
    assert (spec.startup_probe, spec.readiness_probe) == (startup, readiness)
    assert (spec.security_context, spec.lifecycle) == (security, lifecycle)
    assert spec.volume_mounts == tuple(mounts) and spec.volumes == tuple(volumes)
    assert spec.env == tuple(env) and spec.app_env == tuple(app_env)
    bare = _sidecar()
    assert (bare.startup_probe, bare.readiness_probe, bare.security_context, bare.lifecycle) == (None, None, None, None)
    assert (bare.volume_mounts, bare.volumes, bare.app_env) == ((), (), ())
