"""Emcee as an operator runs it (`python -m bot.cli run`), against FakeSlack and FakeDiscord at once, for crash tests.

`Platforms` holds the two fakes (two announce channels on each) and writes the config for a SQLite file (or a
PostgreSQL database, for several replicas); `Emcee.start` runs the real process on it (secrets from the
environment), `kill` SIGKILLs it and a second `start` on the same file and the same fakes is the restart.
Commands go in the way the platforms send them: signed Slack slash commands over HTTP and Discord interactions
on the gateway.
`Platforms.copies` counts what reached a target under one post key, by the key itself: Slack posts
carry it in their message metadata, Discord posts in their nonce.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from discord_harness import User, callback_path, command_data
from fakes.discord import BOT_TOKEN, CHANNEL_ID, GUILD_ID, ORGANIZER_ROLE_ID, FakeDiscord, Json, interaction_payload
from fakes.discord import Call as DiscordCall
from fakes.slack import Call as SlackCall
from fakes.slack import FakeSlack, load_payload, new_trigger_id, signed_headers, slash_command_body
from slack_harness import SIGNING_SECRET

from adapters.discord.client import nonce

ROOT = Path(__file__).resolve().parent.parent
SLACK_CHANNELS = ("C0CRASH001", "C0CRASH002")
SLACK_ORGANIZER = ("U0ORGANIZ1", "olga")
LEASE_SECONDS = 2
START_TIMEOUT = 30.0
_POSTS = re.compile(r"/channels/\d+/messages")
_EDITS = re.compile(r"/channels/\d+/messages/\d+")


def slack_key(message: dict[str, Any]) -> str:
    """The post key in a Slack message's (or a chat.postMessage call's) metadata; "" without one."""
    metadata = message.get("metadata") or {}
    return str((metadata.get("event_payload") or {}).get("key", ""))


def slack_posts(prefix: str) -> Any:
    """A trip predicate: chat.postMessage calls of posts whose key starts with `prefix`."""
    return lambda call: call.method == "chat.postMessage" and slack_key(call.params).startswith(prefix)


def slack_edits(call: SlackCall) -> bool:
    return call.method == "chat.update"


def discord_posts(marker: str) -> Any:
    """A trip predicate: message creations whose text (content and embed titles) holds `marker`, e.g. "🗓 Agenda";
    CARD picks the event cards (the messages with the RSVP buttons)."""
    return lambda call: call.method == "POST" and _POSTS.fullmatch(call.path) and marker in _discord_text(call.json)


def discord_edits(call: DiscordCall) -> bool:
    return call.method == "PATCH" and bool(_EDITS.fullmatch(call.path))


CARD = "\0card"  # what _discord_text says of a message with buttons (no text holds a NUL)


def _discord_text(body: Any) -> str:
    body = body or {}
    titles = [str(embed.get("title", "")) for embed in body.get("embeds") or []]
    return " ".join([body.get("content") or "", *titles, CARD if body.get("components") else ""])


Ledger = dict[tuple[str, str], str]  # (key, target): status


@dataclass
class Platforms:
    slack: FakeSlack
    discord: FakeDiscord
    discord_channels: tuple[int, ...]
    database: Path  # the SQLite file; its name also places the config file
    database_url: str = ""  # another database (PostgreSQL, shared by replicas) instead of the SQLite file
    slack_mode: str = "http"
    shard_count: int = 1
    extra: str = ""  # more config lines, e.g. a [reminders] section

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{self.database}"

    def config(self) -> str:
        """The config of every run: both platforms, two announce channels each, a 2-second delivery lease."""
        return f"""
[bot]
database_url = "{self.url}"
timezone = "UTC"
delivery_lease_seconds = {LEASE_SECONDS}
migrate_on_start = true

[organizers]
slack = ["{SLACK_ORGANIZER[0]}"]

[organizers.discord_roles]
"{GUILD_ID}" = [{ORGANIZER_ROLE_ID}]

[http]
port = 0

[slack]
enabled = true
mode = "{self.slack_mode}"
api_base_url = "{self.slack.api_base_url}"
announce_channels = {list(SLACK_CHANNELS)!r}

