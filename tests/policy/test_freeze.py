"""Freeze windows: their boundaries, time zones, overnight spans, and the loader's paths."""

from __future__ import annotations

import datetime as dt

import pytest
from local_zone import local_zone

from policy.fields import PolicyError
from policy.freeze import FreezeWindow, active_window
from policy.load import parse_policy

UTC = dt.UTC
WEEKDAYS = frozenset(range(5))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def window(start: str, end: str, days: frozenset[int] = frozenset(range(7)), zone: str = "UTC") -> FreezeWindow:
    return FreezeWindow(days, dt.time.fromisoformat(start), dt.time.fromisoformat(end), zone, "peak")


# 2026-12-07 is a Monday.
@pytest.mark.parametrize(("now", "until"), [
    ("2026-12-07T08:59:59+00:00", None),                         # a second before the start
    ("2026-12-07T09:00:00+00:00", "2026-12-07T18:00:00+00:00"),  # the start is inside
    ("2026-12-07T17:59:59+00:00", "2026-12-07T18:00:00+00:00"),
    ("2026-12-07T18:00:00+00:00", None),                         # the end is outside
])
def test_a_window_includes_its_start_and_excludes_its_end(now: str, until: str | None) -> None:
    ends = window("09:00", "18:00").until(at(now))
    assert ends == (at(until) if until else None)


def test_days_are_the_days_a_window_starts_on() -> None:
    weekdays = window("09:00", "18:00", WEEKDAYS)
    assert weekdays.until(at("2026-12-11T10:00:00+00:00")) is not None   # Friday
    assert weekdays.until(at("2026-12-12T10:00:00+00:00")) is None       # Saturday


def test_an_overnight_window_spans_midnight_from_its_start_day() -> None:
    friday_night = window("22:00", "06:00", frozenset({4}))
    assert friday_night.until(at("2026-12-11T21:59:00+00:00")) is None
    assert friday_night.until(at("2026-12-11T23:30:00+00:00")) == at("2026-12-12T06:00:00+00:00")
    # Saturday 05:59 belongs to Friday's occurrence; Saturday 22:30 starts none (Saturday is not listed).
    assert friday_night.until(at("2026-12-12T05:59:00+00:00")) == at("2026-12-12T06:00:00+00:00")
    assert friday_night.until(at("2026-12-12T06:00:00+00:00")) is None
    assert friday_night.until(at("2026-12-12T22:30:00+00:00")) is None
    # Thursday's early hours are not Friday's night.
    assert friday_night.until(at("2026-12-11T05:00:00+00:00")) is None


def test_a_window_is_read_in_its_own_time_zone() -> None:
    berlin = window("09:00", "18:00", zone="Europe/Berlin")
    # In December Berlin is UTC+1: 09:00 there is 08:00 UTC.
    assert berlin.until(at("2026-12-07T07:59:00+00:00")) is None
    assert berlin.until(at("2026-12-07T08:00:00+00:00")) == at("2026-12-07T17:00:00+00:00")
    # In July it is UTC+2.
    assert berlin.until(at("2026-07-06T07:00:00+00:00")) == at("2026-07-06T16:00:00+00:00")
    assert berlin.until(at("2026-07-06T06:59:00+00:00")) is None


def test_a_window_across_a_daylight_saving_change_ends_at_the_local_end() -> None:
    # Europe/Berlin moves from UTC+1 to UTC+2 at 01:00 UTC on 2026-03-29 (a Sunday).
    night = window("22:00", "06:00", zone="Europe/Berlin")
    assert night.until(at("2026-03-28T23:00:00+00:00")) == at("2026-03-29T04:00:00+00:00")


def test_of_overlapping_windows_the_one_ending_last_counts() -> None:
    found = active_window([window("09:00", "12:00"), window("10:00", "18:00")], at("2026-12-07T11:00:00+00:00"))
    assert found is not None and found[1] == at("2026-12-07T18:00:00+00:00")
    assert active_window([window("09:00", "12:00")], at("2026-12-07T13:00:00+00:00")) is None


