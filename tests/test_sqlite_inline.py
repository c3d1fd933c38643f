"""SQLite on the event loop's thread (bot/sqlite_inline.py): a transaction that finds the database locked by
another process waits for it without holding up the loop, then goes ahead; past the limit it fails."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import NOW, create_event, database_url, member, snapshot
from sqlmodel import select

from bot import sqlite_inline
from bot.clock import FakeClock
from bot.config import Settings
from bot.db import Database
from bot.effects import EffectBus
from bot.engine import Engine
from bot.invocation import CommandLine
from bot.messages import INTERNAL_ERROR
from bot.models import Event


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    db = Database(database_url(tmp_path))
    await db.upgrade()
    engine = Engine(db, Settings(), FakeClock(NOW), EffectBus())
    await create_event(engine)
    try:
        yield engine
    finally:
        await db.close()


def another_process_writes(tmp_path: Path) -> sqlite3.Connection:
    """A connection of another program that holds the database's write lock until it commits."""
    other = sqlite3.connect(tmp_path / "emcee.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_write_waits_for_another_process_without_holding_up_the_loop(engine: Engine, tmp_path: Path) -> None:
    other = another_process_writes(tmp_path)
    rsvp = asyncio.create_task(engine.handle(CommandLine(member("ada"), None, "/rsvp going")))
    ticks = 0
    started = time.monotonic()
    while time.monotonic() - started < 0.3:  # the loop keeps running while the RSVP waits
        await asyncio.sleep(0.01)
        ticks += 1
    assert not rsvp.done() and ticks >= 15
    async with engine.db.reading() as session:  # and reads go on beside the other writer
        assert (await session.exec(select(sa.func.count()).select_from(Event))).one() == 1
    other.commit()
    assert (await asyncio.wait_for(rsvp, 5)).ok


async def test_a_write_gives_up_after_the_busy_timeout(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT", 0.1)
    before = await snapshot(engine.db)
    other = another_process_writes(tmp_path)
    try:
        reply = await asyncio.wait_for(engine.handle(CommandLine(member("ada"), None, "/rsvp going")), 5)
    finally:
        other.rollback()
    assert reply == INTERNAL_ERROR and await snapshot(engine.db) == before
