"""RSVPs per second through the engine, beside the raw floor measured in the same run.

On SQLite the floor is a raw sqlite3 loop in the engine's journal mode (WAL, synchronous=NORMAL,
BEGIN IMMEDIATE: bot/db.py), each RSVP a conditional UPDATE of the seats, an INSERT and a COMMIT
(common.RawStore). With EMCEE_TEST_POSTGRES_URL set, the same on PostgreSQL beside a raw asyncpg
loop; both run in a schema of their own, dropped afterwards, so the shared database is left alone.

The engine's throughput is measured with members RSVPing `--concurrency` at a time, as a burst
arrives; the latency one member waits, with one RSVP at a time. Members mix going, maybe, going +1
and no on an event with fewer seats than takers, so the waitlist is exercised too.

Run: .venv/bin/python bench/bench_rsvp.py [--count 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from common import SLUG, Figure, Goal, RawStore, percentile, report
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import SystemClock
from bot.config import Settings
from bot.db import Database
from bot.engine import Engine
from bot.invocation import Actor, CommandLine

POSTGRES_ENV = "EMCEE_TEST_POSTGRES_URL"
CHOICES = (("going", 0), ("maybe", 0), ("going", 1), ("no", 0))
TARGET_RATIO = 0.2


@dataclass(frozen=True)
class Measured:
    concurrent_per_s: float  # the engine, `concurrency` members at a time
    sequential_per_s: float  # the engine, one at a time
    p50_ms: float
    p99_ms: float
    floor_per_s: float  # the raw loop


def line(index: int) -> str:
    status, guests = CHOICES[index % len(CHOICES)]
    return f"/rsvp {SLUG} {status}" + (f" +{guests}" if guests else "")


async def engine_rsvps(db: Database, count: int, concurrency: int) -> tuple[float, list[float], float]:
    """Concurrent RSVPs/s, then the seconds of each of `count` sequential RSVPs and their RSVPs/s."""
    engine = Engine(db, Settings(), SystemClock())
    organizer = Actor("console", "organizer")
    for command in (f'/emcee event create {SLUG} "Bench" --starts 2099-01-01 18:00 --capacity {count}',):
        assert (await engine.handle(CommandLine(organizer, None, command))).ok
    assert (await engine.handle(CommandLine(organizer, None, f"/emcee event publish {SLUG}"))).ok

    async def rsvp(member: str, index: int) -> float:
        started = time.perf_counter()
        reply = await engine.handle(CommandLine(Actor("console", member), None, line(index)))
        assert reply.ok, reply.text
        return time.perf_counter() - started

    gate = asyncio.Semaphore(concurrency)

    async def gated(index: int) -> float:
        async with gate:
            return await rsvp(f"crowd-{index}", index)

    started = time.perf_counter()
    await asyncio.gather(*(gated(index) for index in range(count)))
    concurrent = count / (time.perf_counter() - started)
    started = time.perf_counter()
    timings = [await rsvp(f"member-{index}", index) for index in range(count)]
    sequential = count / (time.perf_counter() - started)
    await engine.bus.drain()
    return concurrent, timings, sequential


async def timed_loop(count: int, rsvp: Callable[[int], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for index in range(count):
        await rsvp(index)
    return count / (time.perf_counter() - started)


async def sqlite(folder: Path, count: int, concurrency: int) -> Measured:
    db = Database(f"sqlite:///{folder / 'engine.db'}")
    await db.upgrade()
    try:
        concurrent, timings, sequential = await engine_rsvps(db, count, concurrency)
    finally:
        await db.close()
    store = RawStore(folder / "raw.db", capacity=count // 4)  # full a third of the way in, as the engine's 2nd pass

    async def raw(index: int) -> None:
        status, guests = CHOICES[index % len(CHOICES)]
        store.rsvp(f"member-{index}", status, guests)

    try:
        floor = await timed_loop(count, raw)
    finally:
        store.close()
    return summarize(concurrent, timings, sequential, floor)


@asynccontextmanager
async def schema(url: str) -> AsyncIterator[str]:
    """A schema of its own on the shared PostgreSQL database, dropped at the end."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        await connection.execute(f"DROP SCHEMA {name} CASCADE")
        await connection.close()


