"""Which Discord shards this replica runs.

Discord delivers a guild's events to the session of shard `(guild_id >> 22) % shard_count` only, so replicas
that never run the same shard never handle the same interaction. On PostgreSQL each shard is a session-level
advisory lock, `pg_try_advisory_lock(LOCK_SPACE, shard_id)`, taken on a connection of this module's own and
kept open while the shards are held: the locks die with that connection, so a replica that is killed frees its
shards at once, and every replica tries the free ones again every `retry` seconds. SQLite serves one process,
which holds every shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from bot.db import async_url

log = logging.getLogger(__name__)

LOCK_SPACE = 0x454D4345  # "EMCE": the first key of every shard's advisory lock; the shard id is the second
RETRY_SECONDS = 2.0  # how often free shards are tried: a dead replica's shards are taken within this, plus a start

ShardsChanged = Callable[[frozenset[int]], Awaitable[None]]

_TRY = sa.text("SELECT pg_try_advisory_lock(:space, :shard)")
# Two-key advisory locks show their keys as classid and objid, with objsubid 2 (PostgreSQL's pg_locks docs).
_HELD_ANYWHERE = sa.text(
    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :space AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class ShardClaims:
    """Every shard, held by the one process (SQLite); `AdvisoryLocks` shares them among replicas."""

    def __init__(self) -> None:
        self.count = 0
        self.held: frozenset[int] = frozenset()

    async def start(self, count: int, changed: ShardsChanged) -> None:
        """Claim shards of `count`; `changed` is awaited with the held set whenever it changes."""
        self.count = count
        self.held = frozenset(range(count))
        await changed(self.held)

    async def stop(self) -> None:
        self.held = frozenset()

    async def held_anywhere(self) -> frozenset[int] | None:
        """The shards some replica holds (this one included); None when that cannot be told."""
        return self.held

    async def describe(self) -> str:
        """For /healthz: what this replica holds, and whether every shard is held by someone."""
        here = ", ".join(map(str, sorted(self.held))) or "no shard"
        anywhere = await self.held_anywhere()
        if anywhere is None:
            others = "the other shards' holders are unknown"
        elif free := sorted(set(range(self.count)) - anywhere):
            others = f"shard {', '.join(map(str, free))} held by no replica"
        else:
            others = "every shard held"
        return f"holds {here} of {self.count}; {others}"


class AdvisoryLocks(ShardClaims):
    """Shards claimed with PostgreSQL advisory locks on a connection kept open while they are held."""

    def __init__(self, database_url: str, retry: float = RETRY_SECONDS) -> None:
        super().__init__()
        self.retry = retry
        # AUTOCOMMIT: the connection idles outside any transaction; session-level locks outlive transactions.
        self._engine = create_async_engine(database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._connection: AsyncConnection | None = None
        self._changed: ShardsChanged | None = None
        self._task: asyncio.Task[None] | None = None
        self._using = asyncio.Lock()  # one statement at a time on the connection (/healthz asks on it too)

    async def start(self, count: int, changed: ShardsChanged) -> None:
        self.count, self._changed = count, changed
        await self._claim()
        self._task = asyncio.create_task(self._keep_claiming())

    async def stop(self) -> None:
        """Release every shard: closing the connection ends its locks."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._disconnect()
        self.held = frozenset()
        await self._engine.dispose()

    async def held_anywhere(self) -> frozenset[int] | None:
        async with self._using:
            if self._connection is None:
                return None
            try:
                rows = await self._connection.execute(_HELD_ANYWHERE, {"space": LOCK_SPACE})
            except (SQLAlchemyError, OSError):  # the connection is gone, and its locks: the next claim sees to it
                await self._disconnect()
                return None
        return frozenset(int(row[0]) for row in rows)

    async def _keep_claiming(self) -> None:
        while True:
            await asyncio.sleep(self.retry)
            try:
                await self._claim()
            except Exception:  # the sessions failed to start: stop them, and release the shards for any replica
                log.exception("running Discord shards %s failed; releasing them", sorted(self.held))
                try:
                    await self._hold(frozenset())
                finally:
                    await self._disconnect()

    async def _claim(self) -> None:
        """Try every shard not held; a lost connection lost its locks, so nothing is held until it is back."""
        held = set(self.held)
        async with self._using:
            try:
                if self._connection is None:  # a new connection holds no lock, whatever ran before
                    held = set()
                connection = await self._connect()
                await connection.execute(sa.text("SELECT 1"))  # still connected: the locks held are still ours
                for shard in sorted(set(range(self.count)) - held):
                    if await connection.scalar(_TRY, {"space": LOCK_SPACE, "shard": shard}):
                        held.add(shard)
            except (SQLAlchemyError, OSError) as exc:
                if self.held:
                    log.warning("lost the database connection holding Discord shards %s: %s", sorted(self.held), exc)
                await self._disconnect()
                held = set()
        await self._hold(frozenset(held))

    async def _hold(self, held: frozenset[int]) -> None:
        if held == self.held:
            return
        log.info("holding Discord shards %s of %d", sorted(held) or "none", self.count)
        self.held = held
        if self._changed is not None:
            await self._changed(held)

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return self._connection

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(DBAPIError, OSError):
                await connection.close()


def shard_claims(database_url: str) -> ShardClaims:
    """Advisory locks on PostgreSQL; every shard on SQLite (one process)."""
    url = async_url(database_url)
    return ShardClaims() if url.startswith("sqlite") else AdvisoryLocks(url)
