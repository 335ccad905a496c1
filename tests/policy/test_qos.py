"""The QoS class and the static CPU manager's candidates, against the rules of ComputePodQOS written out.

Each case states its expected class from Kubernetes' rules (the comment says
which), and the property test holds policy/qos.py to tests/reference.py.
"""

from __future__ import annotations

import pytest
import reference as ref
from hypothesis import given
from podshapes import container, pod
from policies import with_resources
from test_inject_properties import pods

from policy.decision import Namespace
from policy.inject import inject
from policy.qos import exclusive_cpu_candidate, pod_qos

G = {"cpu": "1", "memory": "1Gi"}


@pytest.mark.parametrize(("shape", "expected"), [
    (pod([container("a")]), "BestEffort"),                                          # nothing requested
    (pod([container("a", {"cpu": "0", "memory": "0"})]), "BestEffort"),             # zeros do not count
    (pod([container("a", G, G)]), "Guaranteed"),                                     # requests == limits
    (pod([container("a", None, G)]), "Guaranteed"),                                  # requests default to limits
    (pod([container("a", G, {"cpu": "2", "memory": "1Gi"})]), "Burstable"),          # request below limit
    (pod([container("a", G, G), container("b")]), "Burstable"),                      # one container without limits
    (pod([container("a", G, G)], [container("i", G, {"cpu": "1"})]), "Burstable"),    # an init container lacks a memory limit
    (pod([container("a", {"cpu": "1"}, {"cpu": "1"})]), "Burstable"),                # memory limit missing
    (pod([container("a", {"cpu": "100m"})], pod_requests=G, pod_limits=G), "Guaranteed"),   # pod-level decides
    (pod([container("a", G, G)], pod_requests={"cpu": "1"}), "Burstable"),           # pod-level without limits
    (pod([container("a", {"cpu": "100m"})], pod_limits=G), "Burstable"),             # pod request = container aggregate
    (pod([container("a", {"cpu": "1n"})]), "Burstable"),                             # the smallest request counts
    (pod([container("a")], pod_requests={"cpu": "0"}), "BestEffort"),                # a pod-level zero does not
    (pod([container("a")], pod_requests={"cpu": "1n"}), "Burstable"),                # a pod-level 1n does
    (pod([container("a")], pod_requests={"cpu": "1"}, pod_limits={"cpu": "1"}), "Burstable"),  # pod-level limits lack memory
])
def test_the_class_kubernetes_gives(shape: dict, expected: str) -> None:
    assert pod_qos(shape) == ref.qos_class(shape) == expected


@given(pods())
def test_qos_agrees_with_the_reference(p: dict) -> None:
    assert pod_qos(p) == ref.qos_class(p)


@pytest.mark.parametrize(("shape", "candidate"), [
    (pod([container("a", {"cpu": "2", "memory": "1Gi"}, {"cpu": "2", "memory": "1Gi"})]), True),
    (pod([container("a", {"cpu": "1500m", "memory": "1Gi"}, {"cpu": "1500m", "memory": "1Gi"})]), False),
    (pod([container("a", {"cpu": "2", "memory": "1Gi"}, {"cpu": "3", "memory": "1Gi"})]), False),   # Burstable
    (pod([container("a", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "500m", "memory": "1Gi"}),
          container("b", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})]), True),    # one whole-core container
    (pod([container("a", None, {"cpu": "1", "memory": "1Gi"})]), True),                            # limits only
])
def test_exclusive_cpu_candidates(shape: dict, candidate: bool) -> None:
    assert exclusive_cpu_candidate(shape) is candidate


def test_exclusive_cpu_pods_are_noted_or_skipped_as_the_policy_says() -> None:
    whole = pod([container("a", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})])
    noted = inject(whole, Namespace("shop", None), with_resources(exclusive_cpu_pods="inject"))
    assert noted.injected and any("exclusive cores" in n for n in noted.notes)
    skipped = inject(whole, Namespace("shop", None), with_resources(exclusive_cpu_pods="skip"))
    assert not skipped.injected and skipped.skip_code == "exclusive_cpu" and skipped.warnings
    fraction = pod([container("a", {"cpu": "1500m", "memory": "2Gi"}, {"cpu": "1500m", "memory": "2Gi"})])
    assert inject(fraction, Namespace("shop", None), with_resources(exclusive_cpu_pods="skip")).injected
    additive = inject(whole, Namespace("shop", None), with_resources(mode="additive", exclusive_cpu_pods="skip"))
    assert additive.injected, "additive leaves the app's requests as they were: its cores stay exclusive"
