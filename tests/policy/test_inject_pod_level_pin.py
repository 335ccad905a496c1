"""A pod with pod-level limits and no pod-level request for a resource, injected without overcommit.

The apiserver defaults a missing pod-level request to the containers'
aggregate where some container requests the resource, else to the pod-level
limit; the sidecars' requests would move that default, so injection writes it
out as it stood. Expected values are the defaulting rule applied by hand.
"""

from __future__ import annotations

from policies import with_resources

from policy.decision import Namespace
from policy.inject import inject

NS = Namespace("shop", None)


def pod(resources: dict, app: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t", "labels": {"app": "x"}},
            "spec": {"resources": resources, "containers": [{"name": "app", "image": "x", "resources": app}]}}


def test_a_missing_pod_level_memory_request_is_pinned_at_the_limit_no_container_requests_it() -> None:
    result = inject(pod({"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "2"}}, {"limits": {"cpu": "1"}}),
                    NS, with_resources(mode="additive"))
    assert result.injected
    assert result.pod["spec"]["resources"] == {"limits": {"cpu": "2", "memory": "2Gi"},
                                               "requests": {"cpu": "2", "memory": "2Gi"}}


def test_a_missing_pod_level_cpu_request_is_pinned_in_its_decimal_form() -> None:
    result = inject(pod({"limits": {"cpu": "1500m", "memory": "2Gi"}, "requests": {"memory": "1Gi"}}, {}),
                    NS, with_resources(mode="additive"))
    assert result.injected
    assert result.pod["spec"]["resources"] == {"limits": {"cpu": "1500m", "memory": "2Gi"},
                                               "requests": {"cpu": "1500m", "memory": "1Gi"}}


def test_pod_level_requests_given_for_both_resources_are_left_as_written() -> None:
    given = {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "1800m", "memory": "1536Mi"}}
    result = inject(pod(given, {}), NS, with_resources(mode="additive"))
    assert result.injected and result.pod["spec"]["resources"] == given


def test_pod_level_requests_given_in_another_form_are_not_rewritten() -> None:
    given = {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "1.8", "memory": "1610612736"}}
    result = inject(pod(given, {}), NS, with_resources(mode="additive"))
    assert result.injected and result.pod["spec"]["resources"] == given
