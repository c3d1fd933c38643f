"""iCalendar export: what a calendar app reads back, field by field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from conftest import ORGANIZER, create_event
from icalendar import Calendar
from sqlmodel import col, select

from adapters.plaintext import render
from bot import compose
from bot.calendar import PRODID, event_feed, item_uid, upcoming_feed
from bot.cli import main
from bot.demo import SAMPLE
from bot.engine import Engine
from bot.eventfile import import_event_file
from bot.invocation import CommandLine
from bot.models import AgendaItem, Event

LA = ZoneInfo("America/Los_Angeles")


async def run(engine: Engine, line: str) -> None:
    reply = await engine.handle(CommandLine(ORGANIZER, None, line))
    assert reply.ok, reply.text


async def load(engine: Engine, slug: str) -> tuple[Event, list[AgendaItem]]:
    async with engine.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        items = (
            await session.exec(
                select(AgendaItem).where(AgendaItem.event_id == event.id).order_by(col(AgendaItem.position))
            )
        ).all()
    return event, list(items)


async def export(engine: Engine, slug: str) -> tuple[bytes, Calendar]:
    async with engine.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        feed = await event_feed(session, event)
    return feed.body, Calendar.from_ical(feed.body)


def timed(value: date) -> datetime:
    """An event's start or end as the datetime it is: icalendar types them as date | datetime."""
    assert isinstance(value, datetime)
    return value


async def sample(engine: Engine) -> str:
    """The BookKeeper meetup (7 items, speakers, a panel), moved to 2026, with a URL, published."""
    slug = await import_event_file(engine, SAMPLE, starts_at=datetime(2026, 6, 17, 17, 30, tzinfo=LA))
    await run(engine, f"/emcee event edit {slug} --url https://example.org/bk-june")
    await run(engine, f"/emcee event publish {slug}")
    return slug


async def test_round_trip_every_field(engine: Engine) -> None:
    slug = await sample(engine)
    event, items = await load(engine, slug)
    body, calendar = await export(engine, slug)

    assert str(calendar["PRODID"]) == PRODID and str(calendar["VERSION"]) == "2.0"
    assert calendar.calendar_name == event.title
    assert [tz.tz_name for tz in calendar.timezones] == ["America/Los_Angeles"]
    assert calendar.get_missing_tzids() == set()
    vevents = calendar.events
    assert len(vevents) == 1 + len(items) == 8

    main_event = vevents[0]
    assert str(main_event["UID"]) == event.uid
    assert main_event.sequence == event.sequence > 0
    assert main_event.start == event.starts_at and main_event.end == event.ends_at
    assert main_event["DTSTART"].params["TZID"] == "America/Los_Angeles"
    start = timed(main_event.start)
    assert isinstance(start.tzinfo, ZoneInfo) and start.tzinfo.key == "America/Los_Angeles"
    assert (start.hour, start.minute) == (17, 30)
    assert str(main_event["SUMMARY"]) == event.title
    assert str(main_event["LOCATION"]) == event.venue
    assert str(main_event["URL"]) == "https://example.org/bk-june"
    assert str(main_event["STATUS"]) == "CONFIRMED"
    assert main_event.stamp == event.updated_at == main_event.last_modified
    description = str(main_event["DESCRIPTION"])
    assert description.startswith(event.description)
    assert "Agenda (times in America/Los_Angeles):" in description
    assert " 3. 18:00–18:30  Bookie Storage: current implementation and new experiments — Matteo Merli (Yahoo)" in (
        description
    )

    for vitem, item in zip(vevents[1:], items, strict=True):
        assert str(vitem["UID"]) == item_uid(event, item)
        assert str(vitem["RELATED-TO"]) == event.uid
        assert vitem["RELATED-TO"].params["RELTYPE"] == "PARENT"
        assert vitem.sequence == event.sequence
        assert vitem.start == item.starts_at and vitem.end == item.ends_at
        assert vitem["DTSTART"].params["TZID"] == "America/Los_Angeles"
        assert str(vitem["SUMMARY"]) == f"{item.title} ({event.title})"
        assert str(vitem["LOCATION"]) == event.venue
        assert str(vitem["STATUS"]) == "CONFIRMED"
        assert vitem.categories == [item.kind]
    bookie = vevents[3]
    assert str(bookie["DESCRIPTION"]).startswith("Matteo Merli (Yahoo): Member of the BookKeeper PMC")
    assert "RocksDB" in str(bookie["DESCRIPTION"])  # the abstract
    panel = str(vevents[6]["DESCRIPTION"])
    assert panel.splitlines()[0].startswith("Sameer Tiwari (Salesforce), moderator: ")
    assert "Sijie Guo (Twitter), panelist: " in panel
    assert len({str(v["UID"]) for v in vevents}) == 8

    # The same state gives the same bytes: the feed's ETag depends on it.
    assert (await export(engine, slug))[0] == body


