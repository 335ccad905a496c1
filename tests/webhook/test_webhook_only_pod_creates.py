"""Only a Pod CREATE on the pod itself is ever mutated: each other shape of review, one field away.

Each case changes exactly one field of a review that *would* be injected, so a
guard that let any of them through (or that checked the wrong field) fails here.
"""

from __future__ import annotations

import orjson
import pytest
from webhook_samples import POLICY_FILE, container, pod, review

from policy.inject import Namespace
from policy.load import load_policy_file
from webhook import mutate
from webhook.mutate import admit
from webhook.review import parse_review

POLICY = load_policy_file(POLICY_FILE)
MESHABLE = pod("web", [container("app", "1", "1Gi")])


def _outcome(doc: dict) -> tuple[mutate.Outcome, dict]:
    outcome = admit(parse_review(orjson.dumps(doc)), POLICY, lambda name: Namespace(name, None, None))
    return outcome, orjson.loads(outcome.body)["response"]


def test_the_baseline_review_is_injected() -> None:
    outcome, response = _outcome(review(MESHABLE))
    assert outcome.result == mutate.INJECTED and "patch" in response


@pytest.mark.parametrize("changes", [
    {"operation": "UPDATE"},
    {"operation": "DELETE"},
    {"operation": "CONNECT"},
    {"sub_resource": "ephemeralcontainers"},
    {"sub_resource": "status"},
    {"sub_resource": "binding"},
    {"kind": ("", "v1", "Binding")},
    {"kind": ("apps", "v1", "Pod")},
    {"resource": "pods/ephemeralcontainers"},
    {"resource": "bindings"},
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_any_other_review_passes_untouched(changes: dict) -> None:
    outcome, response = _outcome(review(MESHABLE, **changes))
    assert response["allowed"] is True
    assert "patch" not in response and outcome.result != mutate.INJECTED, changes
