"""The RSVP desk: members' RSVPs settled together, whatever is queued in one transaction (group commit).

An RSVP is a small write, and on SQLite every write waits for the one writer: settled one transaction
each, a burst of RSVPs queues on the lock and on per-statement overhead. The desk instead takes every
RSVP that arrived while the previous group was being written, resolves the events they name once,
holds those events, decides each RSVP in arrival order in memory (bot/seating.py) and writes them back
with a few statements (bot/rsvps.py), committing once. Each RSVP is decided exactly as if it had been
committed alone in that order: seats, the waitlist's order and the positions told are the same.

A refused RSVP (an unknown or closed event, too few seats) writes nothing and does not disturb the others
in its group. The group's transaction records each RSVP's interaction (bot/interactions.py): a second
delivery of one already acted on is refused (AlreadyHandled), like any refusal, without failing its group.
If the group's transaction fails, each of its RSVPs is tried again alone, so that one member's failure
stays their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.commands.args import UsageError
from bot.db import Database
from bot.effects import Effect, EffectLog, Pending
from bot.formatting import plural
from bot.interactions import AlreadyHandled, Key, forget, record
from bot.invocation import Actor
from bot.lookup import EventFinder, Found
from bot.rsvps import hold_events, load_seatings, promoted, save_seatings
from bot.seating import RsvpOutcome, Seating, SeatsTooFew
from bot.statuses import EventStatus, RsvpStatus

GROUP_MOST = 200  # RSVPs in one transaction at most, so that none waits long behind a huge group


@dataclass(frozen=True)
class RsvpAsk:
    """A member's answer to the event `ref` names (None: the next one); `wanted` is GOING, MAYBE or DECLINED.
    `interaction_id` is the platform's id of the member's action, acted on once."""

    ref: str | None
    member: Actor
    organizer: bool
    wanted: RsvpStatus
    guests: int
    interaction_id: str | None = None

    @property
    def interaction(self) -> Key | None:
        return (self.member.platform, self.interaction_id) if self.interaction_id is not None else None


@dataclass(frozen=True)
class Settled:
    """An RSVP committed: the event, what became of the member, and the promotions' outbox rows."""

    event: Found
    outcome: RsvpOutcome
    written: list[Pending]


_Entry = tuple[RsvpAsk, "asyncio.Future[Settled]"]


class RsvpDesk:
    def __init__(self, db: Database, outbox: EffectLog, clock: Clock) -> None:
        self._db = db
        self._outbox = outbox
        self._clock = clock
        self._queue: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None

    async def settle(self, ask: RsvpAsk) -> Settled:
        """Commit `ask` with whatever else is queued; UsageError or AlreadyHandled, having written nothing, when it
        is refused."""
        future: asyncio.Future[Settled] = asyncio.get_running_loop().create_future()
        self._queue.append((ask, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue[:GROUP_MOST], self._queue[GROUP_MOST:]
                await self._commit(group)
        finally:
            self._writer = None

    async def _commit(self, group: list[_Entry]) -> None:
        try:
            results = await self._settle([ask for ask, _ in group])
        except Exception as exc:
            if len(group) > 1:
                for entry in group:
                    await self._commit([entry])
                return
            results = [exc]
        for (_, future), result in zip(group, results, strict=True):
            if future.cancelled():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _settle(self, asks: Sequence[RsvpAsk]) -> list[Settled | Exception]:
        """One transaction: each ask's Settled, or the refusal (UsageError, AlreadyHandled) that refused it."""
        decided, told, written = await self._db.writing(lambda connection: self._settle_in(connection, asks))
        results: list[Settled | Exception] = []
        for item, effects in zip(decided, told, strict=True):
            if isinstance(item, Exception):
                results.append(item)
            else:
                results.append(Settled(item[0], item[1], written[: len(effects)]))
                written = written[len(effects) :]
        return results

    def _settle_in(
        self, connection: sa.Connection, asks: Sequence[RsvpAsk]
    ) -> tuple[list[_Decided], list[list[Effect]], list[Pending]]:
        """The transaction's work: each ask decided, the promotions each one told, and their outbox rows."""
        decided = self._decide_all(connection, asks)
        told = [[] if isinstance(item, Exception) else promoted(item[0].id, item[1].promoted) for item in decided]
        with Session(bind=connection) as session:  # joins the connection's transaction
            written = self._outbox.record(session, list(chain.from_iterable(told)))
        return decided, told, written

    def _decide_all(self, connection: sa.Connection, asks: Sequence[RsvpAsk]) -> list[_Decided]:
        """Record the asks' interactions, find the events, hold them, decide each ask in order on their seatings,
        and write the changes."""
        keys = [ask.interaction for ask in asks]
        first_runs = record(connection, keys, self._clock.now())
        finder = EventFinder(connection, self._clock.now())
        events: list[Found | Refusal] = []
        for ask, first_run in zip(asks, first_runs, strict=True):
            try:
                if not first_run:
                    raise AlreadyHandled(f"{ask.member.platform} interaction {ask.interaction_id}")
                events.append(finder.find(ask.ref, ask.organizer, ask.member))
            except (UsageError, AlreadyHandled) as exc:
                events.append(exc)
        held = hold_events(connection, {event.id: event for event in events if isinstance(event, Found)})
        events = [held[event.id] if isinstance(event, Found) else event for event in events]
        now = self._clock.now()  # read holding the events, so a later time means a later decision
        seatings = load_seatings(connection, held.values(), [ask.member for ask in asks])
        decided = [_decide(seatings, ask, event, now) for ask, event in zip(asks, events, strict=True)]
        forget(connection, [key for key, item in zip(keys, decided, strict=True) if isinstance(item, UsageError)])
        save_seatings(connection, seatings.values())
        return decided


Refusal = UsageError | AlreadyHandled  # why an RSVP of a group was not carried out; it wrote nothing
_Decided = tuple[Found, RsvpOutcome] | Refusal


def _decide(seatings: dict[int, Seating], ask: RsvpAsk, event: Found | Refusal, now: datetime) -> _Decided:
    """Apply `ask` to its event's seating, or say why it is refused (changing nothing)."""
    if isinstance(event, Exception):
        return event
    if event.status != EventStatus.PUBLISHED:
        return UsageError(f"{event.title} is {event.status}; RSVPs are closed")
    if event.ends_at <= now:
        return UsageError(f"{event.title} is over; RSVPs are closed")
    try:
        return event, seatings[event.id].answer(ask.member, ask.wanted, ask.guests, now)
    except SeatsTooFew as exc:
        return UsageError(f"Only {plural(exc.left, 'seat')} left at {event.title}, so your RSVP is unchanged.")
