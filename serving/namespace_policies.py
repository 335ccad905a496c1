"""The policy in force: the global policy and the namespaces' own, for the webhook and the controller.

The global policy, and how updates to it are offered and refused, is
:mod:`serving.policy_source`, shared with the extender. The webhook (for
injection) and the controller (for the runtime parameters a namespace may set)
add per-namespace ``meshfit-policy`` ConfigMaps. Those are validated *against*
the global policy (a namespace may only resize within the global bounds and
pick allowed versions), so their raw documents are kept and re-read whenever
the global policy changes. Restarting a replica with a broken global
ConfigMap is the one way to lose injection, and that is why readiness waits
for a first good policy.

:func:`namespace_configmap_handlers` turns a cluster-wide list/watch of
``meshfit-policy`` ConfigMaps into namespace policy updates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from policy.fields import PolicyError
from policy.load import namespace_policy_from_configmap
from policy.model import NAMESPACE_POLICY_CONFIGMAP, POLICY_KEY, NamespacePolicy, Policy
from serving.policy_source import ConfigMapHandlers, GlobalPolicy, ParseTimeout, Rejection, parse_off_loop, rejection

log = logging.getLogger(__name__)


class LivePolicy(GlobalPolicy):
    """The last good global policy, the namespaces' overrides, and their last refusals."""

    def __init__(self, policy: Policy | None = None, source: str = "") -> None:
        super().__init__(policy, source)
        self.namespace_policies: dict[str, NamespacePolicy] = {}
        self.namespace_rejections: dict[str, Rejection] = {}
        self._namespace_configmaps: dict[str, Mapping[str, Any]] = {}
        self.namespace_loads = 0
        self.namespace_rejection_count = 0

    def _installed(self, previous: Policy | None) -> None:
        if self._namespace_configmaps:
            self._reread_namespaces()

    # -- namespace policies -------------------------------------------------
    def namespace_policy(self, namespace: str) -> NamespacePolicy | None:
        """The policy of ``namespace``, ``None`` when it has none (or none valid)."""
        return self.namespace_policies.get(namespace)

    def replace_namespace_configmaps(self, configmaps: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of every namespace's ``meshfit-policy`` ConfigMap (after a LIST)."""
        for configmap in self._forget_missing(configmaps):
            self.put_namespace_configmap(configmap)

    async def replace_namespace_configmaps_off_loop(self, configmaps: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`replace_namespace_configmaps`, each policy parsed off the loop (a relist holds them all)."""
        for configmap in self._forget_missing(configmaps):
            await self.put_namespace_configmap_off_loop(configmap)

    def _forget_missing(self, configmaps: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Drop the namespaces a fresh LIST no longer has; the ConfigMaps it has, one per namespace."""
        fresh: dict[str, Mapping[str, Any]] = {}
        for configmap in configmaps:
            namespace = _namespace_of(configmap)
            if namespace:
                fresh[namespace] = configmap
        for gone in set(self._namespace_configmaps) - set(fresh):
            self.delete_namespace_configmap(gone)
        return list(fresh.values())

    def put_namespace_configmap(self, configmap: Mapping[str, Any]) -> bool:
        """A namespace's ``meshfit-policy`` ConfigMap, added or changed; True when its policy changed."""
        namespace = self._take_namespace_configmap(configmap)
        if namespace is None:
            return False
        return self._read_namespace(namespace, configmap)

    def _take_namespace_configmap(self, configmap: Mapping[str, Any]) -> str | None:
        """Keep ``configmap`` as its namespace's; the namespace when its policy must be read again, else None.

        The same data as before (and not refused last time) needs no parse: a relist
        or a resync delivers every ConfigMap again.
        """
        namespace = _namespace_of(configmap)
        if not namespace:
            return None
        previous = self._namespace_configmaps.get(namespace)
        self._namespace_configmaps[namespace] = configmap
        if previous is not None and _data(previous) == _data(configmap) and namespace not in self.namespace_rejections:
            return None
        return namespace

    def delete_namespace_configmap(self, namespace: str) -> None:
        """A deleted namespace policy is a deliberate act: the namespace falls back to the global policy."""
        self._namespace_configmaps.pop(namespace, None)
        self.namespace_rejections.pop(namespace, None)
        if self.namespace_policies.pop(namespace, None) is not None:
            log.info("namespace policy of %s removed: the global policy applies", namespace)

    async def put_namespace_configmap_off_loop(self, configmap: Mapping[str, Any]) -> bool:
        """:meth:`put_namespace_configmap`, parsed in a thread within ``parse_timeout``.

        Any namespace owner may write a ``meshfit-policy`` ConfigMap: a huge one
        must not stall the reviews of every other namespace.
        """
        namespace = self._take_namespace_configmap(configmap)
        if namespace is None:
            return False
        global_policy = self.policy
        if global_policy is None:
            return False  # read when the global policy arrives
        try:
            parsed = await parse_off_loop(
                lambda: namespace_policy_from_configmap(configmap, global_policy), self.parse_timeout
            )
        except (PolicyError, ParseTimeout) as exc:
            return self._namespace_refused(namespace, exc)
        except Exception as exc:  # a loader bug costs this namespace's update, nothing else
            return self._namespace_refused(namespace, exc)
        if self.policy is not global_policy or self._namespace_configmaps.get(namespace) is not configmap:
            return False  # overtaken while parsing: what came after was read in its turn
        return self._namespace_taken(namespace, parsed)

    def _read_namespace(self, namespace: str, configmap: Mapping[str, Any]) -> bool:
        if self.policy is None:
            return False  # read when the global policy arrives
        try:
            parsed = namespace_policy_from_configmap(configmap, self.policy)
        except Exception as exc:
            return self._namespace_refused(namespace, exc)
        return self._namespace_taken(namespace, parsed)

    def _namespace_refused(self, namespace: str, exc: Exception) -> bool:
        source = exc.source if isinstance(exc, PolicyError) else f"ConfigMap {namespace}/{NAMESPACE_POLICY_CONFIGMAP}"
        message = exc.one_line() if isinstance(exc, PolicyError) else f"{source}: {type(exc).__name__}: {exc}"
        self.namespace_rejections[namespace] = (
            rejection(source, exc) if isinstance(exc, PolicyError) else rejection(source, message)
        )
        self.namespace_rejection_count += 1
        kept = namespace in self.namespace_policies
        log.error(
            "refused namespace policy of %s (%s): %s",
            namespace,
            "keeping its last good one" if kept else "the global policy applies",
            message,
        )
        return False

    def _namespace_taken(self, namespace: str, parsed: NamespacePolicy) -> bool:
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

    async def on_sync(items: list[dict[str, Any]], resource_version: str = "") -> None:
        await live.replace_namespace_configmaps_off_loop([c for c in items if wanted(c)])

    async def on_event(kind: str, configmap: dict[str, Any]) -> None:
        if not wanted(configmap):
            return
        if kind in ("ADDED", "MODIFIED"):
            await live.put_namespace_configmap_off_loop(configmap)
        elif kind == "DELETED":
            live.delete_namespace_configmap(_namespace_of(configmap))

    return ConfigMapHandlers(on_sync, on_event)
