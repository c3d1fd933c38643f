"""Three `emcee run` replicas on one PostgreSQL database, against one FakeSlack and one FakeDiscord.

Built on the crash harness: each replica is an `Emcee` on the same config (Discord at `shard_count = 2`,
`migrate_on_start = true`). Slack commands go to the replicas as Slack would send them: in HTTP mode through a
round-robin load balancer over the live replicas' ports; in Socket Mode as envelopes the fake pushes to one
random open connection. Discord interactions go through the fake gateway, which delivers each to the session of
the guild's shard. Every answer's delay is recorded, and the shared ledger is read from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from crash_harness import SLACK_ORGANIZER, Emcee, Ledger, Platforms, platforms, slack_key
from discord_harness import User, followup_path
from sqlmodel import SQLModel

from adapters.slack.adapter import WORKING
from bot.db import Database

SHARDS = 2
DEFERRED = 5  # Discord's DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: the answer follows in a follow-up message
FINAL_ANSWER = 10.0  # seconds a deferred answer may take (Discord allows 15 minutes; Slack's response_url 30)
_HOLDS = re.compile(r"holds (.+?) of \d+")


class SlackMode(StrEnum):
    HTTP = "http"
    SOCKET = "socket"


@dataclass(frozen=True)
class Answered:
    """One interaction and how long its answer took (Slack: the ack; Discord: the initial callback)."""

    what: str
    seconds: float


@dataclass
class Replicas:
    platforms: Platforms
    database: Database  # the test's own connection to the replicas' database
    emcees: list[Emcee]
    answers: list[Answered] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _replies: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def live(self) -> list[Emcee]:
        """The replicas still running: the ones a load balancer sends to."""
        return [emcee for emcee in self.emcees if emcee.process.returncode is None]

    async def slack(self, command: str, text: str, user: tuple[str, str] = SLACK_ORGANIZER) -> str:
        """A slash command over HTTP to the next live replica, or pushed to a random socket; its ack is timed. Returns
        the answer, waiting for it on the response_url when the ack said "Working on it…"."""
        reply_to, fake = f"reply-{next(self._replies)}", self.platforms.slack
        started = time.monotonic()
        if self.platforms.slack_mode == SlackMode.SOCKET:
            fields = self.platforms.slash_command(command, text, user, reply_to)
            ack = await fake.push("slash_commands", fields, timeout=10)
            answer = str((ack.get("payload") or {}).get("text", ""))
        else:
            live = self.live
            answer = await live[next(self._turn) % len(live)].slack(command, text, user, reply_to)
        self.answers.append(Answered(f"slack {command} {text}", time.monotonic() - started))
        if answer == WORKING:
            await fake.wait_until(lambda: any(r.name == reply_to for r in fake.responses), timeout=FINAL_ANSWER)
            answer = next(str(r.body.get("text", "")) for r in fake.responses if r.name == reply_to)
        return answer

    async def discord(self, path: str, user: User, **values: Any) -> None:
        """A Discord slash command on the gateway, timed until its initial response reached the fake; a deferred one
        is waited for until its follow-up."""
        started = time.monotonic()
        payload = await self.platforms.discord_command(path, user, **values)
        self.answers.append(Answered(f"discord /{path} {values}", time.monotonic() - started))
        fake = self.platforms.discord
        if (fake.interactions[int(payload["id"])].callback or {}).get("type") == DEFERRED:
            await fake.wait_for_call("POST", followup_path(payload), timeout=FINAL_ANSWER)

    def late_answers(self, limit: float) -> list[Answered]:
        return [answer for answer in self.answers if answer.seconds >= limit]

    async def holder(self, shard: int) -> Emcee | None:
        """The live replica whose /healthz says it holds `shard`."""
        for emcee in self.live:
            if shard in held_shards((await health(emcee))[1]):
                return emcee
        return None

    async def wait_held(self, shard: int, timeout: float) -> Emcee:
        """Until a live replica says it holds `shard` and the shard's session runs on the gateway; that replica."""
        deadline = time.monotonic() + timeout
        while (holder := await self.holder(shard)) is None or shard not in self._running():
            if time.monotonic() > deadline:
                raise AssertionError(f"shard {shard} not held and running after {timeout:.0f}s")
            await asyncio.sleep(0.1)
        return holder

    def _running(self) -> list[int]:
        return sorted(shard for shard, _ in self.platforms.discord.shards_live())

    async def wait_ready(self, timeout: float) -> None:
        """Until every live replica is healthy (its Slack connection and Discord up) and every shard is held by one
        of them and runs a session on the gateway."""
        deadline = time.monotonic() + timeout
        while problems := await self._unready():
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout:.0f}s: {problems}")
            await asyncio.sleep(0.1)

    async def _unready(self) -> list[str]:
        checks = [await health(emcee) for emcee in self.live]
        found = [f"{emcee.url}: {check}" for emcee, check in zip(self.live, checks, strict=True) if check[0] != 200]
        held = sorted(shard for _, named in checks for shard in held_shards(named))
        if not held == list(range(SHARDS)) == self._running():
            found.append(f"shards held {held}, running {self._running()}")
        return found

    async def ledger(self) -> Ledger:
        async with self.database.engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT key, target, status FROM delivery"))
            return {(key, target): status.lower() for key, target, status in rows}

    async def scalar(self, query: str, **params: Any) -> Any:
        async with self.database.engine.connect() as connection:
            return await connection.scalar(sa.text(query), params)

    async def rows(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        async with self.database.engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(sa.text(query), params)]

    def strays(self, ledger: Ledger) -> list[str]:
        """Messages in the fakes' channels beyond one per sent ledger row: a post sent twice, or never recorded."""
        sent: dict[str, int] = {}
        for (_, target), status in ledger.items():
            if status == "sent" and not target.partition(":")[2].startswith("@"):
                sent[target] = sent.get(target, 0) + 1
        found = []
        for target in self.platforms.announce_targets():
            platform, _, channel = target.partition(":")
            if platform == "slack":
                posted = [m for m in self.platforms.slack.messages.values() if m["channel"] == channel]
                unkeyed = [m.get("text", "")[:40] for m in posted if not slack_key(m)]
                if unkeyed:
                    found.append(f"{target}: messages without a post key {unkeyed}")
            else:
                posted = self.platforms.discord.messages(int(channel))
            if len(posted) != sent.get(target, 0):
                found.append(f"{target} shows {len(posted)} messages, the ledger {sent.get(target, 0)} sent")
        return found


