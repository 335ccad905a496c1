"""Hot-upgrade and dormant slots placed by the engine: containers, requests, annotations, records.

Expected figures are worked out by hand beside each test (the Java pod: app
2/4Gi requests, 4/4Gi limits, a log shipper 100m/128Mi, 200m/128Mi, so
L = 4200m / 4224Mi; rpc-mesh sized 1/4 CPU and 1/16 memory of L = 1050m /
264Mi with requests 525m / 264Mi; msg-mesh fixed 200m / 128Mi with requests
100m / 128Mi); ``R(pod)`` and the QoS class come from ``tests/reference.py``.
"""

from __future__ import annotations

import copy
import dataclasses

import jsonpatch
import orjson
import pytest
import reference as ref
from podshapes import container, java_pod, pod
from policies import with_resources
from slotted import EMPTY, slotted

from policy.annotations import ACCOUNTING, STATUS
from policy.decision import Namespace
from policy.inject import inject
from policy.model import Policy
from policy.quantity import Quantity
from policy.record import parse_record
from policy.sidecar_status import PodStatus, SidecarStatus, StatusError, parse_status
from policy.slots import HANDOFF_MOUNT_PATH, split_request

SHOP = Namespace("shop", None)
RPC_IMAGE = "registry.example.com/mesh/mosn:1.8.0"
MSG_IMAGE = "registry.example.com/mesh/msg-agent:2.3.0"
Q = Quantity.parse


def _inject(p: dict, policy: Policy, *, keeps_r: bool = True):
    before = copy.deepcopy(p)
    result = inject(p, SHOP, policy)
    assert p == before, "the input pod must not be modified"
    assert jsonpatch.apply_patch(before, result.patch) == result.pod, "the patch must produce the result"
    if result.injected:
        if keeps_r:
            assert ref.effective_requests(result.pod) == ref.effective_requests(before), "R(pod) == A"
        assert ref.qos_class(result.pod) == ref.qos_class(before)
        assert inject(result.pod, SHOP, policy).skip_code == "already_injected"
    return result


def _by_name(p: dict) -> dict[str, dict]:
    return {c["name"]: c for k in ("initContainers", "containers") for c in p["spec"].get(k) or ()}


def _env(c: dict) -> dict[str, object]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or ()}


def _annotations(p: dict) -> dict[str, str]:
    return p["metadata"].get("annotations") or {}


def _slot_fieldref(container_name: str) -> dict:
    return {"fieldRef": {"fieldPath": f"metadata.annotations['meshfit.io/slot-{container_name}']"}}


# -- the split -------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "resource", "live", "alt"), [
    ("525m", "cpu", "263m", "262m"),       # 525 - floor(525/2) = 263, floor(525/2) = 262
    ("2m", "cpu", "1m", "1m"),
    ("3m", "cpu", "2m", "1m"),
    ("2500u", "cpu", "1500u", "1m"),      # 2.5m: the alt half in whole millicores, the rest live
    ("1", "cpu", "500m", "500m"),
    ("264Mi", "memory", "132Mi", "132Mi"),
    ("100000001", "memory", "50000001", "50000000"),  # whole bytes
    ("0", "memory", "0", "0"),
])
def test_a_request_splits_exactly_live_first(value: str, resource: str, live: str, alt: str) -> None:
    got = split_request(Q(value), resource)
    assert got == (Q(live), Q(alt))
    assert got[0] + got[1] == Q(value)


