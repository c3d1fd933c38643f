"""Shared fixtures: a migrated SQLite file per test, a fake clock, and an engine over both."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from bot.app import App
from bot.clock import FakeClock
from bot.config import Settings
from bot.db import Database
from bot.delivery import Build, Outbox, Target
from bot.effects import EffectBus
from bot.engine import Engine
from bot.invocation import Actor, CommandLine, MessageRef

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ORGANIZER = Actor("console", "organizer", "Organizer")
DISCORD_GUILD = 5005  # the community's Discord guild in the `settings` fixture
DISCORD_ORGANIZER_ROLE = 5300  # its organizer role


POSTGRES_ENV = "EMCEE_TEST_POSTGRES_URL"


def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'emcee.db'}"


async def reset(db: Database) -> None:
    """Empty every table (needed on a shared PostgreSQL database; a fresh SQLite file is already empty)."""
    async with db.engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every database test runs on a fresh SQLite file, and on PostgreSQL when POSTGRES_ENV names one
    (.ci/run starts a server and sets it)."""
    url = database_url(tmp_path)
    if request.param == "postgresql":
        url = os.environ.get(POSTGRES_ENV, "")
        if not url:
            pytest.skip(f"set {POSTGRES_ENV} to run on PostgreSQL")
    database = Database(url)
    await database.upgrade()
    await reset(database)
    yield database
    await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def make_settings(**sections: dict[str, Any]) -> Settings:
    return Settings.model_validate(sections)


@pytest.fixture
def settings() -> Settings:
    return make_settings(
        organizers={
            "slack": ["UORG"],
            "discord": ["1001"],
            "discord_roles": {str(DISCORD_GUILD): [DISCORD_ORGANIZER_ROLE]},
        },
        bot={"timezone": "America/Los_Angeles"},
    )


@pytest.fixture
def bus() -> EffectBus:
    return EffectBus()


@pytest.fixture
def engine(db: Database, settings: Settings, clock: FakeClock, bus: EffectBus) -> Engine:
    return Engine(db, settings, clock, bus)


def member(name: str, platform: str = "console") -> Actor:
    return Actor(platform, name, name)


def _compared(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """An outbox row's done_at is left out (read as NULL): the dispatcher of an earlier command sets it, at any time."""
    if (column.table.name, column.name) == ("pending_effect", "done_at"):
        return sa.null().label(column.name)
    return column


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that a rejected command wrote nothing."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with db.engine.connect() as connection:
        for table in SQLModel.metadata.sorted_tables:
            result = await connection.execute(
                sa.select(*map(_compared, table.columns)).order_by(*table.primary_key.columns)
            )
            rows[table.name] = [tuple(row) for row in result]
    return rows


async def create_event(engine: Engine, slug: str = "bk-june", capacity: int = 50, publish: bool = True) -> None:
    """An event on 2026-06-15 18:00 Los Angeles time, published unless asked otherwise."""
    line = f'/emcee event create {slug} "BookKeeper June" --starts 2026-06-15 18:00 --capacity {capacity}'
    reply = await engine.handle(CommandLine(ORGANIZER, None, line))
    assert reply.ok, reply.text
    if publish:
        reply = await engine.handle(CommandLine(ORGANIZER, None, f"/emcee event publish {slug}"))
        assert reply.ok, reply.text


async def run_as_organizer(app: App, organizer: Actor, line: str) -> None:
    """Run an organizer's command that must succeed, and wait for everything it set off."""
    reply = await app.engine.handle(CommandLine(organizer, None, line))
    assert reply.ok, reply.text
    await app.bus.drain()


async def deliver(outbox: Outbox, key: str, target: Target, build: Build) -> MessageRef | None:
    """Send one post to one target through the outbox: its ref, or None when it was held, sent or failed."""
    return (await outbox.fan_out(key, [target], build)).sent.get(target)
