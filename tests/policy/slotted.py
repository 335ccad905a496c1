"""Policies whose sidecars run in hot-upgrade or dormant slots, for the slot tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from policies import default_policy

from policy.model import Policy, SidecarSpec, UpgradeSpec

EMPTY = "registry.example.com/mesh/empty:1"


def slotted(policy: Policy | None = None, *, only: str | None = None, **sidecars: dict[str, Any]) -> Policy:
    """``policy`` with ``rpc_mesh={"hot": True, "placement": "legacy", ...}`` applied per sidecar.

    Keys of the per-sidecar dict are ``hot``, ``dormant``, ``empty`` (the empty image,
    :data:`EMPTY` by default) and any :class:`SidecarSpec` field. ``only`` keeps one sidecar.
    """
    policy = policy or default_policy()
    out: list[SidecarSpec] = []
    for spec in policy.sidecars:
        if only is not None and spec.name != only:
            continue
        changes = dict(sidecars.get(spec.name.replace("-", "_"), {}))
        upgrade = UpgradeSpec(hot=changes.pop("hot", False), dormant=changes.pop("dormant", False),
                              empty_image=changes.pop("empty", EMPTY))
        out.append(dataclasses.replace(spec, upgrade=upgrade, **changes))
    versions = policy.versions
    if only is not None:
        versions = dataclasses.replace(versions, sidecars={k: v for k, v in versions.sidecars.items() if k == only},
                                       rules=tuple(r for r in versions.rules if r.sidecar in (None, only)))
    return dataclasses.replace(policy, sidecars=tuple(out), versions=versions)