def test_of_windows_ending_together_the_first_listed_counts() -> None:
    first, second = window("09:00", "18:00"), window("10:00", "18:00")
    found = active_window([first, second], at("2026-12-07T11:00:00+00:00"))
    assert found is not None and found[0] is first


def _policy(fleet: dict) -> dict:
    return {"apiVersion": "meshfit.io/v1alpha1", "kind": "MeshPolicy",
            "sidecars": [{"name": "rpc-mesh", "image": "registry.example.com/mesh/mosn"}],
            "versions": {"sidecars": {"rpc-mesh": {"baseline": "1.8.0"}}}, "fleet": fleet}


def test_the_policy_carries_its_freeze_windows() -> None:
    policy = parse_policy(_policy({"freezeWindows": [
        {"days": ["mon", "Fri"], "start": "22:00", "end": "06:00", "timezone": "Asia/Tokyo", "reason": "batch"}]}))
    (w,) = policy.fleet.freeze_windows
    assert (w.days, w.start, w.end, w.timezone, w.reason) == (frozenset({0, 4}), dt.time(22), dt.time(6),
                                                              "Asia/Tokyo", "batch")
    assert parse_policy(_policy({})).fleet.freeze_windows == ()


_BAD = "fleet.freezeWindows[0]"


@pytest.mark.parametrize(("window_doc", "errors"), [
    ({"start": "24:00", "end": "06:00"}, [f"{_BAD}.start: must be a time of day 00:00..23:59, got '24:00'"]),
    ({"start": "9:00", "end": "18:00"}, [f"{_BAD}.start: must be HH:MM (24-hour), got '9:00'"]),
    ({"start": "09:00"}, [f"{_BAD}.end: is required (HH:MM)"]),
    ({}, [f"{_BAD}.start: is required (HH:MM)", f"{_BAD}.end: is required (HH:MM)"]),
    ({"start": "09:00", "end": "09:00"},
     [f"{_BAD}.end: must differ from start (a window of no time, or of every hour, is ambiguous)"]),
    ({"start": "09:00", "end": "18:60"}, [f"{_BAD}.end: must be a time of day 00:00..23:59, got '18:60'"]),
    ({"days": ["Mon", "Funday"], "start": "09:00", "end": "18:00"},
     [f"{_BAD}.days[1]: must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, got 'Funday'"]),
    ({"days": [], "start": "09:00", "end": "18:00"}, [f"{_BAD}.days: must be a non-empty list of Mon..Sun"]),
    ({"days": "Mon", "start": "09:00", "end": "18:00"}, [f"{_BAD}.days: must be a non-empty list of Mon..Sun"]),
    ({"start": "09:00", "end": "18:00", "timezone": "Europe/Atlantis"},
     [f"{_BAD}.timezone: unknown time zone 'Europe/Atlantis' (an IANA name such as Europe/Berlin)"]),
    ({"start": "09:00", "end": "18:00", "when": "always"}, [f"{_BAD}.when"]),
])
def test_a_bad_window_is_refused_with_its_path_and_why(window_doc: dict, errors: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(_policy({"freezeWindows": [window_doc]}))
    got = [str(e) for e in caught.value.errors]
    if errors == [f"{_BAD}.when"]:  # an unknown key: the message is Fields', tested with it
        assert [e.path for e in caught.value.errors] == errors
    else:
        assert got == errors


def test_a_window_without_days_is_every_day() -> None:
    (w,) = parse_policy(_policy({"freezeWindows": [{"start": "09:00", "end": "18:00"}]})).fleet.freeze_windows
    assert w.days == frozenset({0, 1, 2, 3, 4, 5, 6})
    assert w.timezone == "UTC"


def test_a_window_describes_itself_with_its_reason_days_hours_and_zone() -> None:
    from policy.freeze import FreezeWindow as W

    peak = W(frozenset({4, 0}), dt.time(9), dt.time(18, 30), "Europe/Berlin", "peak")
    assert peak.describe() == "peak (Mon,Fri 09:00-18:30 Europe/Berlin)"
    assert dataclasses_replace(peak, reason="").describe() == "Mon,Fri 09:00-18:30 Europe/Berlin"


def dataclasses_replace(w: FreezeWindow, **changes: object) -> FreezeWindow:
    import dataclasses

    return dataclasses.replace(w, **changes)  # type: ignore[arg-type]


def test_the_day_of_a_window_is_the_day_in_its_zone() -> None:
    # 23:45 UTC on Monday 7 December is 00:45 on Tuesday in Berlin: inside Tuesday's 00:30-02:00.
    tuesdays = FreezeWindow(frozenset({1}), dt.time(0, 30), dt.time(2), "Europe/Berlin")
    assert tuesdays.until(at("2026-12-07T23:45:00+00:00")) == at("2026-12-08T01:00:00+00:00")
    assert tuesdays.until(at("2026-12-08T23:45:00+00:00")) is None


def test_a_window_ending_when_it_starts_lasts_a_whole_day() -> None:
    allday = window("09:00", "09:00", days=frozenset({0}))
    assert allday.until(at("2026-12-07T09:00:00+00:00")) == at("2026-12-08T09:00:00+00:00")
    assert allday.until(at("2026-12-08T08:59:00+00:00")) == at("2026-12-08T09:00:00+00:00")
    assert allday.until(at("2026-12-08T09:00:00+00:00")) is None


def test_the_end_of_a_window_is_given_in_utc_whatever_the_local_zone() -> None:
    with local_zone():
        ends = window("09:00", "18:00").until(at("2026-12-07T10:00:00+00:00"))
    assert ends is not None and ends.isoformat() == "2026-12-07T18:00:00+00:00"


def test_an_unknown_day_is_refused_with_the_days_there_are() -> None:
    from policy.freeze import FreezeWindowError, parse_day

    with pytest.raises(FreezeWindowError) as caught:
        parse_day("Funday")
    assert str(caught.value) == "must be one of Mon, Tue, Wed, Thu, Fri, Sat, Sun, got 'Funday'"


@pytest.mark.parametrize(("text", "expected"), [("00:00", dt.time(0, 0)), ("23:00", dt.time(23, 0)),
                                                ("23:59", dt.time(23, 59)), ("00:59", dt.time(0, 59))])
def test_a_clock_at_the_ends_of_the_day(text: str, expected: dt.time) -> None:
    from policy.freeze import parse_clock

    assert parse_clock(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    (5, "must be HH:MM (24-hour), got 5"),
    ("12-30", "must be HH:MM (24-hour), got '12-30'"),
    ("12:345", "must be HH:MM (24-hour), got '12:345'"),
    ("12:a5", "must be HH:MM (24-hour), got '12:a5'"),
    ("24:00", "must be a time of day 00:00..23:59, got '24:00'"),
    ("23:60", "must be a time of day 00:00..23:59, got '23:60'"),
])
def test_a_clock_that_is_not_one_says_why(text: object, message: str) -> None:
    from policy.freeze import FreezeWindowError, parse_clock

    with pytest.raises(FreezeWindowError) as caught:
        parse_clock(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("text", "message"), [
    ("", "must be UTC or an IANA zone name (Europe/Berlin), got ''"),
    (3, "must be UTC or an IANA zone name (Europe/Berlin), got 3"),
    ("Mars/Olympus", "unknown time zone 'Mars/Olympus' (an IANA name such as Europe/Berlin)"),
])
def test_a_zone_that_is_not_one_says_why(text: object, message: str) -> None:
    from policy.freeze import FreezeWindowError, parse_zone

    with pytest.raises(FreezeWindowError) as caught:
        parse_zone(text)
    assert str(caught.value) == message
