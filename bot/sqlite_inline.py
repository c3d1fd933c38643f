"""SQLite run on the event loop's own thread, in the shape SQLAlchemy's aiosqlite dialect drives.

aiosqlite runs each call on a worker thread, so every statement costs three or four round trips
between threads (cursor, execute, fetch, close): more than SQLite itself takes for Emcee's
statements on a WAL database (bench/bench_rsvp.py: an RSVP takes about 2 ms this way, 5 ms through
the thread). The connection handed to SQLAlchemy (`create_async_engine(async_creator=...)`) runs
sqlite3 directly instead. Nothing waits inside SQLite, whose busy handler would hold the whole
loop: a statement that finds the database locked by another process (SQLITE_BUSY) is tried again
after an asyncio sleep, for up to BUSY_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

BUSY_TIMEOUT = 30.0  # seconds a statement may wait for another process's write to end
BUSY_STEP = 0.005  # seconds between tries

T = TypeVar("T")


async def _patiently(call: Callable[[], T]) -> T:
    """`call()`, tried again while another process holds the database."""
    waited = 0.0
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or waited >= BUSY_TIMEOUT:
                raise
        await asyncio.sleep(BUSY_STEP)
        waited += BUSY_STEP


class InlineCursor:
    """aiosqlite's Cursor, as far as SQLAlchemy uses it."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = ()) -> InlineCursor:
        await _patiently(lambda: self._cursor.execute(sql, parameters))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        rows = list(parameters)
        await _patiently(lambda: self._cursor.executemany(sql, rows))
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize


class InlineConnection:
    """aiosqlite's Connection, as far as SQLAlchemy uses it. The sqlite3 connection is in autocommit mode
    (isolation_level None): Database's begin hook issues BEGIN itself."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection = connection  # SQLAlchemy checks it before commit and rollback

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> InlineConnection:
        """sqlite3.connect(*args, **kwargs), in autocommit mode and usable from the pool's any thread."""
        return cls(sqlite3.connect(*args, **{**kwargs, "isolation_level": None, "check_same_thread": False}))

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def commit(self) -> None:
        await _patiently(self._conn.commit)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)
