"""Every way a re-accounting plan ends, with its exact code and reason, one hand-built pod each.

``meshfit reaccount`` prints a plan's reason beside the pod and counts its code
in the run's summary (cli/reaccount_cmd.py), so both are part of the contract:
each case below builds the one pod and target policy that lead to one return of
:func:`policy.reaccount.plan_reaccount` and compares the whole outcome with a
literal. The figures in the reasons are worked out by hand from the pods:
:func:`podshapes.java_pod` asks ``A`` = 2 + 100m CPU and 4Gi + 128Mi memory,
that is ``2100m/4224Mi``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
from podshapes import container, java_pod, pod
from policies import default_policy, with_resources
from slotted import slotted

from policy.annotations import ACCOUNTING
from policy.decision import Namespace
from policy.inject import inject
from policy.model import Emergency, Policy, Sizing
from policy.quantity import Quantity
from policy.reaccount import plan_reaccount

NS = Namespace("shop", None)
RECREATE_SIDECARS = ("the target policy injects other sidecars (rpc-mesh instead of rpc-mesh, msg-mesh): "
                     "recreate the pod")
RECREATE_MORE_SIDECARS = ("the target policy injects other sidecars (rpc-mesh, msg-mesh instead of rpc-mesh): "
                          "recreate the pod")
RECREATE_VARIANT = ("the target policy takes the swap variant, the pod has pod-level: the pod-level fields cannot "
                    "be added or removed in place; recreate the pod")
RECREATE_INIT = ("the plan changes regular init container migrate, which pods/resize cannot change (only "
                 "containers and native sidecars): recreate the pod")
POD_LEVEL = ("the plan changes pod-level resources, which needs the InPlacePodLevelResourcesVerticalScaling "
             "feature (pass --pod-level-resize where the cluster has it)")


def _meshed(p: dict[str, Any] | None = None, policy: Policy | None = None) -> dict[str, Any]:
    result = inject(p or java_pod(), NS, policy or default_policy())
    assert result.injected, result.reason
    return result.pod


def _edited(edit: Callable[[dict[str, Any]], None], p: dict[str, Any] | None = None) -> dict[str, Any]:
    out = copy.deepcopy(p or _meshed())
    edit(out)
    return out


def _with_record(text: str) -> dict[str, Any]:
    return _edited(lambda q: q["metadata"]["annotations"].__setitem__(ACCOUNTING, text))


def _record_edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    def rewrite(q: dict[str, Any]) -> None:
        record = json.loads(q["metadata"]["annotations"][ACCOUNTING])
        edit(record)
        q["metadata"]["annotations"][ACCOUNTING] = json.dumps(record)
    return _edited(rewrite)


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(q: dict[str, Any]) -> None:
        for key in path[:-1]:
            q = q[key]
        q[path[-1]] = value
    return edit


def _small() -> dict[str, Any]:
    """A pod asking less than the sidecars' requests: shrunk under ``small_pods: shrink``, so R = A."""
    return pod([container("app", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "1", "memory": "1Gi"})],
               labels={"app.kubernetes.io/name": "small"})


def _with_init() -> dict[str, Any]:
    """A pod whose regular init container is its largest request: a donor whose share moves with the sizing."""
    return pod([container("app")], init=[container("migrate", {"cpu": "5m", "memory": "64Mi"})],
               labels={"app.kubernetes.io/name": "migrate"})


def _sized(sizing: Sizing) -> Policy:
    policy = with_resources(guaranteed={"cpu": Fraction(1), "memory": Fraction(1)})
    return dataclasses.replace(policy, sidecars=tuple(
        dataclasses.replace(s, sizing=sizing, cpu_request_floor=Quantity.parse("10m")) for s in policy.sidecars))


def _fixed_8mi() -> Policy:
    return _sized(Sizing(mode="fixed", fixed={"cpu": Quantity.parse("20m"), "memory": Quantity.parse("8Mi")}))


def _ratio_16mi() -> Policy:
    return _sized(Sizing(ratio={"cpu": Fraction(1, 2), "memory": Fraction(1, 4)},
                         min={"cpu": Quantity.parse("10m"), "memory": Quantity.parse("16Mi")}))


