"""Start-up on PostgreSQL with several replicas: one migrates under the lock while the others wait, or all wait
for `emcee db upgrade`; a schema ahead of the code is refused. Each test works in a schema of its own on the
shared database, dropped at the end."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from conftest import NOW, POSTGRES_ENV, make_settings
from test_start_up import health

from bot.app import build_app
from bot.clock import FakeClock
from bot.config import Secrets
from bot.db import MIGRATIONS, SCHEMA_POLL_SECONDS, Database, SchemaOutOfDate, SchemaState

SCRIPTS = ScriptDirectory(str(MIGRATIONS))
HEAD = SCRIPTS.get_current_head()
REVISIONS = len(list(SCRIPTS.walk_revisions()))


@pytest.fixture
def url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to run on PostgreSQL")
    return url


@asynccontextmanager
async def schema(url: str) -> AsyncIterator[str]:
    """A schema of its own on the shared database (as bench/bench_rsvp.py's), dropped at the end."""
    name = f"pgstart_{uuid.uuid4().hex[:12]}"
    admin = Database(url)
    async with admin.engine.begin() as connection:
        await connection.execute(sa.text(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        async with admin.engine.begin() as connection:
            await connection.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        await admin.close()


def confined(database: Database, name: str) -> Database:
    """`database`, every connection of which works in the schema `name`."""

    @sa.event.listens_for(database.engine.sync_engine, "connect")
    def _search_path(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET search_path TO {name}")
        cursor.close()

    return database


@asynccontextmanager
async def replicas(url: str, count: int) -> AsyncIterator[list[Database]]:
    """`count` replicas' databases, each with its own connections, in a schema of their own."""
    async with schema(url) as name:
        databases = [confined(Database(url), name) for _ in range(count)]
        try:
            yield databases
        finally:
            await asyncio.gather(*(database.close() for database in databases))


async def revision(database: Database) -> str:
    async with database.engine.connect() as connection:
        return str((await connection.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one())


def lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.getMessage().startswith(start)]


async def test_replicas_starting_at_once_migrate_once(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with replicas(url, 3) as databases:
        starting = asyncio.gather(*(database.prepare(migrate=True) for database in databases))
        await asyncio.wait_for(starting, 30)
        assert [await revision(database) for database in databases] == [HEAD] * 3
    assert all(database.state is SchemaState.READY for database in databases)
    assert len(lines(caplog, "migrating the database schema from nothing")) == 1
    assert len(lines(caplog, "Running upgrade")) == REVISIONS  # Alembic's line per revision applied


async def test_a_replica_behind_waits_for_the_upgrade_and_goes_on(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(bot={"database_url": url}, http={"port": 0}, console={"enabled": False})
    async with schema(url) as name:
        operator = confined(Database(url), name)
        replica = build_app(settings, Secrets(), FakeClock(NOW))
        confined(replica.db, name)
        try:
            await operator.upgrade("0003")
            assert replica.http is not None
            await replica.http.listen()  # as `emcee run` does before it builds the bot
            starting = asyncio.create_task(replica.start())
            waiting = await health(replica, until=lambda checks: checks["database"] != "starting")
            await asyncio.sleep(0.2)
            assert not starting.done()  # neither started nor exited
            await operator.upgrade()  # `emcee db upgrade`
            await asyncio.wait_for(starting, SCHEMA_POLL_SECONDS + 5)
            ready = await health(replica)
        finally:
            await replica.stop()
            await operator.close()
    assert waiting == (503, {"database": "waiting"})
    assert ready == (200, {"database": "ok"})
    assert lines(caplog, "waiting for the database schema") == [
        f"waiting for the database schema: at 0003, need {HEAD}; run `emcee db upgrade` or set [bot] migrate_on_start"
    ]


@pytest.mark.parametrize("migrate", [False, True])
async def test_a_schema_ahead_of_the_code_is_refused(url: str, migrate: bool) -> None:
    async with replicas(url, 1) as (replica,):
        await replica.upgrade()
        async with replica.engine.begin() as connection:
            await connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaOutOfDate, match="a newer release of Emcee migrated it"):
            await asyncio.wait_for(replica.prepare(migrate=migrate), 5)
