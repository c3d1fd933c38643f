"""Each member action acted on once: a Discord interaction or a Slack trigger, whatever the replicas and retries.

A platform may deliver one action more than once: Discord sends an interaction to every session of its token
(two replicas, a shard hand-over), Slack delivers a request again when its ack came late. The transaction that
acts on an action records its id (`record`); the record commits with the command's writes or not at all. The
table's key decides between two runs of one id: on PostgreSQL the second insert waits for the first
transaction and is dropped once that commits (ON CONFLICT DO NOTHING), or goes ahead if it rolled back; on
SQLite writers take turns, so the second sees the first's row. A refused command rolls back its record, so the
member may try again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import Database
from bot.models import HandledInteraction, table_of

HANDLED = table_of(HandledInteraction)
# Slack retries within minutes and Discord's interaction tokens last 15 minutes: no action comes again later.
KEPT = timedelta(hours=1)
PRUNE_EVERY = timedelta(minutes=10)

Key = tuple[str, str]  # (platform, the platform's id of the action)


class AlreadyHandled(Exception):
    """The action was acted on already, by this process or another; nothing was written."""


async def record(session: AsyncSession, keys: Sequence[Key | None], now: datetime) -> list[bool]:
    """Record in the session's transaction each action it acts on; for each key, whether this transaction has it
    (None, an action without an id, always does), False when another transaction acted on it first, or an
    earlier place of `keys` holds the same one. Rows go in sorted, so that two transactions never wait for
    each other's keys in a cycle."""
    wanted = sorted({key for key in keys if key is not None})
    recorded: set[Key] = set()
    if wanted:
        rows = [{"platform": platform, "interaction_id": id_, "handled_at": now} for platform, id_ in wanted]
        connection = await session.connection()
        result = await connection.execute(_insert_new(connection.dialect.name, rows))
        recorded = {(row.platform, row.interaction_id) for row in result}
    owned: list[bool] = []
    for key in keys:
        if key is None:
            owned.append(True)
        else:
            owned.append(key in recorded)
            recorded.discard(key)
    return owned


async def record_one(session: AsyncSession, key: Key | None, now: datetime) -> None:
    """`record` for one action; AlreadyHandled when it was acted on already (the caller rolls back)."""
    if not (await record(session, [key], now))[0]:
        raise AlreadyHandled(f"{key} was handled already")


async def forget(session: AsyncSession, keys: Sequence[Key | None]) -> None:
    """Take back the records of actions this transaction refused after all, so that the member may try again."""
    wanted = [key for key in keys if key is not None]
    if wanted:
        connection = await session.connection()
        await connection.execute(
            sa.delete(HANDLED).where(sa.tuple_(HANDLED.c.platform, HANDLED.c.interaction_id).in_(wanted))
        )


async def prune(db: Database, now: datetime) -> None:
    """Forget the actions handled longer ago than any platform delivers one again."""
    async with db.session() as session:
        connection = await session.connection()
        await connection.execute(sa.delete(HANDLED).where(HANDLED.c.handled_at < now - KEPT))


def _insert_new(dialect: str, rows: list[dict[str, object]]) -> sa.Executable:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the keys inserted, in the dialect's words."""
    insert = postgresql.insert(HANDLED) if dialect == "postgresql" else sqlite.insert(HANDLED)
    return insert.values(rows).on_conflict_do_nothing().returning(HANDLED.c.platform, HANDLED.c.interaction_id)
