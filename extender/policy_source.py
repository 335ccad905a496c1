"""The policy the extender obeys right now: the global policy, with its scorer.

The extender reads only ``scheduling`` (ceilings, weights) and
``emergency.extenderObserveOnly`` from the global policy, but it takes the
policy exactly as the webhook does (:mod:`serving.policy_source`): an
invalid edit is refused with its :class:`~policy.fields.PolicyError` lines
in the log and the last good policy keeps serving, since an emergency switch
flipped in a hurry must never take the scheduler down with a typo.

Two things differ from the webhook. The extender always has a policy (the
schema's defaults until one is loaded), so a policy ConfigMap that is not
there, or is deleted, is only a warning: scheduling goes on with the policy
in force. And each policy comes with the :class:`~extender.scoring.Scorer`
built from it, swapped together.
"""

from __future__ import annotations

import logging

from extender.scoring import Scorer
from policy.model import Policy
from serving.policy_source import GlobalPolicy

log = logging.getLogger(__name__)

#: Used until (or unless) a policy is loaded: the schema's defaults, no sidecars.
BUILTIN_POLICY = Policy(revision="builtin-defaults", sidecars=())


class LivePolicy(GlobalPolicy):
    """Holds the current policy and its :class:`Scorer`, swapped together."""

    policy: Policy

    def __init__(self, policy: Policy = BUILTIN_POLICY, source: str = "built-in defaults") -> None:
        super().__init__(policy, source)
        self.scorer = Scorer(policy.scheduling)

    @property
    def observe_only(self) -> bool:
        """``emergency.extenderObserveOnly``: compute every verdict, enforce none."""
        return self.policy.emergency.extender_observe_only

    def absent(self, source: str, reason: str) -> None:
        """The configured policy is not there: a warning, the policy in force goes on."""
        log.warning("%s: %s; serving policy %s from %s", source, reason, self.policy.revision, self.source)

    def _installed(self, previous: Policy | None) -> None:
        policy = self.policy
        self.scorer = Scorer(policy.scheduling)
        s = policy.scheduling
        log.info(
            "policy %s: exposure ceiling cpu %s memory %s, weights %s, exposure weight %s%s",
            policy.revision,
            s.exposure_ceiling["cpu"],
            s.exposure_ceiling["memory"],
            s.weights,
            s.exposure_weight,
            ", OBSERVE-ONLY" if policy.emergency.extender_observe_only else "",
        )
