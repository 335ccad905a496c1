"""Verdicts remembered for identical pods: same answers, dropped whenever an input may have changed."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import orjson
import pytest
from webhook_samples import POLICY_FILE, container, pod, pod_shapes, review

from policy.inject import Namespace, inject
from policy.load import load_policy_file
from policy.model import NamespacePolicy, Policy, SidecarOverride
from webhook import answer_cache, mutate
from webhook.answer_cache import AnswerCache
from webhook.mutate import admit
from webhook.review import parse_review

SHAPES = pod_shapes()


@pytest.fixture
def policy() -> Policy:
    return load_policy_file(POLICY_FILE)


def run(doc: dict, policy: Policy, cache: AnswerCache, resolve=lambda n: Namespace(n, None, None)):  # noqa: ANN001
    return admit(parse_review(orjson.dumps(doc)), policy, resolve, cache)


def test_replicas_of_one_replicaset_share_a_verdict(policy: Policy) -> None:
    cache = AnswerCache()
    replica = SHAPES["generate-name-only"]
    first = run(review(replica, uid="a"), policy, cache)
    second = run(review(replica, uid="b", api_version="admission.k8s.io/v1beta1"), policy, cache)
    uncached = admit(parse_review(orjson.dumps(review(replica, uid="b", api_version="admission.k8s.io/v1beta1"))),
                     policy, lambda n: Namespace(n, None, None))
    assert not first.cached and second.cached
    assert second.body == uncached.body, "a cached answer is byte-for-byte the uncached one"
    assert orjson.loads(second.body)["response"]["uid"] == "b"
    assert second.sidecars == first.sidecars
    assert (cache.hits, cache.misses) == (1, 1)


def test_skips_are_remembered_too(policy: Policy) -> None:
    cache = AnswerCache()
    run(review(SHAPES["host-network"]), policy, cache)
    again = run(review(SHAPES["host-network"]), policy, cache)
    assert again.cached and again.result == mutate.SKIPPED and again.skip_label == "host_network" and again.warnings


def test_a_new_policy_object_drops_everything(policy: Policy) -> None:
    cache = AnswerCache()
    run(review(SHAPES["burstable"]), policy, cache)
    stopped = dataclasses.replace(policy, emergency=dataclasses.replace(policy.emergency, stop_injection=True))
    outcome = run(review(SHAPES["burstable"]), stopped, cache)
    assert not outcome.cached and outcome.result == mutate.SKIPPED


def test_namespace_labels_and_policy_are_part_of_the_key(policy: Policy) -> None:
    cache = AnswerCache()
    doc = review(SHAPES["burstable"])
    enabled = {"meshfit.io/inject": "enabled"}
    assert run(doc, policy, cache, lambda n: Namespace(n, enabled, None)).result == mutate.INJECTED
    assert run(doc, policy, cache, lambda n: Namespace(n, {}, None)).result == mutate.SKIPPED
    ns_policy = NamespacePolicy("shop", "r1", {"msg-mesh": SidecarOverride(enabled=False)})
    outcome = run(doc, policy, cache, lambda n: Namespace(n, enabled, ns_policy))
    assert not outcome.cached and [s for s, _, _ in outcome.sidecars] == ["rpc-mesh"]
    other = NamespacePolicy("shop", "r2", {})
    outcome = run(doc, policy, cache, lambda n: Namespace(n, enabled, other))
    assert not outcome.cached and len(outcome.sidecars) == 2


def _experiment_pods(policy: Policy) -> tuple[dict, dict]:
    """A pod the expiring experiment rule wins for, and one it does not (by the engine's own bucketing)."""
    from policy.inject import inject

    won = lost = None
    for i in range(400):
        p = pod(f"exp-{i}", [container("app", "1", "1Gi")])
        choice = inject(p, Namespace("shop", None), policy).versions["rpc-mesh"]
        if choice.source == "experiment" and won is None:
            won = p
        elif choice.source == "baseline" and lost is None:
            lost = p
        if won is not None and lost is not None:
            return won, lost
    raise AssertionError("no pod in the experiment's bucket among 400")


def test_an_answer_expires_when_its_winning_rule_does(policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = next(r for r in policy.versions.rules if r.type == "experiment" and r.expires is not None)
    won, lost = _experiment_pods(policy)
    cache = AnswerCache()
    for p in (won, lost):
        run(review(p), policy, cache)
        assert run(review(p), policy, cache).cached
    monkeypatch.setattr(answer_cache.time, "time", lambda: rule.expires.timestamp())
    assert not run(review(won), policy, cache).cached, "at the expiry the experiment's pod is answered afresh"
    assert run(review(lost), policy, cache).cached, "a pod the rule never won for keeps its answer"


def test_the_engine_says_when_its_answer_expires(policy: Policy) -> None:
    from policy.inject import inject

    rule = next(r for r in policy.versions.rules if r.type == "experiment" and r.expires is not None)
    won, lost = _experiment_pods(policy)
    assert inject(won, Namespace("shop", None), policy).valid_until == rule.expires.timestamp()
    assert inject(lost, Namespace("shop", None), policy).valid_until == float("inf")


def test_engine_failures_are_not_remembered(policy: Policy) -> None:
    cache = AnswerCache()
    bad = review(pod("broken", [container("app", "lots")]))
    assert run(bad, policy, cache).result == mutate.ADMITTED_ON_ERROR
    assert run(bad, policy, cache).result == mutate.ADMITTED_ON_ERROR
    assert len(cache) == 0


def test_size_bounds(policy: Policy) -> None:
    cache = AnswerCache(entries=3)
    for i in range(5):
        run(review(pod(f"p{i}", [container("app", "1", "1Gi")])), policy, cache)
    assert len(cache) == 3
    big = SHAPES["giant-env"]
    assert cache.key(big, "shop", None, None) is not None  # 1,500 env vars still fit
    huge = {**big, "spec": {**big["spec"], "containers": [{**big["spec"]["containers"][0],
                                                            "args": ["x" * 300_000]}]}}
    assert cache.key(huge, "shop", None, None) is None


def _with_managed_fields(original: dict, second: int) -> dict:
    stamped = copy.deepcopy(original)
    stamped["metadata"]["managedFields"] = [{
        "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
        "time": f"2026-11-25T08:00:{second:02d}Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}},
    }]
    return stamped


def test_managed_fields_stamped_per_second_still_hit(policy: Policy) -> None:
    cache = AnswerCache()
    replica = SHAPES["generate-name-only"]
    run(review(_with_managed_fields(replica, 1)), policy, cache)
    assert run(review(_with_managed_fields(replica, 2)), policy, cache).cached


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_engine_never_reads_managed_fields(shape: str, policy: Policy) -> None:
    """What lets the cache leave managedFields out of its key."""
    plain = copy.deepcopy(SHAPES[shape])
    plain["metadata"].pop("managedFields", None)
    namespace = Namespace(plain["metadata"].get("namespace", "default"), None, None)
    now = dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc)
    without = inject(plain, namespace, policy, now=now)
    with_fields = inject(_with_managed_fields(plain, 7), namespace, policy, now=now)
    assert (with_fields.injected, with_fields.patch, with_fields.warnings) == (without.injected, without.patch, without.warnings)


def _with_token_volume(original: dict, suffix: str) -> dict:
    """As the ServiceAccount admission plugin leaves a pod: a token volume with a random name, mounted."""
    pod_ = copy.deepcopy(original)
    name = f"kube-api-access-{suffix}"
    pod_["spec"]["volumes"] = [*pod_["spec"].get("volumes", []),
                               {"name": name, "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    for c in pod_["spec"]["containers"]:
        c["volumeMounts"] = [*c.get("volumeMounts", []),
                             {"name": name, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}]
    return pod_


def test_token_volume_names_do_not_split_replicas(policy: Policy) -> None:
    cache = AnswerCache()
    replica = SHAPES["generate-name-only"]
    first = run(review(_with_token_volume(replica, "9l5st")), policy, cache)
    second_pod = _with_token_volume(replica, "n6vqq")
    second = run(review(second_pod), policy, cache)
    assert second.cached
    uncached = admit(parse_review(orjson.dumps(review(second_pod))), policy, lambda n: Namespace(n, None, None))
    assert orjson.loads(second.body)["response"]["patch"] == orjson.loads(uncached.body)["response"]["patch"]
    assert first.sidecars == second.sidecars


def test_a_patch_naming_the_token_volume_is_never_kept(policy: Policy) -> None:
    from webhook.answer_cache import Verdict
    from webhook.review import encode_patch

    cache = AnswerCache()
    key = cache.key(_with_token_volume(SHAPES["burstable"], "abcde"), "shop", None, None)
    patch = encode_patch([{"op": "add", "path": "/spec/initContainers/0/volumeMounts",
                           "value": [{"name": "kube-api-access-abcde", "mountPath": "/t"}]}])
    cache.put(key, policy, Verdict(True, patch, (), "", "", (), None))
    assert len(cache) == 0
