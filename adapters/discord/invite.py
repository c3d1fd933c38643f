"""`emcee discord-invite`: the OAuth2 URL that adds the bot to a server with what it needs, and nothing more."""

from __future__ import annotations

import sys

import aiohttp
import discord

from adapters.discord.endpoints import endpoints
from bot.config import DiscordSettings, Secrets

SCOPES = ("bot", "applications.commands")
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    read_message_history=True,
    use_application_commands=True,
)


def invite_url(client_id: int) -> str:
    return discord.utils.oauth_url(client_id, permissions=PERMISSIONS, scopes=SCOPES)


async def application_id(settings: DiscordSettings, token: str) -> int:
    """Ask Discord (at the configured API base) which application the bot token belongs to."""
    with endpoints(settings):
        client = discord.Client(intents=discord.Intents(guilds=True))
        try:
            await client.login(token)
            assert client.application_id is not None  # login() fetches the application
            return client.application_id
        finally:
            await client.close()


async def print_invite(settings: DiscordSettings, secrets: Secrets, client_id: int | None) -> int:
    """Print the invite URL for `client_id`, or for the application that DISCORD_TOKEN belongs to."""
    if client_id is None:
        if not secrets.discord_token:
            print(
                "error: give --client-id (the Application ID on the Developer Portal) or set DISCORD_TOKEN",
                file=sys.stderr,
            )
            return 1
        try:
            client_id = await application_id(settings, secrets.discord_token)
        except (discord.DiscordException, aiohttp.ClientError) as exc:
            print(f"error: cannot ask Discord for the application id ({exc}); give --client-id", file=sys.stderr)
            return 1
    print(invite_url(client_id))
    return 0
