"""Storage: migrations create the schema, startup prepares it, and datetimes stay aware."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import create_event
from sqlmodel import select

from bot.db import Database, async_url
from bot.engine import Engine
from bot.models import Event


def test_urls_map_to_async_drivers() -> None:
    assert async_url("sqlite:///emcee.db") == "sqlite+aiosqlite:///emcee.db"
    assert async_url("postgresql://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"


async def test_startup_migrates_a_new_sqlite_file(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    await db.prepare()
    async with db.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
    await db.close()
    assert {"event", "agenda_item", "speaker", "item_speaker", "rsvp", "delivery", "alembic_version"} <= set(tables)


async def test_naive_datetimes_are_refused_and_stored_ones_come_back_aware(db: Database, engine: Engine) -> None:
    await create_event(engine)
    async with db.session() as session:
        stored = (await session.exec(select(Event))).one()
    assert stored.starts_at.utcoffset() == timedelta(0)
    with pytest.raises(sa.exc.StatementError, match="naive datetimes are not stored"):
        async with db.session() as session:
            stored.starts_at = datetime(2026, 6, 15, 18, 0)
            session.add(stored)
