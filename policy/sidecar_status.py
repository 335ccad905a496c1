"""``meshfit.io/status``: what a pod has now, sidecar by sidecar, read and written in one place.

The webhook writes it at creation; the fleet controller rewrites it after each
operation it finishes; inspections, ``meshfit fleet`` and the CLI read it. It
says, per sidecar:

* ``version``, ``image`` and ``source``: the version the sidecar runs (or, while
  dormant, would run once activated), its image, and the rule that chose it;
* ``slots``: the containers the sidecar owns. One (its own name) for an ordinary
  sidecar; two for a **hot-upgrade** sidecar (``NAME`` and ``NAME-alt``), of which
  one runs the version and the other idles on ``emptyImage`` until an upgrade
  starts the next version in it;
* ``live``: the slot that runs the version;
* ``active``: ``false`` for a **dormant** sidecar, whose slot runs ``emptyImage``
  until it is activated in place;
* ``emptyImage``: the image an idle or dormant slot runs;
* ``previous``: the version before the last upgrade the controller made (what a
  rollback returns to); ``restart``: the last restart token the controller honoured.

Older records (one slot, no ``live``, no ``active``) read as an active sidecar in
one slot named after it, so every pod the webhook ever meshed stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import orjson

#: The suffix of a hot-upgrade sidecar's second slot.
ALT_SUFFIX = "-alt"


class StatusError(ValueError):
    """``meshfit.io/status`` does not parse; the message names the field."""


@dataclass(frozen=True, slots=True)
class SidecarStatus:
    """One sidecar of one pod, as the record says it is."""

    name: str
    version: str | None = None
    image: str | None = None
    source: str | None = None
    slots: tuple[str, ...] = ()
    live: str = ""
    active: bool = True
    empty_image: str | None = None
    previous: str | None = None
    restart: str | None = None

    def __post_init__(self) -> None:
        if not self.slots:
            object.__setattr__(self, "slots", (self.name,))
        if not self.live:
            object.__setattr__(self, "live", self.slots[0])

    @property
    def hot(self) -> bool:
        """True when the sidecar has an idle slot to upgrade into."""
        return len(self.slots) > 1

    @property
    def idle(self) -> str | None:
        """The slot that does not run the version (``None`` with one slot)."""
        others = [s for s in self.slots if s != self.live]
        return others[0] if others else None

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON shape; fields that hold their default are left out (old readers see old records)."""
        out: dict[str, Any] = {"name": self.name, "version": self.version, "image": self.image, "source": self.source}
        if self.slots != (self.name,):
            out["slots"] = list(self.slots)
        if self.hot:
            out["live"] = self.live
        if not self.active:
            out["active"] = False
        if self.empty_image is not None:
            out["emptyImage"] = self.empty_image
        if self.previous is not None:
            out["previous"] = self.previous
        if self.restart is not None:
            out["restart"] = self.restart
        return out


@dataclass(frozen=True, slots=True)
class PodStatus:
    """The whole ``meshfit.io/status`` record of a pod."""

    policy: str
    sidecars: tuple[SidecarStatus, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def sidecar(self, name: str) -> SidecarStatus | None:
        """The record of sidecar ``name``, or ``None``."""
        for s in self.sidecars:
            if s.name == name:
                return s
        return None

    def with_sidecar(self, updated: SidecarStatus) -> PodStatus:
        """This record with one sidecar's entry replaced."""
        return replace(self, sidecars=tuple(updated if s.name == updated.name else s for s in self.sidecars))

    def owner_of(self, container: str) -> SidecarStatus | None:
        """The sidecar one of whose slots is ``container``."""
        for s in self.sidecars:
            if container in s.slots:
                return s
        return None

    def to_json(self) -> str:
        """The annotation's text (compact JSON, ``v: 1``)."""
        body: dict[str, Any] = {"v": 1, "policy": self.policy, **self.extra,
                                "sidecars": [s.to_dict() for s in self.sidecars]}
        return orjson.dumps(body).decode()


def _opt_str(item: dict[str, Any], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise StatusError(f"{where}.{key}: a string, not {type(value).__name__}")
    return value


def parse_status(text: str) -> PodStatus:
    """The record of an annotation's text; :class:`StatusError` naming the field when it does not parse."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StatusError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StatusError("not a JSON object")
    items = data.get("sidecars")
    if not isinstance(items, list):
        raise StatusError("sidecars: a list is required")
    sidecars: list[SidecarStatus] = []
    for i, item in enumerate(items):
        where = f"sidecars[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise StatusError(f"{where}.name: a non-empty string is required")
        slots = item.get("slots", [item["name"]])
        if (not isinstance(slots, list) or not slots or len(slots) > 2
                or not all(isinstance(s, str) and s for s in slots) or len(set(slots)) != len(slots)):
            raise StatusError(f"{where}.slots: one or two distinct container names")
        live = item.get("live", slots[0])
        if not isinstance(live, str) or live not in slots:
            raise StatusError(f"{where}.live: {live!r} is not one of its slots {slots}")
        active = item.get("active", True)
        if not isinstance(active, bool):
            raise StatusError(f"{where}.active: true or false")
        sidecars.append(SidecarStatus(
            name=item["name"],
            version=_opt_str(item, "version", where),
            image=_opt_str(item, "image", where),
            source=_opt_str(item, "source", where),
            slots=tuple(slots),
            live=live,
            active=active,
            empty_image=_opt_str(item, "emptyImage", where),
            previous=_opt_str(item, "previous", where),
            restart=_opt_str(item, "restart", where),
        ))
    names = [s.name for s in sidecars]
    if len(set(names)) != len(names):
        raise StatusError("sidecars: a sidecar is listed twice")
    containers = [c for s in sidecars for c in s.slots]
    if len(set(containers)) != len(containers):
        raise StatusError("sidecars: two sidecars claim one container")
    policy = data.get("policy", "")
    extra = {k: v for k, v in data.items() if k not in ("v", "policy", "sidecars")}
    return PodStatus(str(policy) if policy is not None else "", tuple(sidecars), extra)
