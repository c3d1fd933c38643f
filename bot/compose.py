"""Messages built from stored rows: event cards, agendas, reminders, speaker intros, notices and attendee lists.

The engine (answers), the publisher (cards and notices) and the runner (timed posts) all build here,
so a message shows the same state whichever path sends it.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.commands.rsvp import rsvp
from bot.messages import (
    AgendaCard,
    AgendaEntry,
    Attachment,
    AttendeeList,
    AttendeeRow,
    EventCard,
    Notice,
    Reminder,
    SpeakerIntro,
    SpeakerLine,
    When,
)
from bot.models import AgendaItem, Event, EventStatus, ItemSpeaker, Rsvp, RsvpStatus, Speaker
from bot.statuses import RsvpAnswer

_ROLE_ORDER = {"moderator": 0, "speaker": 1, "panelist": 2}


def when_of(event: Event) -> When:
    return When(event.starts_at, event.ends_at, event.timezone)


def calendar_feed_url(base_url: str, slug: str) -> str:
    """The event's live .ics feed (served by bot/feeds.py), or "" when no server runs."""
    return f"{base_url}/events/{slug}.ics" if base_url else ""


GOOGLE_CALENDAR = "https://calendar.google.com/calendar/render"
LINK_LIMIT = 512  # Discord link buttons take at most 512 characters; Slack's take 3,000


def google_calendar_url(event: Event) -> str:
    """A Google Calendar "create event" link in UTC, shown in the event's zone; short enough for any button."""
    stamp = "%Y%m%dT%H%M%SZ"
    dates = f"{event.starts_at.astimezone(UTC).strftime(stamp)}/{event.ends_at.astimezone(UTC).strftime(stamp)}"
    fields = {"action": "TEMPLATE", "text": event.title, "dates": dates, "ctz": event.timezone}
    optional = {"location": event.venue, "details": event.url}
    for dropped in ((), ("details",), ("details", "location")):
        query = fields | {k: v for k, v in optional.items() if v and k not in dropped}
        link = f"{GOOGLE_CALENDAR}?{urlencode(query, quote_via=quote, safe='/')}"
        if len(link) <= LINK_LIMIT:
            return link
    fields["text"] = fields["text"][:LINK_LIMIT]  # no longer one can fit; the loop below then turns a few times
    while len(link) > LINK_LIMIT:  # only a very long title gets here: shorten it
        fields["text"] = fields["text"][: len(fields["text"]) - 8].rstrip() + "…"
        link = f"{GOOGLE_CALENDAR}?{urlencode(fields, quote_via=quote, safe='/')}"
    return link


async def event_card(session: AsyncSession, event: Event, base_url: str = "") -> EventCard:
    counts = dict(
        (
            await session.exec(
                select(Rsvp.status, sa.func.count()).where(Rsvp.event_id == event.id).group_by(Rsvp.status)
            )
        ).all()
    )
    return EventCard(
        slug=event.slug,
        title=event.title,
        when=when_of(event),
        venue=event.venue,
        url=event.url,
        description=event.description,
        status=EventStatus(event.status),
        capacity=event.capacity,
        going=event.seats_taken,
        waitlist=counts.get(RsvpStatus.WAITLISTED, 0),
        maybe=counts.get(RsvpStatus.MAYBE, 0),
        calendar_url=calendar_feed_url(base_url, event.slug),
        google_calendar_url="" if event.status == EventStatus.CANCELLED else google_calendar_url(event),
    )


async def agenda_entries(session: AsyncSession, event: Event) -> tuple[AgendaEntry, ...]:
    return tuple(entry for _, entry in await agenda_rows(session, event))


async def agenda_rows(session: AsyncSession, event: Event) -> list[tuple[AgendaItem, AgendaEntry]]:
    """Each agenda item with its entry (speakers included), in agenda order."""
    return (await agendas(session, [event]))[event.id or 0]


