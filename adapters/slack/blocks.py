"""Block Kit rendering of every message kind, built with slack_sdk.models.blocks and kept within Slack's limits.

Limits: 50 blocks a message, 3,000 characters a section, 150 a header. Free text is split across
sections at word boundaries; lists (agenda items, attendees, events) are packed into as few sections
as fit and, past the block budget, end with a note saying how many were left out. Nothing is ever
rejected by Slack for its size.

Times are Slack date tokens, shown in each viewer's own zone, with a fallback in the event's zone.
The plain-text rendering (adapters/formatting.py) is the notification text that goes with the blocks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatch
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from adapters import plaintext
from adapters.slack.payloads import rsvp_action_id
from bot import formatting
from bot.commands import listings
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
from bot.statuses import EventStatus, RsvpAnswer

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FALLBACK_TEXT = 3000  # the notification text; Slack itself truncates at 40,000
MAX_NAME = 300  # one user-supplied name or title inside a longer line

DATE_AND_TIME = "{date_short_pretty} at {time}"
TIME_ONLY = "{time}"
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@dataclass(frozen=True)
class Rendered:
    """A message ready for chat.postMessage, chat.update, an ack or a response_url."""

    text: str
    blocks: list[dict[str, Any]]

    def fields(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


# --- text helpers ------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def stamp(moment: datetime, token: str, fallback: str) -> str:
    """A Slack date token: each viewer sees it in their zone; `fallback` is for clients that cannot."""
    return f"<!date^{int(moment.timestamp())}^{token}|{fallback}>"


def moment_text(moment: datetime, zone: str) -> str:
    return stamp(moment, DATE_AND_TIME, formatting.format_moment(moment, zone))


def clock_text(moment: datetime, zone: str) -> str:
    return stamp(moment, TIME_ONLY, formatting.format_clock(moment, zone))


def when_text(when: When) -> str:
    start = formatting.local(when.starts_at, when.timezone)
    end = formatting.local(when.ends_at, when.timezone)
    if end.date() == start.date():
        end_text = stamp(when.ends_at, TIME_ONLY, end.strftime("%H:%M %Z"))
    else:
        end_text = moment_text(when.ends_at, when.timezone)
    return f"{moment_text(when.starts_at, when.timezone)} – {end_text}"


def wrap(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Escaped chunks of `text`, each at most `limit` characters, broken at whitespace where possible."""
    whole = escape(text)
    if len(whole) <= limit:  # one chunk, as the loop below would make it piece by piece
        return [whole.rstrip()] if whole.strip() else []
    chunks: list[str] = []
    current = ""
    for piece in re.split(r"(\s+)", text):
        escaped = escape(piece)
        if len(current) + len(escaped) <= limit:
            current += escaped
            continue
        if current.strip():
            chunks.append(current.rstrip())
        current = ""
        if piece.isspace():
            continue
        while len(escaped) > limit:
            cut = limit
            entity = escaped.rfind("&", cut - 4, cut)  # never split &amp; &lt; &gt;
            cut = entity if entity > 0 else cut
            chunks.append(escaped[:cut])
            escaped = escaped[cut:]
        current = escaped
    if current.strip():
        chunks.append(current.rstrip())
    return chunks


def name_text(text: str) -> str:
    return escape(formatting.shorten(text, MAX_NAME))


# --- block helpers -----------------------------------------------------------------------------


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=formatting.shorten(text, MAX_HEADER_TEXT), emoji=True))


def section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=formatting.shorten(text, MAX_SECTION_TEXT)))


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=formatting.shorten(text, MAX_SECTION_TEXT))])


def packed(units: Sequence[str], room: int, more: str) -> list[Block]:
    """`units` (lines or paragraphs) packed into sections; past `room` blocks, a note `more` (with {n})."""
    groups: list[list[str]] = []
    size = 0
    for unit in units:
        unit = formatting.shorten(unit, MAX_SECTION_TEXT)
        if groups and size + 1 + len(unit) <= MAX_SECTION_TEXT:
            groups[-1].append(unit)
            size += 1 + len(unit)
        else:
            groups.append([unit])
            size = len(unit)
    if len(groups) <= room:
        return [section("\n".join(group)) for group in groups]
    if room <= 0:
        return []
    kept = groups[: room - 1]
    left_out = len(units) - sum(len(group) for group in kept)
    return [*(section("\n".join(group)) for group in kept), context(more.format(n=left_out))]


