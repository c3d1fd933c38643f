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

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import Database
from bot.models import HandledInteraction, table_of
from bot.prepared import Prepared

HANDLED = table_of(HandledInteraction)
# Slack retries within minutes and Discord's interaction tokens last 15 minutes: no action comes again later.
KEPT = timedelta(hours=1)
PRUNE_EVERY = timedelta(minutes=10)

Key = tuple[str, str]  # (platform, the platform's id of the action)


class AlreadyHandled(Exception):
    """The action was acted on already, by this process or another; nothing was written."""


def record(connection: sa.Connection, keys: Sequence[Key | None], now: datetime) -> list[bool]:
    """Record in the connection's transaction each action it acts on; for each key, whether this transaction has
    it (None, an action without an id, always does), False when another transaction acted on it first, or an
    earlier place of `keys` holds the same one. Rows go in sorted, so that two transactions never wait for
    each other's keys in a cycle. Sync, for `run_sync`: the RSVP desk records its group's in its own."""
    insert = _INSERT_NEW[connection.dialect.name]
    recorded = {
        key
        for key in sorted({key for key in keys if key is not None})
        if insert.rows(connection, {"platform": key[0], "id": key[1], "at": now})
    }
    owned: list[bool] = []
    for key in keys:
        owned.append(key is None or key in recorded)
        if key is not None:
            recorded.discard(key)
    return owned


async def record_one(session: AsyncSession, key: Key | None, now: datetime) -> None:
    """`record` for one action; AlreadyHandled when it was acted on already (the caller rolls back)."""
    if key is None:
        return
    connection = await session.connection()
    if not (await connection.run_sync(record, [key], now))[0]:
        raise AlreadyHandled(f"{key} was handled already")


def forget(connection: sa.Connection, keys: Sequence[Key | None]) -> None:
    """Take back the records of actions this transaction refused after all, so that the member may try again."""
    for platform, id_ in {key for key in keys if key is not None}:
        _FORGET.run(connection, {"platform": platform, "id": id_})


async def prune(db: Database, now: datetime) -> None:
    """Forget the actions handled longer ago than any platform delivers one again."""
    async with db.session() as session:
        connection = await session.connection()
        await connection.execute(sa.delete(HANDLED).where(HANDLED.c.handled_at < now - KEPT))


def _insert_new(insert: Callable[[sa.Table], postgresql.Insert | sqlite.Insert]) -> Prepared:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the key when it went in, in a dialect's words."""
    values: dict[str, sa.BindParameter[Any]] = {
        "platform": sa.bindparam("platform"),
        "interaction_id": sa.bindparam("id"),
        "handled_at": sa.bindparam("at"),
    }
    return Prepared(insert(HANDLED).values(values).on_conflict_do_nothing().returning(HANDLED.c.platform))


_INSERT_NEW = {"postgresql": _insert_new(postgresql.insert), "sqlite": _insert_new(sqlite.insert)}
_FORGET = Prepared(
    sa.delete(HANDLED).where(
        HANDLED.c.platform == sa.bindparam("platform"), HANDLED.c.interaction_id == sa.bindparam("id")
    )
)
