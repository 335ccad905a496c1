"""The policy the webhook serves right now, and where updates come from.

An admission webhook sits on the path of every pod CREATE in the cluster,
and its policy is edited by hand, sometimes under pressure (the emergency
switches live in it). So an update is *offered*, never imposed: a valid one
replaces the policy the next request sees; an invalid one is refused with
every path-qualified error logged, counted, and shown by ``/readyz`` while
the last good policy keeps serving. Restarting a replica with a broken
ConfigMap is the one way to lose injection, and that is why readiness waits
for a first good policy.

Per-namespace ``meshfit-policy`` ConfigMaps are validated *against* the
global policy (a namespace may only resize within the global bounds and pick
allowed versions), so their raw documents are kept and re-read whenever the
global policy changes.

Sources: :class:`PolicyFile` polls a local file by content (a mounted
ConfigMap changes by symlink swap, often keeping mtimes), and
:func:`configmap_handlers` turns ConfigMap list/watch callbacks into offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy.fields import PolicyError
from policy.load import namespace_policy_from_configmap, parse_policy_text, policy_from_configmap
from policy.model import NAMESPACE_POLICY_CONFIGMAP, POLICY_KEY, NamespacePolicy, Policy

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class Rejection:
    """An update that was refused: where it came from and why, on one line and in full."""

    source: str
    message: str
    errors: tuple[str, ...]
    at: float


def _rejection(source: str, exc: Exception | str) -> Rejection:
    if isinstance(exc, PolicyError):
        return Rejection(source, exc.one_line(), tuple(str(e) for e in exc.errors), time.time())
    return Rejection(source, f"{source}: {exc}", (str(exc),), time.time())


class LivePolicy:
    """The last good global policy, the namespaces' overrides, and the last refusal.

    Lives on the event loop's thread: handlers read ``policy`` with no lock,
    and an update swaps the reference in one assignment, so a request sees
    either the old policy or the new one, never a mixture.
    """

    def __init__(self, policy: Policy | None = None, source: str = "") -> None:
        self.policy: Policy | None = policy
        self.source = source
        #: Set while the most recent global update was invalid; cleared by the next good one.
        self.rejected: Rejection | None = None
        self.loads = 1 if policy is not None else 0
        self.rejections = 0
        self.loaded_at: float | None = time.time() if policy is not None else None
        self._text: str | None = None
        self.namespace_policies: dict[str, NamespacePolicy] = {}
        self.namespace_rejections: dict[str, Rejection] = {}
        self._namespace_configmaps: dict[str, Mapping[str, Any]] = {}
        self.namespace_loads = 0
        self.namespace_rejection_count = 0

    @property
    def revision(self) -> str | None:
        return self.policy.revision if self.policy is not None else None

    # -- the global policy ------------------------------------------------
    def offer_text(self, text: str, source: str) -> bool:
        """Offer a policy document (the policy itself or a ConfigMap manifest holding it)."""
        if text == self._text:
            self._restored(source)
            return False
        try:
            policy = parse_policy_text(text, source=source)
        except PolicyError as exc:
            self._reject(_rejection(source, exc), exc)
            return False
        self._text = text
        self._install(policy, source)
        return True

    def offer_configmap(self, configmap: Mapping[str, Any]) -> bool:
        """Offer the global policy ConfigMap as the watch delivered it."""
        meta = configmap.get("metadata") or {}
        source = f"ConfigMap {meta.get('namespace', '')}/{meta.get('name', '')}"
        text = (configmap.get("data") or {}).get(POLICY_KEY)
        if isinstance(text, str) and text == self._text:
            self._restored(source)  # a label or annotation edit, or a revert to the policy in force
            return False
        try:
            policy = policy_from_configmap(configmap, source=source)
        except PolicyError as exc:
            self._reject(_rejection(source, exc), exc)
            return False
        self._text = text if isinstance(text, str) else None
        self._install(policy, source)
        return True

    def refuse(self, source: str, message: str) -> None:
        """Record an update that carries no policy at all (the ConfigMap was deleted, the file vanished)."""
        self._reject(_rejection(source, message), None)

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
        if self._namespace_configmaps:
            self._reread_namespaces()

    def _reject(self, rejection: Rejection, exc: PolicyError | None) -> None:
        self.rejected = rejection
        self.rejections += 1
        if self.policy is None:
            log.error("no policy yet: %s", rejection.message)
        else:
            log.error(
                "refused policy update from %s, still serving revision %s: %s",
                rejection.source,
                self.policy.revision,
                rejection.message,
            )
        if exc is not None:
            for error in exc.errors:
                log.error("  %s: %s", rejection.source, error)

    # -- namespace policies -------------------------------------------------
    def namespace_policy(self, namespace: str) -> NamespacePolicy | None:
        return self.namespace_policies.get(namespace)

    def replace_namespace_configmaps(self, configmaps: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of every namespace's ``meshfit-policy`` ConfigMap (after a LIST)."""
        fresh: dict[str, Mapping[str, Any]] = {}
        for configmap in configmaps:
            namespace = _namespace_of(configmap)
            if namespace:
                fresh[namespace] = configmap
        for gone in set(self._namespace_configmaps) - set(fresh):
            self.delete_namespace_configmap(gone)
        for namespace, configmap in fresh.items():
            self.put_namespace_configmap(configmap)

    def put_namespace_configmap(self, configmap: Mapping[str, Any]) -> bool:
        namespace = _namespace_of(configmap)
        if not namespace:
            return False
        previous = self._namespace_configmaps.get(namespace)
        if previous is not None and _data(previous) == _data(configmap) and namespace not in self.namespace_rejections:
            self._namespace_configmaps[namespace] = configmap
            return False
        self._namespace_configmaps[namespace] = configmap
        return self._read_namespace(namespace, configmap)

    def delete_namespace_configmap(self, namespace: str) -> None:
        """A deleted namespace policy is a deliberate act: the namespace falls back to the global policy."""
        self._namespace_configmaps.pop(namespace, None)
        self.namespace_rejections.pop(namespace, None)
        if self.namespace_policies.pop(namespace, None) is not None:
            log.info("namespace policy of %s removed: the global policy applies", namespace)

    def _read_namespace(self, namespace: str, configmap: Mapping[str, Any]) -> bool:
        if self.policy is None:
            return False  # read when the global policy arrives
        try:
            parsed = namespace_policy_from_configmap(configmap, self.policy)
        except PolicyError as exc:
            self.namespace_rejections[namespace] = _rejection(exc.source, exc)
            self.namespace_rejection_count += 1
            kept = namespace in self.namespace_policies
            log.error(
                "refused namespace policy of %s (%s): %s",
                namespace,
                "keeping its last good one" if kept else "the global policy applies",
                exc.one_line(),
            )
            return False
        self.namespace_rejections.pop(namespace, None)
        self.namespace_policies[namespace] = parsed
        self.namespace_loads += 1
        log.info("namespace policy of %s loaded (revision %s)", namespace, parsed.revision)
        return True

    def _reread_namespaces(self) -> None:
        for namespace, configmap in list(self._namespace_configmaps.items()):
            self._read_namespace(namespace, configmap)


