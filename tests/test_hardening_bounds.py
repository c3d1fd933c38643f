"""Bounds on what organizers type (durations, dates, text, time zones, DST), and rows already in a database."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from conftest import ORGANIZER, create_event, member, snapshot
from icalendar import Calendar
from sqlmodel import select
from test_delivery import RecordingAdapter
from test_runner import GENERAL, add_event, make_runner

from bot import compose
from bot.clock import FakeClock
from bot.commands import ArgKind, UsageError
from bot.commands.catalog import COMMANDS
from bot.config import ConfigError, HttpSettings, load_settings
from bot.db import Database
from bot.engine import Engine
from bot.feeds import CalendarFeeds
from bot.http import HttpServer
from bot.invocation import Actor, CommandLine
from bot.models import Event, table_of
from schedules.planner import PostKind, Rules


async def refused(engine: Engine, line: str, problem: str) -> str:
    """Run `line` as the organizer; it must be refused with `problem`, write nothing and carry the usage."""
    before = await snapshot(engine.db)
    reply = await engine.handle(CommandLine(ORGANIZER, None, line))
    assert not reply.ok, reply.text
    assert problem in reply.text, reply.text
    assert reply.usage, reply.text
    assert "went wrong" not in reply.text
    assert await snapshot(engine.db) == before
    return reply.text


# -- item 7: durations and dates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("/emcee agenda shift 99999999999d", "at most 365d"),
        ("/emcee agenda shift +999999d", "at most 365d"),
        ("/emcee agenda shift -366d", "at most 365d"),
        ("/emcee event edit --reminders 999999d", "at most 365d"),
        ("/emcee event edit --reminders 91d", "at most 90d"),
        ('/emcee event create late "Late" --starts 9999-12-31 23:59', "from 2000 to 2099"),
        ('/emcee event create early "Early" --starts 1999-12-31 18:00', "from 2000 to 2099"),
        ('/emcee event create eve "Eve" --starts 2099-12-31 23:00', "from 2000 to 2099"),
        ("/emcee event edit --starts 2100-01-02 18:00", "from 2000 to 2099"),
    ],
)
async def test_out_of_range_durations_and_dates_are_refused_without_writes(
    engine: Engine, line: str, problem: str
) -> None:
    """Hardening item 7: huge durations, reminder offsets and dates outside 2000-2099 are refused."""
    await create_event(engine)
    await engine.handle(CommandLine(ORGANIZER, None, '/emcee agenda add 18:00 "Welcome"'))
    await refused(engine, line, problem)


async def test_an_agenda_shift_or_move_that_leaves_the_date_range_is_refused(engine: Engine) -> None:
    """Hardening item 7: a shift or move whose result falls in year 2100 or later is refused."""
    reply = await engine.handle(CommandLine(ORGANIZER, None, '/emcee event create eve "Eve" --starts 2099-12-30 18:00'))
    assert reply.ok, reply.text
    assert (await engine.handle(CommandLine(ORGANIZER, None, '/emcee agenda add 18:00 "Welcome"'))).ok
    await refused(engine, "/emcee agenda shift +2d --from 1", "from 2000 to 2099")
    await refused(engine, "/emcee agenda move 1 2099-12-31 23:30", "from 2000 to 2099")


async def test_a_member_gets_no_internal_error_from_a_huge_shift(engine: Engine) -> None:
    """Hardening item 7: a member typing an unbounded shift is answered, never with an internal error."""
    await create_event(engine)
    reply = await engine.handle(CommandLine(member("ada"), None, "/emcee agenda shift 99999999999d"))
    assert not reply.ok
    assert "went wrong" not in reply.text


def test_the_usage_of_duration_and_time_arguments_states_their_range() -> None:
    """Hardening item 7: help says what range each duration and date argument takes."""
    shift = next(c for c in COMMANDS if c.path == ("emcee", "agenda", "shift"))
    create = next(c for c in COMMANDS if c.path == ("emcee", "event", "create"))
    assert "at most 365d" in shift.help()
    assert "2000" in create.help() and "2099" in create.help()
    assert "at most 90d" in create.help()


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ('[reminders]\nevent_offsets = ["999999d"]', "[reminders] event_offsets"),
        ('[reminders]\nevent_offsets = ["91d"]', "at most 90d"),
        ('[reminders]\nitem_offset = "99999999999d"', "[reminders] item_offset"),
        ('[reminders]\ndm_offset = "400d"', "[reminders] dm_offset"),
        ("[bot]\ngrace_minutes = 99999999999", "[bot] grace_minutes"),
    ],
)
def test_config_durations_are_bounded_like_commands(tmp_path: Path, section: str, problem: str) -> None:
    """Hardening item 7: config durations go through the same bounded parser and fail as a ConfigError."""
    path = tmp_path / "emcee.toml"
    path.write_text(section + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert problem in str(error.value)


async def add_bad_event(db: Database, good_id: int, starts_at: datetime, **columns: object) -> None:
    """A row that today's commands would refuse, written directly as an older version might have."""
    async with db.engine.begin() as connection:
        table = table_of(Event)
        row = (await connection.execute(sa.select(table).where(table.c.id == good_id))).one()
        values = {name: value for name, value in row._mapping.items() if name != "id"}
        values |= {"slug": "bad-row", "uid": "bad@test", "starts_at": starts_at}
        values |= {"ends_at": starts_at + timedelta(hours=2)} | columns
        await connection.execute(sa.insert(table).values(**values))