# -- hot -------------------------------------------------------------------------------
def test_a_hot_native_sidecar_is_two_adjacent_slots_that_split_one_request() -> None:
    result = _inject(java_pod(), slotted(rpc_mesh={"hot": True}))
    assert result.injected
    spec = result.pod["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["rpc-mesh", "rpc-mesh-alt", "msg-mesh"]
    live, alt, msg = spec["initContainers"]
    assert live["image"] == RPC_IMAGE and alt["image"] == EMPTY
    assert live["restartPolicy"] == alt["restartPolicy"] == "Always"
    assert live["resources"] == {"requests": {"cpu": "263m", "memory": "132Mi"}, "limits": {"cpu": "1050m", "memory": "264Mi"}}
    assert alt["resources"] == {"requests": {"cpu": "262m", "memory": "132Mi"}, "limits": {"cpu": "1050m", "memory": "264Mi"}}
    # the slots carry no probes; only the first declares the ports; the ordinary sidecar keeps its probe
    for c in (live, alt):
        assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(c)
    assert [p["containerPort"] for p in live["ports"]] == [12220, 34901] and "ports" not in alt
    assert msg["startupProbe"] == {"tcpSocket": {"port": 12230}, "periodSeconds": 1, "failureThreshold": 120}
    assert any("carry none of the policy's probes" in n for n in result.notes)
    # each slot knows who it is; both see the handoff directory
    for c in (live, alt):
        env = _env(c)
        assert env["MESHFIT_SLOT"] == c["name"]
        assert env["MESHFIT_SLOT_VERSION"] == _slot_fieldref(c["name"])
        assert env["MESHFIT_HANDOFF_DIR"] == HANDOFF_MOUNT_PATH
        assert env["MESH_ROLE"] == "sidecar", "the policy's own env comes first and is kept"
        assert {"name": "meshfit-rpc-mesh-handoff", "mountPath": HANDOFF_MOUNT_PATH} in c["volumeMounts"]
        assert c["securityContext"] == live["securityContext"]
    assert "MESHFIT_SLOT" not in _env(msg)
    assert {"name": "meshfit-rpc-mesh-handoff", "emptyDir": {}} in spec["volumes"]
    annotations = _annotations(result.pod)
    assert annotations["meshfit.io/slot-rpc-mesh"] == "1.8.0"
    assert annotations["meshfit.io/slot-rpc-mesh-alt"] == ""
    assert "meshfit.io/slot-msg-mesh" not in annotations
    # the app's limits never move, and its requests donate exactly one sidecar's request
    app = _by_name(result.pod)["app"]
    assert app["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}


def test_a_hot_sidecar_is_recorded_with_its_totals_and_the_split() -> None:
    result = _inject(java_pod(), slotted(rpc_mesh={"hot": True}))
    text = _annotations(result.pod)[ACCOUNTING]
    record = parse_record(text)
    assert record.to_json() == text, "the record round-trips"
    rpc = record.sidecars[0]
    assert rpc.requests == {"cpu": Q("525m"), "memory": Q("264Mi")}          # one sidecar's request
    assert rpc.limits == {"cpu": Q("2100m"), "memory": Q("528Mi")}           # two slots of S each
    assert [s.container for s in rpc.slots] == ["rpc-mesh", "rpc-mesh-alt"] == list(rpc.containers)
    assert rpc.slots[0].requests == {"cpu": Q("263m"), "memory": Q("132Mi")}
    assert rpc.slots[1].requests == {"cpu": Q("262m"), "memory": Q("132Mi")}
    assert record.sidecars[1].slots == () and record.sidecars[1].containers == ("msg-mesh",)
    # the pod-level variant: the pod's cgroup keeps its limit; the overcommit counts both slots' limits
    assert record.variant == "pod-level" and record.exposure == "pod"
    assert record.overcommit == {"cpu": Q("2300m"), "memory": Q("656Mi")}
    assert ref.effective_limits(result.pod) == ref.effective_limits(java_pod())
    # ordinary sidecars' records are written as before: no slots key
    assert "slots" not in orjson.loads(text)["sidecars"][1]


def test_a_hot_sidecars_status_names_its_slots_and_round_trips() -> None:
    result = _inject(java_pod(), slotted(rpc_mesh={"hot": True}))
    text = _annotations(result.pod)[STATUS]
    status = parse_status(text)
    assert status.to_json() == text
    rpc, msg = status.sidecars
    assert rpc == SidecarStatus("rpc-mesh", "1.8.0", RPC_IMAGE, "baseline", ("rpc-mesh", "rpc-mesh-alt"), "rpc-mesh",
                                True, EMPTY)
    assert rpc.hot and rpc.idle == "rpc-mesh-alt"
    assert msg == SidecarStatus("msg-mesh", "2.3.0", MSG_IMAGE, "baseline")
    assert status.owner_of("rpc-mesh-alt") is rpc and status.policy == slotted().revision
    body = orjson.loads(text)
    assert body["sidecars"][0] == {"name": "rpc-mesh", "version": "1.8.0", "image": RPC_IMAGE, "source": "baseline",
                                   "slots": ["rpc-mesh", "rpc-mesh-alt"], "live": "rpc-mesh", "emptyImage": EMPTY}
    assert body["sidecars"][1] == {"name": "msg-mesh", "version": "2.3.0", "image": MSG_IMAGE, "source": "baseline"}


def test_a_status_record_round_trips_through_the_parser() -> None:
    record = PodStatus("rev", (SidecarStatus("a", "1", "img:1", "baseline", ("a", "a-alt"), "a-alt", False, EMPTY,
                                             previous="0.9", restart="t1"),
                               SidecarStatus("b", "2", "img:2", "pin")), {"note": "kept"})
    assert parse_status(record.to_json()) == record
    assert parse_status(record.to_json()).to_json() == record.to_json()


def test_ordinary_sidecars_are_written_exactly_as_before() -> None:
    """No slot fields, annotations or environment on a sidecar that asked for none."""
    result = _inject(java_pod(), slotted())
    annotations = _annotations(result.pod)
    assert not [k for k in annotations if k.startswith("meshfit.io/slot-")]
    assert orjson.loads(annotations[STATUS]) == {"v": 1, "policy": slotted().revision, "sidecars": [
        {"name": "rpc-mesh", "version": "1.8.0", "image": RPC_IMAGE, "source": "baseline"},
        {"name": "msg-mesh", "version": "2.3.0", "image": MSG_IMAGE, "source": "baseline"}]}
    rpc = _by_name(result.pod)["rpc-mesh"]
    assert "startupProbe" in rpc and "readinessProbe" in rpc and "MESHFIT_SLOT" not in _env(rpc)
    assert "volumes" not in result.pod["spec"]


def test_lifecycle_goes_to_every_container_of_a_sidecar() -> None:
    hook = {"postStart": {"exec": {"command": ["/mesh", "await-handoff"]}}}
    result = _inject(java_pod(), slotted(rpc_mesh={"hot": True, "lifecycle": hook}, msg_mesh={"lifecycle": hook}))
    names = _by_name(result.pod)
    assert names["rpc-mesh"]["lifecycle"] == names["rpc-mesh-alt"]["lifecycle"] == names["msg-mesh"]["lifecycle"] == hook


# -- dormant ---------------------------------------------------------------------------
def test_a_dormant_sidecar_runs_the_empty_image_at_its_full_size() -> None:
    result = _inject(java_pod(), slotted(msg_mesh={"dormant": True}))
    msg = _by_name(result.pod)["msg-mesh"]
    assert msg["image"] == EMPTY
    # msg-mesh fixed 200m/128Mi, guaranteed 1/2 CPU and all memory: what an active one gets
    assert msg["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
    assert _env(msg)["MESHFIT_SLOT"] == "msg-mesh"
    assert _env(msg)["MESHFIT_SLOT_VERSION"] == _slot_fieldref("msg-mesh")
    assert "MESHFIT_HANDOFF_DIR" not in _env(msg) and "volumeMounts" not in msg and "startupProbe" not in msg
    assert "ports" in msg, "its one slot declares the ports it will serve once active"
    assert _annotations(result.pod)["meshfit.io/slot-msg-mesh"] == ""
    status = parse_status(_annotations(result.pod)[STATUS]).sidecar("msg-mesh")
    assert status == SidecarStatus("msg-mesh", "2.3.0", MSG_IMAGE, "baseline", active=False, empty_image=EMPTY)
    assert orjson.loads(_annotations(result.pod)[STATUS])["sidecars"][1] == {
        "name": "msg-mesh", "version": "2.3.0", "image": MSG_IMAGE, "source": "baseline", "active": False,
        "emptyImage": EMPTY}
    record = parse_record(_annotations(result.pod)[ACCOUNTING]).sidecars[1]
    assert record.requests == {"cpu": Q("100m"), "memory": Q("128Mi")} and record.slots == ()


def test_a_dormant_sidecar_costs_what_an_active_one_does() -> None:
    active = _inject(java_pod(), slotted())
    dormant = _inject(java_pod(), slotted(msg_mesh={"dormant": True}, rpc_mesh={"dormant": True}))
    for name in ("app", "log-shipper", "rpc-mesh", "msg-mesh"):
        assert _by_name(active.pod)[name]["resources"] == _by_name(dormant.pod)[name]["resources"]
    assert active.pod["spec"].get("resources") == dormant.pod["spec"].get("resources")


def test_hot_and_dormant_both_slots_idle_on_the_empty_image() -> None:
    result = _inject(java_pod(), slotted(rpc_mesh={"hot": True, "dormant": True}))
    names = _by_name(result.pod)
    assert names["rpc-mesh"]["image"] == names["rpc-mesh-alt"]["image"] == EMPTY
    assert _annotations(result.pod)["meshfit.io/slot-rpc-mesh"] == _annotations(result.pod)["meshfit.io/slot-rpc-mesh-alt"] == ""
    status = parse_status(_annotations(result.pod)[STATUS]).sidecar("rpc-mesh")
    assert status is not None and not status.active and status.hot and status.live == "rpc-mesh"
    assert status.image == RPC_IMAGE, "the record says what activation will run"
    assert names["rpc-mesh"]["resources"]["requests"] == {"cpu": "263m", "memory": "132Mi"}
    assert names["rpc-mesh-alt"]["resources"]["requests"] == {"cpu": "262m", "memory": "132Mi"}


# -- placement -------------------------------------------------------------------------
def test_legacy_hot_slots_are_adjacent_regular_containers() -> None:
    result = _inject(java_pod(), slotted(rpc_mesh={"hot": True, "placement": "legacy"}))
    spec = result.pod["spec"]
    assert [c["name"] for c in spec["containers"]] == ["rpc-mesh", "rpc-mesh-alt", "app", "log-shipper"]
    assert [c["name"] for c in spec["initContainers"]] == ["msg-mesh"]
    assert "restartPolicy" not in spec["containers"][0] and "restartPolicy" not in spec["containers"][1]
    # the donation never takes from the slots: only the app and the log shipper give
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "263m", "memory": "132Mi"}
    assert spec["containers"][1]["resources"]["requests"] == {"cpu": "262m", "memory": "132Mi"}


def test_last_position_keeps_the_slots_together_after_the_pods_own_init_containers() -> None:
    p = java_pod()
    p["spec"]["initContainers"] = [container("migrate", {"cpu": "100m", "memory": "64Mi"})]
    result = _inject(p, slotted(rpc_mesh={"hot": True, "position": "last"}))
    assert [c["name"] for c in result.pod["spec"]["initContainers"]] == ["msg-mesh", "migrate", "rpc-mesh", "rpc-mesh-alt"]


# -- small pods ------------------------------------------------------------------------
def _tiny(cpu: str, memory: str = "256Mi") -> dict:
    return pod([container("app", {"cpu": cpu, "memory": memory}, {"cpu": "1", "memory": "1Gi"})])


def test_a_small_pod_shrinks_a_hot_sidecar_down_to_a_millicore_a_slot() -> None:
    policy = slotted(rpc_mesh={"hot": True}, only="rpc-mesh")
    result = _inject(_tiny("2m"), policy)
    assert result.injected
    names = _by_name(result.pod)
    assert names["rpc-mesh"]["resources"]["requests"]["cpu"] == "1m"
    assert names["rpc-mesh-alt"]["resources"]["requests"]["cpu"] == "1m"
    assert names["app"]["resources"]["requests"]["cpu"] == "0"
    assert result.record is not None and "cpu" in result.record.reduced
    assert any("cut" in w for w in result.warnings)
    three = _by_name(_inject(_tiny("3m"), policy).pod)
    assert (three["rpc-mesh"]["resources"]["requests"]["cpu"], three["rpc-mesh-alt"]["resources"]["requests"]["cpu"]) == ("2m", "1m")


def test_below_two_millicores_a_hot_sidecar_is_skipped_with_the_reason() -> None:
    result = _inject(_tiny("1m"), slotted(rpc_mesh={"hot": True}, only="rpc-mesh"))
    assert not result.injected and result.skip_code == "pod_too_small"
    assert result.reason.count("the pod requests cpu 1m: too little to give each of the 2 sidecar slots a cpu "
                               "request of 1m (rpc-mesh: two hot-upgrade slots, whose requests split one sidecar's)") == 2
    assert result.reason.startswith("pod-level variant: ") and "; swap variant: " in result.reason
    assert any(result.reason in w for w in result.warnings)
    # an ordinary sidecar fits where its hot twin does not
    assert _inject(_tiny("1m"), slotted(only="rpc-mesh")).injected


def test_a_hot_and_an_ordinary_sidecar_need_three_millicores_between_them() -> None:
    policy = slotted(rpc_mesh={"hot": True})
    assert not _inject(_tiny("2m"), policy).injected
    names = _by_name(_inject(_tiny("3m"), policy).pod)
    assert [names[n]["resources"]["requests"]["cpu"] for n in ("rpc-mesh", "rpc-mesh-alt", "msg-mesh")] == ["1m", "1m", "1m"]


def test_memory_keeps_a_mebibyte_a_slot_when_cut() -> None:
    policy = slotted(rpc_mesh={"hot": True}, only="rpc-mesh")
    names = _by_name(_inject(_tiny("500m", "2Mi"), policy).pod)
    assert names["rpc-mesh"]["resources"]["requests"]["memory"] == names["rpc-mesh-alt"]["resources"]["requests"]["memory"] == "1Mi"
    skipped = _inject(_tiny("500m", "2097151"), policy)
    assert skipped.skip_code == "pod_too_small" and "memory" in skipped.reason


# -- variants --------------------------------------------------------------------------
def test_the_swap_variant_exposes_both_slots_limits_on_the_node() -> None:
    policy = slotted(with_resources(variant="swap"), rpc_mesh={"hot": True})
    original = java_pod()
    result = _inject(original, policy)
    assert result.record is not None and result.record.variant == "swap" and result.record.exposure == "node"
    before, after = ref.effective_limits(original), ref.effective_limits(result.pod)
    slots = [c for c in ref.sidecar_containers(result.pod, {"rpc-mesh", "rpc-mesh-alt", "msg-mesh"})]
    added = {n: sum((ref.limits_of(c)[n] for c in slots), start=ref.quantity("0")) for n in ref.NAMES}
    assert after == {n: before[n] + added[n] for n in ref.NAMES}   # 4200m + 2 x 1050m + 200m, ...
    assert {n: v.units for n, v in result.record.node_exposure().items()} == added
    assert "resources" not in result.pod["spec"]


def test_a_guaranteed_pod_stays_guaranteed_through_the_pod_level_variant() -> None:
    p = pod([container("app", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})])
    result = _inject(p, slotted(rpc_mesh={"hot": True}, msg_mesh={"dormant": True}))
    assert result.injected and result.record is not None and result.record.variant == "pod-level"
    assert ref.qos_class(result.pod) == "Guaranteed"


def test_a_guaranteed_pod_without_pod_level_resources_is_skipped_not_changed() -> None:
    p = pod([container("app", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})])
    policy = slotted(with_resources(variant="swap", pod_level_resources=False), rpc_mesh={"hot": True})
    result = _inject(p, policy)
    assert not result.injected and result.skip_code == "qos_change"


