"""The global policy a server obeys right now, and where updates come from.

The webhook and the extender read the same global policy document, so the
two can never disagree about which policy is in force. It is edited by hand,
sometimes under pressure (the emergency switches live in it), so an update is
*offered*, never imposed: a valid one replaces the policy the next request
sees; an invalid one is refused with every path-qualified error logged and
counted while the last good policy keeps serving. A typo in an emergency
edit must never take admission or scheduling down.

Sources: :class:`PolicyFile` polls a local file by content (a mounted
ConfigMap changes by symlink swap, often keeping mtimes), and
:func:`global_configmap_handlers` turns a list/watch of the one global
policy ConfigMap into offers. What a server adds on top (the webhook's
namespace policies, the extender's scorer) hangs on :meth:`GlobalPolicy._installed`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.fields import PolicyError
from policy.load import parse_policy_text, policy_from_configmap
from policy.model import POLICY_KEY, Policy
from serving.polling import poll

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class Rejection:
    """An update that was refused: where it came from and why, on one line and in full."""

    source: str
    message: str
    errors: tuple[str, ...]
    at: float


def rejection(source: str, exc: Exception | str) -> Rejection:
    """A :class:`Rejection` of ``exc`` (a :class:`PolicyError` keeps its path-qualified errors)."""
    if isinstance(exc, PolicyError):
        return Rejection(source, exc.one_line(), tuple(str(e) for e in exc.errors), time.time())
    return Rejection(source, f"{source}: {exc}", (str(exc),), time.time())


class GlobalPolicy:
    """The last good global policy and the refusals since.

    Lives on the event loop's thread: readers take ``policy`` with no lock,
    and an update swaps the reference in one assignment, so a request sees
    either the old policy or the new one, never a mixture.

    ``loads`` counts the updates taken, the first one included (a policy given
    to the constructor is where it starts, not an update); ``rejections``
    counts the refused ones.
    """

    def __init__(self, policy: Policy | None = None, source: str = "") -> None:
        self.policy: Policy | None = policy
        self.source = source
        #: Set while the most recent update was refused; cleared by the next good one.
        self.rejected: Rejection | None = None
        #: The most recent refusal, kept after later good updates: what went wrong last.
        self.last_rejection: Rejection | None = None
        self.loads = 0
        self.rejections = 0
        self.loaded_at: float | None = time.time() if policy is not None else None
        self._text: str | None = None

    @property
    def revision(self) -> str | None:
        """The revision of the policy in force, ``None`` before the first."""
        return self.policy.revision if self.policy is not None else None

    def offer_text(self, text: str, source: str) -> bool:
        """Offer a policy document (the policy itself or a ConfigMap manifest holding it)."""
        return self._offer(text, source, lambda: parse_policy_text(text, source=source))

    def offer_configmap(self, configmap: Mapping[str, Any]) -> bool:
        """Offer the global policy ConfigMap as the watch delivered it."""
        meta = configmap.get("metadata") or {}
        source = f"ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')}"
        text = (configmap.get("data") or {}).get(POLICY_KEY)
        return self._offer(
            text if isinstance(text, str) else None, source, lambda: policy_from_configmap(configmap, source=source)
        )

    def _offer(self, text: str | None, source: str, parse: Callable[[], Policy]) -> bool:
        """Install what ``parse`` makes of ``text`` unless it is the text in force already, or invalid."""
        if text is not None and text == self._text:
            # A label or annotation edit, a relist, a file touched, or a revert to the policy in force.
            self._restored(source)
            return False
        try:
            policy = parse()
        except PolicyError as exc:
            self._reject(rejection(source, exc), exc)
            return False
        self._text = text
        self._install(policy, source)
        return True

    def refuse(self, source: str, message: str) -> None:
        """Record an update that carries no usable policy (unreadable bytes, a vanished source)."""
        self._reject(rejection(source, message), None)

    def absent(self, source: str, reason: str) -> None:
        """The source holds no policy now (a file that cannot be read, a ConfigMap not found or deleted).

        The last good policy stays either way; here that counts as a refused
        update, so it shows wherever refusals show.
        """
        self.refuse(source, reason + ("; keeping the last good policy" if self.policy is not None else ""))

    def _installed(self, previous: Policy | None) -> None:
        """Called after a new policy is in force: what depends on it follows here."""

    def _restored(self, source: str) -> None:
        if self.rejected is not None and self.policy is not None:
            log.info("policy from %s is back to the one in force (revision %s)", source, self.policy.revision)
            self.rejected = None

    def _install(self, policy: Policy, source: str) -> None:
        previous = self.policy
        self.policy = policy
        self.source = source
        self.rejected = None
        self.loads += 1
        self.loaded_at = time.time()
        if previous is None:
            log.info("policy loaded from %s (revision %s)", source, policy.revision)
        else:
            log.info("policy updated from %s: revision %s -> %s", source, previous.revision, policy.revision)
        self._installed(previous)

    def _reject(self, refused: Rejection, exc: PolicyError | None) -> None:
        self.rejected = self.last_rejection = refused
        self.rejections += 1
        if self.policy is None:
            log.error("no policy yet: %s", refused.message)
        else:
            log.error(
                "refused policy update from %s, still serving revision %s: %s",
                refused.source,
                self.policy.revision,
                refused.message,
            )
        if exc is not None:
            for error in exc.errors:
                log.error("  %s: %s", refused.source, error)


class PolicyFile:
    """Polls one file by content and offers each new version to a :class:`GlobalPolicy`."""

    def __init__(self, live: GlobalPolicy, path: str | Path, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.live = live
        self.path = Path(path)
        self.interval = interval
        self._digest: bytes | None = None
        #: Why the last read failed (``None`` once the file reads again); told to the policy once per outage.
        self.unreadable: str | None = None

    def check_now(self) -> bool:
        """Read once; True when a new valid policy was installed."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if self.unreadable is None:
                self.unreadable = f"cannot read: {exc.strerror or exc}"
                self.live.absent(str(self.path), self.unreadable)
            return False
        self.unreadable = None
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return False
        self._digest = digest
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.live.refuse(str(self.path), f"not UTF-8 text: {exc}")
            return False
        return self.live.offer_text(text, str(self.path))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        await poll(self.check_now, self.interval, stop, "policy file poll")


@dataclass(frozen=True, slots=True)
class ConfigMapHandlers:
    """List/watch callbacks (``kube.watch.ListWatch``'s ``on_sync`` and ``on_event``) for policy ConfigMaps."""

    on_sync: Callable[[list[dict[str, Any]], str], Any]
    on_event: Callable[[str, dict[str, Any]], Any]


def global_configmap_handlers(live: GlobalPolicy, namespace: str, name: str) -> ConfigMapHandlers:
    """Callbacks for a watch of the single global policy ConfigMap ``namespace/name``."""
    source = f"ConfigMap {namespace}/{name}"

    def matches(configmap: Mapping[str, Any]) -> bool:
        meta = configmap.get("metadata") or {}
        return meta.get("namespace") == namespace and meta.get("name") == name

    def on_sync(items: list[dict[str, Any]], resource_version: str = "") -> None:
        for configmap in items:
            if matches(configmap):
                live.offer_configmap(configmap)
                return
        live.absent(source, "not found")

    def on_event(kind: str, configmap: dict[str, Any]) -> None:
        if not matches(configmap):
            return
        if kind in ("ADDED", "MODIFIED"):
            live.offer_configmap(configmap)
        elif kind == "DELETED":
            live.absent(source, "deleted")

    return ConfigMapHandlers(on_sync, on_event)