def _moved_between_own_containers(q: dict[str, Any]) -> None:
    """10m of CPU request moved from log-shipper to app: R is as recorded, the containers are not."""
    q["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1414m"
    q["spec"]["containers"][1]["resources"]["requests"]["cpu"] = "61m"


CASES: list[Any] = [
    pytest.param(java_pod, default_policy, ("skip", "no_record",
                 "no meshfit.io/accounting record: not injected by meshfit"), id="no-record"),
    pytest.param(lambda: _with_record('{"v":2}'), default_policy, ("skip", "bad_record",
                 "accounting record must be an object with v=1"), id="bad-record"),
    pytest.param(lambda: _meshed(policy=with_resources(mode="additive")), default_policy, ("skip", "mode",
                 "recorded under mode additive; re-accounting keeps overcommit pods in place only"), id="mode"),
    pytest.param(lambda: _record_edited(lambda r: r["original"].__setitem__("cpu", "2200m")), default_policy,
                 ("skip", "inconsistent", "the spec and the record disagree: the pod's own shape rebuilt from the "
                  "record has R 2100m/4224Mi, the record says A = 2200m/4224Mi (changed by someone else)"),
                 id="record-disagrees-with-own-shape"),
    pytest.param(lambda: _edited(lambda q: q["spec"]["initContainers"].pop(1)), default_policy,
                 ("skip", "inconsistent", "the pod cannot be rebuilt from its record: the record names sidecars "
                  "the spec lacks: msg-mesh"), id="sidecar-removed"),
    pytest.param(lambda: _edited(_set("spec", "initContainers", value=[])), default_policy,
                 ("skip", "inconsistent", "the pod cannot be rebuilt from its record: the record names sidecars "
                  "the spec lacks: msg-mesh, rpc-mesh"), id="both-sidecars-removed"),
    pytest.param(lambda: _edited(lambda q: q["spec"]["containers"].append(container("debug"))), default_policy,
                 ("skip", "inconsistent", "the pod cannot be rebuilt from its record: the record's own containers "
                  "(app, log-shipper) are not the spec's (app, debug, log-shipper)"), id="own-container-added"),
    pytest.param(lambda: _record_edited(lambda r: r.__setitem__("ownRequests", {})), default_policy,
                 ("skip", "inconsistent", "the pod cannot be rebuilt from its record: the record's own containers "
                  "(none recorded) are not the spec's (app, log-shipper)"), id="no-own-containers-recorded"),
    pytest.param(_meshed, lambda: dataclasses.replace(default_policy(), emergency=Emergency(True, reason="incident 42")),
                 ("skip", "not_injected", "the target policy would not inject this pod: injection is stopped by the "
                  "emergency switch: incident 42"), id="not-injected"),
    pytest.param(lambda: _edited(_set("spec", "resources", "requests", "cpu", value="2200m")), default_policy,
                 ("skip", "inconsistent", "the pod's R 2200m/4224Mi differs from the recorded 2100m/4224Mi: "
                  "changed by someone else"), id="pod-level-requests-changed"),
    pytest.param(_meshed, lambda: slotted(only="rpc-mesh"), ("skip", "needs_recreate", RECREATE_SIDECARS),
                 id="other-sidecars"),
    pytest.param(lambda: _meshed(policy=slotted(only="rpc-mesh")), default_policy,
                 ("skip", "needs_recreate", RECREATE_MORE_SIDECARS), id="more-sidecars"),
    pytest.param(_meshed, lambda: with_resources(variant="swap"), ("skip", "needs_recreate", RECREATE_VARIANT),
                 id="other-variant"),
    # the kubelet's QoS class is the pod's, whatever its spec would compute now (it never changes)
    pytest.param(lambda: _edited(_set("status", value={"qosClass": "Guaranteed"})), default_policy,
                 ("skip", "qos_change", "the result's QoS class Burstable differs from the pod's Guaranteed; "
                  "a resize never changes the QoS class"), id="qos-class-of-the-status"),
    pytest.param(lambda: _meshed(policy=slotted()), lambda: slotted(rpc_mesh={"hot": True}),
                 ("skip", "needs_recreate", "the target adds or removes containers: recreate the pod"),
                 id="hot-slot-added"),
    pytest.param(lambda: _edited(_set("spec", "initContainers", 0, "resources", "limits", "cpu", value="3")),
                 default_policy, ("skip", "inconsistent", "sidecar rpc-mesh's resources differ from the record: "
                                  "changed by someone else"), id="sidecar-resized-by-someone-else"),
    pytest.param(_meshed, lambda: slotted(rpc_mesh={"placement": "legacy"}),
                 ("skip", "needs_recreate", "container rpc-mesh moves between initContainers and containers"),
                 id="sidecar-moves"),
    pytest.param(lambda: _meshed(_with_init(), _fixed_8mi()), _ratio_16mi, ("skip", "needs_recreate", RECREATE_INIT),
                 id="regular-init-container-changes"),
    pytest.param(lambda: _meshed(_small()), lambda: with_resources(small_pods="leak"),
                 ("skip", "pod_level_resize", POD_LEVEL), id="pod-level-resize-not-asked"),
    pytest.param(lambda: _edited(_moved_between_own_containers), default_policy,
                 ("skip", "inconsistent", "the record is current but the spec differs from it: changed by someone else"),
                 id="record-current-spec-not"),
    pytest.param(_meshed, default_policy, ("unchanged", "", "already accounted as the target policy would"),
                 id="unchanged"),
]


@pytest.mark.parametrize(("make_pod", "make_policy", "expected"), CASES)
def test_each_outcome_has_its_code_and_reason(make_pod: Callable[[], dict[str, Any]],
                                              make_policy: Callable[[], Policy], expected: tuple[str, str, str]) -> None:
    plan = plan_reaccount(make_pod(), NS, make_policy())  # pod_level_resize left at its default: off
    assert (plan.action, plan.code, plan.reason) == expected
    if plan.action != "resize":
        assert plan.changes == () and plan.pod_level == {}


def test_a_leaking_target_resizes_the_sidecars_and_the_pod_level_requests() -> None:
    """A small pod shrunk at injection, re-planned under ``small_pods: leak``: the sidecars get their full requests.

    Default sizing for the ``100m/64Mi`` pod (limits ``1/1Gi``): rpc-mesh is a quarter of the
    limits, ``250m/64Mi``, asking half its CPU and all its memory (``125m/64Mi``); msg-mesh is
    fixed at ``200m/128Mi``, asking ``100m/128Mi``. The app donates all it asks either way, so
    leaked, the pod asks the sidecars' sum, ``225m/192Mi``: a pod-level change.
    """
    meshed = _meshed(_small())
    plan = plan_reaccount(meshed, NS, with_resources(small_pods="leak"), pod_level_resize=True)
    assert (plan.action, plan.code, plan.reason) == ("resize", "", "2 container(s) resized")
    init = {c["name"]: c["resources"] for c in meshed["spec"]["initContainers"]}
    assert [(c.kind, c.name, c.before, c.after) for c in plan.changes] == [
        ("initContainers", "rpc-mesh", init["rpc-mesh"],
         {"requests": {"cpu": "125m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}}),
        ("initContainers", "msg-mesh", init["msg-mesh"],
         {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}),
    ]
    assert plan.pod_level == {"requests": {"cpu": "225m", "memory": "192Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert plan.record == inject(_small(), NS, with_resources(small_pods="leak")).record  # a fresh injection's


def test_a_pod_resized_before_its_record_was_written_gets_the_record_alone() -> None:
    """The resources are already a fresh injection's under the target (taken from that injection, not the plan)."""
    target = slotted(rpc_mesh={"sizing": Sizing(mode="fixed", fixed={"cpu": Quantity.parse("301m"),
                                                                      "memory": Quantity.parse("256Mi")})})
    fresh = inject(java_pod(), NS, target)
    resized = _meshed()
    for kind in ("initContainers", "containers"):
        by_name = {c["name"]: c for c in fresh.pod["spec"][kind]}
        for c in resized["spec"][kind]:
            c["resources"] = copy.deepcopy(by_name[c["name"]]["resources"])
    plan = plan_reaccount(resized, NS, target)
    assert (plan.action, plan.code, plan.reason) == (
        "record_only", "", "the resources already match; only the record is written")
    assert plan.changes == () and plan.pod_level == {} and plan.record == fresh.record


def test_a_bigger_sidecar_resizes_the_containers_alone_when_the_pod_level_fields_stay() -> None:
    """rpc-mesh fixed at ``301m/256Mi`` in the java pod: it asks half the CPU (``150m``, rounded down to 1m)
    and all the memory, the own containers give the difference, and R stays A, so ``spec.resources`` stays."""
    target = slotted(rpc_mesh={"sizing": Sizing(mode="fixed", fixed={"cpu": Quantity.parse("301m"),
                                                                      "memory": Quantity.parse("256Mi")})})
    plan = plan_reaccount(_meshed(), NS, target)
    assert (plan.action, plan.code, plan.reason) == ("resize", "", "3 container(s) resized")
    assert [(c.kind, c.name) for c in plan.changes] == [
        ("initContainers", "rpc-mesh"), ("containers", "app"), ("containers", "log-shipper")]
    assert plan.changes[0].after == {"requests": {"cpu": "150m", "memory": "256Mi"},
                                     "limits": {"cpu": "301m", "memory": "256Mi"}}
    assert plan.pod_level == {}
    assert plan.record == inject(java_pod(), NS, target).record  # a fresh injection's