def test_a_pods_own_pod_level_request_holds_with_hot_slots() -> None:
    p = pod([container("app", {"cpu": "1", "memory": "1Gi"}, {"cpu": "2", "memory": "2Gi"})],
            pod_requests={"cpu": "1500m", "memory": "1536Mi"}, pod_limits={"cpu": "2", "memory": "2Gi"})
    result = _inject(p, slotted(rpc_mesh={"hot": True}))
    assert result.injected
    assert result.pod["spec"]["resources"] == p["spec"]["resources"]


def test_additive_mode_splits_the_sidecars_size() -> None:
    result = _inject(java_pod(), slotted(with_resources(mode="additive", qos_change="allow"), rpc_mesh={"hot": True}),
                     keeps_r=False)
    names = _by_name(result.pod)
    # additive: request = limit = S = 1050m, split 525m + 525m; each slot's limit is S
    assert names["rpc-mesh"]["resources"]["requests"]["cpu"] == names["rpc-mesh-alt"]["resources"]["requests"]["cpu"] == "525m"
    assert names["rpc-mesh-alt"]["resources"]["limits"]["cpu"] == "1050m"
    # the leak is one sidecar's size (the slots' requests), not two: 1050m + msg-mesh's 200m
    grown = ref.effective_requests(result.pod)["cpu"] - ref.effective_requests(java_pod())["cpu"]
    assert grown == ref.quantity("1250m") and result.record is not None
    assert result.record.leak["cpu"].units == grown


