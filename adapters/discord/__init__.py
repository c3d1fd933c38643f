"""Emcee on Discord: discord.py's Client, slash commands generated from the registry, embeds and RSVP buttons."""

from adapters.discord.client import DiscordAdapter, DiscordSendError

__all__ = ["DiscordAdapter", "DiscordSendError"]
