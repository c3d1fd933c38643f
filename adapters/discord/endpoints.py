"""Where discord.py connects: the REST base and the gateway URL from [discord], set before login."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import discord
import yarl

from bot.config import DiscordSettings


@contextlib.contextmanager
def endpoints(settings: DiscordSettings) -> Iterator[None]:
    """Point discord.py at `api_base_url` and `gateway_url`, and restore the previous values afterwards.

    Both are class attributes (process-wide): `Route.BASE` is read whenever a request is built, webhooks
    and interaction callbacks included; `DiscordWebSocket.DEFAULT_GATEWAY` is what `Client.connect` dials.
    """
    route_base = discord.http.Route.BASE
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = settings.api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = route_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