def rsvp_buttons(card: EventCard) -> ActionsBlock:
    """Going / Maybe / Can't go. The action_id names the choice and the value the event, so clicks outlive restarts."""
    return ActionsBlock(
        block_id=f"rsvp:{card.slug}",
        elements=[
            ButtonElement(
                text=choice.label,
                action_id=rsvp_action_id(choice.value),
                value=card.slug,
                style="primary" if choice.value is RsvpAnswer.GOING else None,
            )
            for choice in card.choices
        ],
    )


def fit(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    """The last guard on the block count; the renderers already keep within their budget."""
    if len(blocks) <= limit:
        return blocks
    return [*blocks[: limit - 1], context(f"…and {len(blocks) - limit + 1} more blocks not shown.")]


# --- rendering ---------------------------------------------------------------------------------


def render(message: Message) -> Rendered:
    blocks = fit(blocks_for(message, MAX_BLOCKS))
    return Rendered(_fallback(plaintext.render(message)), [block.to_dict() for block in blocks])


def render_reply(reply: Reply, note: str = "") -> Rendered:
    """A command's answer: its text, its message (if any), the usage line when it failed, and `note`."""
    head: list[Block] = [section(chunk) for chunk in wrap(reply.text)[: MAX_BLOCKS // 2]]
    tail: list[Block] = []
    if reply.usage:
        tail.append(context(f"Usage: `{escape(reply.usage)}`"))
    if note:
        tail.append(context(note))
    room = MAX_BLOCKS - len(head) - len(tail)
    body = blocks_for(reply.message, room) if reply.message is not None else []
    blocks = fit([*head, *body, *tail])
    text = plaintext.render_reply(reply)
    if not blocks:
        blocks = [section(chunk) for chunk in wrap(text or "Done.")[:MAX_BLOCKS]]
    return Rendered(_fallback(text), [block.to_dict() for block in blocks])


def _fallback(text: str) -> str:
    return escape(formatting.shorten(text, MAX_FALLBACK_TEXT))


@singledispatch
def blocks_for(message: Message, room: int) -> list[Block]:
    """The blocks of one message, at most `room` of them."""
    raise TypeError(f"no Block Kit form for {type(message).__name__}")


@blocks_for.register
def _(card: EventCard, room: int) -> list[Block]:
    cancelled = card.status is EventStatus.CANCELLED
    head: list[Block] = [header(f"📣 {card.title}" + (" (cancelled)" if cancelled else ""))]
    details = [f"*When:* {when_text(card.when)}"]
    if card.venue:
        details.append(f"*Where:* {name_text(card.venue)}")
    if card.url:
        details.append(f"*More:* {escape(formatting.shorten(card.url, 1000))}")
    calendars = [
        f"<{link}|{label}>"
        for link, label in (
            (card.calendar_url, "Add to calendar (.ics)"),
            (card.google_calendar_url, "Google Calendar"),
        )
        if link
    ]
    if calendars:
        details.append("📅 " + " · ".join(calendars))
    seats = escape(formatting.seats_line(card))
    tail: list[Block] = [context("❌ This event is cancelled." if cancelled else seats)]
    if not cancelled:
        tail.append(rsvp_buttons(card))
    head.append(section("\n".join(details)))
    more = "…the description goes on ({n} more parts)."
    return [*head, *packed(wrap(card.description), room - len(head) - len(tail), more), *tail]


def _speaker_names(speakers: Sequence[SpeakerLine]) -> str:
    return "; ".join(formatting.speaker_label(speaker) for speaker in speakers)


def _entry_line(entry: AgendaEntry, zone: str) -> str:
    line = (
        f"*{clock_text(entry.when.starts_at, zone)}–{clock_text(entry.when.ends_at, zone)}*  "
        f"{entry.position}. {name_text(entry.title)}"
    )
    if entry.speakers:
        line += f"\n        _{name_text(_speaker_names(entry.speakers))}_"
    return line


@blocks_for.register
def _(card: AgendaCard, room: int) -> list[Block]:
    head: list[Block] = [
        header(f"🗓 Agenda — {card.title}"),
        context(f"Times are in your time zone; the event runs on {escape(card.timezone)} time."),
    ]
    units = [_entry_line(entry, card.timezone) for entry in card.entries] or ["_No agenda items yet._"]
    return [*head, *packed(units, room - len(head), f"…and {{n}} more items: see `{listings.agenda.ref} {card.slug}`.")]


def _speaker_intro(speaker: SpeakerLine) -> str:
    name = f"*{name_text(speaker.name)}*"
    if speaker.slack_id and _SLACK_USER_ID.match(speaker.slack_id):
        name += f" (<@{speaker.slack_id}>)"
    details = ", ".join(part for part in (name_text(speaker.affiliation), speaker.role) if part and part != "speaker")
    line = name + (f" — {details}" if details else "")
    return line + (f"\n{escape(formatting.shorten(speaker.bio, 1500))}" if speaker.bio else "")


@blocks_for.register
def _(intro: SpeakerIntro, room: int) -> list[Block]:
    entry = intro.entry
    zone = entry.when.timezone
    head: list[Block] = [header(f"🎤 Now on stage: {entry.title}")]
    tail: list[Block] = [
        context(
            f"{name_text(intro.event_title)} · {clock_text(entry.when.starts_at, zone)}–"
            f"{clock_text(entry.when.ends_at, zone)}"
        )
    ]
    units = [_speaker_intro(speaker) for speaker in entry.speakers] + wrap(entry.abstract)
    units = units or [f"*{name_text(entry.title)}*"]
    return [*head, *packed(units, room - len(head) - len(tail), "…and {n} more not shown."), *tail]


@blocks_for.register
def _(reminder: Reminder, room: int) -> list[Block]:
    zone = reminder.when.timezone
    if reminder.item is not None:
        lead = formatting.format_lead(reminder.lead)
        entry = reminder.item
        names = ", ".join(speaker.name for speaker in entry.speakers)
        who = f" with {name_text(names)}" if names else ""
        text = (
            f"⏭ *Up next {lead}* at {name_text(reminder.title)}: *{name_text(entry.title)}*{who} "
            f"({clock_text(entry.when.starts_at, zone)})"
        )
        return [section(text)] if room > 0 else []
    lines = [
        f"⏰ *{name_text(reminder.title)}* {formatting.format_start(reminder.lead)}",
        f"*When:* {when_text(reminder.when)}",
    ]
    if reminder.venue:
        lines.append(f"*Where:* {name_text(reminder.venue)}")
    return [section("\n".join(lines))] if room > 0 else []


@blocks_for.register
def _(update: AgendaUpdate, room: int) -> list[Block]:
    units = [f"🔁 *Agenda update for {name_text(update.title)}:* {escape(formatting.shorten(update.summary, 1500))}"]
    for change in update.changes:
        old = clock_text(change.old_start, update.timezone) if change.old_start else "new"
        new = clock_text(change.new_start, update.timezone) if change.new_start else "removed"
        units.append(f"• {name_text(change.title)}: {old} → {new}")
    return packed(units, room, f"…and {{n}} more changes: see `{listings.agenda.ref} {update.slug}`.")


@blocks_for.register
def _(notice: Notice, room: int) -> list[Block]:
    return packed(wrap(notice.text) or ["…"], room, "…the message goes on ({n} more parts).")


@blocks_for.register
def _(attendees: AttendeeList, room: int) -> list[Block]:
    head: list[Block] = [
        header(f"👥 Attendees — {attendees.title}"),
        section(formatting.attendee_totals(attendees, strong="*", separator=" · ")),
    ]
    units = [
        f"• {name_text(row.name)}{f' +{row.guests}' if row.guests else ''} — {row.status} ({row.platform})"
        for row in attendees.rows
    ] or ["_No RSVPs yet._"]
    more = "…and {n} more not shown; the CSV export lists everyone."
    return [*head, *packed(units, room - len(head), more)]


@blocks_for.register
def _(listing: EventList, room: int) -> list[Block]:
    if not listing.events:
        return [section("No upcoming events.")] if room > 0 else []
    per_event = 2
    shown = listing.events if len(listing.events) * per_event <= room else listing.events[: (room - 1) // per_event]
    blocks: list[Block] = []
    for card in shown:
        summary = (
            f"*{name_text(card.title)}* · `{card.slug}`\n{when_text(card.when)}\n{escape(formatting.seats_line(card))}"
        )
        blocks += [section(summary), rsvp_buttons(card)]
    if len(shown) < len(listing.events):
        blocks.append(context(f"…and {formatting.plural(len(listing.events) - len(shown), 'more event')}."))
    return blocks
