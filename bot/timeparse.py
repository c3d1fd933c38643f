"""Durations, wall-clock times and time zones as organizers type them ("1h30m", "-5m", "18:00"), with their bounds.

Every value is bounded so that no arithmetic on it can overflow and every timed post falls in a range
the platforms and calendars handle: durations within MAX_DURATION, reminder offsets within MAX_REMINDER,
and instants from EARLIEST up to (not including) LATEST.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^([+-])?((?:\d+[dhms])+)$")
_PART = re.compile(r"(\d+)([dhms])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_LONGEST = 32  # characters; longer text is no duration (and int() of it would be slow)

MAX_DURATION = timedelta(days=365)
MAX_REMINDER = timedelta(days=90)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
DURATION_RANGE = "at most 365d either way"
REMINDER_RANGE = "each positive and at most 90d"
DATE_RANGE = "dates from 2000 to 2099"


class TimeParseError(ValueError):
    """A duration or time that does not parse; the message says what is accepted."""


def parse_duration(text: str) -> timedelta:
    """Parse "10m", "1h30m", "1d", "-5m" or "+10m" into a timedelta of at most MAX_DURATION either way."""
    match = _DURATION.match(text.strip().lower()) if len(text) <= _LONGEST else None
    if not match:
        raise TimeParseError(f"'{text}' is not a duration; use forms like 10m, 1h30m, 1d or -5m")
    seconds = sum(int(amount) * _SECONDS[unit] for amount, unit in _PART.findall(match.group(2)))
    if seconds > MAX_DURATION.total_seconds():
        raise TimeParseError(f"'{text}' is too long; a duration is {DURATION_RANGE}")
    return timedelta(seconds=-seconds if match.group(1) == "-" else seconds)


def check_reminder(offset: timedelta) -> timedelta:
    """A reminder offset (how long before): positive and at most MAX_REMINDER."""
    if not timedelta(0) < offset <= MAX_REMINDER:
        raise TimeParseError(f"reminder offset {format_duration(offset)}: offsets must be positive and at most 90d")
    return offset


def parse_durations(text: str) -> tuple[timedelta, ...]:
    """A list of reminder offsets such as "1d, 2h" or "1d 2h" (an event's own)."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    if not parts:
        raise TimeParseError('give at least one duration, e.g. "1d,1h"')
    return tuple(check_reminder(parse_duration(part)) for part in parts)


def check_moment(moment: datetime, what: str) -> datetime:
    """`moment` if it lies in [EARLIEST, LATEST), else a TimeParseError naming `what`."""
    if not EARLIEST <= moment < LATEST:
        raise TimeParseError(f"{what} would be {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC; use {DATE_RANGE}")
    return moment


def moved(moment: datetime, delta: timedelta, what: str) -> datetime:
    """`moment + delta`, checked like check_moment (a row from an older version may sit near the datetime limits)."""
    try:
        return check_moment(moment + delta, what)
    except OverflowError:
        raise TimeParseError(f"{what} would leave the calendar; use {DATE_RANGE}") from None


def stored_usable(name: str, starts_at: datetime, ends_at: datetime, zone: str, left_out_of: str) -> bool:
    """Whether a stored event (perhaps written by an older version) is one today's commands would accept.
    One that is not is logged, naming what it is left out of, so one bad row never stops the others."""
    try:
        zone_named(zone)
        check_moment(starts_at, "the start")
        check_moment(ends_at, "the end")
    except TimeParseError as exc:
        log.warning("event %s is left out of %s: %s", name, left_out_of, exc)
        return False
    return True


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone called `name`; folders ("America"), paths and unknown names are refused alike."""
    if name not in _zone_names():
        shown = name if len(name) <= 40 else f"{name[:40]}…"
        raise TimeParseError(f"unknown time zone '{shown}'; use an IANA name such as America/Los_Angeles")
    return ZoneInfo(name)


def format_duration(delta: timedelta) -> str:
    """The inverse of parse_duration, in the largest whole units: 90 minutes -> "1h30m"."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return sign + ("".join(parts) or "0m")


@dataclass(frozen=True)
class WallTime:
    """A local time as typed: HH:MM alone (on the event's date) or with a date."""

    clock: time
    day: date | None = None

    def resolve(self, zone: ZoneInfo, default_day: date) -> datetime:
        """The aware instant this wall time names in `zone`, in range and existing there.

        A time skipped when clocks jump forward is refused; a repeated one (clocks fall back) is the
        first occurrence unless the clock carries fold=1 (see `note`).
        """
        local = datetime.combine(self.day or default_day, self.clock, tzinfo=zone)
        if _round_trip(local) != local.replace(tzinfo=None):
            start, end = _gap(local)
            raise TimeParseError(
                f"{local:%H:%M} does not exist on {local:%Y-%m-%d} in {zone.key}: "
                f"clocks jump from {start:%H:%M} to {end:%H:%M}"
            )
        return check_moment(local.astimezone(UTC), f"{local:%Y-%m-%d %H:%M}")

    def note(self, zone: ZoneInfo, default_day: date) -> str:
        """What a reply should say about this wall time: which one was taken, when it happens twice."""
        local = datetime.combine(self.day or default_day, self.clock, tzinfo=zone)
        other = local.replace(fold=1 - local.fold)
        if local.utcoffset() == other.utcoffset() or _round_trip(other) != local.replace(tzinfo=None):
            return ""
        which = "second" if local.fold else "first"
        return f"{local:%H:%M} happens twice on {local:%Y-%m-%d} in {zone.key}; took the {which}, {local:%H:%M %Z}."


def _round_trip(local: datetime) -> datetime:
    """The naive wall time that `local`'s instant shows in its zone (differs from `local` in a gap)."""
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None)


def _gap(local: datetime) -> tuple[datetime, datetime]:
    """The wall times where the clocks jump forward around `local`, which lies in the gap."""
    before = local.utcoffset() or timedelta(0)
    after = local.replace(fold=1).utcoffset() or timedelta(0)
    low = (local.replace(tzinfo=None) - before).replace(tzinfo=UTC)  # fold=1's offset is the later one
    high = (local.replace(tzinfo=None) - after).replace(tzinfo=UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):  # the transition instant: the first with the new offset
        middle = low + (high - low) / 2
        if middle.astimezone(local.tzinfo).utcoffset() == before:
            low = middle
        else:
            high = middle
    transition = high.replace(microsecond=0)
    return (transition + before).replace(tzinfo=None), (transition + after).replace(tzinfo=None)


_TIME = re.compile(r"^(?:(\d{4})-(\d{2})-(\d{2})[ T])?(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_wall_time(text: str) -> WallTime:
    """Parse "18:00" or "2016-06-15 18:00" (seconds, "18:00:30", are allowed too)."""
    match = _TIME.match(text.strip())
    if not match:
        raise TimeParseError(f"'{text}' is not a time; use HH:MM or YYYY-MM-DD HH:MM")
    year, month, day, hour, minute, second = match.groups()
    try:
        clock = time(int(hour), int(minute), int(second or 0))
        on = date(int(year), int(month), int(day)) if year else None
    except ValueError as exc:
        raise TimeParseError(f"'{text}' is not a valid time: {exc}") from None
    if on is not None and not EARLIEST.year <= on.year < LATEST.year:
        raise TimeParseError(f"'{text}' is out of range; use {DATE_RANGE}")
    return WallTime(clock, on)
