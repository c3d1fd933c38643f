"""Every message kind as Discord messages: embeds, split to Discord's limits.

A message renders to one or more Pages (one Discord message each). Long agendas, attendee lists and
event lists are split over several embeds and, past 6,000 characters, over several messages; nothing
is ever rejected for its length. Times are Discord timestamps (`<t:UNIX:F>`, `<t:UNIX:R>`), which
each viewer sees in their own time zone; footers carry the event's own zone as the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import singledispatch
from typing import Any

import discord
from discord.utils import escape_markdown, format_dt

from bot.commands.rsvp import rsvp
from bot.formatting import (
    attendee_totals,
    format_lead,
    format_moment,
    format_start,
    format_when,
    plural,
    seats_line,
    shorten,
    speaker_label,
)
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
from bot.statuses import EventStatus, RsvpStatus

# Discord's documented limits.
CONTENT = 2000
TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER_ROOM = 1000  # of the 2,048 a footer may hold: title, description and footer then stay under 6,000
TOTAL = 6000  # every title, description, field, footer and author text of one message together
EMBEDS = 10

_COLORS = {
    EventStatus.PUBLISHED: discord.Color.green(),
    EventStatus.DRAFT: discord.Color.light_grey(),
    EventStatus.CANCELLED: discord.Color.red(),
}
_ACCENT = discord.Color.blurple()
_STATUS_HEADINGS = {
    RsvpStatus.GOING: "Going",
    RsvpStatus.WAITLISTED: "Waitlist",
    RsvpStatus.MAYBE: "Maybe",
    RsvpStatus.DECLINED: "Can't go",
}


@dataclass
class Page:
    """One Discord message: its content and embeds."""

    content: str = ""
    embeds: list[discord.Embed] = field(default_factory=list)

    def fields(self) -> dict[str, Any]:
        """Keyword arguments for send(); only what the page has."""
        found: dict[str, Any] = {}
        if self.content:
            found["content"] = self.content
        if self.embeds:
            found["embeds"] = self.embeds
        return found


def pack_lines(lines: Iterable[str], limit: int) -> list[str]:
    """Join lines into as few texts of at most `limit` characters as possible; an overlong line is clipped."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = shorten(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def paginate(embeds: list[discord.Embed]) -> list[Page]:
    """Group embeds into messages of at most 10 embeds and 6,000 characters (each embed is below that)."""
    pages: list[Page] = []
    size = 0
    for embed in embeds:
        if not pages or len(pages[-1].embeds) == EMBEDS or size + len(embed) > TOTAL:
            pages.append(Page())
            size = 0
        pages[-1].embeds.append(embed)
        size += len(embed)
    return pages


def truncate(pages: list[Page], count: int) -> list[Page]:
    """At most `count` pages; the last one kept says how many were left out."""
    if len(pages) <= count:
        return pages
    kept = pages[:count]
    note = f"(… {plural(len(pages) - count, 'more message')} not shown)"
    last = kept[-1]
    content = f"{shorten(last.content, CONTENT - len(note) - 1)}\n{note}" if last.content else note
    kept[-1] = Page(content, last.embeds)
    return kept


def listing(
    title: str, lines: Iterable[str], color: discord.Color, footer: str = "", url: str = ""
) -> list[discord.Embed]:
    """A titled list: the lines fill descriptions of up to 4,096 characters, as many embeds as they need."""
    chunks = pack_lines(lines, DESCRIPTION) or ["—"]
    embeds = [discord.Embed(description=chunk, color=color) for chunk in chunks]
    embeds[0].title = shorten(title, TITLE)
    if _is_link(url):
        embeds[0].url = url
    if footer:
        embeds[-1].set_footer(text=shorten(footer, FOOTER_ROOM))
    return embeds


def with_fields(first: discord.Embed, fields: Iterable[tuple[str, str]]) -> list[discord.Embed]:
    """`first` and as many continuation embeds as the fields need: 25 fields and 6,000 characters each."""
    embeds = [first]
    for name, value in fields:
        name, value = shorten(name, FIELD_NAME) or "—", shorten(value, FIELD_VALUE) or "—"
        current = embeds[-1]
        if len(current.fields) == FIELDS or len(current) + len(name) + len(value) > TOTAL:
            current = discord.Embed(color=first.color)
            embeds.append(current)
        current.add_field(name=name, value=value, inline=False)
    return embeds