async def raw_postgres(url: str, search_path: str, count: int) -> float:
    """The raw asyncpg loop: conditional UPDATE, INSERT, COMMIT, on one connection."""
    connection = await asyncpg.connect(url, server_settings={"search_path": search_path})
    await connection.execute(
        "CREATE TABLE event (id INT PRIMARY KEY, capacity INT NOT NULL, seats_taken INT NOT NULL DEFAULT 0);"
        "CREATE TABLE rsvp (event_id INT NOT NULL REFERENCES event(id), user_id TEXT NOT NULL, status TEXT NOT NULL,"
        " guests INT NOT NULL, PRIMARY KEY (event_id, user_id));"
    )
    await connection.execute("INSERT INTO event (id, capacity) VALUES (1, $1)", count // 4)
    taken = "UPDATE event SET seats_taken = seats_taken + $1 WHERE id = 1 AND seats_taken + $1 <= capacity"
    insert = (
        "INSERT INTO rsvp (event_id, user_id, status, guests) VALUES (1, $1, $2, $3)"
        " ON CONFLICT (event_id, user_id) DO UPDATE SET status = excluded.status, guests = excluded.guests"
    )

    async def rsvp(index: int) -> None:
        status, guests = CHOICES[index % len(CHOICES)]
        async with connection.transaction():
            if status == "going" and await connection.execute(taken, 1 + guests) == "UPDATE 0":
                status = "waitlisted"
            await connection.execute(insert, f"member-{index}", status, guests)

    try:
        return await timed_loop(count, rsvp)
    finally:
        await connection.close()


async def postgres(url: str, count: int, concurrency: int) -> Measured:
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    async with schema(plain) as engine_schema, schema(plain) as raw_schema:
        db = Database(url)
        await db.engine.dispose()  # the same engine, its connections in the bench's schema
        db.engine = create_async_engine(
            db.url, pool_size=10, max_overflow=20, connect_args={"server_settings": {"search_path": engine_schema}}
        )
        try:
            await db.upgrade()
            concurrent, timings, sequential = await engine_rsvps(db, count, concurrency)
        finally:
            await db.close()
        floor = await raw_postgres(plain, raw_schema, count)
    return summarize(concurrent, timings, sequential, floor)


def summarize(concurrent: float, timings: list[float], sequential: float, floor: float) -> Measured:
    ms = [seconds * 1000 for seconds in timings]
    return Measured(concurrent, sequential, percentile(ms, 0.5), percentile(ms, 0.99), floor)


def figures(database: str, floor: str, measured: Measured, concurrency: int) -> list[Figure]:
    return [
        Figure(
            f"{database}: engine RSVPs/s, {concurrency} at a time, vs {floor}",
            measured.concurrent_per_s,
            measured.floor_per_s,
            "/s",
            Goal.RATIO_AT_LEAST,
            TARGET_RATIO,
        ),
        Figure(
            f"{database}: engine RSVPs/s, one at a time, vs {floor}",
            measured.sequential_per_s,
            measured.floor_per_s,
            "/s",
            Goal.NONE,
        ),
        Figure(f"{database}: p50 per RSVP, one at a time", measured.p50_ms, None, "ms", Goal.NONE),
        Figure(f"{database}: p99 per RSVP, one at a time", measured.p99_ms, None, "ms", Goal.NONE),
    ]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="emcee-bench-") as folder:
        measured = await sqlite(Path(folder), args.count, args.concurrency)
    rows = figures("SQLite", "raw sqlite3", measured, args.concurrency)
    notes = [f"{args.count:,} RSVPs in each pass; the raw loops run one at a time on one connection"]
    if url := os.environ.get(POSTGRES_ENV):
        measured = await postgres(url, args.count, args.concurrency)
        rows += figures("PostgreSQL", "raw asyncpg", measured, args.concurrency)
    else:
        notes.append(f"PostgreSQL skipped: set {POSTGRES_ENV}")
    report("RSVP throughput: the engine beside the database's floor", rows, notes)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="RSVPs in each pass")
    parser.add_argument("--concurrency", type=int, default=50, help="members RSVPing at once through the engine")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
