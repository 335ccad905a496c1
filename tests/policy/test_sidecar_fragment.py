"""The sidecar container is the policy's fragment as written: every field it gives, none it leaves out.

The expected containers are written out from the fragments below, not built by
the engine's own templates.
"""

from __future__ import annotations

import dataclasses

from podshapes import container, pod
from policies import default_policy

from policy.decision import Namespace
from policy.inject import inject
from policy.model import Policy, SidecarSpec

SHOP = Namespace("shop", None)
LIVENESS = {"httpGet": {"path": "/healthz", "port": 15021}, "periodSeconds": 10}


def _with_sidecar(spec: SidecarSpec) -> Policy:
    policy = default_policy()
    return dataclasses.replace(policy, sidecars=(spec,))


def _sidecar(policy: Policy) -> dict:
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})])
    result = inject(p, SHOP, policy)
    assert result.injected, result.reason
    (sidecar,) = result.pod["spec"]["initContainers"]
    return sidecar


def test_command_args_and_every_probe_are_copied_from_the_fragment() -> None:
    rpc = default_policy().sidecars[0]
    spec = dataclasses.replace(rpc, command=("/usr/local/bin/mosn",), args=("start", "-c", "/etc/mosn.json"),
                               liveness_probe=LIVENESS)
    sidecar = _sidecar(_with_sidecar(spec))
    assert sidecar["command"] == ["/usr/local/bin/mosn"]
    assert sidecar["args"] == ["start", "-c", "/etc/mosn.json"]
    assert sidecar["livenessProbe"] == LIVENESS
    assert sidecar["startupProbe"] == rpc.startup_probe and sidecar["readinessProbe"] == rpc.readiness_probe


def test_a_bare_fragment_gives_a_container_with_nothing_after_its_resources() -> None:
    # no probes, no securityContext, no lifecycle, no command: the container has only what meshfit adds
    # (the image at the version the shipped policy gives rpc-mesh, 1.8.0)
    bare = SidecarSpec(name="rpc-mesh", image="registry.example.com/agent")
    sidecar = _sidecar(_with_sidecar(bare))
    assert set(sidecar) == {"name", "image", "imagePullPolicy", "restartPolicy", "resources"}
    assert (sidecar["name"], sidecar["image"], sidecar["imagePullPolicy"], sidecar["restartPolicy"]) == (
        "rpc-mesh", "registry.example.com/agent:1.8.0", "IfNotPresent", "Always")


SHARED = {"name": "mesh-certs", "secret": {"secretName": "mesh-certs"}}


def test_a_volume_the_pod_already_has_is_not_repeated_and_a_shared_one_is_added_once() -> None:
    rpc, msg = default_policy().sidecars
    policy = dataclasses.replace(default_policy(), sidecars=(
        dataclasses.replace(rpc, volumes=(SHARED, {"name": "rpc-config", "configMap": {"name": "rpc"}})),
        dataclasses.replace(msg, volumes=(SHARED,))))
    own = {"name": "rpc-config", "configMap": {"name": "rpc"}}  # the same volume, declared by the pod
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})], volumes=[own])
    result = inject(p, SHOP, policy)
    assert result.injected, result.reason
    named = [v for v in result.pod["spec"]["volumes"] if v["name"] in ("rpc-config", "mesh-certs")]
    assert named == [own, SHARED]  # the pod's rpc-config is not repeated; mesh-certs once for both sidecars


def test_templates_are_built_once_per_sidecar_object_and_the_cache_stays_bounded() -> None:
    from policy import sidecar_build

    rpc = default_policy().sidecars[0]
    assert sidecar_build.templates(rpc) is sidecar_build.templates(rpc)  # built on first use, then reused
    # an entry left under this id by another sidecar object (a reused id) is never served for it
    other = dataclasses.replace(rpc, command=("/other",))
    fresh = dataclasses.replace(rpc)
    sidecar_build._TEMPLATES[id(fresh)] = (other, sidecar_build.templates(other))
    assert b'"/other"' not in b"".join(t.middle for t in sidecar_build.templates(fresh).values())
    # a policy edited many times does not grow the cache past its bound
    specs = [dataclasses.replace(rpc, image=f"registry.example.com/mesh/mosn-{i}")
             for i in range(sidecar_build._MAX_TEMPLATES + 1)]
    for spec in specs:
        sidecar_build.templates(spec)
        assert len(sidecar_build._TEMPLATES) <= sidecar_build._MAX_TEMPLATES


def test_app_env_is_added_once_and_never_over_what_the_app_sets() -> None:
    rpc, msg = default_policy().sidecars
    both = dict(rpc.app_env[0])  # MESH_ENABLED, asked by both sidecars
    policy = dataclasses.replace(default_policy(), sidecars=(rpc, dataclasses.replace(msg, app_env=(*msg.app_env, both))))
    # a hand-written env with an entry that is not an object: read the careful way, names still found
    app = container("app", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"},
                    env=["junk", {"name": "MESH_RPC_ADDR", "value": "mine"}])
    result = inject(pod([app]), SHOP, policy)
    assert result.injected, result.reason
    env = result.pod["spec"]["containers"][0]["env"]
    assert env == ["junk", {"name": "MESH_RPC_ADDR", "value": "mine"}, {"name": "MESH_ENABLED", "value": "true"},
                   {"name": "MESH_MSG_ADDR", "value": "127.0.0.1:12230"}]
