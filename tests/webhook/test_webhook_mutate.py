"""One admission decision, without a server: the patch is the engine's, and it reproduces ``inject``."""

from __future__ import annotations

import copy
import dataclasses

import jsonpatch
import orjson
import pytest
from webhook_samples import POLICY_FILE, configmap, container, giant_pod, pod, pod_shapes, review

from policy.inject import Namespace, inject
from policy.load import load_policy_file
from policy.model import NamespacePolicy, Policy, SidecarOverride
from webhook import mutate
from webhook.mutate import admit, skip_label
from webhook.review import decode_patch, parse_review

SHAPES = pod_shapes()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_file(POLICY_FILE)


def opted_in(name: str) -> Namespace:
    return Namespace(name, None, None)


def answer(doc: dict, policy: Policy | None, resolve=opted_in) -> tuple[mutate.Outcome, dict]:
    outcome = admit(parse_review(orjson.dumps(doc)), policy, resolve)
    return outcome, orjson.loads(outcome.body)["response"]


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_patch_applied_to_the_request_pod_is_what_inject_gives(shape: str, api_version: str, policy: Policy) -> None:
    original = SHAPES[shape]
    doc = review(original, api_version=api_version)
    outcome, response = answer(doc, policy)
    expected = inject(copy.deepcopy(original), opted_in(doc["request"]["namespace"]), policy)
    assert response["uid"] == doc["request"]["uid"]
    assert response["allowed"] is True
    patch = decode_patch(response)
    if expected.injected:
        assert outcome.result == mutate.INJECTED
        assert patch, shape
        assert jsonpatch.apply_patch(original, patch) == expected.pod
    else:
        assert outcome.result == mutate.SKIPPED
        assert patch is None
        assert expected.pod == original
    assert response.get("warnings", []) == expected.warnings
    assert original == SHAPES[shape], "the request pod must not be modified"


def test_dry_run_is_answered_the_same(policy: Policy) -> None:
    original = SHAPES["burstable"]
    _, wet = answer(review(original, uid="same"), policy)
    _, dry = answer(review(original, uid="same", dry_run=True), policy)
    assert decode_patch(dry) == decode_patch(wet)


def test_reinvocation_of_an_injected_pod_adds_nothing(policy: Policy) -> None:
    original = SHAPES["two-containers"]
    _, first = answer(review(original), policy)
    injected = jsonpatch.apply_patch(original, decode_patch(first))
    outcome, second = answer(review(injected), policy)
    assert outcome.result == mutate.SKIPPED
    assert outcome.skip_label == "already_injected"
    assert "patch" not in second


@pytest.mark.parametrize(
    "doc",
    [
        review(configmap(), kind=("", "v1", "ConfigMap"), resource="configmaps"),
        review(SHAPES["burstable"], sub_resource="status"),
        review(SHAPES["burstable"], operation="UPDATE"),
        review(None, operation="DELETE", namespace="shop"),
        review(SHAPES["burstable"], operation="CONNECT"),
    ],
    ids=["configmap", "status-subresource", "update", "delete", "connect"],
)
def test_everything_but_a_pod_create_passes_unchanged(doc: dict, policy: Policy) -> None:
    outcome, response = answer(doc, policy)
    assert outcome.result == mutate.PASSED
    assert response == {"uid": doc["request"]["uid"], "allowed": True}


def test_namespace_labels_decide_opt_in(policy: Policy) -> None:
    doc = review(SHAPES["burstable"])
    outcome, response = answer(doc, policy, lambda name: Namespace(name, {}, None))
    assert outcome.result == mutate.SKIPPED
    assert outcome.skip_label == "namespace_not_opted_in"
    assert "warnings" not in response  # not opted in is normal: no warning on every pod of the cluster
    labels = {policy.injection.namespace_label: policy.injection.namespace_label_value}
    outcome, _ = answer(doc, policy, lambda name: Namespace(name, labels, None))
    assert outcome.result == mutate.INJECTED


