"""Agenda edits: add, move, shift and remove items, and describe what moved.

Items are kept numbered 1..n in start order, so members and organizers can refer to them by number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.commands import listings
from bot.commands.args import UsageError, time_errors
from bot.commands.speakers import require_speaker
from bot.effects import AgendaChanged
from bot.formatting import describe_duration, format_clock
from bot.messages import AgendaChange, AgendaUpdate
from bot.models import AgendaItem, Event, EventStatus, ItemKind, ItemSpeaker, SpeakerRole
from bot.timeparse import WallTime, format_duration, moved

DEFAULT_ITEM_LENGTH = timedelta(minutes=30)


def published_notice(event: Event, change: AgendaChanged | None) -> list[AgendaChanged]:
    """Agenda update notices go out only for published events; drafts change quietly."""
    return [change] if change is not None and event.status == EventStatus.PUBLISHED else []


class AgendaEditor:
    """Edits one event's agenda inside the caller's transaction."""

    def __init__(self, session: AsyncSession, event: Event, now: datetime) -> None:
        self.session = session
        self.event = event
        self.now = now
        self.zone = ZoneInfo(event.timezone)

    async def add(self, args: dict[str, Any]) -> AgendaChanged:
        before = await self._starts()
        return await self._changed(before, *await self._add(args))

    async def move(self, args: dict[str, Any]) -> AgendaChanged:
        before = await self._starts()
        return await self._changed(before, *self._move(await self._items(), args))

    async def shift(self, args: dict[str, Any]) -> AgendaChanged:
        before = await self._starts()
        return await self._changed(before, *self._shift(await self._items(), args))

    async def remove(self, args: dict[str, Any]) -> AgendaChanged:
        before = await self._starts()
        return await self._changed(before, *await self._remove(await self._items(), args))

    async def _starts(self) -> dict[int | None, datetime]:
        return {item.id: item.starts_at for item in await self._items()}

    async def _changed(
        self, before: dict[int | None, datetime], touched: list[tuple[AgendaItem, bool]], summary: str
    ) -> AgendaChanged:
        """Renumber the items, and describe what moved: (item, removed) pairs in `touched`."""
        await self._renumber()
        changes = tuple(
            AgendaChange(item.title, before.get(item.id), None if removed else item.starts_at)
            for item, removed in touched
        )
        return AgendaChanged(
            self.event.id or 0, AgendaUpdate(self.event.slug, self.event.title, self.event.timezone, summary, changes)
        )

    async def shift_all(self, delta: timedelta) -> AgendaChanged | None:
        """Move every item by `delta` (the event itself moved)."""
        items = await self._items()
        if not items or not delta:
            return None
        changes = []
        for item in items:
            changes.append(AgendaChange(item.title, item.starts_at, item.starts_at + delta))
            self._move_by(item, delta)
        summary = f"the event moved by {format_duration(delta)}"
        return AgendaChanged(
            self.event.id or 0,
            AgendaUpdate(self.event.slug, self.event.title, self.event.timezone, summary, tuple(changes)),
        )

    async def _items(self) -> Sequence[AgendaItem]:
        query = select(AgendaItem).where(AgendaItem.event_id == self.event.id)
        return (await self.session.exec(query.order_by(col(AgendaItem.starts_at), col(AgendaItem.id)))).all()

    def _at(self, wall: WallTime) -> datetime:
        with time_errors():
            return wall.resolve(self.zone, self.event.starts_at.astimezone(self.zone).date())

    def _note(self, wall: WallTime) -> str:
        """Which one was taken, when the wall time happens twice (clocks fall back)."""
        note = wall.note(self.zone, self.event.starts_at.astimezone(self.zone).date())
        return f" ({note.rstrip('.')})" if note else ""

    def _move_by(self, item: AgendaItem, delta: timedelta) -> None:
        """Move an item, refusing a result outside the date range."""
        with time_errors():
            item.starts_at = moved(item.starts_at, delta, item.title)
            item.ends_at = moved(item.ends_at, delta, f"the end of {item.title}")
        self.session.add(item)

    def _find(self, items: Sequence[AgendaItem], ref: str) -> AgendaItem:
        ref = ref.strip()
        if ref.isdigit():
            match = [item for item in items if item.position == int(ref)]
        else:
            match = [item for item in items if item.title.lower().startswith(ref.lower())]
        if len(match) == 1:
            return match[0]
        if match:
            raise UsageError(f"'{ref}' matches several items: {', '.join(i.title for i in match)}; use its number")
        raise UsageError(f"no agenda item '{ref}'; see {listings.agenda.ref} {self.event.slug} for the numbers")

    async def _add(self, args: dict[str, Any]) -> tuple[list[tuple[AgendaItem, bool]], str]:
        title = args["title"].strip()
        if not title:
            raise UsageError("the item needs a title")
        starts_at = self._at(args["starts"])
        if "ends" in args:
            ends_at = self._at(args["ends"])
        else:
            with time_errors():
                ends_at = moved(starts_at, DEFAULT_ITEM_LENGTH, f"the end of {title}")
        if ends_at <= starts_at:
            raise UsageError("--ends must be after the start")
        cast = [(name, SpeakerRole.SPEAKER) for name in args.get("speaker", [])]
        cast += [(name, SpeakerRole.PANELIST) for name in args.get("panelist", [])]
        if "moderator" in args:
            cast.append((args["moderator"], SpeakerRole.MODERATOR))
        kind = args.get("kind") or (ItemKind.PANEL if "moderator" in args or "panelist" in args else ItemKind.TALK)
        speakers = [(await require_speaker(self.session, name), role) for name, role in cast]
        item = AgendaItem(
            event_id=self.event.id or 0,
            position=0,
            starts_at=starts_at,
            ends_at=ends_at,
            title=title,
            kind=kind,
            abstract=args.get("abstract", ""),
        )
        self.session.add(item)
        await self.session.flush()
        for speaker, role in speakers:
            self.session.add(ItemSpeaker(item_id=item.id or 0, speaker_id=speaker.id or 0, role=role))
        when = format_clock(starts_at, self.event.timezone)
        return [(item, False)], f"added {title} at {when}{self._note(args['starts'])}"

    def _move(self, items: Sequence[AgendaItem], args: dict[str, Any]) -> tuple[list[tuple[AgendaItem, bool]], str]:
        item = self._find(items, args["item"])
        new_start = self._at(args["to"])
        self._move_by(item, new_start - item.starts_at)
        when = format_clock(new_start, self.event.timezone)
        return [(item, False)], f"moved {item.title} to {when}{self._note(args['to'])}"

    def _shift(self, items: Sequence[AgendaItem], args: dict[str, Any]) -> tuple[list[tuple[AgendaItem, bool]], str]:
        delta: timedelta = args["by"]
        if not delta:
            raise UsageError("shift by a non-zero duration, e.g. +10m")
        if not items:
            raise UsageError(f"{self.event.title} has no agenda items to shift")
        first = self._find(items, args["from"]) if "from" in args else self._current(items)
        shifted = [item for item in items if item.position >= first.position]
        for item in shifted:
            self._move_by(item, delta)
        if shifted[-1].ends_at > self.event.ends_at:
            self.event.ends_at = shifted[-1].ends_at
        direction = "late" if delta > timedelta(0) else "early"
        summary = f"running {describe_duration(abs(delta))} {direction}: {first.title} and everything after it moved"
        return [(item, False) for item in shifted], summary

    def _current(self, items: Sequence[AgendaItem]) -> AgendaItem:
        """The item on stage now, else the next one; the first item before the event starts."""
        for item in items:
            if item.ends_at > self.now:
                return item
        raise UsageError("every agenda item is already over; name one with --from")

    async def _remove(
        self, items: Sequence[AgendaItem], args: dict[str, Any]
    ) -> tuple[list[tuple[AgendaItem, bool]], str]:
        item = self._find(items, args["item"])
        await self.session.exec(delete(ItemSpeaker).where(col(ItemSpeaker.item_id) == item.id))
        await self.session.delete(item)
        return [(item, True)], f"removed {item.title}"

    async def _renumber(self) -> None:
        await self.session.flush()
        for position, item in enumerate(await self._items(), start=1):
            if item.position != position:
                item.position = position
                self.session.add(item)
