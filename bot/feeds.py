"""Live calendar feeds on the shared aiohttp server: /events/<slug>.ics and /calendar.ics.

Calendar apps poll a subscribed feed. Each answer carries an ETag (a hash of the body) and
Last-Modified (the latest change of the events in it); a poll whose If-None-Match matches gets
304 and no body. Every poll reads the current state, so edits and agenda shifts show at the next one.
"""

from __future__ import annotations

from aiohttp import web
from sqlmodel import select

from bot.calendar import Feed, event_feed, exportable, upcoming_feed
from bot.clock import Clock
from bot.db import Database
from bot.models import Event, EventStatus

CONTENT_TYPE = "text/calendar"


class CalendarFeeds:
    def __init__(self, db: Database, clock: Clock, name: str) -> None:
        self.db = db
        self.clock = clock
        self.name = name

    def register(self, app: web.Application) -> None:
        """Add the routes; call before the server starts."""
        app.router.add_get("/calendar.ics", self.calendar)
        app.router.add_get("/events/{slug}.ics", self.event)

    async def calendar(self, request: web.Request) -> web.Response:
        async with self.db.reading() as session:
            feed = await upcoming_feed(session, self.clock.now(), self.name)
        return _respond(request, feed)

    async def event(self, request: web.Request) -> web.Response:
        slug = request.match_info["slug"]
        async with self.db.reading() as session:
            event = (await session.exec(select(Event).where(Event.slug == slug))).first()
            if event is None or event.status == EventStatus.DRAFT or not exportable(event):  # drafts are not public
                raise web.HTTPNotFound(text=f"No event called '{slug}'.\n")
            feed = await event_feed(session, event)
        return _respond(request, feed)


def _respond(request: web.Request, feed: Feed) -> web.Response:
    tags = request.if_none_match or ()
    if any(tag.value in (feed.etag, "*") for tag in tags):
        response = web.Response(status=304)
    else:
        response = web.Response(body=feed.body, content_type=CONTENT_TYPE, charset="utf-8")
        response.headers["Content-Disposition"] = f'inline; filename="{feed.filename}"'
    response.etag = feed.etag
    if feed.last_modified is not None:
        response.last_modified = feed.last_modified
    response.headers["Cache-Control"] = "no-cache"  # revalidate every poll; the ETag makes that cheap
    return response