def test_namespace_policy_is_passed_to_the_engine(policy: Policy) -> None:
    ns_policy = NamespacePolicy("shop", "r1", {"msg-mesh": SidecarOverride(enabled=False)})
    resolve = lambda name: Namespace(name, None, ns_policy)  # noqa: E731
    outcome, response = answer(review(SHAPES["burstable"]), policy, resolve)
    assert outcome.result == mutate.INJECTED
    assert [s for s, _, _ in outcome.sidecars] == ["rpc-mesh"]
    expected = inject(SHAPES["burstable"], resolve("shop"), policy)
    assert jsonpatch.apply_patch(SHAPES["burstable"], decode_patch(response)) == expected.pod


def test_emergency_stop_warns(policy: Policy) -> None:
    stopped = dataclasses.replace(policy, emergency=dataclasses.replace(policy.emergency, stop_injection=True, reason="incident 42"))
    outcome, response = answer(review(SHAPES["burstable"]), stopped)
    assert outcome.result == mutate.SKIPPED
    assert outcome.skip_label == "emergency_stop"
    assert "patch" not in response
    assert any("incident 42" in w for w in response["warnings"])


BAD_POD = pod("broken", [container("app", "lots", "1Gi")])


def test_engine_failure_fails_open_with_a_warning(policy: Policy) -> None:
    assert policy.injection.fail_closed is False
    outcome, response = answer(review(BAD_POD), policy)
    assert outcome.result == mutate.ADMITTED_ON_ERROR
    assert response["allowed"] is True and "patch" not in response
    assert "spec.containers[0].resources.requests.cpu" in response["warnings"][0]
    assert "spec.containers[0].resources.requests.cpu" in outcome.error
    assert outcome.unexpected is None


def test_engine_failure_fails_closed_when_the_policy_says(policy: Policy) -> None:
    closed = dataclasses.replace(policy, injection=dataclasses.replace(policy.injection, fail_closed=True))
    outcome, response = answer(review(BAD_POD), closed)
    assert outcome.result == mutate.DENIED
    assert response["allowed"] is False
    assert "fails closed" in response["status"]["message"]
    assert "requests.cpu" in response["status"]["message"]


def test_an_engine_bug_is_handled_like_a_failure(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(mutate, "inject", broken)
    outcome, response = answer(review(SHAPES["burstable"]), policy)
    assert outcome.result == mutate.ADMITTED_ON_ERROR
    assert isinstance(outcome.unexpected, ZeroDivisionError)
    assert response["allowed"] is True


def test_no_policy_yet_admits_unchanged_with_a_warning() -> None:
    outcome, response = answer(review(SHAPES["burstable"]), None)
    assert outcome.result == mutate.NO_POLICY
    assert response["allowed"] is True and "patch" not in response
    assert response["warnings"]


def test_pod_name_for_logs() -> None:
    named = parse_review(orjson.dumps(review(SHAPES["burstable"])))
    generated = parse_review(orjson.dumps(review(SHAPES["generate-name-only"])))
    assert mutate.pod_name(named) == "shop/web"
    assert mutate.pod_name(generated) == "shop/web-7d9f8-*"


@pytest.mark.parametrize(
    ("shape", "label"),
    [
        ("excluded-namespace", "excluded_namespace"),
        ("opt-out-annotation", "pod_opt_out"),
        ("host-network", "host_network"),
    ],
)
def test_skip_labels_are_bounded_categories(shape: str, label: str, policy: Policy) -> None:
    result = inject(SHAPES[shape], opted_in(SHAPES[shape]["metadata"]["namespace"]), policy)
    assert not result.injected
    assert skip_label(result) == label


def test_giant_pod_patch_is_small(policy: Policy) -> None:
    """The patch names the edits; it does not restate the 1,500 env vars."""
    original = giant_pod()
    _, response = answer(review(original), policy)
    patch = decode_patch(response)
    assert len(orjson.dumps(patch)) < len(orjson.dumps(original)) / 10
    assert jsonpatch.apply_patch(original, patch) == inject(original, opted_in("shop"), policy).pod