def _is_link(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def moment(when: datetime) -> str:
    """'<t:…:F> (<t:…:R>)': the full date and time, and how far away, in the viewer's zone."""
    return f"{format_dt(when, 'F')} ({format_dt(when, 'R')})"


def span(when: When) -> str:
    return f"{format_dt(when.starts_at, 't')}–{format_dt(when.ends_at, 't')}"


def mention(speaker: SpeakerLine) -> str:
    """The speaker's label, with a mention when they have a Discord user id."""
    label = escape_markdown(speaker_label(speaker))
    if speaker.discord_id and speaker.discord_id.isdigit():
        return f"{label} · <@{speaker.discord_id}>"
    return label


def entry_line(entry: AgendaEntry) -> str:
    line = f"`{entry.position:>2}` {span(entry.when)} **{escape_markdown(entry.title)}**"
    if entry.speakers:
        line += " — " + "; ".join(mention(speaker) for speaker in entry.speakers)
    return line


def zone_footer(zone: str, starts_at: datetime | None = None) -> str:
    """The fallback for clients that cannot show timestamps: the event's own zone."""
    return f"Event time: {format_moment(starts_at, zone)}" if starts_at else f"Event time zone: {zone}"


@singledispatch
def render(message: Message) -> list[Page]:
    raise TypeError(f"no Discord form for {type(message).__name__}")


@render.register
def _(card: EventCard) -> list[Page]:
    return [Page(embeds=[card_embed(card)])]


def card_embed(card: EventCard) -> discord.Embed:
    cancelled = card.status is EventStatus.CANCELLED
    title = f"{card.title} — CANCELLED" if cancelled else card.title
    lines = [moment(card.when.starts_at)]
    if card.venue:
        lines.append(f"📍 {escape_markdown(card.venue)}")
    if card.url and not _is_link(card.url):
        lines.append(card.url)
    if card.description:
        lines.append("")
        lines.append(card.description)
    embed = discord.Embed(
        title=shorten(title, TITLE),
        description=shorten("\n".join(lines), DESCRIPTION),
        color=_COLORS[card.status],
        url=card.url if _is_link(card.url) else None,
    )
    going = f"{card.going} / {card.capacity}" if card.capacity is not None else str(card.going)
    embed.add_field(name="Going", value=going, inline=True)
    if card.seats_left is not None:
        embed.add_field(name="Seats left", value=str(card.seats_left), inline=True)
    embed.add_field(name="Waitlist", value=str(card.waitlist), inline=True)
    embed.add_field(name="Maybe", value=str(card.maybe), inline=True)
    embed.set_footer(text=shorten(f"{format_when(card.when)} · {card.slug}", FOOTER_ROOM))
    return embed


@render.register
def _(card: AgendaCard) -> list[Page]:
    lines = [entry_line(entry) for entry in card.entries] or ["No agenda items yet."]
    return paginate(listing(f"🗓 Agenda — {card.title}", lines, _ACCENT, zone_footer(card.timezone)))


@render.register
def _(intro: SpeakerIntro) -> list[Page]:
    entry = intro.entry
    lines = [f"at **{escape_markdown(intro.event_title)}** · {span(entry.when)}"]
    if entry.abstract:
        lines += ["", entry.abstract]
    first = discord.Embed(
        title=shorten(f"🎤 Now on stage: {entry.title}", TITLE),
        description=shorten("\n".join(lines), DESCRIPTION),
        color=_ACCENT,
    )
    speakers = []
    for speaker in entry.speakers:
        who = f"<@{speaker.discord_id}>" if speaker.discord_id and speaker.discord_id.isdigit() else ""
        speakers.append((speaker_label(speaker), "\n".join(part for part in (who, speaker.bio) if part)))
    return paginate(with_fields(first, speakers))


@render.register
def _(reminder: Reminder) -> list[Page]:
    venue = f"📍 {escape_markdown(reminder.venue)}" if reminder.venue else ""
    if reminder.item is not None:
        entry = reminder.item
        title = f"⏭ Up next {format_lead(reminder.lead)} at {reminder.title}: {entry.title}"
        lines = [f"{span(entry.when)} ({format_dt(entry.when.starts_at, 'R')})"]
        lines += [mention(speaker) for speaker in entry.speakers]
    else:
        title = f"⏰ {reminder.title} {format_start(reminder.lead)}"
        lines = [moment(reminder.when.starts_at)]
    if venue:
        lines.append(venue)
    footer = zone_footer(reminder.when.timezone, (reminder.item.when if reminder.item else reminder.when).starts_at)
    return paginate(listing(title, lines, _ACCENT, footer))


@render.register
def _(update: AgendaUpdate) -> list[Page]:
    lines = [escape_markdown(update.summary)]
    for change in update.changes:
        old = format_dt(change.old_start, "t") if change.old_start else "new"
        new = format_dt(change.new_start, "t") if change.new_start else "removed"
        lines.append(f"**{escape_markdown(change.title)}**: {old} → {new}")
    return paginate(listing(f"🔁 Agenda update — {update.title}", lines, _ACCENT, zone_footer(update.timezone)))


@render.register
def _(notice: Notice) -> list[Page]:
    """Free text goes in the content, so that notifications show it."""
    return [Page(content=chunk) for chunk in pack_lines(notice.text.splitlines() or [""], CONTENT)] or [Page("…")]


@render.register
def _(attendees: AttendeeList) -> list[Page]:
    lines = [attendee_totals(attendees, strong="**", separator=" · ")]
    status: RsvpStatus | None = None
    for row in attendees.rows:
        if row.status != status:
            status = row.status
            lines += ["", f"**{_STATUS_HEADINGS[row.status]}**"]
        guests = f" +{row.guests}" if row.guests else ""
        lines.append(f"• {escape_markdown(row.name)}{guests} · {row.platform}")
    return paginate(listing(f"👥 Attendees — {attendees.title}", lines, _ACCENT))


@render.register
def _(events: EventList) -> list[Page]:
    if not events.events:
        return [Page(embeds=[discord.Embed(description="No upcoming events.", color=_ACCENT)])]
    embeds = []
    for card in events.events:
        lines = [moment(card.when.starts_at), seats_line(card), f"RSVP: `{rsvp.ref} event:{card.slug}`"]
        if card.venue:
            lines.insert(1, f"📍 {escape_markdown(card.venue)}")
        embeds += listing(card.title, lines, _COLORS[card.status], url=card.url)
    return paginate(embeds)


def render_reply(reply: Reply) -> list[Page]:
    """The answer to an interaction: the reply's text (and usage line when refused), then its message."""
    text = reply.text
    if reply.usage:
        text = f"{text}\nUsage: `{reply.usage}`" if text else f"Usage: `{reply.usage}`"
    pages = render(reply.message) if reply.message is not None else []
    chunks = pack_lines(text.splitlines(), CONTENT) if text else []
    if not chunks:
        return pages or [Page("Done.")]
    if not pages or pages[0].content:
        return [Page(chunk) for chunk in chunks] + pages
    return [Page(chunk) for chunk in chunks[:-1]] + [Page(chunks[-1], pages[0].embeds)] + pages[1:]
