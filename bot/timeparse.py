"""Durations and wall-clock times as organizers type them ("1h30m", "-5m", "18:00")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"^([+-])?((?:\d+[dhms])+)$")
_PART = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


class TimeParseError(ValueError):
    """A duration or time that does not parse; the message says what is accepted."""


def parse_duration(text: str) -> timedelta:
    """Parse "10m", "1h30m", "1d", "-5m" or "+10m" into a timedelta."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise TimeParseError(f"'{text}' is not a duration; use forms like 10m, 1h30m, 1d or -5m")
    sign = -1 if match.group(1) == "-" else 1
    total = timedelta()
    for amount, unit in _PART.findall(match.group(2)):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return sign * total


def parse_durations(text: str) -> tuple[timedelta, ...]:
    """A list of positive durations such as "1d, 2h" or "1d 2h" (an event's own reminder offsets)."""
    parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
    if not parts:
        raise TimeParseError('give at least one duration, e.g. "1d,1h"')
    offsets = tuple(parse_duration(part) for part in parts)
    if any(offset <= timedelta(0) for offset in offsets):
        raise TimeParseError(f"'{text}': reminder offsets must be positive, e.g. \"1d,1h\"")
    return offsets


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
        """The aware instant this wall time names in `zone`."""
        return datetime.combine(self.day or default_day, self.clock, tzinfo=zone)


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
    return WallTime(clock, on)