async def test_wall_clock_times_survive_the_daylight_saving_change(engine: Engine) -> None:
    """18:00 in Los Angeles stays 18:00 when the event moves across the November change (UTC shifts by 1 h)."""
    await run(engine, '/emcee event create fall "Fall meetup" --starts 2026-10-29 18:00 --ends 2026-10-29 21:00')
    await run(engine, '/emcee agenda add 18:30 "Talk" --ends 19:15 --event fall')
    await run(engine, "/emcee event publish fall")
    _, before = await export(engine, "fall")
    assert timed(before.events[0].start).astimezone(UTC) == datetime(2026, 10, 30, 1, 0, tzinfo=UTC)  # PDT, UTC-7

    await run(engine, "/emcee event edit fall --starts 2026-11-05 18:00")
    body, after = await export(engine, "fall")
    event, talk = after.events
    start, end = timed(event.start), timed(event.end)
    assert (start.date().isoformat(), start.time().isoformat()) == ("2026-11-05", "18:00:00")
    assert end.time().isoformat() == "21:00:00"
    assert timed(talk.start).time().isoformat() == "18:30:00" and timed(talk.end).time().isoformat() == "19:15:00"
    assert start.astimezone(UTC) == datetime(2026, 11, 6, 2, 0, tzinfo=UTC)  # PST, UTC-8
    assert b"DTSTART;TZID=America/Los_Angeles:20261105T180000" in body
    assert event.sequence > before.events[0].sequence

    # The VTIMEZONE carries both offsets, so a client without its own zone data still gets it right.
    names = {str(sub["TZNAME"]) for sub in after.timezones[0].subcomponents}
    assert {"PDT", "PST"} <= names


async def test_an_evening_across_the_change_keeps_both_ends(engine: Engine) -> None:
    await run(engine, '/emcee event create late "Late night" --starts 2026-10-31 22:00 --ends 2026-11-01 03:00')
    _, calendar = await export(engine, "late")
    event = calendar.events[0]
    start, end = timed(event.start), timed(event.end)
    assert (start.hour, end.hour) == (22, 3)
    assert end - start == timedelta(hours=5)  # on the wall clock (same-zone arithmetic)
    # 6 real hours, since 01:00-02:00 happens twice that night
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=6)


async def test_cancelled_events_say_so_and_stay_in_the_feed(engine: Engine) -> None:
    slug = await sample(engine)
    _, before = await export(engine, slug)
    await run(engine, f"/emcee event cancel {slug}")
    _, calendar = await export(engine, slug)
    assert {str(v["STATUS"]) for v in calendar.events} == {"CANCELLED"}
    assert calendar.events[0].sequence > before.events[0].sequence

    async with engine.db.session() as session:
        feed = await upcoming_feed(session, engine.clock.now(), "Emcee")
    assert b"STATUS:CANCELLED" in feed.body


async def test_a_shifted_agenda_bumps_sequence_and_keeps_uids(engine: Engine) -> None:
    slug = await sample(engine)
    _, before = await export(engine, slug)
    await run(engine, f"/emcee agenda shift +10m --from 3 --event {slug}")
    _, after = await export(engine, slug)
    assert [str(v["UID"]) for v in after.events] == [str(v["UID"]) for v in before.events]
    assert {v.sequence for v in after.events} == {before.events[0].sequence + 1}
    moved = [a.start - b.start for a, b in zip(after.events[1:], before.events[1:], strict=True)]
    assert moved == [timedelta(0)] * 2 + [timedelta(minutes=10)] * 5


