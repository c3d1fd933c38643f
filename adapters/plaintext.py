"""Plain-text rendering of every message kind: the console's output, and the notification text that
goes with Slack's blocks."""

from __future__ import annotations

from functools import singledispatch

from bot.commands.rsvp import rsvp
from bot.formatting import (
    attendee_totals,
    entry_line,
    format_clock,
    format_lead,
    format_start,
    format_when,
    seats_line,
    speaker_label,
)
from bot.messages import (
    AgendaCard,
    AgendaUpdate,
    AttendeeList,
    EventCard,
    EventList,
    Message,
    Notice,
    Reminder,
    Reply,
    SpeakerIntro,
)
from bot.statuses import EventStatus


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
    lines.append("RSVP: " + " | ".join(f"{rsvp.ref} {card.slug} {choice.value}" for choice in card.choices))
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
    head = f"⏰ {reminder.title} {format_start(reminder.lead)}"
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
