"""Seats and the waitlist in the database: load an event's Seating (bot/seating.py), write back what changed.

Callers hold the event before loading it: SQLite's BEGIN IMMEDIATE makes the transaction the only
writer; on PostgreSQL, `hold_events` (SELECT … FOR UPDATE) holds it to the commit. The decisions are made
in memory on what was loaded; the seats written back are checked in SQL once more (the seats as loaded,
and the capacity), so a transaction that did not hold the event fails instead of overbooking.

These run on a sync connection inside `run_sync`, their statements prepared (bot/prepared.py): the RSVP
desk settles a group with a few of them, and a lone RSVP's answer waits for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.effects import Effect, MemberPromoted
from bot.invocation import Actor
from bot.lookup import FOUND_COLUMNS, Found
from bot.models import Event, Rsvp, RsvpStatus, table_of
from bot.prepared import Prepared
from bot.seating import Party, Promotion, Seating

EVENTS = table_of(Event)
RSVPS = table_of(Rsvp)
_PARTY_COLUMNS = tuple(field.name for field in fields(Party))
_CHANGED = ("status", "guests", "display_name", "queued_at", "promotions")  # what an answer may change
_NEW = ("platform", "user_id", "dm_reminders", *_CHANGED)  # a new RSVP's fields, besides its event

# FOR UPDATE on PostgreSQL; SQLite's dialect leaves it out (BEGIN IMMEDIATE holds everything).
_HOLD = Prepared(sa.select(*FOUND_COLUMNS).where(EVENTS.c.id == sa.bindparam("event")).with_for_update())


@cache
def _members(count: int) -> Prepared:
    """The RSVPs of `count` members to an event (platform `p<i>`, user `u<i>`); see _members_of."""
    keys = [sa.tuple_(sa.bindparam(f"p{index}"), sa.bindparam(f"u{index}")) for index in range(count)]
    return Prepared(
        sa.select(*(RSVPS.c[name] for name in _PARTY_COLUMNS)).where(
            RSVPS.c.event_id == sa.bindparam("event"), sa.tuple_(RSVPS.c.platform, RSVPS.c.user_id).in_(keys)
        )
    )


def _members_of(connection: sa.Connection, event_id: int, keys: Sequence[tuple[str, str]]) -> list[Party]:
    """The RSVPs of the members `keys` (platform, user id) to the event. The statement is prepared for a power
    of two of members, the last repeated to fill it, so that a few statement texts serve every group."""
    size = 1 << (len(keys) - 1).bit_length()
    padded = [*keys, *[keys[-1]] * (size - len(keys))]
    params: dict[str, object] = {"event": event_id}
    for index, (platform, user) in enumerate(padded):
        params |= {f"p{index}": platform, f"u{index}": user}
    return [_party(row) for row in _members(size).rows(connection, params)]


_WAITING = (RSVPS.c.event_id == sa.bindparam("event")) & (RSVPS.c.status == RsvpStatus.WAITLISTED)
_WAITLIST = Prepared(
    sa.select(*(RSVPS.c[name] for name in _PARTY_COLUMNS)).where(_WAITING).order_by(RSVPS.c.queued_at, RSVPS.c.id)
)
# Two statements: SQLite finds a max alone at the end of the index (ix_rsvp_queue), and with a count scans it.
_WAITLIST_LENGTH = Prepared(sa.select(sa.func.count()).where(_WAITING))
_WAITLIST_LAST = Prepared(sa.select(sa.func.max(RSVPS.c.queued_at)).where(_WAITING))
_SET_SEATS = Prepared(
    sa.update(EVENTS)
    .where(EVENTS.c.id == sa.bindparam("event"))
    .where(EVENTS.c.seats_taken == sa.bindparam("loaded"))
    .where(sa.or_(EVENTS.c.capacity.is_(None), EVENTS.c.capacity >= sa.bindparam("taken")))
    .values(seats_taken=sa.bindparam("taken"))
)
_INSERT_PARTY = Prepared(sa.insert(RSVPS).values({name: sa.bindparam(f"p_{name}") for name in ("event_id", *_NEW)}))
_UPDATE_PARTY = Prepared(
    sa.update(RSVPS)
    .where(RSVPS.c.id == sa.bindparam("row"))
    .values({name: sa.bindparam(f"p_{name}") for name in _CHANGED})
)


class SeatsMoved(Exception):
    """The seats were not as loaded when written back: the event was not held. Nothing is committed."""


def promoted(event_id: int, promotions: Iterable[Promotion]) -> list[Effect]:
    """The effects that tell each promoted member."""
    return [MemberPromoted(event_id, p.member, p.number) for p in promotions]


def hold_events(connection: sa.Connection, found: dict[int, Found]) -> dict[int, Found]:
    """Hold the events to the commit, and have them as the previous holder left them.

    PostgreSQL: SELECT … FOR UPDATE, in id order (so that two transactions holding several never wait on
    each other), read again. SQLite needs nothing: BEGIN IMMEDIATE already made this transaction the only
    writer, so what it read is as the previous holder left it.
    """
    if connection.dialect.name == "sqlite":
        return found
    return {event_id: Found.of(_HOLD.rows(connection, {"event": event_id})[0]) for event_id in sorted(found)}


def load_seatings(
    connection: sa.Connection, events: Iterable[Found], members: Sequence[Actor] = (), whole_waitlist: bool = False
) -> dict[int, Seating]:
    """Each event's seats and waitlist, with the RSVPs of `members`, as this transaction sees them now. The
    caller holds the events and has them as they are now (`hold_events`).

    The waitlists are loaded whole when asked, or when an answer of `members` could promote someone (one of
    them is going or waiting, or answers twice); otherwise only their length and last place, which is all
    that members joining them need, however long they are."""
    seatings = {event.id: Seating(event.id, event.capacity, event.seats_taken, [], {}) for event in events}
    keys = [(member.platform, member.user_id) for member in members]
    whole_waitlist = whole_waitlist or len(set(keys)) < len(keys)
    for seating in seatings.values() if keys else ():
        for party in _members_of(connection, seating.event_id, keys):
            seating.members[(party.platform, party.user_id)] = party
            whole_waitlist = whole_waitlist or party.status in (RsvpStatus.GOING, RsvpStatus.WAITLISTED)
    for seating in seatings.values():
        if whole_waitlist:
            for row in _WAITLIST.rows(connection, {"event": seating.event_id}):
                loaded = _party(row)
                seating.waitlist.append(seating.members.setdefault((loaded.platform, loaded.user_id), loaded))
        else:
            [(seating.ahead,)] = _WAITLIST_LENGTH.rows(connection, {"event": seating.event_id})
            [(seating.last_queued_at,)] = _WAITLIST_LAST.rows(connection, {"event": seating.event_id})
    return seatings


def _party(row: Sequence[Any]) -> Party:
    party = Party(*row)
    party.status = RsvpStatus(party.status)
    return party


def save_seatings(connection: sa.Connection, seatings: Iterable[Seating]) -> None:
    """Write back the seats and every RSVP that changed; SeatsMoved if the seats were not as loaded."""
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for seating in seatings:
        if seating.taken != seating.taken_at_load:
            seats = {"event": seating.event_id, "loaded": seating.taken_at_load, "taken": seating.taken}
            if _SET_SEATS.run(connection, seats) != 1:
                raise SeatsMoved(f"event {seating.event_id}: its seats changed while it was held")
        for party in seating.changed.values():
            if party.id is None:
                new.append({f"p_{name}": getattr(party, name) for name in _NEW} | {"p_event_id": seating.event_id})
            else:
                changed.append({f"p_{name}": getattr(party, name) for name in _CHANGED} | {"row": party.id})
    if new:
        _INSERT_PARTY.run_many(connection, new)
    if changed:
        _UPDATE_PARTY.run_many(connection, changed)


async def promote_waitlist(session: AsyncSession, event: Event) -> Sequence[Promotion]:
    """Promote waiting parties that now fit (its capacity grew, flushed), in queue order."""
    connection = await session.connection()
    return await connection.run_sync(_promote, event.id or 0)


def _promote(connection: sa.Connection, event_id: int) -> list[Promotion]:
    held = Found.of(_HOLD.rows(connection, {"event": event_id})[0])  # the edit's flush holds it already
    seating = load_seatings(connection, (held,), whole_waitlist=True)[event_id]
    moved_up = seating.promote()
    save_seatings(connection, (seating,))
    return [Promotion(party.member, party.promotions) for party in moved_up]
