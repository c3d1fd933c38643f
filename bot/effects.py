"""What an engine operation means for the outside world, published after its transaction commits.

Each effect is first written as a `PendingEffect` row in the command's own transaction (the outbox),
so a crash after the commit loses none: start-up dispatches again every row not done. Subscribers
(the publisher, the scheduler) run as background tasks, so a command's reply never waits for fan-out
to chat platforms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, get_args

from pydantic import TypeAdapter
from sqlalchemy.orm import Session
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.db import Database
from bot.invocation import Actor
from bot.messages import AgendaUpdate
from bot.models import PendingEffect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventChanged:
    """Anything about the event, its agenda or its seats changed: cards and schedules follow."""

    event_id: int


@dataclass(frozen=True)
class SeatsChanged:
    """RSVPs moved: the posted cards' counts need an update (the agenda did not change).

    `reminders_moved` says a member who opted into DM reminders started or stopped going, so the
    planned DMs change too; otherwise the schedule stays as it is."""

    event_id: int
    reminders_moved: bool = False


@dataclass(frozen=True)
class RemindersChanged:
    """A member turned DM reminders for the event on or off: only the planned DMs change, nothing public."""

    event_id: int


@dataclass(frozen=True)
class CardPosted:
    """Post the event's card to every announce channel, with an organizer's words above it.

    `post` is the id of the outbox row carrying it (set when it is written): it names the posts in the
    ledger, so a replay after a crash sends only what had not been sent."""

    event_id: int
    text: str = ""
    post: int | None = None


@dataclass(frozen=True)
class AgendaChanged:
    """`post`: as for CardPosted."""

    event_id: int
    update: AgendaUpdate
    post: int | None = None


@dataclass(frozen=True)
class EventCancelled:
    event_id: int


@dataclass(frozen=True)
class MemberPromoted:
    """`number` is the member's count of promotions for this event: each one gets its own DM."""

    event_id: int
    member: Actor
    number: int


Effect = EventChanged | SeatsChanged | RemindersChanged | CardPosted | AgendaChanged | EventCancelled | MemberPromoted
Subscriber = Callable[[Effect], Awaitable[None]]

# The outbox rows' kinds; a kind's name is stored, so renaming one needs a migration of the rows.
KINDS: dict[str, type[Effect]] = {kind.__name__: kind for kind in get_args(Effect)}


# The effects that post something new (a card, a notice, a DM): these go through the outbox's rows. The
# others (card edits, re-plans) only make the posts and the plan follow the stored state, which the next change
# does again, so they are dispatched from memory and cost a command no extra write.
POSTING: tuple[type[Effect], ...] = (CardPosted, AgendaChanged, EventCancelled, MemberPromoted)


@dataclass(frozen=True)
class Pending:
    """An effect to dispatch: by its outbox row's id, or with no id when it has no row (not POSTING)."""

    id: int | None
    effect: Effect


def _payload(effect: Effect) -> dict[str, Any]:
    payload: dict[str, Any] = TypeAdapter(type(effect)).dump_python(effect, mode="json")
    return payload


def _pending(row: PendingEffect) -> Pending:
    """The effect a row carries; effects that post learn the row's id, which names their posts."""
    effect = TypeAdapter(KINDS[row.kind]).validate_python(row.payload)
    row_id = row.id or 0
    if isinstance(effect, CardPosted | AgendaChanged):
        effect = replace(effect, post=row_id)
    return Pending(row_id, effect)


class EffectLog:
    """The outbox's rows: written in a command's transaction, marked done once dispatched."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def write(self, session: AsyncSession | None, effects: Sequence[Effect]) -> list[Pending]:
        """Add a row for each POSTING effect to `session`'s transaction; committed (or rolled back) with it.
        Without a session (a command that writes through a desk) there must be none."""
        if not any(isinstance(effect, POSTING) for effect in effects):
            return [Pending(None, effect) for effect in effects]
        if session is None:
            raise ValueError("effects that need the outbox, and no transaction to write them in")
        return await session.run_sync(self.record, effects)

    def record(self, session: Session, effects: Sequence[Effect]) -> list[Pending]:
        """`write` on a sync session (inside `run_sync`)."""
        now = self.clock.now()
        rows = {
            index: PendingEffect(kind=type(effect).__name__, payload=_payload(effect), created_at=now)
            for index, effect in enumerate(effects)
            if isinstance(effect, POSTING)
        }
        if rows:
            session.add_all(rows.values())
            session.flush()
        return [
            _pending(rows[index]) if index in rows else Pending(None, effect) for index, effect in enumerate(effects)
        ]

    async def done(self, row_id: int) -> None:
        async with self.db.session() as session:
            query = update(PendingEffect).where(col(PendingEffect.id) == row_id)
            await session.exec(query.values(done_at=self.clock.now()))

    async def left(self, before: datetime | None = None) -> list[Pending]:
        """Every effect not done (its process stopped before dispatching it), oldest first; only those written
        before `before` when given."""
        query = select(PendingEffect).where(col(PendingEffect.done_at).is_(None)).order_by(col(PendingEffect.id))
        if before is not None:
            query = query.where(col(PendingEffect.created_at) < before)
        async with self.db.reading() as session:
            return [_pending(row) for row in (await session.exec(query)).all()]


class EffectBus:
    """Hands each effect to every subscriber in a background task; `drain` waits for them."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatching: set[int] = set()  # the outbox rows whose effects are being dispatched here

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, effects: Sequence[Pending], outbox: EffectLog) -> None:
        """Dispatch each effect to every subscriber; once all have handled it, its row is marked done. An effect
        whose row is being dispatched here already is skipped."""
        for pending in effects:
            if pending.id is not None:
                if pending.id in self._dispatching:
                    continue
                self._dispatching.add(pending.id)
            self.spawn(self._dispatch(pending, outbox))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background like an effect's dispatch: `drain` waits for it too."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, pending: Pending, outbox: EffectLog) -> None:
        try:
            await asyncio.gather(*(self._run(subscriber, pending.effect) for subscriber in self._subscribers))
            if pending.id is not None:
                await outbox.done(pending.id)
        finally:
            if pending.id is not None:
                self._dispatching.discard(pending.id)

    async def _run(self, subscriber: Subscriber, effect: Effect) -> None:
        try:
            await subscriber(effect)
        except Exception:
            log.exception("handling %s failed", type(effect).__name__)

    async def drain(self) -> None:
        """Wait until every effect published so far, and any they caused, is handled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