async def agendas(session: AsyncSession, events: Sequence[Event]) -> dict[int, list[tuple[AgendaItem, AgendaEntry]]]:
    """agenda_rows for several events in two queries (the scheduler builds a burst of posts at once)."""
    zones = {event.id or 0: event.timezone for event in events}
    items = (
        await session.exec(
            select(AgendaItem)
            .where(col(AgendaItem.event_id).in_(list(zones)))
            .order_by(col(AgendaItem.event_id), col(AgendaItem.position))
        )
    ).all()
    speakers: dict[int, list[SpeakerLine]] = defaultdict(list)
    if items:
        rows = (
            await session.exec(
                select(ItemSpeaker, Speaker)
                .join(Speaker, col(Speaker.id) == col(ItemSpeaker.speaker_id))
                .where(col(ItemSpeaker.item_id).in_([item.id for item in items]))
            )
        ).all()
        for link, speaker in sorted(rows, key=lambda row: (_ROLE_ORDER.get(row[0].role, 9), row[1].name)):
            speakers[link.item_id].append(
                SpeakerLine(
                    speaker.name, link.role, speaker.affiliation, speaker.bio, speaker.slack_id, speaker.discord_id
                )
            )
    found: dict[int, list[tuple[AgendaItem, AgendaEntry]]] = {event_id: [] for event_id in zones}
    for item in items:
        entry = AgendaEntry(
            position=item.position,
            title=item.title,
            kind=item.kind,
            when=When(item.starts_at, item.ends_at, zones[item.event_id]),
            speakers=tuple(speakers[item.id or 0]),
            abstract=item.abstract,
        )
        found[item.event_id].append((item, entry))
    return found


async def agenda_card(session: AsyncSession, event: Event) -> AgendaCard:
    return AgendaCard(event.slug, event.title, event.timezone, await agenda_entries(session, event))


def reminder(event: Event, lead: timedelta, item: AgendaEntry | None = None) -> Reminder:
    """The event starts in `lead` (now, when zero), or with `item`: that agenda item is up next."""
    return Reminder(event.slug, event.title, when_of(event), event.venue, lead, item)


def late_reminder(event: Event, sent_at: datetime, item: AgendaEntry | None = None) -> Reminder:
    """A reminder sent late, at `sent_at`: its lead counts from then, negative once the event or item began.
    A lead of a minute or more is rounded to whole minutes ("58 minutes", not "57 minutes 52 seconds"); the
    platforms' own time markup beside it is exact."""
    starts_at = event.starts_at if item is None else item.when.starts_at
    lead = starts_at - sent_at
    if abs(lead) >= timedelta(minutes=1):
        lead = timedelta(minutes=round(lead / timedelta(minutes=1)))
    return reminder(event, lead, item)


def speaker_intro(event: Event, entry: AgendaEntry) -> SpeakerIntro:
    return SpeakerIntro(event.slug, event.title, entry)


def cancellation_notice(event: Event) -> Notice:
    return Notice(f"❌ {event.title} is cancelled. Sorry, and thanks for your RSVPs.", event.slug)


def promotion_notice(event: Event) -> Notice:
    """The DM to a member who moved up from the waitlist."""
    return Notice(
        f"🎉 A seat opened up: you're going to {event.title}. Can't make it? {rsvp.ref} {event.slug} {RsvpAnswer.NO}"
    )


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: object) -> object:
    """OWASP's rule against CSV injection: text that a spreadsheet would run as a formula (a member's
    display name, say) is prefixed with a single quote, so it shows as typed."""
    return f"'{cell}" if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS) else cell


_STATUS_ORDER = {RsvpStatus.GOING: 0, RsvpStatus.WAITLISTED: 1, RsvpStatus.MAYBE: 2, RsvpStatus.DECLINED: 3}


async def attendee_list(session: AsyncSession, event: Event) -> tuple[AttendeeList, Attachment]:
    rsvps = (
        await session.exec(select(Rsvp).where(Rsvp.event_id == event.id).order_by(col(Rsvp.queued_at), col(Rsvp.id)))
    ).all()
    ordered = sorted(rsvps, key=lambda r: _STATUS_ORDER[RsvpStatus(r.status)])
    rows = tuple(AttendeeRow(r.display_name or r.user_id, r.platform, RsvpStatus(r.status), r.guests) for r in ordered)
    listing = AttendeeList(
        slug=event.slug,
        title=event.title,
        capacity=event.capacity,
        going=event.seats_taken,
        maybe=sum(1 for r in rsvps if r.status == RsvpStatus.MAYBE),
        waitlisted=sum(1 for r in rsvps if r.status == RsvpStatus.WAITLISTED),
        rows=rows,
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["name", "platform", "user_id", "status", "guests", "queued_at", "dm_reminders"])
    for r in ordered:
        cells = [r.display_name, r.platform, r.user_id, r.status, r.guests, r.queued_at.isoformat(), r.dm_reminders]
        writer.writerow([_inert(cell) for cell in cells])
    return listing, Attachment(f"{event.slug}-attendees.csv", buffer.getvalue())
