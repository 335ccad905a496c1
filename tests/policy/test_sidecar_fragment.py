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
