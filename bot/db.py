"""The database: an async engine from `database_url`, sessions, and Alembic migrations.

SQLite runs on the event loop's thread (bot/sqlite_inline.py). Every writing transaction is BEGIN
IMMEDIATE, so that writers from other processes queue instead of failing; within one process, writing
sessions take turns on an asyncio lock. Reading sessions (`reading`) take a snapshot beside the writer.
PostgreSQL uses its own row locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.sqlite_inline import InlineConnection

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
PG_READ_ONLY_TRANSACTION = "25006"  # SQLSTATE read_only_sql_transaction (a replica, or default_transaction_read_only)
# The advisory lock that migrations take on PostgreSQL, so that of several replicas one migrates at a time
# (the key is "emcemigr" in ASCII: any fixed number no other part of the database's users takes).
MIGRATION_LOCK = 0x656D63656D696772
SCHEMA_POLL_SECONDS = 2.0  # how often a replica waiting for the schema looks again
_READING = "emcee_reading"  # the execution option that marks a read-only session
T = TypeVar("T")
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def check_database_url(database_url: str) -> str:
    """Refuse a URL that is not one or names a database Emcee does not support; return it unchanged."""
    try:
        url = make_url(database_url)
    except sa.exc.ArgumentError:
        raise ValueError('not a database URL; use "sqlite:///emcee.db" or "postgresql://user@host/emcee"') from None
    if url.drivername not in _ASYNC_DRIVERS and url.drivername not in _ASYNC_DRIVERS.values():
        raise ValueError(f"unsupported database '{url.drivername}'; use sqlite:/// or postgresql://")
    return database_url


def async_url(database_url: str) -> str:
    """Map the operator's URL (sqlite:///emcee.db, postgresql://...) to its async driver."""
    url = make_url(database_url)
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver:
        url = url.set(drivername=driver)
    return url.render_as_string(hide_password=False)


def _sqlite_immediate(engine: AsyncEngine) -> None:
    @sa.event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL mode, fewer fsyncs
        cursor.execute("PRAGMA busy_timeout=0")  # the connection waits for other processes itself (sqlite_inline)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        # A read takes a snapshot and no lock (WAL lets it run beside the writer); a write queues for the lock.
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(_READING) else "BEGIN IMMEDIATE")


class Database:
    """Owns the engine; hands out sessions and runs migrations."""

    def __init__(self, database_url: str) -> None:
        self.url = async_url(database_url)
        self.is_sqlite = self.url.startswith("sqlite")
        options: dict[str, Any] = {}
        if self.is_sqlite:
            url = make_url(self.url)
            args, kwargs = url.get_dialect()().create_connect_args(url)  # the file, and URI options (mode=ro)
            options["async_creator"] = lambda: InlineConnection.open(*args, **kwargs)
        else:
            options["pool_size"] = 10
            options["max_overflow"] = 20
        self.engine = create_async_engine(self.url, **options)
        self._reader = self.engine.execution_options(**{_READING: True})
        self._turns = asyncio.Lock() if self.is_sqlite else contextlib.nullcontext()
        self._writer: AsyncConnection | None = None  # `writing`'s connection, kept: a checkout costs more than its work
        self._writer_turns = asyncio.Lock()
        self._read_only_reported = False
        self.state = SchemaState.STARTING
        if self.is_sqlite:
            _sqlite_immediate(self.engine)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error."""
        with self._writes_refused():
            async with self._turns, AsyncSession(self.engine, expire_on_commit=False) as session:
                async with session.begin():
                    yield session

    async def writing(self, work: Callable[[sa.Connection], T]) -> T:
        """`work(connection)` in one writing transaction, on a sync connection (inside `run_sync`): committed when
        it returns, rolled back when it raises. Cheaper than a session for a hot path that needs no ORM."""
        with self._writes_refused():
            async with self._turns, self._writer_turns:
                if self._writer is None:
                    self._writer = await self.engine.connect()
                try:
                    return await self._writer.run_sync(_in_transaction, work)
                except sa.exc.DBAPIError as exc:
                    if exc.connection_invalidated:  # the server went away: the next call connects anew
                        await self._close_writer()
                    raise

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only: a consistent snapshot that waits for no writer (on SQLite, no lock and no
        turn). What it reads is as of its first statement; a write in it fails. Its transaction begins with
        that statement, and closing the session ends it: one that reads nothing costs next to nothing."""
        async with AsyncSession(self._reader, expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def _writes_refused(self) -> Iterator[None]:
        """Raise DatabaseReadOnly for a write the database refuses, and tell the operator once."""
        try:
            yield
        except sa.exc.DBAPIError as exc:
            if not _is_read_only(exc.orig):
                raise
            if not self._read_only_reported:
                self._read_only_reported = True
                log.error("the database is read-only (%s): nothing can change until it is writable again", exc.orig)
            raise DatabaseReadOnly("the database is read-only") from None

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to `revision` with Alembic (on PostgreSQL, under the migration lock)."""
        with self.explained():
            async with self.engine.begin() as connection:
                await self._hold_migration_lock(connection)
                await connection.run_sync(_run_upgrade, _alembic_config(), revision)

    async def prepare(self, migrate: bool = False) -> None:
        """At startup: migrate a SQLite file in place. On PostgreSQL, where several replicas may start at once,
        migrate under the migration lock when `migrate` ([bot] migrate_on_start), else wait until the schema
        is current (`emcee db upgrade`, or a replica that migrates). A schema ahead of this release is refused."""
        if self.is_sqlite:
            await self.upgrade()
        elif migrate:
            await self._migrate_once()
        else:
            await self._await_schema()
        self.state = SchemaState.READY

    async def _migrate_once(self) -> None:
        """Migrate unless another replica did while this one waited for the lock."""
        head = _scripts().get_current_head()
        with self.explained():
            async with self.engine.begin() as connection:
                await self._hold_migration_lock(connection)
                current = await connection.run_sync(_current_revision)
                if current == head:
                    return
                _refuse_if_ahead(current, head)
                self.state = SchemaState.MIGRATING
                log.warning("migrating the database schema from %s to %s", current or "nothing", head)
                await connection.run_sync(_run_upgrade, _alembic_config(), "head")

    async def _await_schema(self) -> None:
        """Re-check the schema every SCHEMA_POLL_SECONDS until someone has brought it to the head."""
        head = _scripts().get_current_head()
        while (current := await self._current()) != head:
            _refuse_if_ahead(current, head)
            if self.state is not SchemaState.WAITING:
                self.state = SchemaState.WAITING
                log.warning(
                    "waiting for the database schema: at %s, need %s; run `emcee db upgrade` or set [bot] "
                    "migrate_on_start",
                    current or "nothing",
                    head,
                )
            await asyncio.sleep(SCHEMA_POLL_SECONDS)
        if self.state is SchemaState.WAITING:
            log.info("the database schema is at %s now", head)

    async def _current(self) -> str | None:
        with self.explained():
            async with self.engine.connect() as connection:
                return await connection.run_sync(_current_revision)

    async def _hold_migration_lock(self, connection: AsyncConnection) -> None:
        """On PostgreSQL, take the migration lock for the connection's transaction, waiting for a replica (or an
        `emcee db upgrade`) that holds it. The lock goes with the transaction, or with the connection if the
        process dies."""
        if self.is_sqlite:  # BEGIN IMMEDIATE already makes migrations take turns
            return
        if await connection.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(MIGRATION_LOCK))):
            return
        self.state = SchemaState.WAITING
        log.info("waiting for another process to finish migrating the database")
        await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """Turn a failure to open or reach the database into DatabaseUnusable, which says how to fix it.

        A SQLite file that cannot be opened is caught before connecting: aiosqlite's failed connect
        leaves a worker thread that may call into the event loop after it closed.
        """
        url = make_url(self.url)
        if self.is_sqlite and (problem := _sqlite_file_problem(_sqlite_path(url))):
            raise DatabaseUnusable(f"{problem}, or change [bot] database_url")
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.DatabaseError, sa.exc.InterfaceError, OSError) as exc:
            problem = _sqlite_problem(url, exc) if self.is_sqlite else _postgres_problem(url, exc)
            raise DatabaseUnusable(f"{problem}, or change [bot] database_url") from None

    async def ping(self) -> None:
        """Check that the database answers and takes writes: an update that is rolled back."""
        with self._writes_refused():
            async with self._turns, self.engine.connect() as connection:
                transaction = await connection.begin()
                try:
                    await connection.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
                finally:
                    await transaction.rollback()

    async def close(self) -> None:
        await self._close_writer()
        await self.engine.dispose()

    async def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(sa.exc.DBAPIError, OSError):
                await writer.close()


class SchemaOutOfDate(Exception):
    """The database's schema does not fit this release; str() says what to do."""


