"""Plain-text rendering of every message kind: the console's output and every platform's fallback.

Times are shown in the event's own zone, with the zone named, e.g. "Wed 15 Jun 2016 17:30 PDT".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import singledispatch
from zoneinfo import ZoneInfo

from bot.messages import (
    AgendaCard,
    AgendaEntry,
    AgendaUpdate,
    AttendeeList,
    EventCard,
    EventList,
    Message,
    Notice,
    Reminder,
    Reply,
    SpeakerIntro,
    SpeakerLine,
    When,
)
from bot.statuses import EventStatus
from bot.timeparse import format_duration


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
    """'in 1 day', 'in 1h30m', 'now'."""
    if lead <= timedelta(0):
        return "now"
    if lead == timedelta(days=1):
        return "in 1 day"
    return f"in {format_duration(lead)}"


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


@singledispatch
def render(message: Message) -> str:
    raise TypeError(f"no plain-text form for {type(message).__name__}")


@render.register
def _(card: EventCard) -> str:
    lines = [
        f"📣 {card.title}" + ("  [CANCELLED]" if card.status is EventStatus.CANCELLED else ""),
        format_when(card.when),
    ]
    if card.venue:
        lines.append(f"📍 {card.venue}")
    if card.url:
        lines.append(card.url)
    if card.description:
        lines.append(card.description)
    lines.append(seats_line(card))
    lines.append("RSVP: " + " | ".join(f"/rsvp {card.slug} {choice.value}" for choice in card.choices))
    if card.calendar_url:
        lines.append(f"📅 Add to calendar: {card.calendar_url}")
    if card.google_calendar_url:
        lines.append(f"📅 Google Calendar: {card.google_calendar_url}")
    return "\n".join(lines)


@render.register
def _(card: AgendaCard) -> str:
    lines = [f"🗓 Agenda — {card.title} (times in {card.timezone})"]
    lines += [entry_line(entry, card.timezone) for entry in card.entries] or ["(no agenda items yet)"]
    return "\n".join(lines)


@render.register
def _(intro: SpeakerIntro) -> str:
    entry = intro.entry
    lines = [f"🎤 Now on stage at {intro.event_title}: {entry.title}"]
    for speaker in entry.speakers:
        lines.append(f"  {speaker_label(speaker)}")
        if speaker.bio:
            lines.append(f"    {speaker.bio}")
    if entry.abstract:
        lines.append(entry.abstract)
    return "\n".join(lines)


@render.register
def _(reminder: Reminder) -> str:
    if reminder.item is not None:
        entry = reminder.item
        names = ", ".join(s.name for s in entry.speakers)
        who = f" with {names}" if names else ""
        return (
            f"⏭ Up next {format_lead(reminder.lead)} at {reminder.title}: {entry.title}{who} "
            f"({format_clock(entry.when.starts_at, reminder.when.timezone)})"
        )
    lead = format_lead(reminder.lead)
    head = f"⏰ {reminder.title} is starting now" if lead == "now" else f"⏰ {reminder.title} starts {lead}"
    venue = f" at {reminder.venue}" if reminder.venue else ""
    return f"{head}{venue}: {format_when(reminder.when)}"


@render.register
def _(update: AgendaUpdate) -> str:
    lines = [f"🔁 Agenda update for {update.title}: {update.summary}"]
    for change in update.changes:
        old = format_clock(change.old_start, update.timezone) if change.old_start else "new"
        new = format_clock(change.new_start, update.timezone) if change.new_start else "removed"
        lines.append(f"  {change.title}: {old} → {new}")
    return "\n".join(lines)


@render.register
def _(notice: Notice) -> str:
    return notice.text


def attendee_totals(attendees: AttendeeList, strong: str = "", separator: str = ", ") -> str:
    """'12 going (capacity 50), 3 waitlisted, 2 maybe'; `strong` wraps each count in a platform's bold markup."""
    capacity = "unlimited" if attendees.capacity is None else str(attendees.capacity)
    counts = ((attendees.going, f"going (capacity {capacity})"), (attendees.waitlisted, "waitlisted"))
    return separator.join(f"{strong}{count}{strong} {label}" for count, label in (*counts, (attendees.maybe, "maybe")))


@render.register
def _(attendees: AttendeeList) -> str:
    lines = [f"👥 {attendees.title}: {attendee_totals(attendees)}"]
    for row in attendees.rows:
        guests = f" +{row.guests}" if row.guests else ""
        lines.append(f"  {row.status:<10} {row.name}{guests} ({row.platform})")
    return "\n".join(lines)


@render.register
def _(listing: EventList) -> str:
    if not listing.events:
        return "No upcoming events."
    return "\n".join(
        f"• {card.slug}: {card.title} — {format_when(card.when)} — {seats_line(card)}" for card in listing.events
    )


def render_reply(reply: Reply) -> str:
    """A reply as one text: the answer, then its message, then the usage line when it failed."""
    parts = [reply.text] if reply.text else []
    if reply.message is not None:
        parts.append(render(reply.message))
    if reply.usage:
        parts.append(f"Usage: {reply.usage}")
    return "\n".join(parts)
