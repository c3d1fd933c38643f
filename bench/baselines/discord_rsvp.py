"""A bare discord.py `/rsvp` bot: the floor that Emcee's Discord interaction responses are measured against.

A discord.Client with an app_commands tree holding `/rsvp event [status] [guests]`. It stores each RSVP
in SQLite (common.RawStore) and answers in the interaction response. `--api-base-url` and
`--gateway-url` point discord.py elsewhere (e.g. the local fake of bench/bench_ack.py), the way
Emcee's `[discord]` settings do.

Run: DISCORD_TOKEN=... .venv/bin/python bench/baselines/discord_rsvp.py --db rsvp.db [--capacity 150] \
         [--api-base-url https://discord.com/api/v10] [--gateway-url wss://gateway.discord.gg]
It prints "ready" once discord.py's on_ready fired, and runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import discord
import yarl
from discord import app_commands

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import RawStore  # noqa: E402


def build(store: RawStore, guild_ready_timeout: float) -> discord.Client:
    client = discord.Client(intents=discord.Intents(guilds=True), guild_ready_timeout=guild_ready_timeout)
    tree = app_commands.CommandTree(client)

    @tree.command(name="rsvp", description="RSVP to a meetup")
    async def rsvp(interaction: discord.Interaction, event: str, status: str = "going", guests: int = 0) -> None:
        await interaction.response.send_message(store.rsvp(str(interaction.user.id), status, guests), ephemeral=True)

    @client.event
    async def on_ready() -> None:
        print("ready", flush=True)

    return client


async def run(args: argparse.Namespace) -> None:
    discord.http.Route.BASE = args.api_base_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(args.gateway_url)
    store = RawStore(args.db, args.capacity)
    client = build(store, args.guild_ready_timeout)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    async with client:
        runner = asyncio.create_task(client.start(os.environ["DISCORD_TOKEN"]))
        await asyncio.wait({runner, asyncio.create_task(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(runner, return_exceptions=True)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="the SQLite file")
    parser.add_argument("--capacity", type=int, default=150, help="seats of the one event")
    parser.add_argument("--api-base-url", default="https://discord.com/api/v10")
    parser.add_argument("--gateway-url", default="wss://gateway.discord.gg")
    parser.add_argument("--guild-ready-timeout", type=float, default=2.0, help="discord.py's wait for GUILD_CREATEs")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