async def test_upcoming_feed_holds_published_events_that_have_not_ended(engine: Engine) -> None:
    await create_event(engine, "bk-june")
    await create_event(engine, "draft", publish=False)
    await run(engine, '/emcee event create past "Past" --starts 2026-05-01 18:00')
    await run(engine, "/emcee event publish past")
    async with engine.db.session() as session:
        feed = await upcoming_feed(session, engine.clock.now(), "Emcee")
    calendar = Calendar.from_ical(feed.body)
    assert [str(v["SUMMARY"]) for v in calendar.events] == ["BookKeeper June"]
    assert calendar.calendar_name == "Emcee events"
    assert feed.filename == "calendar.ics"


async def test_cards_link_to_the_feed_and_to_google_calendar_in_utc(engine: Engine) -> None:
    await create_event(engine, "bk-june")  # 2026-06-15 18:00-21:00 in Los Angeles (PDT)
    async with engine.db.session() as session:
        event = (await session.exec(select(Event))).one()
        card = await compose.event_card(session, event, "https://emcee.example.org")
        bare = await compose.event_card(session, event)
    assert card.calendar_url == "https://emcee.example.org/events/bk-june.ics"
    assert bare.calendar_url == ""
    link = urlsplit(card.google_calendar_url)
    assert f"{link.scheme}://{link.netloc}{link.path}" == "https://calendar.google.com/calendar/render"
    query = parse_qs(link.query)
    assert query["action"] == ["TEMPLATE"]
    assert query["dates"] == ["20260616T010000Z/20260616T040000Z"]
    assert query["text"] == ["BookKeeper June"]
    assert query["ctz"] == ["America/Los_Angeles"]
    text = render(card)
    assert "Add to calendar: https://emcee.example.org/events/bk-june.ics" in text
    assert card.google_calendar_url in text


async def test_google_link_fits_a_discord_button_and_is_dropped_when_cancelled(engine: Engine) -> None:
    await create_event(engine, "long")
    venue = "A very long venue name, " * 8  # the longest title and venue the commands take (150 and 200)
    await run(engine, f'/emcee event edit long --title "{"Title " * 25}" --venue "{venue}" --url https://x.org/e')
    async with engine.db.session() as session:
        event = (await session.exec(select(Event))).one()
        assert len(compose.google_calendar_url(event)) <= compose.LINK_LIMIT
        event.title = "Ünïcödé " * 25
        event.venue = ""
        assert len(compose.google_calendar_url(event)) <= compose.LINK_LIMIT
    await run(engine, "/emcee event cancel long")
    async with engine.db.session() as session:
        card = await compose.event_card(session, (await session.exec(select(Event))).one())
    assert card.google_calendar_url == ""


def test_cli_exports_one_event_or_the_upcoming_calendar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "emcee.toml"
    config.write_text(f'[bot]\ndatabase_url = "sqlite:///{tmp_path / "cli.db"}"\n')
    assert (
        main(["import", str(Path(__file__).parent / "payloads" / "ics" / "meetup-tzid.ics"), "--config", str(config)])
        == 0
    )
    monkeypatch.chdir(tmp_path)
    assert main(["export", "ics", "sf-python", "--config", str(config)]) == 0
    assert "wrote sf-python-project-night-july-2026.ics" in capsys.readouterr().out
    calendar = Calendar.from_ical((tmp_path / "sf-python-project-night-july-2026.ics").read_bytes())
    assert str(calendar.events[0]["UID"]) == "event_305123456@meetup.com"
    assert str(calendar.events[0]["STATUS"]) == "TENTATIVE"  # still a draft
    assert str(calendar["PRODID"]) == PRODID

    # A draft is not in the upcoming calendar: with nothing to export, no empty file is written.
    out = tmp_path / "all.ics"
    assert main(["export", "ics", "--output", str(out), "--config", str(config)]) == 1
    assert "nothing to export" in capsys.readouterr().err
    assert not out.exists()

    assert main(["export", "ics", "nope", "--config", str(config)]) == 1
    assert "no event called 'nope'" in capsys.readouterr().err
