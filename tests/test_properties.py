"""The command property suite: every registry command, as a member and as an organizer, typed as text
and given as Discord-style typed options, either works or is refused without writes, and the seats,
the waitlist and the planned posts stay sound.

The commands come from the registry itself (bot/commands/catalog.py COMMANDS), so a new command is covered
the day it is declared. Each test function gets one SQLite file, seeded once with a set of events
(published, draft, cancelled, over, full with a waitlist, ambiguous prefixes); every example starts
from that seed, restored from a snapshot only when the previous example changed something.
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, ORGANIZER, database_url, snapshot
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel, col, select

from adapters.console import ConsoleAdapter
from bot.commands import Arg, ArgKind, Command
from bot.commands.catalog import COMMANDS
from bot.db import Database
from bot.delivery import Ledger, Outbox, Target
from bot.engine import Engine
from bot.invocation import Actor, CommandLine, CommandOptions
from bot.lookup import FOUND_COLUMNS, Found
from bot.messages import INTERNAL_ERROR, Reply
from bot.models import Event, Rsvp, RsvpStatus
from bot.rsvps import load_seatings
from schedules.planner import Rules, plan
from schedules.runner import Runner

Rows = dict[str, list[tuple[Any, ...]]]

YEAR_2100 = datetime(2100, 1, 1, tzinfo=UTC)
ANNOUNCE = Target("console", "announcements")
MEMBER = Actor("console", "member-0", "Member Zero")

# -- the seeded event set --------------------------------------------------------------------------

SEED_COMMANDS = (
    '/emcee speaker add "Ada Lovelace" --affiliation "Analytical Engines"',
    '/emcee speaker add "Grace Hopper"',
    '/emcee event create bk-june "BookKeeper June" --starts 2026-06-15 18:00 --capacity 4',
    '/emcee agenda add 18:00 "Welcome" --kind welcome --event bk-june',
    '/emcee agenda add 18:15 "Talk one" --speaker "Ada Lovelace" --event bk-june',
    '/emcee agenda add 19:00 "Panel" --moderator "Grace Hopper" --panelist "Ada Lovelace" --event bk-june',
    "/emcee event publish bk-june",
    '/emcee event create bk-july "BookKeeper July" --starts 2026-07-20 18:00 --capacity 10',
    '/emcee event create bk-old "Old one" --starts 2026-06-20 18:00',
    "/emcee event publish bk-old",
    "/emcee event cancel bk-old",
    '/emcee event create meetup-a "Meetup A" --starts 2026-06-10 09:00 --timezone Europe/Berlin',
    "/emcee event publish meetup-a",
    '/emcee event create meetup-b "Meetup B" --starts 2026-08-01 19:30 --timezone Asia/Kolkata --capacity 2',
    "/emcee event publish meetup-b",
    '/emcee event create past-one "Past one" --starts 2026-05-01 18:00',
    "/emcee event publish past-one",
)
# (member, line): bk-june (4 seats) ends up full with two parties waiting, one with DM reminders on.
SEED_RSVPS = (
    ("m1", "/rsvp bk-june going +1"),
    ("m2", "/rsvp bk-june going"),
    ("m3", "/rsvp bk-june going"),
    ("m4", "/rsvp bk-june going"),
    ("m5", "/rsvp bk-june going +1"),
    ("m1", "/emcee remind on bk-june"),
    ("m6", "/rsvp meetup-a maybe"),
    ("m7", "/rsvp meetup-b going +1"),
)
SLUGS = ("bk-june", "bk-july", "bk-old", "meetup-a", "meetup-b", "past-one")


def member(user_id: str) -> Actor:
    return Actor("console", user_id, user_id.title())


@dataclass(repr=False)
class World:
    """One seeded database per test function, and the means to return to the seed between examples."""

    engine: Engine
    runner: Runner
    watcher: sqlite3.Connection  # reads PRAGMA data_version: it changes whenever another connection commits
    start: datetime = NOW  # the clock when the seed was complete; every example starts there
    seed: Rows = field(default_factory=dict)
    state: Rows = field(default_factory=dict)  # every row as the last command left it

    def __repr__(self) -> str:
        return "World(the seeded events)"

    @property
    def db(self) -> Database:
        return self.engine.db

    def command(self, path: tuple[str, ...]) -> Command:
        command = self.engine.registry.get(path)
        assert command is not None
        return command

    def data_version(self) -> int:
        return int(self.watcher.execute("PRAGMA data_version").fetchone()[0])

    async def fresh(self) -> None:
        """Start an example from the seed, at the seed's time."""
        self.engine.clock.set(self.start)  # type: ignore[attr-defined]
        if self.state != self.seed:
            await restore(self.db, self.seed, self.state)
            self.state = self.seed

    async def run(self, command: Awaitable[Reply]) -> Reply:
        """Run one command and check every invariant against the state it leaves.

        Nothing was committed while the data version stands still; only then is the snapshot skipped."""
        before, self.state = self.state, {}  # unknown until read back, even if the call raises
        version = self.data_version()
        reply = await command
        self.state = before if self.data_version() == version else await snapshot(self.db)
        assert reply != INTERNAL_ERROR, "an input reached the internal-error reply"
        if not reply.ok:
            assert self.state == before, f"a refusal wrote to the database: {reply.text}"
        if self.state != before:
            await check_state(self, before)
        return reply


