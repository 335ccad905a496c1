"""The policy the extender obeys right now, and how it gets replaced.

The extender reads only ``scheduling`` (ceilings, weights) and
``emergency.extenderObserveOnly`` from the global policy, but it reads the
same document as the webhook so the two can never disagree about which
policy is in force. An edit arrives through a ConfigMap watch; an invalid
edit is refused with its :class:`~policy.fields.PolicyError` lines in the log
and the last good policy keeps serving: an emergency switch flipped in a
hurry must never take the scheduler down with a typo.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extender.scoring import Scorer
from policy.fields import PolicyError
from policy.load import load_policy_file, policy_from_configmap
from policy.model import Policy

log = logging.getLogger(__name__)

#: Used until (or unless) a policy is loaded: the schema's defaults, no sidecars.
BUILTIN_POLICY = Policy(revision="builtin-defaults", sidecars=())


@dataclass
class PolicyStats:
    loads: int = 0
    rejected: int = 0
    last_error: str = ""


class PolicyHolder:
    """Holds the current policy and its :class:`Scorer`, swapped together."""

    def __init__(self, policy: Policy = BUILTIN_POLICY, source: str = "built-in defaults") -> None:
        self.policy = policy
        self.scorer = Scorer(policy.scheduling)
        self.source = source
        self.stats = PolicyStats()
        #: Set once a configured source has delivered its first answer (for readiness).
        self.settled = True

    @property
    def observe_only(self) -> bool:
        return self.policy.emergency.extender_observe_only

    def replace(self, policy: Policy, source: str) -> None:
        changed = policy.revision != self.policy.revision
        self.policy = policy
        self.scorer = Scorer(policy.scheduling)
        self.source = source
        self.stats.loads += 1
        if changed:
            s = policy.scheduling
            log.info(
                "policy %s from %s: exposure ceiling cpu %s memory %s, weights %s, exposure weight %s%s",
                policy.revision,
                source,
                s.exposure_ceiling["cpu"],
                s.exposure_ceiling["memory"],
                s.weights,
                s.exposure_weight,
                ", OBSERVE-ONLY" if policy.emergency.extender_observe_only else "",
            )

    def apply_configmap(self, configmap: Mapping[str, Any]) -> bool:
        """Take the policy in ``configmap`` if it is valid; True when it was."""
        meta = configmap.get("metadata") or {}
        source = f"ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')}"
        try:
            policy = policy_from_configmap(configmap, source=source)
        except PolicyError as exc:
            self.stats.rejected += 1
            self.stats.last_error = exc.one_line()
            log.error("%s; keeping policy %s", exc.one_line(), self.policy.revision)
            for error in exc.errors:
                log.error("  %s: %s", source, error)
            return False
        self.replace(policy, source)
        return True


class PolicyFileWatch:
    """Reloads ``--policy FILE`` when its content changes (a mounted ConfigMap is rewritten in place)."""

    def __init__(self, holder: PolicyHolder, path: str | Path, interval: float = 2.0) -> None:
        self.holder = holder
        self.path = Path(path)
        self.interval = interval
        self._digest = self._read_digest()

    def _read_digest(self) -> bytes | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except OSError:
            return None

    def check_now(self) -> bool:
        """Reload if the file changed; True when a new policy was taken."""
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return False
        self._digest = digest
        try:
            policy = load_policy_file(self.path)
        except PolicyError as exc:
            self.holder.stats.rejected += 1
            self.holder.stats.last_error = exc.one_line()
            log.error("%s; keeping policy %s", exc.one_line(), self.holder.policy.revision)
            return False
        except OSError as exc:
            log.error("cannot read policy %s: %s; keeping policy %s", self.path, exc, self.holder.policy.revision)
            return False
        self.holder.replace(policy, str(self.path))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if not stop.is_set():
                self.check_now()
