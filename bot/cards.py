"""Messages built from the current database state: cards, agendas, intros, attendee lists."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import (
    AgendaCard,
    AgendaEntry,
    Attachment,
    AttendeeList,
    AttendeeRow,
    EventCard,
    SpeakerLine,
    When,
)
from bot.models import AgendaItem, Event, ItemSpeaker, Rsvp, RsvpStatus, Speaker

_ROLE_ORDER = {"moderator": 0, "speaker": 1, "panelist": 2}


def when_of(event: Event) -> When:
    return When(event.starts_at, event.ends_at, event.timezone)


async def event_card(session: AsyncSession, event: Event, calendar_url: str = "") -> EventCard:
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
        status=event.status,
        capacity=event.capacity,
        going=event.seats_taken,
        waitlist=counts.get(RsvpStatus.WAITLISTED, 0),
        maybe=counts.get(RsvpStatus.MAYBE, 0),
        calendar_url=calendar_url,
    )


async def agenda_entries(session: AsyncSession, event: Event) -> tuple[AgendaEntry, ...]:
    items = (
        await session.exec(select(AgendaItem).where(AgendaItem.event_id == event.id).order_by(col(AgendaItem.position)))
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
    return tuple(
        AgendaEntry(
            position=item.position,
            title=item.title,
            kind=item.kind,
            when=When(item.starts_at, item.ends_at, event.timezone),
            speakers=tuple(speakers[item.id or 0]),
            abstract=item.abstract,
        )
        for item in items
    )


async def agenda_card(session: AsyncSession, event: Event) -> AgendaCard:
    return AgendaCard(event.slug, event.title, event.timezone, await agenda_entries(session, event))


_STATUS_ORDER = {RsvpStatus.GOING: 0, RsvpStatus.WAITLISTED: 1, RsvpStatus.MAYBE: 2, RsvpStatus.DECLINED: 3}


async def attendee_list(session: AsyncSession, event: Event) -> tuple[AttendeeList, Attachment]:
    rsvps = (
        await session.exec(select(Rsvp).where(Rsvp.event_id == event.id).order_by(col(Rsvp.queued_at), col(Rsvp.id)))
    ).all()
    ordered = sorted(rsvps, key=lambda r: _STATUS_ORDER[RsvpStatus(r.status)])
    rows = tuple(AttendeeRow(r.display_name or r.user_id, r.platform, r.status, r.guests) for r in ordered)
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
        writer.writerow(
            [r.display_name, r.platform, r.user_id, r.status, r.guests, r.queued_at.isoformat(), r.dm_reminders]
        )
    return listing, Attachment(f"{event.slug}-attendees.csv", buffer.getvalue())