async def health(emcee: Emcee) -> tuple[int, dict[str, str]]:
    """A replica's /healthz: its status and checks (0 and none when it does not answer in JSON)."""
    try:
        async with aiohttp.ClientSession() as client, client.get(f"{emcee.url}/healthz") as response:
            return response.status, (await response.json())["checks"]
    except (aiohttp.ClientError, ValueError, KeyError):
        return 0, {}


def held_shards(checks: dict[str, str]) -> set[int]:
    """The shards a replica's /healthz checks say it holds ("ok: holds 0, 1 of 2; every shard held")."""
    match = _HOLDS.search(checks.get("discord", ""))
    if match is None or match[1] == "no shard":
        return set()
    return {int(shard) for shard in match[1].split(", ")}


async def empty_database(url: str) -> Database:
    """The database with no tables at all, so that the replicas migrate it as they start."""
    database = Database(url)
    async with database.engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.drop_all)
        await connection.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    return database


@asynccontextmanager
async def replicas(tmp_path: Path, url: str, mode: SlackMode, extra: str, count: int = 3) -> AsyncIterator[Replicas]:
    """`count` replicas started at once on an emptied database; every one of them is killed on the way out."""
    database = await empty_database(url)
    async with platforms(tmp_path) as base, AsyncExitStack() as stack:
        base.discord.max_concurrency = SHARDS  # a bucket for each shard: a take-over identifies at once
        stack.push_async_callback(database.close)
        shared = Platforms(
            base.slack, base.discord, base.discord_channels, base.database, url, mode.value, SHARDS, extra
        )
        emcees = []
        for _ in range(count):  # each is serving /healthz within a moment; they load the bot side by side
            emcees.append(emcee := await Emcee.start(shared))
            stack.push_async_callback(emcee.close)
        yield Replicas(shared, database, emcees)