# -- collisions ------------------------------------------------------------------------
def test_a_pod_container_named_like_the_alt_slot_is_a_clear_skip() -> None:
    p = java_pod()
    p["spec"]["containers"].append(container("rpc-mesh-alt", {"cpu": "10m"}))
    result = _inject(p, slotted(rpc_mesh={"hot": True}))
    assert result.skip_code == "container_name_conflict" and "'rpc-mesh-alt'" in result.reason
    assert _inject(p, slotted()).injected, "without hot upgrades the name is free"


def test_a_pod_volume_named_like_the_handoff_volume_is_a_clear_skip() -> None:
    p = java_pod()
    p["spec"]["volumes"] = [{"name": "meshfit-rpc-mesh-handoff", "configMap": {"name": "x"}}]
    result = _inject(p, slotted(rpc_mesh={"hot": True}))
    assert result.skip_code == "volume_conflict" and "meshfit-rpc-mesh-handoff" in result.reason


def test_slots_work_with_the_policy_fragments_copied_not_shared() -> None:
    policy = slotted(rpc_mesh={"hot": True})
    a = _inject(java_pod("a"), policy).pod
    b = _inject(java_pod("b"), policy).pod
    _by_name(a)["rpc-mesh-alt"]["env"].append({"name": "X", "value": "1"})
    assert "X" not in _env(_by_name(b)["rpc-mesh-alt"])
    assert policy.sidecars[0].env == dataclasses.replace(policy.sidecars[0]).env


@pytest.mark.parametrize(("body", "message"), [
    ('{"sidecars":[{"name":"a","slots":["a","a-alt"],"live":["a"]}]}', "sidecars[0].live: ['a'] is not one of its slots"),
    ('{"sidecars":[{"name":"a","slots":["a","a-alt"],"live":"b"}]}', "sidecars[0].live: 'b' is not one of its slots"),
    ('{"sidecars":[{"name":"a","active":"no"}]}', "sidecars[0].active: true or false"),
])
def test_a_status_that_does_not_parse_names_the_field(body: str, message: str) -> None:
    with pytest.raises(StatusError) as info:
        parse_status(body)
    assert str(info.value).startswith(message)
