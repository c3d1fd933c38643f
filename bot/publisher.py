"""Carries effects to every platform at once: cards, agenda updates, cancellations and DMs.

Every post goes through the outbox and its ledger, so a post key reaches each target once. Posted
cards are remembered by their message refs and edited in place when the event changes, at most
once per EDIT_INTERVAL per card (RSVP bursts would otherwise hit the platforms' edit limits).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import compose
from bot.clock import Clock
from bot.db import Database
from bot.delivery import DEFAULT_LEASE, Build, Ledger, Outbox, Post, Target
from bot.effects import (
    AgendaChanged,
    CardPosted,
    Effect,
    EventCancelled,
    EventChanged,
    MemberPromoted,
    SeatsChanged,
)
from bot.invocation import ChannelRef, MessageRef
from bot.messages import Message, Notice, digest
from bot.models import Event
from bot.ports import Adapter
from bot.statuses import EventStatus

log = logging.getLogger(__name__)

EDIT_INTERVAL = 2.0  # seconds between edits of one posted card


def card_key(event_id: int) -> str:
    return f"card:{event_id}:"


def agenda_key(event_id: int) -> str:
    return f"agenda:{event_id}:"


class EditThrottle:
    """Edits each group of posted messages at most once per `interval` seconds; the last state always lands.

    The first change edits at once. Changes inside the interval share one trailing edit at its end,
    which reads the state as it is then. Callers wait for the edit that covers their change, so
    EffectBus.drain still means "every effect has reached the platforms".
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._trailing: dict[str, asyncio.Task[None]] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def __call__(self, key: str, edit: Callable[[], Awaitable[None]]) -> None:
        """Run `edit` now, or once at the end of the interval for every change made inside it."""
        trailing = self._trailing.get(key)
        if trailing is None:
            wait = self._last.get(key, -math.inf) + self.interval - time.monotonic()
            if wait <= 0:
                await self._run(key, edit)
                return
            trailing = self._trailing[key] = asyncio.create_task(self._later(key, edit))
        await asyncio.shield(trailing)

    async def _later(self, key: str, edit: Callable[[], Awaitable[None]]) -> None:
        while (wait := self._last[key] + self.interval - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self._last[key] = time.monotonic()
        del self._trailing[key]  # from here on, a change waits for the next edit
        await self._run(key, edit)

    async def _run(self, key: str, edit: Callable[[], Awaitable[None]]) -> None:
        async with self._locks[key]:  # edits of one group land in order, so the newest state wins
            self._last[key] = time.monotonic()
            try:
                await edit()
            except Exception as exc:
                log.warning("refreshing %s failed: %s", key, exc)
            finally:  # the interval runs from the end of an edit, so the platform sees them that far apart
                self._last[key] = time.monotonic()


class Publisher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        adapters: Mapping[str, Adapter],
        channels: Mapping[str, Iterable[ChannelRef]],
        base_url: str = "",
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.db = db
        self.base_url = base_url  # where cards' calendar links point (settings.http.link_base)
        self.clock = clock
        self.adapters = adapters
        self.channels = {platform: list(refs) for platform, refs in channels.items() if platform in adapters}
        self.outbox = Outbox(Ledger(db, clock, lease), adapters)
        self.ledger = self.outbox.ledger
        self.edits = EditThrottle(EDIT_INTERVAL)

    async def __call__(self, effect: Effect) -> None:
        match effect:
            case CardPosted(event_id, text, post):
                await self.post_card(event_id, _post(post), text)
            case SeatsChanged(event_id, _):
                await self.refresh(card_key(event_id), self._card, event_id)
            case EventChanged(event_id):
                await asyncio.gather(
                    self.refresh(card_key(event_id), self._card, event_id),
                    self.refresh(agenda_key(event_id), self._agenda, event_id),
                )
            case AgendaChanged(event_id, update, post):
                await self.broadcast(f"agenda-update:{event_id}:{_post(post)}", update)
            case EventCancelled(event_id):
                notice = compose.cancellation_notice(await self._event(event_id))
                await self.broadcast(f"cancelled:{event_id}", notice)
            case MemberPromoted(event_id, member, number):
                notice = compose.promotion_notice(await self._event(event_id))
                if member.platform in self.adapters:
                    target = Target(member.platform, member.user_id, user=True)
                    await self.outbox.settle([Post(f"promoted:{event_id}:{member.user_id}:{number}", [target], notice)])

    def targets(self) -> list[Target]:
        return [Target(platform, ref.channel_id) for platform, refs in self.channels.items() for ref in refs]

    async def post_card(self, event_id: int, post: str, text: str = "") -> None:
        """Post the event card and its agenda to every announce channel (a new post for each `post`, which
        names it in the ledger: posting the same `post` again sends only what has not been sent).

        All posts are handed to the outbox at once, in order: each channel gets the words, the card and the
        agenda in that order, at its own pace, so a slow channel holds up no other. Once they are everywhere,
        an edit made while they were on their way (which reached only the channels that had them) is caught up.
        """
        targets = self.targets()
        card, agenda = await self._card(event_id), await self._agenda(event_id)
        announced = [Post(f"announce:{event_id}:{post}", targets, Notice(text))] if text else []
        cards = Post(card_key(event_id) + post, targets, card)
        agendas = Post(agenda_key(event_id) + post, targets, agenda)
        await self.outbox.settle([*announced, cards, agendas])
        await self._refresh_stale(event_id)

    async def refresh(self, prefix: str, build: Callable[[int], Awaitable[Message]], event_id: int) -> None:
        """Edit every message posted under `prefix` to show the event's current state (throttled per prefix)."""
        if not await self.ledger.sent_refs(prefix):
            return  # nothing posted yet (a draft, or the post is on its way and shows the current state)

        async def edit() -> None:
            message = await build(event_id)
            shown = digest(message)
            refs = await self.ledger.sent_refs(prefix, showing_other_than=shown)
            edited = await asyncio.gather(*(self._edit(ref, message) for ref in refs))
            await self.ledger.showing(prefix, [ref for ref, done in zip(refs, edited, strict=True) if done], shown)

        await self.edits(prefix, edit)

    async def catch_up(self) -> None:
        """Bring every posted card and agenda of an event not yet over up to date: an edit that a crash (or a
        platform outage) cut off is made now. Posts that already show the current state are left alone."""
        async with self.db.reading() as session:
            live = await session.exec(
                select(Event.id).where(col(Event.status) != EventStatus.DRAFT, col(Event.ends_at) > self.clock.now())
            )
            event_ids = [event_id for event_id in live.all() if event_id is not None]
        for event_id in event_ids:
            await self._refresh_stale(event_id)

    async def _refresh_stale(self, event_id: int) -> None:
        """Edit the event's card and agenda posts that are not known to show its current state."""
        for prefix, build in ((card_key(event_id), self._card), (agenda_key(event_id), self._agenda)):
            if await self.ledger.sent_refs(prefix, showing_other_than=digest(await build(event_id))):
                await self.refresh(prefix, build, event_id)

    async def broadcast(self, key: str, build: Build) -> None:
        """Send one post to every announce channel, concurrently across channels."""
        await self.outbox.settle([Post(key, self.targets(), build)])

    async def _edit(self, ref: MessageRef, message: Message) -> bool:
        """Whether the message now shows `message` (False when its platform is not run, or the edit failed)."""
        adapter = self.adapters.get(ref.platform)
        if adapter is None:
            return False
        try:
            await adapter.edit(ref, message)
        except Exception as exc:
            log.warning("editing %s failed: %s", ref.encode(), exc)
            return False
        return True

    async def _event(self, event_id: int) -> Event:
        async with self.db.reading() as session:
            return await _get(session, event_id)

    async def _card(self, event_id: int) -> Message:
        async with self.db.reading() as session:
            return await compose.event_card(session, await _get(session, event_id), self.base_url)

    async def _agenda(self, event_id: int) -> Message:
        async with self.db.reading() as session:
            return await compose.agenda_card(session, await _get(session, event_id))


async def _get(session: AsyncSession, event_id: int) -> Event:
    event = await session.get(Event, event_id)
    if event is None:
        raise LookupError(f"event {event_id} is gone")
    return event


def _post(post: int | None) -> str:
    """The ledger's name for an effect's posts: its outbox row's id, which every dispatched effect has."""
    if post is None:
        raise ValueError("an effect that posts must come from the outbox")
    return str(post)