[discord]
enabled = true
guild_ids = [{GUILD_ID}]
announce_channels = {list(self.discord_channels)!r}
api_base_url = "{self.discord.api_base_url}"
gateway_url = "{self.discord.gateway_url}"
{f"shard_count = {self.shard_count}" if self.shard_count != 1 else ""}

[console]
enabled = false
{self.extra}"""

    def slash_command(self, command: str, text: str, user: tuple[str, str], reply_to: str = "") -> dict[str, str]:
        """A slash command's fields as Slack sends them (a form body over HTTP, an envelope's payload on a socket);
        its response_url is named `reply_to` (default: the member's name) in the fake's `responses`."""
        return {
            **load_payload("slash_command_rsvp"),
            "command": command,
            "text": text,
            "user_id": user[0],
            "user_name": user[1],
            "channel_id": SLACK_CHANNELS[0],
            "response_url": self.slack.response_url(reply_to or user[1]),
            "trigger_id": new_trigger_id(),
        }

    async def discord_command(self, path: str, user: User, **values: Any) -> Json:
        """A slash command interaction on the gateway (Discord delivers it to the session of the guild's shard);
        waits for its initial response and returns the interaction's payload."""
        payload = interaction_payload("command_rsvp", data=command_data(path, **values), member=user.member())
        await self.discord.dispatch("INTERACTION_CREATE", payload)
        await self.discord.wait_for_call("POST", callback_path(payload), timeout=10)
        return payload

    def announce_targets(self) -> list[str]:
        """The announce channels as the ledger names its targets."""
        return [f"slack:{c}" for c in SLACK_CHANNELS] + [f"discord:{c}" for c in self.discord_channels]

    def copies(self, key: str, target: str) -> int:
        """How many messages reached `target` (a ledger target: platform:channel or platform:@member) under `key`."""
        platform, _, where = target.partition(":")
        member = where.removeprefix("@") if where.startswith("@") else None
        if platform == "slack":
            channel = self.slack.dm_channel(member) if member else where
            return sum(1 for m in self.slack.messages.values() if m["channel"] == channel and slack_key(m) == key)
        channel_id = self.discord.dm_channel_id(int(member)) if member else int(where)
        wanted = nonce(channel_id, 0, key)
        return sum(1 for m in self.discord.messages(channel_id) if m.get("nonce") == wanted)

    def ledger(self, prefix: str) -> Ledger:
        """(key, target): status of every ledger row whose key starts with `prefix`."""
        with sqlite3.connect(self.database) as connection:
            rows = connection.execute(
                "SELECT key, target, status FROM delivery WHERE key LIKE ? ESCAPE '\\'",
                (prefix.replace("_", "\\_").replace("%", "\\%") + "%",),
            ).fetchall()
        return {(key, target): status.lower() for key, target, status in rows}

    def event_id(self, slug: str) -> int:
        with sqlite3.connect(self.database) as connection:
            (event_id,) = connection.execute("SELECT id FROM event WHERE slug = ?", (slug,)).fetchone()
        return int(event_id)

    def problems(self, prefix: str, targets: list[str], ledger: Ledger | None = None) -> list[str]:
        """What is wrong with the post under `prefix`: it must have one key, sent once to each target. `ledger`:
        rows already read (as `ledger` returns them, for any prefix); by default the SQLite file's are read."""
        rows = self.ledger(prefix) if ledger is None else {k: v for k, v in ledger.items() if k[0].startswith(prefix)}
        keys = sorted({key for key, _ in rows})
        if len(keys) != 1:
            return [f"{prefix}: {len(keys)} post keys in the ledger {keys}"]
        (key,) = keys
        found = []
        for target in targets:
            if (count := self.copies(key, target)) != 1:
                found.append(f"{key} reached {target} {count} times")
            if (status := rows.get((key, target))) != "sent":
                found.append(f"{key} to {target} is {status} in the ledger")
        return found

    def undelivered(self, posts: dict[str, list[str]], ledger: Ledger | None = None) -> list[str]:
        """The problems of each post (key prefix: its targets); none once each reached each target exactly once."""
        return [problem for prefix, targets in posts.items() for problem in self.problems(prefix, targets, ledger)]

    async def wait_delivered(self, posts: dict[str, list[str]], timeout: float = 20.0) -> None:
        await wait_for(lambda: self.undelivered(posts), timeout)

    def clear_trips(self) -> None:
        self.slack.trips.clear()
        self.discord.trips.clear()


async def wait_for(problems: Any, timeout: float, what: str = "delivery") -> None:
    """Poll `problems()` (or an async one) until it returns nothing; fail with the last problems after `timeout`
    seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while found := await _result(problems()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not right after {timeout:.0f}s: " + "; ".join(map(str, found)))
        await asyncio.sleep(0.1)


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@asynccontextmanager
async def platforms(tmp_path: Path) -> AsyncIterator[Platforms]:
    """Both fakes, with a second Discord announce channel; what they received outlives every run."""
    async with FakeSlack(real_ts=True) as slack, FakeDiscord() as discord:
        second = discord.add_channel("announce-2")
        yield Platforms(slack, discord, (CHANNEL_ID, second), tmp_path / "emcee.db")


@dataclass
class Emcee:
    """One `emcee run` process."""

    platforms: Platforms
    process: asyncio.subprocess.Process
    url: str
    output: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, platforms: Platforms) -> Emcee:
        config = platforms.database.with_suffix(".toml")
        config.write_text(platforms.config())
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-emcee-crash",
            "SLACK_APP_TOKEN": "xapp-emcee-crash",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "DISCORD_TOKEN": BOT_TOKEN,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--config",
            str(config),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        emcee = cls(platforms, process, "")
        assert process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            while not emcee.url:
                line = (await process.stdout.readline()).decode()
                assert line, "emcee run ended before it served:\n" + "".join(emcee.output)
                emcee.output.append(line)
                if "HTTP server listening on " in line:
                    emcee.url = line.split("HTTP server listening on ")[1].strip()
        emcee._reader = asyncio.create_task(emcee._read())
        return emcee

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode())

    def log(self, lines: int = 40) -> str:
        """The end of what the process wrote (its log), for a failure's message."""
        return "".join(self.output[-lines:])

    async def kill(self) -> None:
        """SIGKILL: the process ends at once, whatever it was doing."""
        os.kill(self.process.pid, signal.SIGKILL)
        await self._ended()

    async def close(self) -> None:
        """Kill the process if it still runs (a test that failed halfway leaves none behind)."""
        if self.process.returncode is None:
            await self.kill()

    async def stop(self) -> None:
        """SIGTERM, which must end the process cleanly."""
        self.process.send_signal(signal.SIGTERM)
        assert await self._ended() == 0, "".join(self.output)

    async def _ended(self) -> int:
        async with asyncio.timeout(START_TIMEOUT):
            code = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return code

    async def claimed(self) -> float:
        """emcee_posts{status="claimed"} from /metrics."""
        async with aiohttp.ClientSession() as client, client.get(f"{self.url}/metrics") as response:
            text = await response.text()
        match = re.search(r'^emcee_posts\{status="claimed"\} (\S+)$', text, re.MULTILINE)
        return float(match[1]) if match else 0.0

    async def wait_no_claims(self, timeout: float = 20.0) -> None:
        async def still_claimed() -> list[str]:
            count = await self.claimed()
            return [f"{count:.0f} claimed"] if count else []

        deadline = asyncio.get_running_loop().time() + timeout
        while found := await still_claimed():
            assert asyncio.get_running_loop().time() < deadline, f"after {timeout:.0f}s: {found}"
            await asyncio.sleep(0.2)

    async def slack(self, command: str, text: str, user: tuple[str, str] = SLACK_ORGANIZER, reply_to: str = "") -> str:
        """A signed slash command as Slack sends it, which must not be refused; returns the ack's text (the
        answer, or "Working on it…", the answer then following on the response_url named `reply_to`)."""
        body = slash_command_body(self.platforms.slash_command(command, text, user, reply_to))
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                f"{self.url}/slack/events", data=body.encode(), headers=signed_headers(body, SIGNING_SECRET)
            ) as response,
        ):
            answer = await response.text()
        assert response.status == 200 and "Usage:" not in answer, f"{command} {text} -> {response.status} {answer}"
        return answer

    async def discord(self, path: str, user: User, **values: Any) -> None:
        """A slash command interaction on the gateway; waits for its initial response."""
        await self.platforms.discord_command(path, user, **values)