@pytest.mark.parametrize(
    ("columns", "bad_kinds"),
    [
        (
            {"reminder_offsets": "999999d"},
            {PostKind.REMINDER, PostKind.STARTING},
        ),  # its own offsets: the configured ones
        ({"timezone": "America"}, set()),  # not planned at all
    ],
)
async def test_the_runner_skips_a_bad_row_and_plans_the_good_event(
    db: Database,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    columns: dict[str, object],
    bad_kinds: set[PostKind],
) -> None:
    """Hardening item 7: one bad event in the database is logged and skipped; start-up and the others go on."""
    good_id, _ = await add_event(db, clock.now() + timedelta(hours=3))
    await add_bad_event(db, good_id, clock.now() + timedelta(days=2), **columns)
    runner = make_runner(db, clock, RecordingAdapter(), Rules(event_offsets=(timedelta(hours=1),)))
    with caplog.at_level(logging.WARNING):
        await runner.start()
    try:
        kinds = {(post.event_id == good_id, post.kind) for post in runner.jobs.values()}
        assert kinds == {(True, PostKind.REMINDER), (True, PostKind.STARTING)} | {(False, kind) for kind in bad_kinds}
        assert "bad-row" in caplog.text
        await runner.reconcile()  # a later reconcile of everything survives it too
    finally:
        await runner.stop()


async def test_the_runner_plans_posts_of_a_year_9999_row_never(db: Database, clock: FakeClock) -> None:
    """Hardening item 7: an event at the end of year 9999 neither stops start-up nor gets jobs."""
    good_id, _ = await add_event(db, clock.now() + timedelta(hours=3))
    await add_bad_event(db, good_id, datetime(9999, 12, 31, 21, 0, tzinfo=UTC))
    runner = make_runner(db, clock, RecordingAdapter(), Rules(event_offsets=(timedelta(hours=1),)))
    await runner.start()
    try:
        assert {post.event_id for post in runner.jobs.values()} == {good_id}
        assert all(post.targets == (GENERAL,) for post in runner.jobs.values())
    finally:
        await runner.stop()


@pytest.fixture
async def server(engine: Engine, clock: FakeClock) -> AsyncIterator[HttpServer]:
    http = HttpServer(HttpSettings(port=0), _no_checks)
    CalendarFeeds(engine.db, clock, "Emcee").register(http.app)
    await http.start()
    yield http
    await http.stop()


