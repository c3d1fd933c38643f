"""`emcee check --online` for Discord: log in (GET /users/@me), connect, and check each announce channel."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import discord

from adapters.discord.client import GUILD_READY_TIMEOUT, READY_TIMEOUT, announce_problem, new_client
from adapters.discord.endpoints import endpoints
from bot.config import DiscordSettings, Secrets
from bot.ports import OnlineCheck


async def check_online(
    settings: DiscordSettings, secrets: Secrets, guild_ready_timeout: float = GUILD_READY_TIMEOUT
) -> OnlineCheck:
    report = OnlineCheck("discord")
    with endpoints(settings):
        client = new_client(guild_ready_timeout)
        async with client:
            try:
                await client.login(secrets.discord_token or "")
            except discord.LoginFailure:
                report.problems.append("discord: Discord rejected DISCORD_TOKEN (reset it on the Developer Portal)")
                return report
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                report.problems.append(f"discord: cannot reach Discord at {settings.api_base_url}: {exc}")
                return report
            report.facts.append(f"signed in as {client.user}")
            runner = asyncio.create_task(client.connect(reconnect=False))
            try:
                if await _ready(client, runner):
                    _check_channels(client, settings, report)
                else:
                    report.problems.append(f"discord: cannot reach the Discord gateway at {settings.gateway_url}")
            finally:
                await client.close()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await runner
    return report


async def _ready(client: discord.Client, runner: asyncio.Task[None]) -> bool:
    """Wait for the guilds to arrive over the gateway; False when it cannot be reached in time."""
    ready = asyncio.create_task(client.wait_until_ready())
    await asyncio.wait({runner, ready}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    return client.is_ready()


def _check_channels(client: discord.Client, settings: DiscordSettings, report: OnlineCheck) -> None:
    for channel_id in settings.announce_channels:
        if problem := announce_problem(client, channel_id):
            report.problems.append(f"discord channel {channel_id}: {problem}")
        else:
            report.facts.append(f"can post in {channel_id}")
