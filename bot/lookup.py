"""Finding events: the ones a sender may reach, and the one a command names."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import and_, col, or_, select
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
    if ref is None:
        event = (await session.exec(upcoming(now, organizer))).first()
        if event is None:
            raise UnknownEvent(None)
        return event
    exact = (await session.exec(_visible(select(Event).where(Event.slug == ref), organizer, member))).first()
    if exact:
        return exact
    prefixed = select(Event).where(col(Event.slug).startswith(ref, autoescape=True))
    matches = (await session.exec(_visible(prefixed, organizer, member))).all()
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"'{ref}' matches {', '.join(e.slug for e in matches)}; say which")
    raise UnknownEvent(ref)


async def event_slugs(session: AsyncSession) -> list[str]:
    return list((await session.exec(select(Event.slug))).all())


def _visible(query: SelectOfScalar[Event], organizer: bool, member: Actor | None) -> SelectOfScalar[Event]:
    """Limit an event query to what the sender may see (see resolve_event)."""
    if organizer:
        return query
    seen = col(Event.status) == EventStatus.PUBLISHED
    if member is not None:
        rsvped = (
            select(Rsvp.id)
            .where(Rsvp.event_id == Event.id, Rsvp.platform == member.platform, Rsvp.user_id == member.user_id)
            .exists()
        )
        seen = or_(seen, and_(col(Event.status) == EventStatus.CANCELLED, rsvped))
    return query.where(seen)
