"""What an engine operation means for the outside world, published after its transaction commits.

Subscribers (the publisher, the scheduler) run as background tasks, so a command's reply never
waits for fan-out to chat platforms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.invocation import Actor
from bot.messages import AgendaUpdate

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
    """Post the event's card to every announce channel, with an organizer's words above it."""

    event_id: int
    text: str = ""


@dataclass(frozen=True)
class AgendaChanged:
    event_id: int
    update: AgendaUpdate


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


class EffectBus:
    """Hands each effect to every subscriber in a background task; `drain` waits for them."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, effects: list[Effect]) -> None:
        for effect in effects:
            for subscriber in self._subscribers:
                task = asyncio.create_task(self._run(subscriber, effect))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run(self, subscriber: Subscriber, effect: Effect) -> None:
        try:
            await subscriber(effect)
        except Exception:
            log.exception("handling %s failed", type(effect).__name__)

    async def drain(self) -> None:
        """Wait until every effect published so far, and any they caused, is handled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