def changed(before: Rows, after: Rows) -> set[str]:
    return {name for name in after if before.get(name) != after[name]}


def rows_of(state: Rows, table: str) -> list[dict[str, Any]]:
    keys = [column.key for column in SQLModel.metadata.tables[table].columns]
    return [dict(zip(keys, row, strict=True)) for row in state.get(table, [])]


async def restore(db: Database, seed: Rows, state: Rows) -> None:
    """Put back the seed's rows (ids included) in every table that differs, and in the tables that hang
    off those (their rows go with their parents' on delete)."""
    tables = [table for table in SQLModel.metadata.sorted_tables if table.name in changed(seed, state)]
    for table in SQLModel.metadata.sorted_tables:
        if table not in tables and any(key.column.table in tables for key in table.foreign_keys):
            tables.append(table)
    async with db.engine.begin() as connection:
        for table in reversed(tables):
            await connection.execute(table.delete())
        for table in tables:
            if seed[table.name]:
                await connection.execute(table.insert(), rows_of(seed, table.name))


async def check_state(world: World, before: Rows) -> None:
    """Seats within capacity and counted right, a contiguous waitlist, and posts planned in range: each
    checked where the command changed what it depends on."""
    events = rows_of(world.state, "event")
    rsvps = rows_of(world.state, "rsvp")
    for event in events:
        going = sum(1 + r["guests"] for r in rsvps if r["event_id"] == event["id"] and r["status"] == RsvpStatus.GOING)
        assert going == event["seats_taken"], f"{event['slug']}: seats_taken {event['seats_taken']}, going {going}"
        assert event["capacity"] is None or going <= event["capacity"], f"{event['slug']}: {going} seats taken"
    if queues := waiting_changed(before, world.state):
        await check_waitlists(world, queues)
    if changed(before, world.state) & {"event", "agenda_item"} or reminders_changed(before, world.state):
        await check_plan(world)


def waiting(state: Rows) -> set[tuple[int, str, str]]:
    return {
        (r["event_id"], r["platform"], r["user_id"])
        for r in rows_of(state, "rsvp")
        if r["status"] == RsvpStatus.WAITLISTED
    }


def waiting_changed(before: Rows, after: Rows) -> set[int]:
    """The events whose waitlist someone joined or left."""
    return {event_id for event_id, _, _ in waiting(before) ^ waiting(after)}


def reminders_changed(before: Rows, after: Rows) -> bool:
    """Whether the members who get DM reminders changed (the planner plans a DM for each)."""

    def opted_in(state: Rows) -> set[tuple[Any, ...]]:
        return {(r["event_id"], r["user_id"], r["status"]) for r in rows_of(state, "rsvp") if r["dm_reminders"]}

    return opted_in(before) != opted_in(after)


async def check_waitlists(world: World, event_ids: set[int] | None = None) -> dict[int, list[str]]:
    """Waiting members in queue order (queued_at, then id), per event (all, or `event_ids`); the seating that
    RSVPs are decided on (which tells the positions) must hold them in that order."""
    queues: dict[int, list[str]] = {}
    query = select(Rsvp).where(Rsvp.status == RsvpStatus.WAITLISTED).order_by(col(Rsvp.queued_at), col(Rsvp.id))
    if event_ids is not None:
        query = query.where(col(Rsvp.event_id).in_(event_ids))
    async with world.db.session() as session:
        waiting = (await session.exec(query)).all()
        events = (await session.exec(select(Event).where(col(Event.id).in_({r.event_id for r in waiting})))).all()
        found = [Found.of([getattr(event, column.name) for column in FOUND_COLUMNS]) for event in events]
        connection = await session.connection()
        seatings = await connection.run_sync(lambda sync: load_seatings(sync, found, whole_waitlist=True))
        for event_id in dict.fromkeys(rsvp.event_id for rsvp in waiting):
            queue = [rsvp.user_id for rsvp in waiting if rsvp.event_id == event_id]
            seated = [party.user_id for party in seatings[event_id].waitlist]
            assert seated == queue, f"event {event_id}: the seating's waitlist {seated}, the queue {queue}"
            queues[event_id] = queue
    return queues