async def _no_checks() -> dict[str, str]:
    return {}


@pytest.mark.parametrize(
    ("starts_at", "columns"),
    [
        (datetime(9999, 12, 31, 20, 0, tzinfo=UTC), {}),
        (datetime(2026, 7, 1, 18, 0, tzinfo=UTC), {"timezone": "America"}),
    ],
)
async def test_the_feeds_skip_a_bad_row_and_serve_the_good_event(
    engine: Engine, server: HttpServer, starts_at: datetime, columns: dict[str, object]
) -> None:
    """Hardening item 7: /calendar.ics and the good event's own feed still answer beside a bad row."""
    await create_event(engine, "bk-june")
    async with engine.db.session() as session:
        good = (await session.exec(select(Event))).one()
    await add_bad_event(engine.db, good.id or 0, starts_at, **columns)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{server.url}/calendar.ics") as response:
            assert response.status == 200
            body = await response.read()
        assert [str(e["SUMMARY"]) for e in Calendar.from_ical(body).events] == ["BookKeeper June"]
        async with client.get(f"{server.url}/events/bk-june.ics") as response:
            assert response.status == 200
        async with client.get(f"{server.url}/events/bad-row.ics") as response:
            assert response.status == 404


# -- item 8: text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('/emcee event create long "{x}" --starts 2026-07-01 18:00', "title is 100000 characters; at most 150"),
        ('/emcee event edit --venue "{x}"', "venue is 100000 characters; at most"),
        ('/emcee event edit --description "{x}"', "description is 100000 characters; at most 3000"),
        ('/emcee event edit --url "{x}"', "url is 100000 characters; at most"),
        ('/emcee speaker add "{x}"', "name is 100000 characters; at most"),
        ('/emcee speaker add "Ada" --bio "{x}"', "bio is 100000 characters; at most 1000"),
        ('/emcee speaker add "Ada" --affiliation "{x}"', "affiliation is 100000 characters"),
        ('/emcee speaker add "Ada" --links "{x}"', "links is 100000 characters"),
        ('/emcee agenda add 18:00 "Talk" --abstract "{x}"', "abstract is 100000 characters; at most 1000"),
        ('/emcee agenda add 18:00 "{x}"', "title is 100000 characters; at most 150"),
        ("/emcee announce bk-june {x}", "text is 100000 characters; at most 2000"),
    ],
)
async def test_overlong_text_is_refused_with_its_length_and_cap(engine: Engine, line: str, problem: str) -> None:
    """Hardening item 8: every free text has a cap that fits the platforms, and the refusal names both numbers."""
    await create_event(engine)
    await refused(engine, line.format(x="x" * 100_000), problem)


def test_every_text_argument_declares_a_cap_that_help_shows() -> None:
    """Hardening item 8: the cap lives on the registry's Arg, so help, usage and the Discord tree all see it."""
    for command in COMMANDS:
        for arg in command.args:
            if arg.kind is ArgKind.TEXT:
                assert arg.max_length is not None and 0 < arg.max_length <= 6000, (command.name, arg.name)
                assert f"at most {arg.max_length} characters" in command.help(), (command.name, arg.name)


async def test_the_google_calendar_link_of_a_long_title_is_quick(engine: Engine) -> None:
    """Hardening item 8: a very long title (an older row) is shortened in one step, not 8 characters a turn."""
    await create_event(engine)
    async with engine.db.session() as session:
        event = (await session.exec(select(Event))).one()
    event.title = "x" * 100_000
    started = time.perf_counter()
    link = compose.google_calendar_url(event)
    assert time.perf_counter() - started < 0.5
    assert len(link) <= compose.LINK_LIMIT and "text=xxxx" in link


