"""A pod with a quantity no cluster can hold gets a clean decision and a reason, never a traceback.

The apiserver stores ``requests.cpu: "1e1000000"``; the webhook must admit it
unmeshed (``failClosed: false``) with a warning naming the field, or deny it
with the same words (``failClosed: true``) — and the next pod is served as if
nothing happened.
"""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from webhook_samples import POLICY_FILE, container, pod, review

from policy.inject import Namespace
from policy.load import load_policy_file
from policy.model import Policy
from webhook import mutate
from webhook.mutate import admit
from webhook.review import parse_review


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_file(POLICY_FILE)


def _answer(p: dict, policy: Policy) -> tuple[mutate.Outcome, dict]:
    outcome = admit(parse_review(orjson.dumps(review(p))), policy, lambda name: Namespace(name, None, None))
    return outcome, orjson.loads(outcome.body)["response"]


@pytest.mark.parametrize("value", ["1e1000000", "9223372036854775808", "8Ei", "1e+30"])
def test_a_quantity_beyond_kubernetes_is_admitted_unmeshed_with_its_field(value: object, policy: Policy) -> None:
    bad = pod("bad", [container("app", value, "1Gi")])
    outcome, response = _answer(bad, policy)
    assert outcome.result == mutate.ADMITTED_ON_ERROR and outcome.unexpected is None, "a named error, no traceback"
    assert response["allowed"] is True and "patch" not in response
    assert any("spec.containers[0].resources.requests.cpu" in w and "beyond what Kubernetes can hold" in w
               for w in response["warnings"]), response
    good = pod("good", [container("app", "1", "1Gi")])
    assert _answer(good, policy)[0].result == mutate.INJECTED


def test_fail_closed_denies_with_the_same_reason(policy: Policy) -> None:
    closed = dataclasses.replace(policy, injection=dataclasses.replace(policy.injection, fail_closed=True))
    outcome, response = _answer(pod("bad", [container("app", "1e1000000")]), closed)
    assert outcome.result == mutate.DENIED and response["allowed"] is False
    assert "beyond what Kubernetes can hold" in response["status"]["message"]


def test_a_json_number_too_large_for_a_quantity_is_refused_the_same_way(policy: Policy) -> None:
    body = orjson.dumps(review(pod("bad", [container("app", "CPU", "1Gi")]))).replace(b'"CPU"', b"1" + b"0" * 30)
    outcome = admit(parse_review(body), policy, lambda name: Namespace(name, None, None))
    assert outcome.result == mutate.ADMITTED_ON_ERROR and outcome.unexpected is None
    assert "beyond what Kubernetes can hold" in outcome.error
