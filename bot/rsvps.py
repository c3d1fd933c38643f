"""Seats and the waitlist, decided inside the database.

Seats are taken with one conditional UPDATE on the event row (seats_taken + n <= capacity), so two
processes can never both take the last seat: SQLite serialises writers, and PostgreSQL re-checks
the WHERE clause after waiting on the row lock. Promotions run in the same transaction as the
cancellation that freed the seats.

Each RSVP is decided holding the event row's lock (see `lock_event`), so the waitlist is joined one
party at a time: a party's place is chosen, and its position counted, after every earlier RSVP
committed, and the position told is its place in the final queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.effects import Effect, MemberPromoted
from bot.invocation import Actor
from bot.models import Event, Rsvp, RsvpStatus


@dataclass(frozen=True)
class Promotion:
    """A member moved up from the waitlist; `number` counts their promotions, so each one is told."""

    member: Actor
    number: int


@dataclass(frozen=True)
class RsvpOutcome:
    status: RsvpStatus
    guests: int
    waitlist_position: int | None = None
    kept_previous: bool = False  # asked for more seats than are free; the old RSVP stands
    promoted: tuple[Promotion, ...] = ()
    reminders_moved: bool = False  # someone who asked for DM reminders started or stopped going


def promoted(event_id: int, promotions: Iterable[Promotion]) -> list[Effect]:
    """The effects that tell each promoted member."""
    return [MemberPromoted(event_id, p.member, p.number) for p in promotions]


def member_of(rsvp: Rsvp) -> Actor:
    return Actor(rsvp.platform, rsvp.user_id, rsvp.display_name)


def promotion_of(rsvp: Rsvp) -> Promotion:
    return Promotion(member_of(rsvp), rsvp.promotions)


def party_size(rsvp: Rsvp) -> int:
    return 1 + rsvp.guests


async def take_seats(session: AsyncSession, event_id: int, seats: int) -> bool:
    """Atomically take `seats` if they fit; False leaves the event untouched.

    Neither this nor release_seats refreshes an Event already loaded in the session (matching it in Python
    costs more than the UPDATE): after either, read the seats from the database, as promote_waitlist does."""
    result = await session.exec(
        update(Event)
        .where(col(Event.id) == event_id)
        .where(sa.or_(col(Event.capacity).is_(None), col(Event.seats_taken) + seats <= col(Event.capacity)))
        .values(seats_taken=col(Event.seats_taken) + seats)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def release_seats(session: AsyncSession, event_id: int, seats: int) -> None:
    await session.exec(
        update(Event)
        .where(col(Event.id) == event_id)
        .values(seats_taken=col(Event.seats_taken) - seats)
        .execution_options(synchronize_session=False)
    )


async def promote_waitlist(session: AsyncSession, event_id: int) -> tuple[Rsvp, ...]:
    """Promote waiting parties in queue order; a party moves up only if all of it fits.

    Free seats are read first only to skip parties that cannot fit; each promotion still takes
    its seats with the conditional UPDATE, which is what guarantees the capacity.
    """
    capacity, taken = (await session.exec(select(Event.capacity, Event.seats_taken).where(Event.id == event_id))).one()
    free = None if capacity is None else capacity - taken
    if free is not None and free <= 0:
        return ()
    waiting = (
        await session.exec(
            select(Rsvp)
            .where(Rsvp.event_id == event_id, Rsvp.status == RsvpStatus.WAITLISTED)
            .order_by(col(Rsvp.queued_at), col(Rsvp.id))
        )
    ).all()
    promoted = []
    for rsvp in waiting:
        if free is not None and party_size(rsvp) > free:
            continue
        if await take_seats(session, event_id, party_size(rsvp)):
            rsvp.status = RsvpStatus.GOING
            rsvp.promotions += 1
            session.add(rsvp)
            promoted.append(rsvp)
            if free is not None:
                free -= party_size(rsvp)
                if free == 0:
                    break
    return tuple(promoted)


async def lock_event(session: AsyncSession, event: Event) -> None:
    """Wait until no other transaction is deciding an RSVP to this event, then reload the event as the
    previous holder left it (its seats taken, for the answer).

    PostgreSQL: SELECT … FOR UPDATE, held to the commit; every later statement then sees what the
    previous holder committed. SQLite needs nothing: BEGIN IMMEDIATE already made this transaction the
    only writer, so the event as this transaction read it is as the previous holder left it.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        return
    query = select(Event).where(Event.id == event.id).with_for_update().execution_options(populate_existing=True)
    await session.exec(query)


