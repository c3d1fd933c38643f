"""A running Emcee with the Discord adapter against FakeDiscord: the shared setup of the test_discord_* scenarios.

The app is built from Settings as `emcee run` builds it (the real discord.Client logs in at the fake's
REST base and gateway, both taken from [discord]), on a SQLite file with a fake clock. Interactions go
in through the fake's gateway as INTERACTION_CREATE, in Discord's payload shapes; the answers are the
callbacks the fake records.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import NOW, ORGANIZER, database_url, run_as_organizer
from fakes.discord import (
    APPLICATION_ID,
    BOT_TOKEN,
    CHANNEL_ID,
    GUILD_ID,
    ORGANIZER_ROLE_ID,
    ORGANIZER_USER_ID,
    FakeDiscord,
    FakeInteraction,
    Json,
    click_payload,
    interaction_payload,
)

from adapters.discord import DiscordAdapter
from adapters.discord.views import custom_id
from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Secrets, Settings

SECRETS = Secrets(discord_token=BOT_TOKEN)
SLUG = "bk-june"
EPHEMERAL = 64


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: tuple[int, ...] = ()
    permissions: int | None = None  # the member's permissions in the channel; None keeps the recorded ones

    def member(self) -> Json:
        user = {"id": str(self.id), "username": self.name, "global_name": self.name.title(), "discriminator": "0"}
        member: Json = {"user": user, "roles": [str(role) for role in self.roles]}
        if self.permissions is not None:
            member["permissions"] = str(self.permissions)
        return member


GRACE = User(1301000000000000401, "grace")  # the member in the recorded payloads
ADA = User(ORGANIZER_USER_ID, "ada", (ORGANIZER_ROLE_ID,))  # an organizer by role
LIN = User(1301000000000000777, "lin")


def options(values: dict[str, Any]) -> list[Json]:
    """Command options as Discord sends them: type 4 for integers, 3 for strings."""
    return [
        {"name": name, "type": 4 if isinstance(value, int) else 3, "value": value} for name, value in values.items()
    ]


def command_data(path: str, **values: Any) -> Json:
    """The `data` of an application command: "emcee agenda shift" nests as group (2) and subcommand (1)."""
    words = path.split()
    nested = options(values)
    for depth, word in reversed(list(enumerate(words[1:], start=1))):
        nested = [{"name": word, "type": 1 if depth == len(words) - 1 else 2, "options": nested}]
    return {"name": words[0], "options": nested}


def callback_path(payload: Json) -> str:
    return rf"/interactions/{payload['id']}/{re.escape(payload['token'])}/callback"


def followup_path(payload: Json) -> str:
    return rf"/webhooks/{APPLICATION_ID}/{re.escape(payload['token'])}"


@dataclass
class DiscordEmcee:
    app: App
    fake: FakeDiscord

    @property
    def adapter(self) -> DiscordAdapter:
        adapter = self.app.adapters["discord"]
        assert isinstance(adapter, DiscordAdapter)
        return adapter

    async def settle(self) -> None:
        """Wait for every effect (card posts and edits) that the interactions so far set off."""
        await self.app.bus.drain()

    async def organizer(self, line: str) -> None:
        await run_as_organizer(self.app, ORGANIZER, line)

    async def publish(self, capacity: int = 2, slug: str = SLUG) -> None:
        """Create and publish an event, which posts its card and agenda to the announce channel."""
        await self.organizer(
            f'/emcee event create {slug} "BookKeeper June" --starts 2026-06-15 18:00 --capacity {capacity} '
            '--venue "Yahoo, Sunnyvale"'
        )
        await self.organizer(f"/emcee event publish {slug}")

    def card(self, slug: str = SLUG, channel_id: int = CHANNEL_ID) -> Json:
        """The posted event card: the message that carries the RSVP buttons."""
        wanted = custom_id(slug, "going")
        for message in self.fake.messages(channel_id):
            if any(c.get("custom_id") == wanted for row in message["components"] for c in row["components"]):
                return message
        raise AssertionError(f"no card for {slug} in channel {channel_id}")

    async def dispatch(self, payload: Json) -> FakeInteraction:
        """Send an interaction through the gateway and wait for its initial response."""
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        await self.fake.wait_for_call("POST", callback_path(payload))
        return self.fake.interactions[int(payload["id"])]

    async def command(self, path: str, user: User = GRACE, **values: Any) -> FakeInteraction:
        payload = interaction_payload("command_rsvp", data=command_data(path, **values), member=user.member())
        return await self.dispatch(payload)

    async def click(
        self, choice: str = "going", user: User = GRACE, slug: str = SLUG, card: Json | None = None
    ) -> FakeInteraction:
        """A click on the posted card, or on `card` (a copy of it as a member's client still shows it)."""
        payload = click_payload(card or self.card(slug), custom_id(slug, choice), member=user.member())
        return await self.dispatch(payload)


def discord_settings(tmp_path: Path, fake: FakeDiscord, sections: Json | None = None, **discord: Any) -> Settings:
    """Discord against `fake`, on a SQLite file; `discord` overrides [discord] keys, `sections` whole sections."""
    return Settings.model_validate(
        {
            "bot": {"database_url": database_url(tmp_path), "timezone": "America/Los_Angeles"},
            "organizers": {"discord_roles": {GUILD_ID: [ORGANIZER_ROLE_ID]}},
            "http": {"enabled": False},
            "discord": {
                "enabled": True,
                "guild_ids": [GUILD_ID],
                "announce_channels": [CHANNEL_ID],
                "api_base_url": fake.api_base_url,
                "gateway_url": fake.gateway_url,
                **discord,
            },
            "console": {"enabled": False},
            **(sections or {}),
        }
    )


async def _no_wait(seconds: float) -> None:
    return None


def quick(app: App) -> App:
    """Card edits at once, send retries without waiting, on_ready without discord.py's 2 s guild wait."""
    app.publisher.edits.interval = 0
    app.publisher.outbox.sleep = _no_wait
    adapter = app.adapters.get("discord")
    if isinstance(adapter, DiscordAdapter):
        adapter.guild_ready_timeout = 0.05
    return app


@asynccontextmanager
async def running_emcee(
    tmp_path: Path, fake: FakeDiscord, settings: Settings | None = None
) -> AsyncIterator[DiscordEmcee]:
    """Emcee built from Settings and started; a second one on the same tmp_path is a restart."""
    app = quick(build_app(settings or discord_settings(tmp_path, fake), SECRETS, FakeClock(NOW)))
    await app.start()
    try:
        yield DiscordEmcee(app, fake)
        await app.bus.drain()
    finally:
        await app.stop()
