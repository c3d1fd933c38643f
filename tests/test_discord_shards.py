"""Discord shards shared among replicas through PostgreSQL advisory locks (bot/shards.py).

The fake gateway routes as Discord does: a guild's events go only to the session of its shard, so with the shards
held by one replica each, a guild's interaction reaches one replica. On SQLite the one process holds every shard.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from conftest import NOW, POSTGRES_ENV, reset
from discord_harness import GRACE, SECRETS, DiscordEmcee, callback_path, command_data, discord_settings, quick
from fakes.discord import FakeDiscord, interaction_payload

from adapters.discord.client import IDENTIFY_INTERVAL
from bot.app import build_app
from bot.clock import FakeClock
from bot.db import Database
from bot.shards import LOCK_SPACE, AdvisoryLocks


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to share shards among replicas on PostgreSQL")
    return url


async def fresh_postgres(url: str) -> None:
    database = Database(url)
    await database.upgrade()
    await reset(database)
    await database.close()


async def interaction(fake: FakeDiscord, path: str = "events", dm: bool = False) -> int:
    """A guild's slash command on the gateway (or a DM's); the number of initial responses it got (2+ means it was
    handled twice)."""
    payload = interaction_payload("command_rsvp", data=command_data(path), member=GRACE.member())
    if dm:
        payload["user"] = payload.pop("member")["user"]
        for key in ("guild_id", "guild", "guild_locale"):
            payload.pop(key, None)
    await fake.dispatch("INTERACTION_CREATE", payload)
    await fake.wait_for_call("POST", callback_path(payload), timeout=3)
    await asyncio.sleep(0.3)  # time for a second replica's answer, had it received the event too
    return len(fake.calls_to("POST", callback_path(payload)))


async def healthz(url: str) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/healthz") as response:
        return response.status, (await response.json())["checks"]


@asynccontextmanager
async def replica(
    tmp_path: Path, fake: FakeDiscord, database_url: str, shard_count: int | str = 2
) -> AsyncIterator[DiscordEmcee]:
    """One Emcee with Discord at `shard_count` and its /healthz, in this process."""
    settings = discord_settings(tmp_path, fake, shard_count=shard_count)
    settings = settings.model_copy(
        update={
            "bot": settings.bot.model_copy(update={"database_url": database_url}),
            "http": settings.http.model_copy(update={"enabled": True, "port": 0}),
        }
    )
    app = quick(build_app(settings, SECRETS, FakeClock(NOW)))
    await app.start()
    try:
        yield DiscordEmcee(app, fake)
    finally:
        await app.stop()


async def test_on_sqlite_the_one_process_runs_every_shard_of_the_count_discord_recommends(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.recommended_shards = 2
        fake.max_concurrency = 2  # two identify buckets: the shards start without waiting for each other
        async with replica(tmp_path, fake, f"sqlite:///{tmp_path / 'emcee.db'}", shard_count="auto") as emcee:
            assert sorted(fake.shards_live()) == [(0, 2), (1, 2)]
            assert await interaction(fake) == 1  # one client, both sessions: only the guild's shard got it
            assert await interaction(fake, dm=True) == 1  # and a DM only shard 0
            assert emcee.app.http is not None
            status, checks = await healthz(emcee.app.http.url)
    assert (status, checks["discord"]) == (200, "ok: holds 0, 1 of 2; every shard held")


async def test_shards_in_different_identify_buckets_start_without_waiting_for_each_other(tmp_path: Path) -> None:
    """With max_concurrency 2, shards 0 and 1 are in different buckets: no 5 s between their IDENTIFYs."""
    async with FakeDiscord() as fake:
        fake.max_concurrency = 2
        started = time.monotonic()
        async with replica(tmp_path, fake, f"sqlite:///{tmp_path / 'emcee.db'}", shard_count=2):
            took = time.monotonic() - started
            assert sorted(fake.shards_live()) == [(0, 2), (1, 2)]
    assert took < IDENTIFY_INTERVAL


async def test_replicas_on_postgresql_hold_disjoint_shards_and_a_guilds_interaction_reaches_one(
    tmp_path: Path,
) -> None:
    url = postgres_url()
    await fresh_postgres(url)
    async with FakeDiscord() as fake, AsyncExitStack() as stack:
        fake.max_concurrency = 2
        first = await stack.enter_async_context(replica(tmp_path / "a", fake, url))
        second = await stack.enter_async_context(replica(tmp_path / "b", fake, url))
        shards = [app.shards.held for app in (first.app, second.app) if app.shards is not None]
        assert shards == [frozenset({0, 1}), frozenset()]  # the first claimed every free shard
        assert sorted(fake.shards_live()) == [(0, 2), (1, 2)]  # one session per shard, the second replica runs none
        assert await interaction(fake) == 1
        assert second.app.http is not None
        status, checks = await healthz(second.app.http.url)
        assert (status, checks["discord"]) == (200, "ok: holds no shard of 2; every shard held")


async def test_advisory_locks_are_released_on_stop_and_taken_by_the_other_replica() -> None:
    url = postgres_url()
    held: list[tuple[str, frozenset[int]]] = []

    def recorder(name: str) -> Any:
        async def changed(shards: frozenset[int]) -> None:
            held.append((name, shards))

        return changed

    first, second = AdvisoryLocks(Database(url).url, retry=0.2), AdvisoryLocks(Database(url).url, retry=0.2)
    await first.start(3, recorder("first"))
    await second.start(3, recorder("second"))
    try:
        assert held == [("first", frozenset({0, 1, 2}))]  # the second holds none: nothing changed for it
        await first.stop()
        async with asyncio.timeout(2):
            while second.held != {0, 1, 2}:
                await asyncio.sleep(0.05)
        assert held[-1] == ("second", frozenset({0, 1, 2}))
        assert await second.held_anywhere() == frozenset({0, 1, 2})
    finally:
        await first.stop()
        await second.stop()


async def cut_the_locks_connection(database: Database) -> None:
    """End the connections holding shard locks in this database, as a network cut or a restarted server does."""
    async with database.engine.connect() as connection:
        await connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid = :s"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"s": LOCK_SPACE},
        )


async def test_a_replica_whose_locks_connection_is_cut_stops_its_shards_and_claims_them_again() -> None:
    url = postgres_url()
    held: list[frozenset[int]] = []

    async def changed(shards: frozenset[int]) -> None:
        held.append(shards)

    database = Database(url)
    locks = AdvisoryLocks(database.url, retry=0.2)
    await locks.start(2, changed)
    try:
        await cut_the_locks_connection(database)
        async with asyncio.timeout(3):
            while len(held) < 3:
                await asyncio.sleep(0.05)
        # Its locks ended with the connection: its sessions stop, then it claims the shards again on a new one.
        assert held == [frozenset({0, 1}), frozenset(), frozenset({0, 1})]
    finally:
        await locks.stop()
        await database.close()


async def test_a_health_check_that_finds_the_locks_connection_cut_answers_and_the_shards_are_locked_again() -> None:
    """/healthz may be the first to find the connection gone: it still answers, and the next claim takes the
    locks again on a new connection, so the shards this replica runs are never left without them."""
    url = postgres_url()
    database = Database(url)
    locks = AdvisoryLocks(database.url, retry=0.2)
    held: list[frozenset[int]] = []

    async def changed(shards: frozenset[int]) -> None:
        held.append(shards)

    await locks.start(2, changed)
    try:
        await cut_the_locks_connection(database)
        assert "holds 0, 1 of 2" in await locks.describe()
        async with asyncio.timeout(3):
            while await locks.held_anywhere() != frozenset({0, 1}):
                await asyncio.sleep(0.05)
        assert locks.held == frozenset({0, 1}) and held[-1] == frozenset({0, 1})
    finally:
        await locks.stop()
        await database.close()
