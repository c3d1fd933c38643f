"""Start-up: HTTP is served as soon as the database is ready, each platform answers as soon as its own adapter
is, and Discord is ready once the guilds of its READY are in, without discord.py's wait for more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from conftest import NOW
from discord_harness import SLUG, DiscordEmcee, discord_settings, quick
from fakes.discord import FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import SlackEmcee
from test_discord_slack_together import SECRETS, settings

from adapters.discord import DiscordAdapter
from bot.app import App, build_app
from bot.clock import FakeClock

Checks = dict[str, str]


async def health(app: App, until: Callable[[Checks], bool] = lambda checks: True) -> tuple[int, Checks]:
    """/healthz's status and checks, once `until(checks)` holds."""
    assert app.http is not None
    async with aiohttp.ClientSession() as client, asyncio.timeout(10):
        while True:
            async with client.get(f"{app.http.url}/healthz") as response:
                body: dict[str, Any] = await response.json()
            if until(body["checks"]):
                return response.status, body["checks"]
            await asyncio.sleep(0.01)


@dataclass
class Starting:
    """Emcee starting while the Discord fake holds READY back."""

    app: App
    discord: FakeDiscord
    start: asyncio.Task[None]

    async def finish(self) -> None:
        """Send READY and wait for start-up to end."""
        self.discord.release_ready()
        async with asyncio.timeout(10):
            await self.start


@asynccontextmanager
async def held_at_ready(tmp_path: Path, slack: FakeSlack, discord: FakeDiscord) -> AsyncIterator[Starting]:
    """Emcee with Slack (HTTP mode) and Discord, starting, once the bot has identified to the Discord fake,
    which holds READY back until `finish()`."""
    discord.hold_ready()
    app = quick(build_app(settings(tmp_path, slack, discord), SECRETS, FakeClock(NOW)))
    starting = Starting(app, discord, asyncio.create_task(app.start()))
    try:
        async with asyncio.timeout(10):
            await discord.identified.wait()
        yield starting
    finally:
        discord.release_ready()
        await asyncio.gather(starting.start, return_exceptions=True)
        await app.stop()


async def test_health_answers_while_discord_connects_and_says_it_is_starting(tmp_path: Path) -> None:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        async with held_at_ready(tmp_path, slack, discord) as starting:
            during = await health(starting.app, until=lambda checks: checks["slack"] != "starting")
            await starting.finish()
            after = await health(starting.app)

    assert during == (503, {"database": "ok", "slack": "ok", "discord": "starting"})
    assert after == (200, {"database": "ok", "slack": "ok", "discord": "ok"})


async def test_a_slack_command_is_answered_while_discord_connects(tmp_path: Path) -> None:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        async with held_at_ready(tmp_path, slack, discord) as starting:
            await health(starting.app, until=lambda checks: checks["slack"] == "ok")
            await DiscordEmcee(starting.app, discord).publish(capacity=2)
            ack = await SlackEmcee(starting.app, slack).command("/rsvp", f"{SLUG} going")
            ready_sent = discord.ready_at
            await starting.finish()

    assert ready_sent is None  # the answer came while READY was still held back
    assert ack.status == 200
    assert "You're going to BookKeeper June" in ack.body["text"]


async def test_discord_is_ready_once_its_guilds_are_in_without_discord_pys_wait(tmp_path: Path) -> None:
    async with FakeDiscord() as discord:
        app = build_app(discord_settings(tmp_path, discord), SECRETS, FakeClock(NOW))
        adapter = DiscordEmcee(app, discord).adapter
        assert isinstance(adapter, DiscordAdapter)
        adapter.guild_ready_timeout = 60.0  # discord.py's on_ready comes a minute after the last GUILD_CREATE
        try:
            async with asyncio.timeout(10):
                await app.start()
            checks = await app.health()
            discord_py_ready = adapter.client.is_ready()
        finally:
            await app.stop()

    assert checks == {"database": "ok", "discord": "ok"}
    assert not discord_py_ready  # ready by the guilds READY listed, not by discord.py's on_ready
