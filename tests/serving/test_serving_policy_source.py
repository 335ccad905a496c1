"""The global policy both servers share: what counts as a load, a refusal, and what a layer on top hears."""

from __future__ import annotations

from pathlib import Path

import yaml

from policy.model import Policy
from serving.policy_source import GlobalPolicy, global_configmap_handlers

POLICY_FILE = Path(__file__).resolve().parents[2] / "manifests" / "policy.yaml"
GLOBAL_CM = yaml.safe_load(POLICY_FILE.read_text())
POLICY_TEXT = GLOBAL_CM["data"]["policy.yaml"]
BROKEN = POLICY_TEXT.replace("mode: overcommit", "mode: overcommitt")


class Layer(GlobalPolicy):
    def __init__(self, policy: Policy | None = None) -> None:
        super().__init__(policy, "start")
        self.installed: list[str | None] = []

    def _installed(self, previous: Policy | None) -> None:
        self.installed.append(previous.revision if previous else None)


def test_a_starting_policy_is_not_a_load_and_layers_hear_each_install() -> None:
    start = Policy(revision="start", sidecars=())
    live = Layer(start)
    assert live.loads == 0 and live.revision == "start"
    assert live.offer_text(POLICY_TEXT, "file")
    assert live.loads == 1 and live.installed == ["start"]
    assert not live.offer_text(POLICY_TEXT, "file"), "the same text again is not an update"
    assert live.installed == ["start"]


def test_the_last_refusal_outlives_the_next_good_update() -> None:
    live = GlobalPolicy()
    live.offer_text(POLICY_TEXT, "file")
    assert not live.offer_text(BROKEN, "file")
    assert live.rejected is live.last_rejection and "resources.mode" in live.rejected.message
    assert live.offer_text(POLICY_TEXT.replace("stopInjection: false", "stopInjection: true"), "file")
    assert live.rejected is None
    assert live.last_rejection is not None and "resources.mode" in live.last_rejection.message
    assert (live.loads, live.rejections) == (2, 1)


async def test_an_absent_source_is_a_refusal_unless_a_layer_says_otherwise() -> None:
    live = GlobalPolicy()
    handlers = global_configmap_handlers(live, "meshfit-system", "meshfit-policy")
    await handlers.on_sync([GLOBAL_CM], "1")
    await handlers.on_event("DELETED", GLOBAL_CM)
    assert live.rejected is not None and live.rejected.message.endswith("deleted; keeping the last good policy")

    class Quiet(GlobalPolicy):
        def absent(self, source: str, reason: str) -> None:
            self.told = reason

    quiet = Quiet()
    await global_configmap_handlers(quiet, "meshfit-system", "meshfit-policy").on_sync([], "1")
    assert quiet.told == "not found" and quiet.rejected is None and quiet.rejections == 0
