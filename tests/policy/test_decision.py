"""Whether a pod is injected, in the exact words ``meshfit explain`` and the webhook's warnings use.

One row per way the decision can go; each pins the code (metrics and alerts key on it),
the reason and the warnings whole.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from podshapes import container, pod
from policies import default_policy, with_injection

from policy.decision import Decision, Namespace, decide
from policy.model import Emergency, NamespacePolicy, Policy, SidecarOverride

OPTED_IN = {"meshfit.io/inject": "enabled"}
STOP = "meshfit did not inject this pod: "


def _app(**kw: Any) -> dict[str, Any]:
    return pod([container("app", {"cpu": "1", "memory": "1Gi"})], **kw)


def _decide(p: dict[str, Any], labels: dict[str, str] | None = OPTED_IN, policy: Policy | None = None,
            name: str = "shop", ns_policy: NamespacePolicy | None = None) -> Decision:
    return decide(p, Namespace(name, labels, ns_policy), policy or default_policy())


def _said(d: Decision) -> tuple[bool, str, str, list[str]]:
    return (d.inject, d.code, d.reason, d.warnings)


def _stopped(reason: str = "") -> Policy:
    return dataclasses.replace(default_policy(), emergency=Emergency(stop_injection=True, reason=reason))


def _with_volume(volume: dict[str, Any]) -> Policy:
    policy = default_policy()
    return dataclasses.replace(policy, sidecars=(dataclasses.replace(policy.sidecars[0], volumes=(volume,)), *policy.sidecars[1:]))


IN = (True, "", "namespace shop is opted in", [])

CASES = [
    # the namespace decides when the pod says nothing
    pytest.param(_app(), OPTED_IN, None, IN, id="namespace-opted-in"),
    pytest.param(_app(), {"meshfit.io/inject": "disabled"}, None,
                 (False, "namespace_not_opted_in", "namespace shop is not opted in (label meshfit.io/inject=enabled)", []),
                 id="namespace-label-other-value"),
    pytest.param(_app(), {}, None,
                 (False, "namespace_not_opted_in", "namespace shop is not opted in (label meshfit.io/inject=enabled)", []),
                 id="namespace-unlabelled"),
    pytest.param(_app(), None, None,
                 (True, "", "namespace shop is assumed opted in (no namespace labels given)", []), id="no-namespace-labels"),
    # the pod's own say: annotation, else label; "true" beats an unlabelled namespace
    pytest.param(_app(annotations={"meshfit.io/inject": "true"}), {}, None,
                 (True, "", "the pod opts in", []), id="pod-opts-in"),
    pytest.param(_app(labels={"meshfit.io/inject": " TRUE "}), {}, None,
                 (True, "", "the pod opts in", []), id="pod-opts-in-by-label"),
    pytest.param(_app(annotations={"meshfit.io/inject": "false"}), OPTED_IN, None,
                 (False, "pod_opt_out", "the pod opts out (meshfit.io/inject=false)", []), id="pod-opts-out"),
    pytest.param(_app(annotations={"meshfit.io/inject": "False"}, labels={"meshfit.io/inject": "false"}), OPTED_IN, None,
                 (False, "pod_opt_out", "the pod opts out (meshfit.io/inject=false)", []), id="agree-whatever-the-case"),
    pytest.param(_app(annotations={"meshfit.io/inject": "true"}, labels={"meshfit.io/inject": "false"}), {}, None,
                 (True, "", "the pod opts in",
                  ["annotation meshfit.io/inject=true and label meshfit.io/inject=false disagree; the annotation wins"]),
                 id="annotation-beats-label"),
    pytest.param(_app(annotations={"meshfit.io/inject": "yes"}), OPTED_IN, None,
                 (True, "", "namespace shop is opted in", ["meshfit.io/inject='yes' is neither \"true\" nor \"false\"; ignored"]),
                 id="neither-true-nor-false"),
    pytest.param(_app(labels={"meshfit.io/inject": "1"}), {}, None,
                 (False, "namespace_not_opted_in", "namespace shop is not opted in (label meshfit.io/inject=enabled)",
                  ["meshfit.io/inject='1' is neither \"true\" nor \"false\"; ignored"]), id="unreadable-falls-to-namespace"),
    # never injected, whatever the pod says
    pytest.param(_app(annotations={"meshfit.io/inject": "true"}), OPTED_IN, None,
                 (True, "", "the pod opts in", []), id="opt-in-in-opted-in-namespace"),
    # emergency stop: after the pod's opt-out, with a warning
    pytest.param(_app(), OPTED_IN, _stopped("INC-42"),
                 (False, "emergency_stop", "injection is stopped by the emergency switch: INC-42",
                  [STOP + "injection is stopped by the emergency switch: INC-42"]), id="emergency-with-reason"),
    pytest.param(_app(), OPTED_IN, _stopped(),
                 (False, "emergency_stop", "injection is stopped by the emergency switch",
                  [STOP + "injection is stopped by the emergency switch"]), id="emergency-without-reason"),
    pytest.param(_app(annotations={"meshfit.io/inject": "false"}), OPTED_IN, _stopped("INC-42"),
                 (False, "pod_opt_out", "the pod opts out (meshfit.io/inject=false)", []), id="opt-out-before-emergency"),
    pytest.param(_app(), {}, _stopped("INC-42"),
                 (False, "namespace_not_opted_in", "namespace shop is not opted in (label meshfit.io/inject=enabled)", []),
                 id="not-opted-in-before-emergency"),
    # already injected, host network
    pytest.param(_app(annotations={"meshfit.io/status": "{}"}), OPTED_IN, None,
                 (False, "already_injected", "already injected (meshfit.io/status is present)", []), id="already-injected"),
    pytest.param(_app(hostNetwork=True), OPTED_IN, None,
                 (False, "host_network", "the pod uses the host network (injection.hostNetwork: skip)",
                  [STOP + "the pod uses the host network (injection.hostNetwork: skip)"]), id="host-network"),
    pytest.param(_app(hostNetwork=False), OPTED_IN, None, IN, id="host-network-false"),
    pytest.param(_app(hostNetwork=True), OPTED_IN, with_injection(host_network="inject"), IN, id="host-network-allowed"),
    # names, ports and volumes the sidecars need are free
    pytest.param(pod([container("rpc-mesh")]), OPTED_IN, None,
                 (False, "container_name_conflict", "container name 'rpc-mesh' is already used in containers",
                  [STOP + "container name 'rpc-mesh' is already used in containers"]), id="name-in-containers"),
    pytest.param(pod([container("app")], init=[container("msg-mesh")]), OPTED_IN, None,
                 (False, "container_name_conflict", "container name 'msg-mesh' is already used in initContainers",
                  [STOP + "container name 'msg-mesh' is already used in initContainers"]), id="name-in-init"),
    pytest.param(pod([container("app")], ephemeralContainers=[container("rpc-mesh")]), OPTED_IN, None,
                 (False, "container_name_conflict", "container name 'rpc-mesh' is already used in ephemeralContainers",
                  [STOP + "container name 'rpc-mesh' is already used in ephemeralContainers"]), id="name-in-ephemeral"),
    pytest.param(pod([container("app", ports=[{"containerPort": 12230}])]), OPTED_IN, None,
                 (False, "port_conflict", "port 12230 of msg-mesh is already used by container 'app'",
                  [STOP + "port 12230 of msg-mesh is already used by container 'app'"]), id="port-in-containers"),
    pytest.param(pod([container("app")], init=[container("setup", ports=[{"containerPort": 34901}])]), OPTED_IN, None,
                 (False, "port_conflict", "port 34901 of rpc-mesh is already used by container 'setup'",
                  [STOP + "port 34901 of rpc-mesh is already used by container 'setup'"]), id="port-in-init"),
    pytest.param(pod([container("app", ports=[{"containerPort": 8080}, {"name": "x"}, "junk"]), "junk"]), OPTED_IN, None,
                 IN, id="other-ports-and-junk"),
    pytest.param(pod([container("app")], volumes=[{"name": "certs", "secret": {"secretName": "c"}}]), OPTED_IN,
                 _with_volume({"name": "certs", "emptyDir": {}}),
                 (False, "volume_conflict", "volume 'certs' of rpc-mesh already exists with another definition",
                  [STOP + "volume 'certs' of rpc-mesh already exists with another definition"]), id="volume-differs"),
    pytest.param(pod([container("app")], volumes=[{"name": "certs", "emptyDir": {}}, "junk"]), OPTED_IN,
                 _with_volume({"name": "certs", "emptyDir": {}}), IN, id="volume-the-same"),
    pytest.param(pod([container("app")], volumes=[{"name": "other", "emptyDir": {}}]), OPTED_IN,
                 _with_volume({"name": "certs", "emptyDir": {}}), IN, id="volume-other-name"),
]


@pytest.mark.parametrize(("p", "labels", "policy", "said"), CASES)
def test_decision_and_its_words(p: dict[str, Any], labels: dict[str, str] | None, policy: Policy | None,
                                said: tuple[bool, str, str, list[str]]) -> None:
    d = _decide(p, labels, policy)
    assert _said(d) == said
    assert [s.name for s in d.sidecars] == (["rpc-mesh", "msg-mesh"] if said[0] else [])


@pytest.mark.parametrize("name", ["kube-system", "meshfit-system"])
def test_excluded_namespaces_are_never_injected(name: str) -> None:
    p = _app(annotations={"meshfit.io/inject": "true"})
    assert _said(_decide(p, OPTED_IN, name=name)) == (
        False, "excluded_namespace", f"namespace {name} is never injected (injection.excludedNamespaces)", [])


def test_the_policys_own_labels_and_keys_are_read() -> None:
    policy = with_injection(namespace_label="mesh", namespace_label_value="on", pod_override_key="mesh/inject")
    assert _decide(_app(), {"mesh": "on"}, policy).inject
    assert _said(_decide(_app(), OPTED_IN, policy)) == (
        False, "namespace_not_opted_in", "namespace shop is not opted in (label mesh=on)", [])
    assert _said(_decide(_app(annotations={"mesh/inject": "false"}), {"mesh": "on"}, policy)) == (
        False, "pod_opt_out", "the pod opts out (mesh/inject=false)", [])
    assert _decide(_app(annotations={"meshfit.io/inject": "false"}), {"mesh": "on"}, policy).inject


def test_sidecars_disabled_by_the_namespace_policy() -> None:
    off = SidecarOverride(enabled=False)
    one = NamespacePolicy("shop", "r", {"msg-mesh": off})
    d = _decide(_app(), ns_policy=one)
    assert (d.inject, [s.name for s in d.sidecars]) == (True, ["rpc-mesh"])
    # a disabled sidecar's names and ports are not in the way
    assert _decide(pod([container("msg-mesh", ports=[{"containerPort": 12230}])]), ns_policy=one).inject
    enabled = NamespacePolicy("shop", "r", {"msg-mesh": SidecarOverride(version="2.3.0")})
    assert [s.name for s in _decide(_app(), ns_policy=enabled).sidecars] == ["rpc-mesh", "msg-mesh"]
    both = NamespacePolicy("shop", "r", {"msg-mesh": off, "rpc-mesh": off})
    assert _said(_decide(_app(), ns_policy=both)) == (
        False, "sidecars_disabled", "every sidecar is disabled for namespace shop", [])
