"""The injection issue's pod shapes, injected by the real engine, through the extender's cache and verbs.

Whatever the shape (init-heavy, existing native sidecars, overhead, limits only,
BestEffort, pod-level resources) and whatever the mode, the node is charged
exactly ``R(pod)`` of the injected pod, its exposure is exactly the recorded
node-level overcommit, and filter judges the pod by them.
"""

from __future__ import annotations

from typing import Any

import pytest
from extender_shapes import bound, node, policy_with

from extender.cache import ClusterCache
from extender.scoring import Scorer
from policy.decision import Namespace
from policy.inject import inject
from policy.pod_accounting import account_pod
from policy.pod_entry import reduce_pod
from policy.record import parse_record
from policy.resources import pod_requests


def c(name: str, req: dict[str, str] | None = None, lim: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if req:
        res["requests"] = req
    if lim:
        res["limits"] = lim
    return {"name": name, "image": f"example/{name}:1", "resources": res, **extra}


def shape(containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": containers, **spec}
    if init:
        body["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "uid": "u-p"}, "spec": body}


SHAPES = {
    "plain": shape([c("app", {"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})]),
    "init-heavy": shape([c("app", {"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
                        [c("migrate", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})]),
    "native-sidecar-and-overhead": shape(
        [c("app", {"cpu": "1", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"})],
        [c("log-agent", {"cpu": "100m", "memory": "128Mi"}, {"cpu": "1", "memory": "1Gi"}, restartPolicy="Always")],
        overhead={"cpu": "250m", "memory": "160Mi"}),
    "limits-only": shape([c("app", lim={"cpu": "1", "memory": "2Gi"})]),
    "best-effort": shape([c("app")]),
    "pod-level": shape([c("app", {"cpu": "500m", "memory": "1Gi"})],
                       resources={"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}),
}
MODES = {
    "swap": policy_with(variant="swap"),
    "pod-level": policy_with(variant="pod-level"),
    "additive": policy_with(mode="additive"),
    "carve": policy_with(mode="carve"),
}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_shape_is_charged_exactly_what_its_record_says(name: str, mode: str) -> None:
    result = inject(SHAPES[name], Namespace("shop", None), MODES[mode])
    assert result.injected, f"{name} under {mode} is not injected: {result.reason}"
    pod = bound(result.pod, "node-a")
    cache = ClusterCache()
    cache.sync_nodes([node("node-a", "8", "16Gi")])
    cache.sync_pods([pod])
    state = cache.nodes["node-a"]
    requests = pod_requests(pod)
    assert (state.req_cpu, state.req_memory) == (requests["cpu"].nanos, requests["memory"].nanos)

    record = parse_record(pod["metadata"]["annotations"]["meshfit.io/accounting"])
    exposure = record.node_exposure()
    assert (state.exp_cpu, state.exp_memory) == (
        exposure["cpu"].nanos if "cpu" in exposure else 0, exposure["memory"].nanos if "memory" in exposure else 0)
    recorded_leak = [record.leak[r].nanos if r in record.leak else 0 for r in ("cpu", "memory")]
    assert (state.leak or {}).get("shop", [0, 0]) == recorded_leak
    if mode == "swap" and result.record and result.record.variant == "swap":
        assert state.exp_cpu > 0  # swap puts the sidecars' sizes on the node

    # Filter judges it (it carries a record) by exactly these figures.
    acc = account_pod(result.pod)
    entry = reduce_pod(result.pod).unplaced()
    scorer = Scorer(MODES[mode].scheduling)
    assert scorer.judged(entry, acc.mesh == "meshfit")
    tiny = ClusterCache()
    tiny.sync_nodes([node("tiny", "100m", "64Mi")])
    failure = scorer.check(entry, tiny.nodes["tiny"])
    assert failure is not None and (failure.reason == "exposure" or failure.message.startswith("pod does not fit"))
