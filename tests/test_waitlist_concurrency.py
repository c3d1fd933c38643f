"""Invariant 2 under concurrency: the waitlist position told to a member is their place in the final queue
at that moment, and no two members are told the same one, however the RSVPs race (tasks or processes)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import timedelta
from pathlib import Path

from conftest import NOW, ORGANIZER, member
from sqlmodel import col, select

from bot.clock import FakeClock, SystemClock
from bot.config import Settings
from bot.db import Database
from bot.engine import Engine
from bot.invocation import CommandLine
from bot.models import Event, Rsvp, RsvpStatus

SLUG = "crowd"
SEATS = 5
CROWD = Path(__file__).with_name("rsvp_crowd.py")
POSITION = re.compile(r"waitlist, position (\d+)\.")


async def open_event(engine: Engine) -> None:
    """A published event a month ahead of the real clock, with SEATS seats."""
    day = (engine.clock.now() + timedelta(days=30)).date()
    for line in (
        f'/emcee event create {SLUG} "Crowded" --starts {day} 18:00 --capacity {SEATS}',
        f"/emcee event publish {SLUG}",
    ):
        reply = await engine.handle(CommandLine(ORGANIZER, None, line))
        assert reply.ok, reply.text


async def queue(db: Database) -> list[str]:
    """The waiting members in the final queue order, first first."""
    async with db.session() as session:
        event_id = (await session.exec(select(Event.id).where(Event.slug == SLUG))).one()
        waiting = await session.exec(
            select(Rsvp.user_id)
            .where(Rsvp.event_id == event_id, Rsvp.status == RsvpStatus.WAITLISTED)
            .order_by(col(Rsvp.queued_at), col(Rsvp.id))
        )
        return list(waiting.all())


def told(replies: dict[str, str]) -> dict[str, int]:
    """The waitlist position each member was told."""
    return {who: int(m.group(1)) for who, text in replies.items() if (m := POSITION.search(text))}


async def check_positions(db: Database, replies: dict[str, str]) -> None:
    going = [who for who, text in replies.items() if text.startswith("✅ You're going")]
    positions = told(replies)
    final = await queue(db)
    assert len(replies) == 40 and len(going) == SEATS and len(positions) == 40 - SEATS
    assert sorted(positions.values()) == list(range(1, len(final) + 1))
    assert positions == {who: place for place, who in enumerate(final, start=1)}


async def test_40_concurrent_rsvps_are_told_distinct_positions_in_the_final_order(
    db: Database, settings: Settings
) -> None:
    engine = Engine(db, settings, SystemClock())
    await open_event(engine)
    names = [f"m{i}" for i in range(40)]
    replies = await asyncio.gather(
        *(engine.handle(CommandLine(member(name), None, f"/rsvp {SLUG} going")) for name in names)
    )
    await check_positions(db, {name: reply.text for name, reply in zip(names, replies, strict=True)})


async def start_crowd(db: Database, prefix: str, count: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CROWD),
        db.url,
        SLUG,
        prefix,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        assert await process.stdout.readline() == b"ready\n"
    return process


async def test_40_rsvps_from_two_engine_processes_are_told_distinct_positions_in_the_final_order(
    db: Database, settings: Settings
) -> None:
    await open_event(Engine(db, settings, SystemClock()))
    crowds = await asyncio.gather(*(start_crowd(db, prefix, 20) for prefix in ("a", "b")))
    async with asyncio.timeout(60):
        outputs = await asyncio.gather(*(process.communicate(b"go\n") for process in crowds))
    assert [process.returncode for process in crowds] == [0, 0]
    replies = {who: text for stdout, _ in outputs for who, text in json.loads(stdout).items()}
    await check_positions(db, replies)


async def test_a_later_member_is_queued_behind_even_when_their_process_clock_is_behind(
    engine: Engine, settings: Settings
) -> None:
    behind = Engine(engine.db, settings, FakeClock(NOW - timedelta(minutes=1)))
    await open_event(engine)
    for name in ("a0", "a1", "a2", "a3", "a4"):
        await engine.handle(CommandLine(member(name), None, f"/rsvp {SLUG} going"))
    first = await engine.handle(CommandLine(member("first"), None, f"/rsvp {SLUG} going"))
    second = await behind.handle(CommandLine(member("second"), None, f"/rsvp {SLUG} going"))
    assert told({"first": first.text, "second": second.text}) == {"first": 1, "second": 2}
    assert await queue(engine.db) == ["first", "second"]