async def queue_time(session: AsyncSession, event_id: int, now: datetime) -> datetime:
    """When a party joins the end of the waitlist: `now`, or just after the last waiting party when
    that one's clock ran ahead (another process, another host), so the queue keeps the joining order."""
    last = (
        await session.exec(
            select(sa.func.max(Rsvp.queued_at)).where(Rsvp.event_id == event_id, Rsvp.status == RsvpStatus.WAITLISTED)
        )
    ).one()
    return now if last is None or last < now else last + timedelta(microseconds=1)


async def waitlist_position(session: AsyncSession, rsvp: Rsvp) -> int:
    ahead = await session.exec(
        select(sa.func.count())
        .select_from(Rsvp)
        .where(Rsvp.event_id == rsvp.event_id, Rsvp.status == RsvpStatus.WAITLISTED)
        .where(
            sa.or_(
                col(Rsvp.queued_at) < rsvp.queued_at,
                sa.and_(col(Rsvp.queued_at) == rsvp.queued_at, col(Rsvp.id) < rsvp.id),
            )
        )
    )
    return ahead.one() + 1


async def set_rsvp(
    session: AsyncSession, event: Event, member: Actor, wanted: RsvpStatus, guests: int, clock: Clock
) -> RsvpOutcome:
    """Record `member`'s answer. `wanted` is GOING, MAYBE or DECLINED; GOING may end up WAITLISTED."""
    assert event.id is not None
    await lock_event(session, event)
    now = clock.now()  # read holding the lock, so a later time means a later decision
    rsvp = (
        await session.exec(
            select(Rsvp).where(
                Rsvp.event_id == event.id, Rsvp.platform == member.platform, Rsvp.user_id == member.user_id
            )
        )
    ).first()
    if rsvp is None:
        rsvp = Rsvp(
            event_id=event.id,
            platform=member.platform,
            user_id=member.user_id,
            status=RsvpStatus.DECLINED,
            queued_at=now,
        )
    if member.display_name:
        rsvp.display_name = member.display_name
    before = RsvpStatus(rsvp.status)
    held = party_size(rsvp) if before is RsvpStatus.GOING else 0
    outcome = await _apply(session, event.id, rsvp, before, held, wanted, guests, now)
    session.add(rsvp)
    await session.flush()
    promoted: tuple[Rsvp, ...] = ()
    seats_freed = held > (party_size(rsvp) if rsvp.status == RsvpStatus.GOING else 0)
    if seats_freed or before is RsvpStatus.WAITLISTED:  # only then can a waiting party newly fit
        promoted = tuple(p for p in await promote_waitlist(session, event.id) if p is not rsvp)
    went = (before is RsvpStatus.GOING) != (rsvp.status == RsvpStatus.GOING)
    reminders_moved = (went and rsvp.dm_reminders) or any(p.dm_reminders for p in promoted)
    position = await waitlist_position(session, rsvp) if rsvp.status == RsvpStatus.WAITLISTED else None
    promotions = tuple(promotion_of(p) for p in promoted)
    return RsvpOutcome(RsvpStatus(rsvp.status), rsvp.guests, position, outcome, promotions, reminders_moved)


async def _apply(
    session: AsyncSession,
    event_id: int,
    rsvp: Rsvp,
    before: RsvpStatus,
    held: int,
    wanted: RsvpStatus,
    guests: int,
    now: datetime,
) -> bool:
    """Move the RSVP to its new state, taking or releasing seats. True if the old RSVP was kept."""
    if wanted is not RsvpStatus.GOING:
        if held:
            await release_seats(session, event_id, held)
        rsvp.status, rsvp.guests = wanted, guests
        return False
    if before is RsvpStatus.GOING:
        extra = 1 + guests - held
        if extra > 0 and not await take_seats(session, event_id, extra):
            return True
        if extra < 0:
            await release_seats(session, event_id, -extra)
        rsvp.guests = guests
        return False
    if before is RsvpStatus.WAITLISTED:
        rsvp.guests = guests  # keeps its place in the queue
        return False
    rsvp.guests = guests
    if await take_seats(session, event_id, 1 + guests):
        rsvp.status = RsvpStatus.GOING
    else:
        rsvp.status, rsvp.queued_at = RsvpStatus.WAITLISTED, await queue_time(session, event_id, now)
    return False
