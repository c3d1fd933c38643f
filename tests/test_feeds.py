"""The live .ics feeds over real HTTP (the shared server on 127.0.0.1, port 0)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from conftest import ORGANIZER, create_event
from icalendar import Calendar
from sqlmodel import select

from bot import compose
from bot.clock import FakeClock
from bot.config import HttpSettings
from bot.engine import Engine
from bot.feeds import CalendarFeeds
from bot.http import HttpServer
from bot.invocation import CommandLine
from bot.models import Event


async def no_checks() -> dict[str, str]:
    return {}


@pytest.fixture
async def server(engine: Engine, clock: FakeClock) -> AsyncIterator[HttpServer]:
    http = HttpServer(HttpSettings(port=0), no_checks)
    CalendarFeeds(engine.db, clock, "Emcee").register(http.app)
    await http.start()
    yield http
    await http.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_event_feed_serves_the_calendar_with_caching_headers(
    engine: Engine, server: HttpServer, client: aiohttp.ClientSession
) -> None:
    await create_event(engine, "bk-june")
    async with engine.db.session() as session:
        event = (await session.exec(select(Event))).one()
    async with client.get(f"{server.url}/events/bk-june.ics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        assert parsedate_to_datetime(response.headers["Last-Modified"]) == event.updated_at
        etag = response.headers["ETag"]
        body = await response.read()
    assert etag.startswith('"') and etag.endswith('"')
    vevent = Calendar.from_ical(body).events[0]
    assert str(vevent["UID"]) == event.uid and str(vevent["SUMMARY"]) == "BookKeeper June"

    async with client.get(f"{server.url}/events/bk-june.ics", headers={"If-None-Match": etag}) as response:
        assert response.status == 304
        assert response.headers["ETag"] == etag
        assert await response.read() == b""
    for tags in (f'"other", W/{etag}', "*"):  # a list, weak comparison, and "*" for any current version
        async with client.get(f"{server.url}/events/bk-june.ics", headers={"If-None-Match": tags}) as response:
            assert response.status == 304
    async with client.get(f"{server.url}/events/bk-june.ics", headers={"If-None-Match": '"other"'}) as response:
        assert response.status == 200
    async with client.head(f"{server.url}/events/bk-june.ics") as response:
        assert response.status == 200 and response.headers["ETag"] == etag


async def test_a_subscriber_sees_an_agenda_shift_at_its_next_poll(
    engine: Engine, clock: FakeClock, server: HttpServer, client: aiohttp.ClientSession
) -> None:
    await create_event(engine, "bk-june")
    assert (await engine.handle(CommandLine(ORGANIZER, None, '/emcee agenda add 18:30 "Talk" --event bk-june'))).ok
    url = f"{server.url}/calendar.ics"
    async with client.get(url) as response:
        etag, first = response.headers["ETag"], Calendar.from_ical(await response.read())
    clock.advance(timedelta(minutes=5))
    assert (await engine.handle(CommandLine(ORGANIZER, None, "/emcee agenda shift +10m --event bk-june"))).ok

    async with client.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 200
        assert response.headers["ETag"] != etag
        assert parsedate_to_datetime(response.headers["Last-Modified"]) == clock.now().replace(microsecond=0)
        now = Calendar.from_ical(await response.read())
    assert now.events[1].start == datetime(2026, 6, 16, 1, 40, tzinfo=UTC)  # 18:40 PDT
    assert now.events[0].sequence == first.events[0].sequence + 1


async def test_unknown_and_draft_events_are_404(
    engine: Engine, server: HttpServer, client: aiohttp.ClientSession
) -> None:
    await create_event(engine, "secret", publish=False)
    for slug in ("nope", "secret"):
        async with client.get(f"{server.url}/events/{slug}.ics") as response:
            assert response.status == 404
            assert response.headers["Content-Type"].startswith("text/plain")
            assert await response.text() == f"No event called '{slug}'.\n"


async def test_calendar_feed_lists_upcoming_published_events(
    engine: Engine, server: HttpServer, client: aiohttp.ClientSession
) -> None:
    await create_event(engine, "bk-june")
    await create_event(engine, "draft", publish=False)
    async with client.get(f"{server.url}/calendar.ics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
        calendar = Calendar.from_ical(await response.read())
    assert [str(v["SUMMARY"]) for v in calendar.events] == ["BookKeeper June"]


async def test_an_empty_calendar_is_still_a_calendar(server: HttpServer, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{server.url}/calendar.ics") as response:
        assert response.status == 200 and "Last-Modified" not in response.headers
        assert Calendar.from_ical(await response.read()).events == []


async def test_the_cards_add_to_calendar_link_resolves(
    engine: Engine, server: HttpServer, client: aiohttp.ClientSession
) -> None:
    await create_event(engine, "bk-june")
    async with engine.db.session() as session:
        card = await compose.event_card(session, (await session.exec(select(Event))).one(), server.url)
    async with client.get(card.calendar_url) as response:
        assert response.status == 200
