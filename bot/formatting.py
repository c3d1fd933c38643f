"""Formatting shared by every renderer and by the engine's answers: times, counts, seats, agenda lines.

Times are shown in the event's own zone, with the zone named, e.g. "Wed 15 Jun 2016 17:30 PDT".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.messages import AgendaEntry, AttendeeList, EventCard, SpeakerLine, When

SECOND = timedelta(seconds=1)  # leads shorter than this are "now"


def plural(count: int, noun: str, nouns: str = "") -> str:
    """'1 seat', '2 seats': a count with its noun in number; `nouns` when the plural is not noun + s."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def local(moment: datetime, zone: str) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


def _clock(moment: datetime) -> str:
    """%H:%M, with seconds when the time has them (the demo's compressed evening does)."""
    return "%H:%M:%S" if moment.second or moment.microsecond else "%H:%M"


def format_moment(moment: datetime, zone: str) -> str:
    """'Wed 15 Jun 2016 17:30 PDT' in the given zone."""
    shown = local(moment, zone)
    return shown.strftime(f"%a %d %b %Y {_clock(shown)} %Z")


def format_clock(moment: datetime, zone: str) -> str:
    shown = local(moment, zone)
    return shown.strftime(_clock(shown))


def format_when(when: When) -> str:
    start, end = local(when.starts_at, when.timezone), local(when.ends_at, when.timezone)
    same_day = end.date() == start.date()
    end_text = end.strftime(f"{_clock(end)} %Z") if same_day else format_moment(when.ends_at, when.timezone)
    return f"{start.strftime(f'%a %d %b %Y {_clock(start)}')}–{end_text} ({when.timezone})"


def format_lead(lead: timedelta) -> str:
    """How long until something, in words: 'in 1 day', 'in 1 hour 30 minutes', 'now' (under a second)."""
    if lead < SECOND:
        return "now"
    return f"in {describe_duration(lead)}"


def format_start(lead: timedelta) -> str:
    """When something starts, `lead` from now: 'starts in 58 minutes', 'is starting now', 'started 2 minutes ago'."""
    if lead <= -SECOND:
        return f"started {describe_duration(-lead)} ago"
    return "is starting now" if lead < SECOND else f"starts {format_lead(lead)}"


def describe_duration(delta: timedelta) -> str:
    """A positive duration in words, largest units first: '1 hour 30 minutes', '2 days', '40 seconds'."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            parts.append(plural(seconds // size, unit))
            seconds %= size
    return " ".join(parts)


def speaker_label(speaker: SpeakerLine) -> str:
    label = speaker.name + (f" ({speaker.affiliation})" if speaker.affiliation else "")
    return label if speaker.role == "speaker" else f"{label}, {speaker.role}"


def seats_line(card: EventCard) -> str:
    if card.capacity is None:
        seats = f"{card.going} going"
    else:
        seats = f"{card.going}/{card.capacity} going, {plural(card.seats_left or 0, 'seat')} left"
    if card.waitlist:
        seats += f", {card.waitlist} on the waitlist"
    if card.maybe:
        seats += f", {card.maybe} maybe"
    return seats


def entry_line(entry: AgendaEntry, zone: str) -> str:
    times = f"{format_clock(entry.when.starts_at, zone)}–{format_clock(entry.when.ends_at, zone)}"
    line = f"{entry.position:>2}. {times}  {entry.title}"
    if entry.speakers:
        line += " — " + "; ".join(speaker_label(s) for s in entry.speakers)
    return line


def attendee_totals(attendees: AttendeeList, strong: str = "", separator: str = ", ") -> str:
    """'12 going (capacity 50), 3 waitlisted, 2 maybe'; `strong` wraps each count in a platform's bold markup."""
    capacity = "unlimited" if attendees.capacity is None else str(attendees.capacity)
    counts = ((attendees.going, f"going (capacity {capacity})"), (attendees.waitlisted, "waitlisted"))
    return separator.join(f"{strong}{count}{strong} {label}" for count, label in (*counts, (attendees.maybe, "maybe")))
