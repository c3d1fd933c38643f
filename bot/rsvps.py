"""Seats and the waitlist in the database: load an event's Seating (bot/seating.py), write back what changed.

Callers hold the event before loading it: SQLite's BEGIN IMMEDIATE makes the transaction the only
writer; on PostgreSQL, `lock_event` (SELECT … FOR UPDATE) or an UPDATE of the event row holds it to the
commit. The decisions are made in memory on what was loaded; the seats written back are checked in SQL
once more (the seats as loaded, and the capacity), so a transaction that did not hold the event fails
instead of overbooking. Statements are Core and few: one write carries every RSVP a group commit changed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.effects import Effect, MemberPromoted
from bot.invocation import Actor
from bot.models import Event, Rsvp, RsvpStatus, table_of
from bot.seating import Party, Promotion, Seating

EVENTS = table_of(Event)
RSVPS = table_of(Rsvp)
_MEMBERS = sa.select(RSVPS).where(
    RSVPS.c.event_id.in_(sa.bindparam("events", expanding=True)),
    RSVPS.c.user_id.in_(sa.bindparam("users", expanding=True)),
)
_WAITING = RSVPS.c.status == RsvpStatus.WAITLISTED
_WAITLISTS = (
    sa.select(RSVPS)
    .where(RSVPS.c.event_id.in_(sa.bindparam("events", expanding=True)), _WAITING)
    .order_by(RSVPS.c.queued_at, RSVPS.c.id)
)
_WAITLIST_ENDS = (
    sa.select(RSVPS.c.event_id, sa.func.count(), sa.func.max(RSVPS.c.queued_at))
    .where(RSVPS.c.event_id.in_(sa.bindparam("events", expanding=True)), _WAITING)
    .group_by(RSVPS.c.event_id)
)
_SET_SEATS = (
    sa.update(EVENTS)
    .where(EVENTS.c.id == sa.bindparam("event"))
    .where(EVENTS.c.seats_taken == sa.bindparam("loaded"))
    .where(sa.or_(EVENTS.c.capacity.is_(None), EVENTS.c.capacity >= sa.bindparam("taken")))
    .values(seats_taken=sa.bindparam("taken"))
)
_UPDATE_PARTY = sa.update(RSVPS).where(RSVPS.c.id == sa.bindparam("row"))
_PARTY_FIELDS = ("status", "guests", "display_name", "queued_at", "promotions")


class SeatsMoved(Exception):
    """The seats were not as loaded when written back: the event was not held. Nothing is committed."""


def promoted(event_id: int, promotions: Iterable[Promotion]) -> list[Effect]:
    """The effects that tell each promoted member."""
    return [MemberPromoted(event_id, p.member, p.number) for p in promotions]


async def lock_event(session: AsyncSession, event: Event) -> None:
    """Hold the event to the commit and reload it as the previous holder left it (unflushed changes to it are
    lost: flush first).

    PostgreSQL: SELECT … FOR UPDATE; every later statement then sees what the previous holder committed.
    SQLite needs nothing: BEGIN IMMEDIATE already made this transaction the only writer, so whatever it read
    is as the previous holder left it.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        return
    query = select(Event).where(Event.id == event.id).with_for_update().execution_options(populate_existing=True)
    await session.exec(query)


async def load_seatings(
    session: AsyncSession, events: Collection[Event], members: Sequence[Actor] = (), whole_waitlist: bool = False
) -> dict[int, Seating]:
    """Each event's seats and waitlist, with the RSVPs of `members`, as this transaction sees them now. The
    caller holds the events and has them as they are now (`lock_event`).

    The waitlists are loaded whole when asked, or when an answer of `members` could promote someone (one of
    them is going or waiting, or answers twice); otherwise only their length and last place, which is all
    that members joining them need, however long they are."""
    connection = await session.connection()
    seatings = {event.id: Seating(event.id, event.capacity, event.seats_taken, [], {}) for event in events if event.id}
    ids = sorted(seatings)
    users = [member.user_id for member in members]
    whole_waitlist = whole_waitlist or len(set(users)) < len(users)
    if users:
        for row in await connection.execute(_MEMBERS, {"events": ids, "users": users}):
            party = _party(row)
            seatings[row.event_id].members[(party.platform, party.user_id)] = party
            whole_waitlist = whole_waitlist or party.status in (RsvpStatus.GOING, RsvpStatus.WAITLISTED)
    if whole_waitlist:
        for row in await connection.execute(_WAITLISTS, {"events": ids}):
            seating = seatings[row.event_id]
            loaded = _party(row)
            seating.waitlist.append(seating.members.setdefault((loaded.platform, loaded.user_id), loaded))
    else:
        for event_id, waiting, last in await connection.execute(_WAITLIST_ENDS, {"events": ids}):
            seatings[event_id].ahead, seatings[event_id].last_queued_at = waiting, last
    return seatings


def _party(row: sa.Row[Any]) -> Party:
    return Party(
        row.id,
        row.platform,
        row.user_id,
        row.display_name,
        RsvpStatus(row.status),
        row.guests,
        row.queued_at,
        row.dm_reminders,
        row.promotions,
    )


async def save_seatings(session: AsyncSession, seatings: Iterable[Seating]) -> None:
    """Write back the seats and every RSVP that changed; SeatsMoved if the seats were not as loaded."""
    connection = await session.connection()
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for seating in seatings:
        if seating.taken != seating.taken_at_load:
            seats = {"event": seating.event_id, "loaded": seating.taken_at_load, "taken": seating.taken}
            if (await connection.execute(_SET_SEATS, seats)).rowcount != 1:
                raise SeatsMoved(f"event {seating.event_id}: its seats changed while it was held")
        for party in seating.changed.values():
            fields = {name: getattr(party, name) for name in _PARTY_FIELDS}
            if party.id is None:
                new.append(_new_row(seating.event_id, party) | fields)
            else:
                changed.append({"row": party.id} | fields)
    if new:
        await connection.execute(sa.insert(RSVPS), new)
    if changed:
        await connection.execute(_UPDATE_PARTY, changed)


def _new_row(event_id: int, party: Party) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "platform": party.platform,
        "user_id": party.user_id,
        "dm_reminders": party.dm_reminders,
    }


async def promote_waitlist(session: AsyncSession, event: Event) -> Sequence[Promotion]:
    """Promote waiting parties that now fit (its capacity grew, flushed), in queue order."""
    await lock_event(session, event)
    seating = (await load_seatings(session, (event,), whole_waitlist=True))[event.id or 0]
    moved_up = seating.promote()
    await save_seatings(session, (seating,))
    return [Promotion(party.member, party.promotions) for party in moved_up]
