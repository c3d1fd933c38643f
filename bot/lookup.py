"""Finding events: the ones a sender may reach, and the one a command names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bot.commands.args import UsageError
from bot.invocation import Actor
from bot.models import Event, EventStatus, Rsvp, UTCDateTime, table_of
from bot.prepared import Prepared


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


def upcoming(now: datetime | sa.BindParameter[datetime], organizer: bool = False) -> SelectOfScalar[Event]:
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
    connection = await session.connection()
    found = await connection.run_sync(lambda sync: EventFinder(sync, now).find(ref, organizer, member))
    event = await session.get(Event, found.id)
    if event is None:  # deleted since it was found
        raise UnknownEvent(ref)
    return event


@dataclass(frozen=True)
class Found:
    """What finding an event reads of it: enough to answer about it and to seat members at it."""

    id: int
    slug: str
    title: str
    status: EventStatus
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int | None
    seats_taken: int

    @classmethod
    def of(cls, row: Sequence[Any]) -> Found:
        """From a row of FOUND_COLUMNS."""
        found = cls(*row)
        return replace(found, status=EventStatus(found.status))


FOUND_COLUMNS = tuple(table_of(Event).c[field.name] for field in fields(Found))
_PREFIXED = Prepared(
    sa.select(*FOUND_COLUMNS).where(col(Event.slug).like(sa.bindparam("pattern", type_=sa.String()), escape="/"))
)
_NOW = sa.bindparam("now", type_=UTCDateTime())
_NEXT = {
    organizer: Prepared(upcoming(_NOW, organizer).with_only_columns(*FOUND_COLUMNS).limit(1))
    for organizer in (False, True)
}
_RSVPED = Prepared(
    sa.select(table_of(Rsvp).c.id).where(
        col(Rsvp.event_id) == sa.bindparam("event"),
        col(Rsvp.platform) == sa.bindparam("platform"),
        col(Rsvp.user_id) == sa.bindparam("user"),
    )
)


class EventFinder:
    """Resolves event references (see resolve_event) on a connection (sync: run it in `run_sync`), reading each
    reference once, and only what Found holds: the RSVPs a group commit settles mostly name the same event."""

    def __init__(self, connection: sa.Connection, now: datetime) -> None:
        self._connection = connection
        self._now = now
        self._next: dict[bool, Found | None] = {}
        self._prefixed: dict[str, list[Found]] = {}

    def find(self, ref: str | None, organizer: bool = False, member: Actor | None = None) -> Found:
        if ref is None:
            return self._upcoming(organizer)
        if ref not in self._prefixed:
            rows = _PREFIXED.rows(self._connection, {"pattern": _escaped(ref) + "%"})
            self._prefixed[ref] = [Found.of(row) for row in rows]
        matches = [event for event in self._prefixed[ref] if self._visible(event, organizer, member)]
        exact = [event for event in matches if event.slug == ref]
        if exact or len(matches) == 1:
            return (exact or matches)[0]
        if matches:
            raise UsageError(f"'{ref}' matches {', '.join(e.slug for e in matches)}; say which")
        raise UnknownEvent(ref)

    def _upcoming(self, organizer: bool) -> Found:
        if organizer not in self._next:
            rows = _NEXT[organizer].rows(self._connection, {"now": self._now})
            self._next[organizer] = Found.of(rows[0]) if rows else None
        event = self._next[organizer]
        if event is None:
            raise UnknownEvent(None)
        return event

    def _visible(self, event: Found, organizer: bool, member: Actor | None) -> bool:
        if organizer or event.status is EventStatus.PUBLISHED:
            return True
        if event.status is not EventStatus.CANCELLED or member is None:
            return False
        params = {"event": event.id, "platform": member.platform, "user": member.user_id}
        return bool(_RSVPED.rows(self._connection, params))


def _escaped(text: str) -> str:
    """`text` matched as itself by LIKE … ESCAPE '/' (no wildcards), as autoescape would write it."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


async def event_slugs(session: AsyncSession) -> list[str]:
    return list((await session.exec(select(Event.slug))).all())
