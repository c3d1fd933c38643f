"""Finding events: the ones a sender may reach, and the one a command names."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bot.commands.args import UsageError
from bot.invocation import Actor
from bot.models import Event, EventStatus, Rsvp


class UnknownEvent(UsageError):
    """No event matches `ref` (None: there is no upcoming event). The message points chat users to the
    events command; the command line names its own way with `saying`."""

    def __init__(self, ref: str | None) -> None:
        from bot.commands.listings import events  # the commands find their events through this module

        self.ref = ref
        super().__init__(self.saying(events.ref))

    def saying(self, listing: str) -> str:
        if self.ref is None:
            return f"there is no upcoming event; name one, or see {listing}"
        return f"no event called '{self.ref}'; see {listing}"


def upcoming(now: datetime, organizer: bool = False) -> SelectOfScalar[Event]:
    """Events that have not ended, soonest first: published ones, and drafts too for organizers."""
    query = select(Event).where(col(Event.ends_at) > now, Event.status != EventStatus.CANCELLED)
    if not organizer:
        query = query.where(Event.status == EventStatus.PUBLISHED)
    return query.order_by(col(Event.starts_at))


async def resolve_event(
    session: AsyncSession, now: datetime, ref: str | None, organizer: bool = False, member: Actor | None = None
) -> Event:
    """A slug, a unique prefix of one, or None for the next event that has not ended.

    Organizers reach every event. Others reach published events, and cancelled ones that `member`
    RSVPed to; any other event answers as if it did not exist."""
    return await EventFinder(session, now).find(ref, organizer, member)


class EventFinder:
    """Resolves event references (see resolve_event) in one transaction, reading each reference once: the
    RSVPs a group commit settles mostly name the same event."""

    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._now = now
        self._next: dict[bool, Event | None] = {}
        self._prefixed: dict[str, list[Event]] = {}

    async def find(self, ref: str | None, organizer: bool = False, member: Actor | None = None) -> Event:
        if ref is None:
            return await self._upcoming(organizer)
        if ref not in self._prefixed:
            query = select(Event).where(col(Event.slug).startswith(ref, autoescape=True))
            self._prefixed[ref] = list((await self._session.exec(query)).all())
        matches = [event for event in self._prefixed[ref] if await self._visible(event, organizer, member)]
        exact = [event for event in matches if event.slug == ref]
        if exact or len(matches) == 1:
            return (exact or matches)[0]
        if matches:
            raise UsageError(f"'{ref}' matches {', '.join(e.slug for e in matches)}; say which")
        raise UnknownEvent(ref)

    async def _upcoming(self, organizer: bool) -> Event:
        if organizer not in self._next:
            self._next[organizer] = (await self._session.exec(upcoming(self._now, organizer).limit(1))).first()
        event = self._next[organizer]
        if event is None:
            raise UnknownEvent(None)
        return event

    async def _visible(self, event: Event, organizer: bool, member: Actor | None) -> bool:
        if organizer or event.status == EventStatus.PUBLISHED:
            return True
        if event.status != EventStatus.CANCELLED or member is None:
            return False
        rsvped = select(Rsvp.id).where(
            Rsvp.event_id == event.id, Rsvp.platform == member.platform, Rsvp.user_id == member.user_id
        )
        return (await self._session.exec(rsvped)).first() is not None


async def event_slugs(session: AsyncSession) -> list[str]:
    return list((await session.exec(select(Event.slug))).all())