def _namespace_of(configmap: Mapping[str, Any]) -> str:
    return str((configmap.get("metadata") or {}).get("namespace") or "")


def _data(configmap: Mapping[str, Any]) -> Any:
    return (configmap.get("data") or {}).get(POLICY_KEY)


class PolicyFile:
    """Polls one file by content and offers each new version to a :class:`LivePolicy`."""

    def __init__(self, live: LivePolicy, path: str | Path, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.live = live
        self.path = Path(path)
        self.interval = interval
        self._digest: bytes | None = None
        self._missing = False

    def check_now(self) -> bool:
        """Read once; True when a new valid policy was installed."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if not self._missing:
                self._missing = True
                self.live.refuse(str(self.path), f"cannot read: {exc.strerror or exc}")
            return False
        self._missing = False
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
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if stop.is_set():
                return
            try:
                self.check_now()
            except Exception:  # a bug here must not stop reloads for good
                log.exception("policy file poll failed")


@dataclass(frozen=True, slots=True)
class ConfigMapHandlers:
    """List/watch callbacks for one kind of policy ConfigMap."""

    on_sync: Callable[[list[dict[str, Any]], str], None]
    on_event: Callable[[str, dict[str, Any]], None]


def global_configmap_handlers(live: LivePolicy, namespace: str, name: str) -> ConfigMapHandlers:
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
        live.refuse(source, "not found" + ("; keeping the last good policy" if live.policy else ""))

    def on_event(kind: str, configmap: dict[str, Any]) -> None:
        if not matches(configmap):
            return
        if kind in ("ADDED", "MODIFIED"):
            live.offer_configmap(configmap)
        elif kind == "DELETED":
            live.refuse(source, "deleted" + ("; keeping the last good policy" if live.policy else ""))

    return ConfigMapHandlers(on_sync, on_event)


def namespace_configmap_handlers(live: LivePolicy, skip: tuple[str, str] | None = None) -> ConfigMapHandlers:
    """Callbacks for a cluster-wide watch of ``meshfit-policy`` ConfigMaps.

    ``skip`` is the global policy's ``(namespace, name)``: by default it is
    also called ``meshfit-policy`` and must not be read as a namespace policy.
    """

    def wanted(configmap: Mapping[str, Any]) -> bool:
        meta = configmap.get("metadata") or {}
        if meta.get("name") != NAMESPACE_POLICY_CONFIGMAP:
            return False
        return skip is None or (meta.get("namespace"), meta.get("name")) != skip

    def on_sync(items: list[dict[str, Any]], resource_version: str = "") -> None:
        live.replace_namespace_configmaps([c for c in items if wanted(c)])

    def on_event(kind: str, configmap: dict[str, Any]) -> None:
        if not wanted(configmap):
            return
        if kind in ("ADDED", "MODIFIED"):
            live.put_namespace_configmap(configmap)
        elif kind == "DELETED":
            live.delete_namespace_configmap(_namespace_of(configmap))

    return ConfigMapHandlers(on_sync, on_event)
