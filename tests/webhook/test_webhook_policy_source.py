"""Live policy: good updates apply, bad ones are refused and the last good policy keeps serving."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml
from webhook_samples import POLICY_FILE

from serving.policy_source import PolicyFile, global_configmap_handlers
from serving.namespace_policies import LivePolicy, namespace_configmap_handlers

GLOBAL_CM = yaml.safe_load(POLICY_FILE.read_text())
POLICY_TEXT = GLOBAL_CM["data"]["policy.yaml"]


def with_policy_text(text: str, *, namespace: str = "meshfit-system", name: str = "meshfit-policy") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "data": {"policy.yaml": text},
    }


def stopped(text: str = POLICY_TEXT) -> str:
    return text.replace("stopInjection: false", "stopInjection: true")


BROKEN = POLICY_TEXT.replace("mode: overcommit", "mode: overcommitt")


def namespace_cm(namespace: str, body: str) -> dict:
    return with_policy_text(body, namespace=namespace)


NS_DISABLE_MSG = """
apiVersion: meshfit.io/v1alpha1
kind: NamespacePolicy
sidecars:
  msg-mesh: {enabled: false}
"""
NS_BAD = """
apiVersion: meshfit.io/v1alpha1
kind: NamespacePolicy
sidecars:
  rpc-mesh: {version: "9.9.9"}