class SchemaState(enum.StrEnum):
    """Where preparing the database stands, as /healthz shows it until the database is ready."""

    STARTING = "starting"
    WAITING = "waiting"  # for another replica's migration, or for `emcee db upgrade`
    MIGRATING = "migrating"
    READY = "ok"


class DatabaseReadOnly(Exception):
    """The database refuses writes: a read-only file or mount, or a PostgreSQL replica."""


def _is_read_only(error: BaseException | None) -> bool:
    if isinstance(error, sqlite3.Error):
        return error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY
    return getattr(error, "sqlstate", None) == PG_READ_ONLY_TRANSACTION


class DatabaseUnusable(Exception):
    """The database cannot be opened or reached; str() says what is wrong and how to fix it."""


def _sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL; None for an in-memory database."""
    database = url.database or ""
    if url.query.get("uri"):
        database = database.removeprefix("file:")
    return Path(database) if database and database != ":memory:" else None


def _sqlite_file_problem(path: Path | None) -> str | None:
    if path is None:
        return None
    folder = path.parent
    if path.is_dir():
        return f"{path} is a folder, not a database file: name a file in it, e.g. sqlite:///{path / 'emcee.db'}"
    if not folder.is_dir():
        return f"the folder {folder} does not exist: create it (mkdir -p {folder})"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"the bot's user cannot write {path} and its folder {folder}: give it write access"
    return None


def _sqlite_problem(url: URL, exc: Exception) -> str:
    path = _sqlite_path(url)
    if isinstance(exc, sa.exc.DatabaseError) and "not a database" in str(exc.orig):
        return f"{path} is not a SQLite database: move it away or name another file"
    return f"cannot open the SQLite database {path}: {_reason(exc)}"


def _postgres_problem(url: URL, exc: Exception) -> str:
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"cannot connect to PostgreSQL at {where}: {_reason(exc)}; check that the server runs and accepts the bot"


def _reason(exc: Exception) -> str:
    return str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).strip()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _refuse_if_ahead(current: str | None, head: str | None) -> None:
    """A revision this release does not know was written by a newer one: running on it could corrupt its data."""
    if current is None:
        return
    try:
        _scripts().get_revision(current)
    except CommandError:
        raise SchemaOutOfDate(
            f"the database schema is at {current}, which this release does not know (its newest is {head}): a newer "
            "release of Emcee migrated it; run that release or a newer one"
        ) from None


def _current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _run_upgrade(connection: sa.Connection, config: AlembicConfig, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _in_transaction(connection: sa.Connection, work: Callable[[sa.Connection], T]) -> T:
    with connection.begin():
        return work(connection)
