"""A running Emcee with the Slack adapter against FakeSlack: the shared setup of the test_slack_* scenarios.

The whole app is built from Settings, as `emcee run` builds it: the real AsyncApp, the shared aiohttp
server on 127.0.0.1 port 0 (HTTP mode) or the fake's websocket (Socket Mode), SQLite and a fake clock.
Requests are made the way Slack makes them: signed form bodies over HTTP, or envelopes on the socket.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from conftest import NOW, database_url, reset, run_as_organizer
from fakes.slack import FakeSlack, block_actions_body, load_payload, new_trigger_id, signed_headers, slash_command_body

from adapters.slack import SlackAdapter
from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Secrets, Settings
from bot.invocation import Actor

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SECRETS = Secrets(
    slack_bot_token="xoxb-emcee-test", slack_app_token="xapp-emcee-test", slack_signing_secret=SIGNING_SECRET
)
CHANNEL = "C0MEETUPS1"
ALICE = ("U0ALICE001", "alice")
ORGANIZER = Actor("slack", "U0ORGANIZ1", "olga")
SLUG = "pydata-june"


@dataclass(frozen=True)
class Ack:
    """An HTTP ack as Slack receives it: the status and the raw body; `body` parses the JSON."""

    status: int
    text: str

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.text)
        return body


@dataclass
class SlackEmcee:
    app: App
    fake: FakeSlack

    @property
    def adapter(self) -> SlackAdapter:
        adapter = self.app.adapters["slack"]
        assert isinstance(adapter, SlackAdapter)
        return adapter

    @property
    def events_url(self) -> str:
        assert self.app.http is not None
        return f"{self.app.http.url}/slack/events"

    async def settle(self) -> None:
        """Wait for every effect (card posts and edits) that the commands so far set off."""
        await self.app.bus.drain()

    async def organizer(self, line: str) -> None:
        await run_as_organizer(self.app, ORGANIZER, line)

    async def publish(self, capacity: int = 2) -> None:
        """Create and publish the test event, which posts its card and agenda to the announce channel."""
        await self.organizer(
            f'/emcee event create {SLUG} "PyData June" --starts 2026-06-12 18:30 --capacity {capacity} '
            '--venue "The Library" --timezone Europe/London'
        )
        await self.organizer(f"/emcee event publish {SLUG}")

    async def publish_event(self, capacity: int = 2) -> str:
        """Publish the test event and return its card's ts (the first message the fake posts)."""
        await self.publish(capacity)
        return self.card_ts()

    def card_ts(self) -> str:
        cards = [ts for ts, message in self.fake.messages.items() if _has_buttons(message)]
        assert cards, "no event card was posted"
        return cards[0]

    def command_fields(
        self, command: str, text: str = "", user: tuple[str, str] = ALICE, response_url: str = "cmd"
    ) -> dict[str, str]:
        return {
            **load_payload("slash_command_rsvp"),
            "command": command,
            "text": text,
            "user_id": user[0],
            "user_name": user[1],
            "response_url": self.fake.response_url(response_url),
            "trigger_id": new_trigger_id(),
        }

    def click_payload(
        self, choice: str = "going", user: tuple[str, str] = ALICE, ts: str | None = None
    ) -> dict[str, Any]:
        """A block_actions payload for a click on the posted card (or on the message at `ts`)."""
        payload = load_payload("block_actions_rsvp")
        ts = ts or self.card_ts()
        payload["user"] |= {"id": user[0], "username": user[1], "name": user[1]}
        payload["container"]["message_ts"] = payload["message"]["ts"] = ts
        payload["actions"][0] |= {"action_id": f"rsvp:{choice}", "value": SLUG}
        payload["response_url"] = self.fake.response_url("click")
        payload["trigger_id"] = new_trigger_id()
        return payload

    async def post(self, body: str, secret: str = SIGNING_SECRET) -> Ack:
        """POST a form body to /slack/events, signed with `secret` as Slack signs it."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.events_url, data=body.encode(), headers=signed_headers(body, secret)) as response,
        ):
            return Ack(response.status, await response.text())

    async def command(self, command: str, text: str = "", user: tuple[str, str] = ALICE) -> Ack:
        return await self.post(slash_command_body(self.command_fields(command, text, user)))

    async def click(self, choice: str = "going", user: tuple[str, str] = ALICE) -> Ack:
        return await self.post(block_actions_body(self.click_payload(choice, user)))


async def _no_wait(seconds: float) -> None:
    return None


def _has_buttons(message: dict[str, Any]) -> bool:
    return any(block.get("type") == "actions" for block in message.get("blocks", []))


def slack_settings(tmp_path: Path, fake: FakeSlack, mode: str = "http") -> Settings:
    return Settings.model_validate(
        {
            "bot": {"database_url": database_url(tmp_path), "timezone": "Europe/London"},
            "organizers": {"slack": [ORGANIZER.user_id]},
            "http": {"port": 0},
            "slack": {"enabled": True, "mode": mode, "api_base_url": fake.api_base_url, "announce_channels": [CHANNEL]},
            "console": {"enabled": False},
        }
    )


@asynccontextmanager
async def running_emcee(
    tmp_path: Path, fake: FakeSlack, mode: str = "http", fresh: bool = True
) -> AsyncIterator[SlackEmcee]:
    """Emcee built and started from Settings; `fresh=False` keeps the database (a restart)."""
    app = build_app(slack_settings(tmp_path, fake, mode), SECRETS, FakeClock(NOW))
    # Card edits at once and send retries without waiting: the throttle and the backoff have their own tests.
    app.publisher.edits.interval = 0
    app.publisher.outbox.sleep = _no_wait
    await app.start()
    try:
        if fresh:
            await reset(app.db)
        yield SlackEmcee(app, fake)
        await app.bus.drain()
    finally:
        await app.stop()