"""


def test_a_valid_update_replaces_the_policy() -> None:
    live = LivePolicy()
    assert live.offer_text(POLICY_TEXT, "file")
    first = live.policy
    assert first is not None and not first.emergency.stop_injection
    assert live.offer_text(stopped(), "file")
    assert live.policy is not None and live.policy.emergency.stop_injection
    assert live.policy.revision != first.revision
    assert live.loads == 2 and live.rejections == 0


def test_an_invalid_update_keeps_the_last_good_policy(caplog: pytest.LogCaptureFixture) -> None:
    live = LivePolicy()
    live.offer_text(POLICY_TEXT, "file")
    good = live.policy
    with caplog.at_level(logging.ERROR):
        assert not live.offer_text(BROKEN, "file")
    assert live.policy is good
    assert live.rejected is not None
    assert "resources.mode" in live.rejected.message
    assert live.rejections == 1
    assert any("resources.mode" in r.getMessage() for r in caplog.records), "path-qualified errors are logged"
    # Reverting to the policy in force clears the refusal without a reload.
    assert not live.offer_text(POLICY_TEXT, "file")
    assert live.rejected is None and live.policy is good


def test_unchanged_text_is_not_a_reload() -> None:
    live = LivePolicy()
    live.offer_text(POLICY_TEXT, "file")
    assert not live.offer_text(POLICY_TEXT, "file")
    assert live.loads == 1


async def test_global_configmap_handlers() -> None:
    live = LivePolicy()
    handlers = global_configmap_handlers(live, "meshfit-system", "meshfit-policy")
    await handlers.on_sync([], "1")
    assert live.policy is None and live.rejected is not None and "not found" in live.rejected.message
    await handlers.on_sync([GLOBAL_CM], "2")
    assert live.policy is not None and live.rejected is None
    good = live.policy
    await handlers.on_event("MODIFIED", with_policy_text(BROKEN))
    assert live.policy is good and live.rejected is not None
    await handlers.on_event("MODIFIED", with_policy_text(stopped()))
    assert live.policy is not good and live.policy.emergency.stop_injection and live.rejected is None
    current = live.policy
    await handlers.on_event("DELETED", with_policy_text(stopped()))
    assert live.policy is current, "a deleted ConfigMap keeps the last good policy"
    assert live.rejected is not None and "deleted" in live.rejected.message
    await handlers.on_event("MODIFIED", with_policy_text(POLICY_TEXT, name="other"))
    assert live.policy is current, "other ConfigMaps are ignored"


def test_a_label_edit_of_the_configmap_is_not_a_reload() -> None:
    live = LivePolicy()
    live.offer_configmap(GLOBAL_CM)
    relabelled = {**GLOBAL_CM, "metadata": {**GLOBAL_CM["metadata"], "labels": {"x": "y"}}}
    assert not live.offer_configmap(relabelled)
    assert live.loads == 1


async def test_namespace_policies_follow_their_configmaps() -> None:
    live = LivePolicy()
    live.offer_configmap(GLOBAL_CM)
    handlers = namespace_configmap_handlers(live, skip=("meshfit-system", "meshfit-policy"))
    await handlers.on_sync([GLOBAL_CM, namespace_cm("shop", NS_DISABLE_MSG)], "5")
    assert set(live.namespace_policies) == {"shop"}, "the global ConfigMap is not a namespace policy"
    assert live.namespace_policy("shop").sidecars["msg-mesh"].enabled is False
    good = live.namespace_policy("shop")

    await handlers.on_event("MODIFIED", namespace_cm("shop", NS_BAD))
    assert live.namespace_policy("shop") is good, "an invalid update keeps the namespace's last good policy"
    assert "shop" in live.namespace_rejections
    assert "9.9.9" in live.namespace_rejections["shop"].message

    await handlers.on_event("ADDED", namespace_cm("bank", NS_BAD))
    assert live.namespace_policy("bank") is None and "bank" in live.namespace_rejections

    await handlers.on_event("DELETED", namespace_cm("shop", NS_BAD))
    assert live.namespace_policy("shop") is None and "shop" not in live.namespace_rejections

    await handlers.on_sync([], "9")
    assert live.namespace_policies == {} and live.namespace_rejections == {}


async def test_namespace_policies_wait_for_the_global_policy_and_are_reread_on_its_change() -> None:
    live = LivePolicy()
    handlers = namespace_configmap_handlers(live)
    await handlers.on_event("ADDED", namespace_cm("shop", NS_DISABLE_MSG))
    assert live.namespace_policy("shop") is None
    live.offer_configmap(GLOBAL_CM)
    assert live.namespace_policy("shop") is not None
    # A global policy without msg-mesh makes the namespace override invalid: it is re-read and refused.
    without_msg = yaml.safe_load(POLICY_TEXT)
    without_msg["sidecars"] = [s for s in without_msg["sidecars"] if s["name"] != "msg-mesh"]
    del without_msg["versions"]["sidecars"]["msg-mesh"]
    live.offer_text(yaml.safe_dump(without_msg), "file")
    assert live.rejected is None
    assert "shop" in live.namespace_rejections


def test_policy_file_polls_by_content(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_FILE.read_text())
    live = LivePolicy()
    source = PolicyFile(live, path, interval=0.05)
    assert source.check_now()
    assert not source.check_now()
    path.write_text(stopped(POLICY_FILE.read_text()))
    assert source.check_now()
    assert live.policy.emergency.stop_injection
    path.write_text("{{{")
    assert not source.check_now()
    assert live.rejected is not None and "YAML" in live.rejected.message
    assert live.policy.emergency.stop_injection
    path.unlink()
    assert not source.check_now()
    assert "cannot read" in live.rejected.message
    assert live.policy is not None


async def test_policy_file_run_applies_changes_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_FILE.read_text())
    live = LivePolicy()
    source = PolicyFile(live, path, interval=0.02)
    source.check_now()
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    path.write_text(stopped(POLICY_FILE.read_text()))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if live.policy.emergency.stop_injection:
            break
    assert live.policy.emergency.stop_injection
    stop.set()
    await asyncio.wait_for(task, 1)


async def test_a_slow_namespace_policy_is_parsed_off_the_loop_and_refused_past_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    import time

    import serving.namespace_policies as source

    live = LivePolicy()
    live.offer_configmap(GLOBAL_CM)
    live.parse_timeout = 0.3
    real = source.namespace_policy_from_configmap

    def slow(configmap, policy):  # noqa: ANN001, ANN202
        end = time.perf_counter() + 2.0
        while time.perf_counter() < end:
            pass
        return real(configmap, policy)

    monkeypatch.setattr(source, "namespace_policy_from_configmap", slow)
    handlers = namespace_configmap_handlers(live, skip=("meshfit-system", "meshfit-policy"))
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(ticking())
    await handlers.on_event("ADDED", namespace_cm("shop", NS_DISABLE_MSG))
    ticker.cancel()
    assert ticks >= 10, "the event loop kept running while the namespace policy parsed"
    assert live.namespace_policy("shop") is None
    assert "took longer than 0.3s to parse" in live.namespace_rejections["shop"].message