# -- item 9: time zones ----------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["America", "A" * 90, "../etc/passwd"])
async def test_a_zone_folder_or_overlong_name_is_refused_like_any_unknown_zone(engine: Engine, zone: str) -> None:
    """Hardening item 9: a tz folder or a long unknown name gets the unknown-zone refusal, not an internal error."""
    await create_event(engine)
    await refused(
        engine, f'/emcee event create z "Z" --starts 2026-07-01 18:00 --timezone "{zone}"', "unknown time zone"
    )
    await refused(engine, f'/emcee event edit --timezone "{zone}"', "unknown time zone")


@pytest.mark.parametrize("zone", ["America", "A" * 300])
def test_a_zone_folder_in_the_config_is_a_config_error(tmp_path: Path, zone: str) -> None:
    """Hardening item 9: the config's zone goes through the same check and fails without a traceback."""
    path = tmp_path / "emcee.toml"
    path.write_text(f'[bot]\ntimezone = "{zone}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert "[bot] timezone: unknown time zone" in str(error.value)


# -- item 10: daylight-saving gaps and overlaps ----------------------------------------------------


async def test_a_wall_time_in_the_spring_forward_gap_is_refused(engine: Engine) -> None:
    """Hardening item 10: 02:30 on the spring-forward night does not exist and is refused, saying why."""
    text = await refused(engine, '/emcee event create gap "Gap" --starts "2026-03-08 02:30"', "does not exist")
    assert "02:30 does not exist on 2026-03-08 in America/Los_Angeles: clocks jump from 02:00 to 03:00" in text


async def test_an_agenda_item_in_the_gap_is_refused(engine: Engine) -> None:
    """Hardening item 10: the same check applies to agenda times (bot/agenda.py)."""
    reply = await engine.handle(
        CommandLine(ORGANIZER, None, '/emcee event create gap "Gap" --starts "2026-03-08 01:00"')
    )
    assert reply.ok, reply.text
    await refused(engine, '/emcee agenda add 02:15 "Night talk" --event gap', "clocks jump from 02:00 to 03:00")


async def test_an_ambiguous_wall_time_takes_the_first_and_says_so(engine: Engine) -> None:
    """Hardening item 10: 01:30 on the fall-back night happens twice; the first (daylight time) is taken and named."""
    reply = await engine.handle(
        CommandLine(ORGANIZER, None, '/emcee event create amb "Amb" --starts "2026-11-01 01:30"')
    )
    assert reply.ok, reply.text
    assert "01:30 happens twice on 2026-11-01 in America/Los_Angeles" in reply.text
    assert "PDT" in reply.text
    async with engine.db.session() as session:
        event = (await session.exec(select(Event))).one()
    assert event.starts_at == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("who", "line"),
    [
        (ORGANIZER, '/emcee event create nul "Null\x00Night" --starts "2026-07-01 18:00"'),
        (ORGANIZER, '/emcee speaker add "Ada\x00"'),
        (ORGANIZER, "/emcee announce bk-june doors open\x00"),
        (member("m1"), "/emcee help rsvp\x07"),
    ],
)
async def test_control_characters_in_typed_text_are_refused_without_writes(
    engine: Engine, db: Database, who: Actor, line: str
) -> None:
    """Hardening item 8: text is bounded in what it holds as well as its length. PostgreSQL refuses a NUL
    byte outright ("Something went wrong"); every control character but a line break or tab is refused
    with the argument named, on both databases."""
    await create_event(engine)
    before = await snapshot(db)
    reply = await engine.handle(CommandLine(who, None, line))
    assert not reply.ok
    assert "control character" in reply.text, reply.text
    assert await snapshot(db) == before


async def test_control_characters_in_discord_options_are_refused_without_writes(engine: Engine, db: Database) -> None:
    """Hardening item 8: the same rule for typed options (the Discord path), an event reference included."""
    await create_event(engine)
    before = await snapshot(db)
    command = engine.registry.get(("rsvp",))
    assert command is not None
    with pytest.raises(UsageError, match="control character"):
        engine.registry.convert(command, {"event": "bk\x00"})
    assert await snapshot(db) == before
