"""Degradations: emergency values of runtime parameters, each with an expiry, a reason and who set it.

``meshfit degrade set traceLog=off -n pay --for 2h --reason "..."`` writes one;
the controller applies it (it beats every rule, :mod:`policy.runtime`) until it
expires, then the value reverts by itself — an emergency switch that nobody
remembers to flip back is how a degraded fleet becomes the normal one. Every
change leaves an audit entry (who, when, why, until) beside the records.

They live in one ConfigMap (``meshfit-system/meshfit-degradations``), apart
from the policy: on-call flips them under pressure, with a command that
checks each value against the policy's declarations before writing, while the
policy stays the platform team's reviewed file. A record that is broken (edited
by hand) is skipped with its reason; the others still apply.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from policy.runtime import Group, Level, RuntimePolicy, Value

STORE_NAME = "meshfit-degradations"
RECORDS_KEY = "degradations.json"
AUDIT_KEY = "audit.jsonl"
#: Audit entries kept in the store (the Events and the controller's log keep the rest).
AUDIT_KEEP = 500
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class DegradationError(ValueError):
    """A degradation that cannot be set or read; the message names the field."""


@dataclass(frozen=True, slots=True)
class Degradation:
    """One emergency value, in force from ``at`` until (excluding) ``until``."""

    id: str
    parameter: str
    value: Value
    reason: str
    by: str
    at: datetime
    until: datetime
    sidecar: str | None = None
    namespace: str | None = None
    app: str | None = None
    zone: str | None = None

    @property
    def level(self) -> Level:
        return "app" if self.app else "zone" if self.zone else "namespace" if self.namespace else "fleet"

    def active(self, now: datetime) -> bool:
        """In force at ``now``: ``at <= now < until``."""
        return self.at <= now < self.until

    def scope(self) -> str:
        parts = [f"{k} {v}" for k, v in (("sidecar", self.sidecar), ("namespace", self.namespace),
                                          ("app", self.app), ("zone", self.zone)) if v]
        return ", ".join(parts) or "every namespace"

    def applies(self, sidecar: str, parameter: str, group: Group, now: datetime) -> str | None:
        """``None`` when it sets this parameter of this sidecar for this group now, else why not."""
        if parameter != self.parameter:
            return "another parameter"
        if not self.active(now):
            return f"expired {self.until.isoformat()}" if now >= self.until else f"starts {self.at.isoformat()}"
        for mine, theirs, what in ((self.sidecar, sidecar, "sidecar"), (self.namespace, group.namespace, "namespace"),
                                   (self.app, group.app, "app"), (self.zone, group.zone, "zone")):
            if mine is not None and mine != theirs:
                return f"{what} {theirs or '(none)'} is not {mine}"
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "parameter": self.parameter, "value": self.value, "reason": self.reason,
                               "by": self.by, "at": _stamp(self.at), "until": _stamp(self.until)}
        for key in ("sidecar", "namespace", "app", "zone"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _stamp(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d12h``: what ``--for`` takes (a positive span, whole seconds)."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise DegradationError(f"--for: {text!r} is not a duration such as 30m, 2h or 1d")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    span = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if span <= timedelta(0):
        raise DegradationError(f"--for: {text!r} must be longer than 0s")
    return span


def new_id(parameter: str, scope: str, at: datetime) -> str:
    """A short id, stable for one set and unlikely to repeat: ``d-<date>-<hash>``."""
    digest = hashlib.sha256(f"{parameter}\0{scope}\0{at.isoformat()}".encode()).hexdigest()[:6]
    return f"d-{at.astimezone(timezone.utc):%Y%m%d%H%M%S}-{digest}"


def check(runtime: RuntimePolicy, d: Degradation) -> tuple[Degradation | None, str | None]:
    """The degradation with its value normalised, or why the policy refuses it (with the declaration's path)."""
    sidecars = (d.sidecar,) if d.sidecar else runtime.sidecars_with(d.parameter)
    if d.sidecar and d.sidecar not in runtime.parameters:
        return None, f"runtime.sidecars.{d.sidecar}: declares no runtime parameters"
    if not sidecars:
        declared = sorted({p for params in runtime.parameters.values() for p in params})
        return None, (f"runtime: no sidecar declares parameter {d.parameter!r} "
                      f"(declared: {', '.join(declared) or 'none'})")
    value: Value | None = None
    for sidecar in sidecars:
        param = runtime.parameters[sidecar].get(d.parameter)
        if param is None:
            return None, f"runtime.sidecars.{sidecar}.parameters: has no {d.parameter!r}"
        checked, why = param.check(d.value)
        if why is not None:
            return None, f"runtime.sidecars.{sidecar}.parameters.{d.parameter}: {why}"
        value = checked
    if d.until <= d.at:
        return None, "until: must be after at"
    limit = timedelta(seconds=runtime.max_degradation_seconds)
    if d.until - d.at > limit:
        return None, f"until: at most {limit} after it is set (runtime.maxDegradation)"
    assert value is not None
    return replace(d, value=value), None


@dataclass(frozen=True, slots=True)
class Store:
    """What the store ConfigMap holds, read leniently: the records that parse, and why the others did not."""

    records: tuple[Degradation, ...] = ()
    broken: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()
    #: The records key as a whole cannot be read (not JSON, not a list): its readers keep the last good records.
    unreadable: bool = False


def read_store(data: Mapping[str, Any] | None) -> Store:
    """The ConfigMap's ``data`` → records; a bad record is skipped with its reason, never fatal."""
    data = data or {}
    text = data.get(RECORDS_KEY)
    audit = tuple(line for line in str(data.get(AUDIT_KEY) or "").splitlines() if line.strip())
    if text in (None, ""):
        return Store(audit=audit)
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Store(broken=(f"{RECORDS_KEY}: not JSON: {exc}",), audit=audit, unreadable=True)
    if not isinstance(items, list):
        return Store(broken=(f"{RECORDS_KEY}: must be a list of degradations",), audit=audit, unreadable=True)
    records: list[Degradation] = []
    broken: list[str] = []
    for i, item in enumerate(items):
        try:
            records.append(_record(item))
        except DegradationError as exc:
            broken.append(f"{RECORDS_KEY}[{i}]: {exc}")
    return Store(tuple(records), tuple(broken), audit)


def _record(item: Any) -> Degradation:
    if not isinstance(item, dict):
        raise DegradationError("must be a mapping")

    def text(key: str) -> str:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise DegradationError(f"{key}: must be a non-empty string")
        return value

    def scope(key: str) -> str | None:
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise DegradationError(f"{key}: must be a string")
        return value

    def when(key: str) -> datetime:
        raw = text(key)
        try:
            stamp = datetime.fromisoformat(raw)  # takes a trailing "Z" since Python 3.11
        except ValueError:
            raise DegradationError(f"{key}: {raw!r} is not an RFC 3339 time") from None
        if stamp.tzinfo is None:
            raise DegradationError(f"{key}: {raw!r} has no time zone")
        return stamp

    ident, parameter = text("id"), text("parameter")
    value = item.get("value")
    if not isinstance(value, (str, bool, int)):
        raise DegradationError("value: must be a string, boolean or integer")
    return Degradation(id=ident, parameter=parameter, value=value,
                       reason=text("reason"), by=text("by"), at=when("at"), until=when("until"),
                       sidecar=scope("sidecar"), namespace=scope("namespace"), app=scope("app"), zone=scope("zone"))


def write_store(records: Sequence[Degradation], audit: Iterable[str]) -> dict[str, str]:
    """The ConfigMap's ``data`` for these records and audit lines (the last :data:`AUDIT_KEEP`)."""
    lines = list(audit)[-AUDIT_KEEP:]
    return {RECORDS_KEY: orjson.dumps([d.to_json() for d in records], option=orjson.OPT_INDENT_2).decode(),
            AUDIT_KEY: "".join(line + "\n" for line in lines)}


def audit_line(action: str, d: Degradation, *, by: str, at: datetime, reason: str = "") -> str:
    """One audit entry: ``set``, ``cleared`` or ``expired``; who, when, why, until, and the record."""
    return orjson.dumps({"action": action, "by": by, "at": _stamp(at), "reason": reason or d.reason,
                         "until": _stamp(d.until), "degradation": d.to_json()}).decode()


def expired(records: Iterable[Degradation], now: datetime) -> tuple[Degradation, ...]:
    return tuple(d for d in records if now >= d.until)
