"""The engine's input checks: each malformed pod shape raises InjectionError with its exact message.

The webhook returns these messages to whoever applied the pod, so each one is pinned
as written: the field it names, down to the index and the resource.
"""

from __future__ import annotations

from typing import Any

import pytest
from podshapes import container, pod
from policies import default_policy

from policy.decision import Namespace
from policy.inject import InjectionError, inject

SHOP = Namespace("shop", None)
OK = {"name": "a"}


def _spec(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


CASES: list[tuple[str, Any, str]] = [
    ("not an object", [], "a pod must be a JSON object"),
    ("no spec", {}, "pod.spec must be an object"),
    ("spec a list", {"spec": []}, "pod.spec must be an object"),
    ("containers a string", _spec(containers="x"), "spec.containers must be a list"),
    ("initContainers an object", _spec(containers=[OK], initContainers={}), "spec.initContainers must be a list"),
    ("container a string", _spec(containers=["a"]), "spec.containers[0] must be an object with a name"),
    ("second container nameless", _spec(containers=[OK, {"image": "x"}]),
     "spec.containers[1] must be an object with a name"),
    ("container name a number", _spec(containers=[{"name": 3}]), "spec.containers[0] must be an object with a name"),
    ("init container nameless", _spec(containers=[OK], initContainers=[{"name": "i"}, {}]),
     "spec.initContainers[1] must be an object with a name"),
    ("resources a list", _spec(containers=[OK, {"name": "b", "resources": []}]),
     "spec.containers[1].resources must be an object"),
    ("requests a list", _spec(containers=[{"name": "a", "resources": {"requests": []}}]),
     "spec.containers[0].resources.requests must be an object"),
    ("limits a string", _spec(containers=[{"name": "a", "resources": {"limits": "1"}}]),
     "spec.containers[0].resources.limits must be an object"),
    ("bad cpu limit", _spec(containers=[{"name": "a", "resources": {"limits": {"cpu": "one"}}}]),
     "spec.containers[0].resources.limits.cpu: invalid quantity 'one'"),
    ("bad init memory request",
     _spec(containers=[OK], initContainers=[{"name": "i", "resources": {"requests": {"memory": "12 GB"}}}]),
     "spec.initContainers[0].resources.requests.memory: invalid quantity '12 GB'"),
    ("no containers, init containers a string", _spec(initContainers="x"), "spec.initContainers must be a list"),
    ("no containers", _spec(), "spec.containers must not be empty"),
    ("empty containers", _spec(containers=[]), "spec.containers must not be empty"),
    ("pod resources a list", _spec(containers=[OK], resources=[]), "spec.resources must be an object"),
    ("bad pod-level memory limit", _spec(containers=[OK], resources={"limits": {"memory": True}}),
     "spec.resources.limits.memory: quantities must be strings or numbers, got True"),
    ("overhead a list", _spec(containers=[OK], overhead=[]), "spec.overhead must be an object"),
    ("bad overhead cpu", _spec(containers=[OK], overhead={"cpu": "1x"}), "spec.overhead.cpu: invalid quantity '1x'"),
    ("metadata a list", {"metadata": [], "spec": {"containers": [OK]}}, "pod.metadata must be an object"),
]


@pytest.mark.parametrize(("shape", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_each_malformed_shape_raises_its_exact_message(shape: Any, expected: str) -> None:
    with pytest.raises(InjectionError) as info:
        inject(shape, SHOP, default_policy())
    assert str(info.value) == expected


def test_unknown_resources_are_not_parsed() -> None:
    # Only cpu and memory are meshfit's: a malformed ephemeral-storage is the apiserver's to refuse.
    p = pod([container("a", {"cpu": "1", "ephemeral-storage": "lots"})])
    assert inject(p, SHOP, default_policy()).injected


HUGE = "9223372036854775807"  # the largest quantity Kubernetes holds; two of them overflow the aggregate
OVERFLOW = ("quantity '18446744073709551614' is beyond what Kubernetes can hold (at most 9223372036854775807)")


@pytest.mark.parametrize(("metadata", "where"), [
    ({"name": "web-1", "generateName": "web-"}, "shop/web-1"),
    ({"generateName": "web-"}, "shop/web-"),
    ({"name": "", "generateName": "web-"}, "shop/web-"),
    ({"labels": {"app": "web"}}, "shop/<unnamed>"),
    (None, "shop/<unnamed>"),
])
def test_a_quantity_error_past_the_checks_names_the_pod(metadata: dict[str, Any] | None, where: str) -> None:
    p = pod([container("a", {"memory": HUGE}), container("b", {"memory": HUGE})])
    if metadata is None:
        del p["metadata"]
    else:
        p["metadata"] = metadata
    with pytest.raises(InjectionError) as info:
        inject(p, SHOP, default_policy())
    assert str(info.value) == f"pod {where}: {OVERFLOW}"


def test_a_quantity_error_while_reading_the_pod_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first reading of the pod (decision, requests, limits) is wrapped like the injection itself.
    import policy.inject as engine
    from policy.quantity import QuantityError

    def refuse(_pod: dict[str, Any]) -> None:
        raise QuantityError("limits out of reach")

    monkeypatch.setattr(engine, "pod_limits", refuse)
    with pytest.raises(InjectionError) as info:
        inject(pod([container("a", {"cpu": "1"})], name="web-1"), SHOP, default_policy())
    assert str(info.value) == "pod shop/web-1: limits out of reach"
