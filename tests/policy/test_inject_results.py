"""Whole results of the engine, with the figures worked out by hand in the comments."""

from __future__ import annotations

from typing import Any

import pytest
from podshapes import container, pod
from policies import default_policy, with_resources

from policy.decision import Namespace
from policy.inject import inject

SHOP = Namespace("shop", None)


def _resources(p: dict[str, Any]) -> dict[str, Any]:
    return {c["name"]: c.get("resources") for k in ("initContainers", "containers") for c in p["spec"].get(k) or ()}


def test_carving_takes_from_the_app_only_never_from_the_pods_own_native_sidecar() -> None:
    own = pod([container("a", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
              init=[container("own", {"cpu": "500m", "memory": "256Mi"}, {"cpu": "500m", "memory": "256Mi"},
                              restart="Always")])
    result = inject(own, SHOP, with_resources(mode="carve"))
    assert result.injected
    # rpc-mesh: 1/4 of the app allocation's 1.5 cpu = 375m, 1/16 of 1280Mi = 80Mi; msg-mesh fixed 200m, 128Mi.
    # The app gives all 575m and 208Mi: 1000m - 575m = 425m, 1024Mi - 208Mi = 816Mi; "own" keeps its figures.
    assert _resources(result.pod) == {
        "rpc-mesh": {"requests": {"cpu": "375m", "memory": "80Mi"}, "limits": {"cpu": "375m", "memory": "80Mi"}},
        "msg-mesh": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "own": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "a": {"requests": {"cpu": "425m", "memory": "816Mi"}, "limits": {"cpu": "425m", "memory": "816Mi"}},
    }


@pytest.mark.parametrize("kind", ["containers", "initContainers"])
def test_a_container_limit_over_the_pod_level_limit_is_never_admitted(kind: str) -> None:
    # The owner's container (or init container) may burst to 2 cpu inside a 1-cpu pod:
    # Kubernetes refuses such a pod, so meshfit leaves it as it is.
    burst = container("b", {"cpu": "100m"}, {"cpu": "2"})
    p = (pod([container("a", {"cpu": "100m"}), burst], pod_limits={"cpu": "1"}) if kind == "containers"
         else pod([container("a", {"cpu": "100m"})], init=[burst], pod_limits={"cpu": "1"}))
    result = inject(p, SHOP, default_policy())
    assert (result.injected, result.skip_code, result.reason) == (
        False, "pod_too_small", "the sidecars' requests do not fit under the pod's limit")


def test_a_container_limit_at_the_pod_level_limit_is_admitted() -> None:
    p = pod([container("a", {"cpu": "100m"}), container("b", {"cpu": "100m"}, {"cpu": "1"})], pod_limits={"cpu": "1"})
    assert inject(p, SHOP, default_policy()).injected
