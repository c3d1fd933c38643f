"""What a command handler receives (Context) and returns (Outcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.effects import Effect, Pending
from bot.invocation import Actor, ChannelRef
from bot.lookup import resolve_event
from bot.messages import Reply
from bot.models import Event

if TYPE_CHECKING:
    from bot.commands.registry import Registry
    from bot.rsvp_desk import RsvpDesk


@dataclass
class Outcome:
    reply: Reply
    effects: list[Effect] = field(default_factory=list)
    written: list[Pending] = field(default_factory=list)  # effects a desk already put in the outbox


@dataclass(frozen=True)
class Context:
    """One command's run: its transaction, who sent it and from where, and what the bot knows.

    `organizer` is decided once by the engine before the handler runs. A command declared `desk_writes` has no
    transaction of its own (`transaction` None): its writes go through the RSVP desk, `rsvps`."""

    transaction: AsyncSession | None
    actor: Actor
    channel: ChannelRef | None
    organizer: bool
    clock: Clock
    settings: Settings
    registry: Registry
    rsvps: RsvpDesk
    interaction_id: str | None = None  # the platform's id of the member action this run answers

    @property
    def session(self) -> AsyncSession:
        if self.transaction is None:
            raise RuntimeError("this command writes through a desk and has no session of its own")
        return self.transaction

    async def event(self, ref: str | None) -> Event:
        """The event `ref` names (None: the next one), among those the sender may see."""
        return await resolve_event(self.session, self.clock.now(), ref, self.organizer, self.actor)

    def touch(self, event: Event, **changes: Any) -> None:
        """Record a change to the event: bump its calendar sequence and timestamp."""
        for name, value in changes.items():
            setattr(event, name, value)
        event.sequence += 1
        event.updated_at = self.clock.now()
        self.session.add(event)
