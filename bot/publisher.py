"""Carries effects to every platform at once: cards, agenda updates, cancellations and DMs.

Every post goes through the ledger, so a post key reaches each target once. Posted cards are
remembered by their message refs and edited in place when the event changes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import cards
from bot.clock import Clock
from bot.db import Database
from bot.delivery import Ledger, Target
from bot.effects import (
    AgendaChanged,
    CardPosted,
    Effect,
    EventCancelled,
    EventChanged,
    MemberPromoted,
    SeatsChanged,
)
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message, Notice
from bot.models import DeliveryStatus, Event
from bot.ports import Adapter

log = logging.getLogger(__name__)


def card_key(event_id: int) -> str:
    return f"card:{event_id}:"


def agenda_key(event_id: int) -> str:
    return f"agenda:{event_id}:"


class Publisher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        adapters: Mapping[str, Adapter],
        channels: Mapping[str, Iterable[ChannelRef]],
        ledger: Ledger | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.adapters = adapters
        self.channels = {platform: list(refs) for platform, refs in channels.items() if platform in adapters}
        self.ledger = ledger or Ledger(db, clock)

    async def __call__(self, effect: Effect) -> None:
        match effect:
            case CardPosted(event_id, text):
                await self.post_card(event_id, text)
            case SeatsChanged(event_id):
                await self.refresh(card_key(event_id), self._card, event_id)
            case EventChanged(event_id):
                await self.refresh(card_key(event_id), self._card, event_id)
                await self.refresh(agenda_key(event_id), self._agenda, event_id)
            case AgendaChanged(event_id, update):
                await self.broadcast(f"agenda-update:{event_id}:{uuid.uuid4().hex}", lambda: _const(update))
            case EventCancelled(event_id):
                event = await self._event(event_id)
                notice = Notice(f"❌ {event.title} is cancelled. Sorry, and thanks for your RSVPs.", event.slug)
                await self.broadcast(f"cancelled:{event_id}", lambda: _const(notice))
            case MemberPromoted(event_id, member):
                event = await self._event(event_id)
                text = f"🎉 A seat opened up: you're going to {event.title}. Can't make it? /rsvp {event.slug} no"
                adapter = self.adapters.get(member.platform)
                if adapter is not None:
                    target = Target(member.platform, member.user_id, user=True)
                    await self.deliver(f"promoted:{event_id}:{member.user_id}", target, lambda: _const(Notice(text)))

    def targets(self) -> list[Target]:
        return [Target(platform, ref.channel_id) for platform, refs in self.channels.items() for ref in refs]

    async def post_card(self, event_id: int, text: str = "") -> None:
        """Post the event card and its agenda to every announce channel (a new post each time)."""
        post = uuid.uuid4().hex
        if text:
            await self.broadcast(f"announce:{event_id}:{post}", lambda: _const(Notice(text)))
        await self.broadcast(card_key(event_id) + post, lambda: self._card(event_id))
        await self.broadcast(agenda_key(event_id) + post, lambda: self._agenda(event_id))

    async def refresh(self, prefix: str, build: Callable[[int], Awaitable[Message]], event_id: int) -> None:
        """Edit every message posted under `prefix` to show the event's current state."""
        refs = await self.ledger.sent_refs(prefix)
        if refs:
            message = await build(event_id)
            await asyncio.gather(*(self._edit(ref, message) for ref in refs))

    async def broadcast(self, key: str, build: Callable[[], Awaitable[Message]]) -> None:
        """Send one post to every announce channel, concurrently across channels."""
        await asyncio.gather(*(self.deliver(key, target, build) for target in self.targets()))

    async def deliver(self, key: str, target: Target, build: Callable[[], Awaitable[Message]]) -> MessageRef | None:
        if not await self.ledger.claim(key, target):
            return None
        adapter = self.adapters[target.platform]
        try:
            message = await build()
            if target.user:
                ref = await adapter.send_dm(_member(target), message)
            else:
                ref = await adapter.send(ChannelRef(target.platform, target.id), message)
        except Exception as exc:
            log.warning("post %s to %s failed: %s", key, target.encode(), exc)
            await self.ledger.finish(key, target, DeliveryStatus.FAILED, error=str(exc)[:500])
            return None
        await self.ledger.finish(key, target, DeliveryStatus.SENT, ref)
        return ref

    async def _edit(self, ref: MessageRef, message: Message) -> None:
        adapter = self.adapters.get(ref.platform)
        if adapter is None:
            return
        try:
            await adapter.edit(ref, message)
        except Exception as exc:
            log.warning("editing %s failed: %s", ref.encode(), exc)

    async def _event(self, event_id: int) -> Event:
        async with self.db.session() as session:
            return await _get(session, event_id)

    async def _card(self, event_id: int) -> Message:
        async with self.db.session() as session:
            return await cards.event_card(session, await _get(session, event_id))

    async def _agenda(self, event_id: int) -> Message:
        async with self.db.session() as session:
            return await cards.agenda_card(session, await _get(session, event_id))


async def _get(session: AsyncSession, event_id: int) -> Event:
    event = await session.get(Event, event_id)
    if event is None:
        raise LookupError(f"event {event_id} is gone")
    return event


async def _const(message: Message) -> Message:
    return message


def _member(target: Target) -> Actor:
    return Actor(target.platform, target.id)