async def check_plan(world: World) -> None:
    """Every post the planner owes lies between now (less the grace for late sends) and the year 2100."""
    now = world.engine.clock.now()
    posts = plan(await world.runner.snapshots(now), world.runner.rules, world.runner.targets, now).posts
    for post in posts:
        assert now - world.runner.rules.grace <= post.run_at < YEAR_2100, f"{post.key} runs at {post.run_at}"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only, unlike conftest's `db`: the suite learns whether a command committed from SQLite's
    PRAGMA data_version. The database-level invariants run on PostgreSQL in their own tests."""
    database = Database(database_url(tmp_path))
    await database.upgrade()
    yield database
    await database.close()


@pytest.fixture
async def world(engine: Engine) -> AsyncIterator[World]:
    runner = Runner(
        engine.db,
        engine.clock,
        Outbox(Ledger(engine.db, engine.clock), {"console": ConsoleAdapter(io.StringIO())}),
        (ANNOUNCE,),
        Rules.from_settings(engine.settings),
    )
    for line in SEED_COMMANDS:
        reply = await engine.handle(CommandLine(ORGANIZER, None, line))
        assert reply.ok, f"{line}: {reply.text}"
    for who, line in SEED_RSVPS:
        engine.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
        reply = await engine.handle(CommandLine(member(who), None, line))
        assert reply.ok, f"{line}: {reply.text}"
    watcher = sqlite3.connect(make_url(engine.db.url).database or "", isolation_level=None)
    world = World(engine, runner, watcher, start=engine.clock.now())
    world.seed = world.state = await snapshot(engine.db)
    await check_state(world, {})
    yield world
    watcher.close()


# -- strategies: values for each Arg kind, mixed with hostile ones ---------------------------------

HOSTILE = st.sampled_from(
    [
        "%",
        "_",
        "%_%",
        "bk%",
        "b_-june",
        "'",
        '"',
        "“",
        "”",
        "\\",
        "--",
        "---",
        "--=",
        "--event",
        "--nope=1",
        "+",
        "+-1",
        "-0",
        "+99999999999999999999",
        "9" * 40,
        "-" + "9" * 30 + "d",
        "\u202e",
        "\u200b",
        "\x00",
        "🎉",
        "Ω≈ç√",
        "ß",
        "İ",
        "America",
        "Mars/Base",
        "../../etc/passwd",
        "NaN",
        "inf",
        "1e309",
    ]
)
ZONES = st.sampled_from(
    [
        "UTC",
        "America/Los_Angeles",
        "Europe/Berlin",
        "Asia/Kolkata",
        "Pacific/Kiritimati",
        "Etc/GMT+12",
        "America",
        "Europe",
        "America/",
        "/etc/localtime",
        "Mars/Base",
        "utc",
        "",
        "America/Los_Angeles\x00",
    ]
)
SEEDED_TEXT = st.sampled_from(["Ada Lovelace", "Grace Hopper", "1", "2", "3", "Talk", "Welcome", "Panel", "default"])
ODD_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
LONG_TEXT = st.builds(lambda piece, n: (piece * n)[:10_000], st.text(min_size=1, max_size=5), st.integers(1, 10_000))
TEXT = st.one_of(ODD_TEXT, SEEDED_TEXT, ZONES, LONG_TEXT, HOSTILE, st.sampled_from(["1d,2h", "0m", "1d,-1h"]))

_SLUG_START = "abcdefghijklmnopqrstuvwxyz0123456789"
# [a-z0-9][a-z0-9-]{0,70}, built directly (cheaper to draw than from a regex)
SLUG_TEXT = st.builds(str.__add__, st.sampled_from(_SLUG_START), st.text(_SLUG_START + "-", max_size=70))
EVENT = st.one_of(st.sampled_from([*SLUGS, "bk", "bk-j", "meetup", "past", "BK-JUNE", "nope"]), SLUG_TEXT, HOSTILE)
NUMBER = st.one_of(st.integers(0, 20), st.integers(0, 10**30), st.integers(-(10**9), -1))


def _duration(parts: list[tuple[int, str]], sign: str) -> str:
    return sign + "".join(f"{amount}{unit}" for amount, unit in parts)


AMOUNT = st.one_of(st.integers(0, 90), st.integers(0, 10**20))
DURATION = st.one_of(
    st.builds(
        _duration,
        st.lists(st.tuples(AMOUNT, st.sampled_from("dhms")), min_size=1, max_size=3),
        st.sampled_from(["", "+", "-"]),
    ),
    st.sampled_from(["+10m", "-5m", "0m", "1h30m", "10", "m", "+"]),
)


def _time(year: int | None, month: int, day: int, hour: int, minute: int) -> str:
    clock = f"{hour:02d}:{minute:02d}"
    return clock if year is None else f"{year:04d}-{month:02d}-{day:02d} {clock}"


TIME = st.one_of(
    st.builds(
        _time,
        st.one_of(st.none(), st.integers(2026, 2027), st.integers(1, 9999)),
        st.integers(1, 12),
        st.integers(1, 28),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    # the spring-forward gap and the fall-back repeat in Los Angeles and Berlin
    st.sampled_from(["2026-03-08 02:30", "2026-11-01 01:30", "2026-03-29 02:30"]),
    st.sampled_from(["9999-12-31 23:59", "0001-01-01 00:00", "2099-12-31 23:00", "2100-01-01 00:00"]),
    st.sampled_from(["24:00", "2026-02-30 10:00", "2026-13-01 10:00", "7:5", "18:00:60"]),
)
CHOICE_JUNK = st.sampled_from(["GOING", "Maybe", "yes", "on ", "talks", ""])


SOMETIMES = st.sampled_from([True, False, False])  # whether an optional argument is given


@cache  # building a strategy costs more than drawing from it
def value_for(arg: Arg) -> st.SearchStrategy[str]:
    """A plausible value for `arg`, built from its kind and choices, or a hostile token."""
    by_kind: dict[ArgKind, st.SearchStrategy[str]] = {
        ArgKind.EVENT: EVENT,
        ArgKind.CHOICE: st.one_of(st.sampled_from(arg.choices or ("x",)), CHOICE_JUNK),
        ArgKind.GUESTS: st.one_of(st.builds(lambda n: f"+{n}", NUMBER), NUMBER.map(str)),
        ArgKind.DURATION: DURATION,
        ArgKind.TIME: TIME,
        ArgKind.INT: NUMBER.map(str),
        ArgKind.SLUG: st.one_of(SLUG_TEXT, st.sampled_from(SLUGS)),
        ArgKind.TEXT: TEXT,
    }
    return st.one_of(by_kind[arg.kind], by_kind[arg.kind], by_kind[arg.kind], HOSTILE)


def quoted(value: str) -> str:
    """One token on the command line: bare when it has no spaces, else in double quotes."""
    if value and not any(ch.isspace() for ch in value) and value[0] not in "\"“'":
        return value
    return '"' + value.replace('"', '\\"') + '"'


@st.composite
def command_line(draw: st.DrawFn, command: Command) -> str:
    """A command line for `command`: its path, some positionals and --options, and maybe hostile tokens."""
    words = [draw(st.sampled_from([word, word.upper()])) for word in command.path]
    for arg in command.args:
        if not (arg.required or draw(SOMETIMES)):
            continue
        value = quoted(draw(value_for(arg)))
        if arg.option:
            words += draw(st.sampled_from([[f"--{arg.name}", value], [f"--{arg.name}={value}"]]))
        else:
            words.append(value)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        words.insert(draw(st.integers(0, len(words))), draw(HOSTILE))
    return draw(st.sampled_from(["/", ""])) + " ".join(words)


@st.composite
def typed_options(draw: st.DrawFn, command: Command) -> dict[str, Any]:
    """Options as Discord delivers them: whole numbers as ints, choices from the list, the rest as strings."""
    raw: dict[str, Any] = {}
    for arg in command.args:
        if not (arg.required or draw(SOMETIMES)):
            continue
        if arg.kind in (ArgKind.INT, ArgKind.GUESTS):
            raw[arg.name] = draw(NUMBER)
        elif arg.repeat:
            raw[arg.name] = ",".join(draw(st.lists(value_for(arg), min_size=1, max_size=3)))
        else:
            raw[arg.name] = draw(value_for(arg))
    return raw


PATHS = st.lists(st.sampled_from([command.path for command in COMMANDS]), min_size=1, max_size=2)
ACTORS = {
    "member": st.one_of(
        st.just(MEMBER),
        st.sampled_from(["m1", "m2", "m4", "m6", "newcomer"]).map(member),
        st.builds(Actor, st.just("console"), SLUG_TEXT, st.one_of(ODD_TEXT, LONG_TEXT)),
    ),
    "organizer": st.just(ORGANIZER),
}
PROPERTY_SEQUENCES = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    phases=tuple(phase for phase in Phase if phase is not Phase.explain),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROPERTY = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    phases=tuple(phase for phase in Phase if phase is not Phase.explain),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("role", ["member", "organizer"])
@PROPERTY
@given(data=st.data())
async def test_any_command_line_works_or_is_refused_and_keeps_every_invariant(
    world: World, role: str, data: st.DataObject
) -> None:
    """Hardening item A: a typed line for any registry command never gets the internal-error reply;
    a refusal writes nothing; seats, waitlist and planned posts stay sound."""
    await world.fresh()
    actor = data.draw(ACTORS[role], label="actor")
    # every input is drawn before anything runs, so an example hypothesis discards costs no engine work
    lines = [data.draw(command_line(world.command(path)), label="line") for path in data.draw(PATHS, label="commands")]
    for line in lines:
        await world.run(world.engine.handle(CommandLine(actor, None, line)))


@pytest.mark.parametrize("role", ["member", "organizer"])
@PROPERTY
@given(data=st.data())
async def test_any_typed_options_work_or_are_refused_and_keep_every_invariant(
    world: World, role: str, data: st.DataObject
) -> None:
    """Hardening item A: Discord-style typed options for any registry command (engine.handle with
    CommandOptions) never get the internal-error reply; a refusal writes nothing; the invariants hold."""
    await world.fresh()
    actor = data.draw(ACTORS[role], label="actor")
    commands = [world.command(path) for path in data.draw(PATHS, label="commands")]
    options = [data.draw(typed_options(command), label="options") for command in commands]  # all before running
    for command, raw in zip(commands, options, strict=True):
        await world.run(typed(world.engine, actor, command, raw))


async def typed(engine: Engine, actor: Actor, command: Command, raw: dict[str, Any]) -> Reply:
    """What the Discord adapter does with a slash command's options (adapters/discord/client.py
    _on_command): hand them to the engine, which converts them unless it refuses the sender anyway."""
    return await engine.handle(CommandOptions(actor, None, command.path, raw))


RSVP_STEPS = st.lists(
    st.tuples(
        st.integers(0, 11),  # which member: m1..m7 already answered in the seed
        st.sampled_from(["going", "maybe", "no"]),
        st.integers(0, 3),  # guests; more than the configured 2 is refused
        st.booleans(),  # typed as text, or given as typed options
    ),
    min_size=1,
    max_size=10,
)
SEED_QUEUES = {"bk-june": ["m4", "m5"], "meetup-b": []}  # who waits, in the order they asked
TOLD_POSITION = re.compile(r"position (\d+)")


@PROPERTY_SEQUENCES
@given(slug=st.sampled_from(sorted(SEED_QUEUES)), steps=RSVP_STEPS)
async def test_any_rsvp_sequence_by_many_members_keeps_seats_and_a_fifo_waitlist(
    world: World, slug: str, steps: list[tuple[int, str, int, bool]]
) -> None:
    """Hardening item A: RSVPs by many members, by text and by typed options, keep the seats within
    capacity and the waitlist first come, first served, with the positions each member is told."""
    await world.fresh()
    event_id = next(event["id"] for event in rows_of(world.seed, "event") if event["slug"] == slug)
    queue = list(SEED_QUEUES[slug])
    for who, status, guests, as_text in steps:
        world.engine.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
        actor = member(f"m{who}")
        if as_text:
            reply = await world.run(world.engine.handle(CommandLine(actor, None, f"/rsvp {slug} {status} +{guests}")))
        else:
            options = {"event": slug, "status": status, "guests": guests}
            reply = await world.run(typed(world.engine, actor, world.command(("rsvp",)), options))
        waiting = {
            rsvp["user_id"]
            for rsvp in rows_of(world.state, "rsvp")
            if rsvp["event_id"] == event_id and rsvp["status"] == RsvpStatus.WAITLISTED
        }
        joined = waiting - set(queue)
        assert joined <= {actor.user_id}, f"{joined} joined the waitlist without asking"
        queue = [user for user in queue if user in waiting] + sorted(joined)
        assert (await check_waitlists(world, {event_id})).get(event_id, []) == queue, (
            "the waitlist left first-come order"
        )
        told = TOLD_POSITION.search(reply.text)
        if told:
            assert int(told.group(1)) == queue.index(actor.user_id) + 1, reply.text
