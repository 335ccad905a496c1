"""Freeze windows: the hours in which no rollout starts a change ("no changes during peak hours").

They live in the global policy (``fleet.freezeWindows``), not on each
``SidecarRollout``, because the hours a business cannot afford a change are a
property of the business, not of one rollout: every rollout obeys them, and a
person who must stop every change at once edits one place.

A window is a span of wall-clock time in its own time zone, on given days of
the week::

    {days: [Mon, Tue, Wed, Thu, Fri], start: "09:00", end: "18:00", timezone: "Europe/Berlin", reason: "peak"}

``days`` are the days the window *starts* on. ``end`` before ``start`` is an
overnight window (``Fri 22:00`` to ``Sat 06:00``). The window includes its
start and excludes its end, so two windows that touch leave no gap and do not
overlap. Wall-clock times are read in the window's zone, so a window follows the
zone's daylight-saving changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: ``datetime.weekday()`` order.
DAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class FreezeWindowError(ValueError):
    """A freeze window that does not parse; the message says which part (the loader adds the path)."""


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """One recurring span of wall-clock time in which no rollout starts a change."""

    days: frozenset[int]
    start: dt.time
    end: dt.time
    timezone: str = "UTC"
    reason: str = ""
    #: Runtime parameters degraded while the window lasts (``{traceLog: "off"}``; :mod:`policy.runtime`).
    degrade: tuple[tuple[str, str | bool | int], ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        what = f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"
        return f"{self.reason} ({what})" if self.reason else what

    def until(self, now: dt.datetime) -> dt.datetime | None:
        """When the occurrence of this window that contains ``now`` ends (UTC), or ``None`` outside it."""
        local = now.astimezone(self.zone)
        overnight = self.end <= self.start
        # The occurrence that started today, and (overnight) the one that started yesterday.
        for days_back in (0, 1) if overnight else (0,):
            day = local.date() - dt.timedelta(days=days_back)
            if day.weekday() not in self.days:
                continue
            begins = dt.datetime.combine(day, self.start, self.zone)
            ends = dt.datetime.combine(day + dt.timedelta(days=1) if overnight else day, self.end, self.zone)
            # Compare as instants: wall clocks repeat and skip at daylight-saving changes.
            if begins.astimezone(dt.UTC) <= now.astimezone(dt.UTC) < ends.astimezone(dt.UTC):
                return ends.astimezone(dt.UTC)
        return None


def active_window(windows: Iterable[FreezeWindow], now: dt.datetime) -> tuple[FreezeWindow, dt.datetime] | None:
    """The window ``now`` falls in and when it ends; of several, the one that ends last (all must be over)."""
    found: tuple[FreezeWindow, dt.datetime] | None = None
    for window in windows:
        ends = window.until(now)
        if ends is not None and (found is None or ends > found[1]):
            found = (window, ends)
    return found


def parse_clock(text: object) -> dt.time:
    """``HH:MM`` (24-hour) as a time of day."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit():
        raise FreezeWindowError(f"must be HH:MM (24-hour), got {text!r}")
    hours, minutes = int(text[:2]), int(text[3:])
    if hours > 23 or minutes > 59:
        raise FreezeWindowError(f"must be a time of day 00:00..23:59, got {text!r}")
    return dt.time(hours, minutes)


def parse_day(text: object) -> int:
    """``Mon`` .. ``Sun`` (case-insensitive) as ``datetime.weekday()``."""
    if isinstance(text, str):
        for i, name in enumerate(DAYS):
            if text.strip().lower() == name.lower():
                return i
    raise FreezeWindowError(f"must be one of {', '.join(DAYS)}, got {text!r}")


def parse_zone(text: object) -> str:
    """``UTC`` or an IANA zone name that this machine's zone database knows."""
    if not isinstance(text, str) or not text:
        raise FreezeWindowError(f"must be UTC or an IANA zone name (Europe/Berlin), got {text!r}")
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise FreezeWindowError(f"unknown time zone {text!r} (an IANA name such as Europe/Berlin)") from None
    return text
