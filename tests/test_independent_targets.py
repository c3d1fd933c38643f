"""Independent targets: one rate-limited Slack channel delays no other channel, Slack's or Discord's.

Emcee runs with the real Slack and Discord adapters against the fakes; Slack limits posting per
channel, so one announce channel answers 429 (``ratelimited``, Retry-After 10 s) to every post for
10 s while the other channels take posts as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import NOW, ORGANIZER
from discord_harness import GRACE, DiscordEmcee, discord_settings, quick
from fakes.discord import CHANNEL_ID, FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import CHANNEL, SlackEmcee
from test_discord_slack_together import SECRETS

from bot.app import build_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.invocation import CommandLine

SLOW = "C0MEETUPS2"  # the rate-limited Slack channel
LIMITED_FOR = 3.0  # seconds of 429s on SLOW: longer than any other channel takes (under 1 s)
RETRY_AFTER = 3  # seconds, as Slack's Retry-After header says


def settings(tmp_path: Path, slack: FakeSlack, discord: FakeDiscord) -> Settings:
    slack_section = {
        "enabled": True,
        "mode": "http",
        "api_base_url": slack.api_base_url,
        "announce_channels": [CHANNEL, SLOW],
    }
    return discord_settings(tmp_path, discord, {"http": {"port": 0}, "slack": slack_section})


def slack_posts(slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    """The messages in a Slack channel, oldest first, without the ids that differ between channels."""
    posted = sorted((ts, message) for ts, message in slack.messages.items() if message["channel"] == channel)
    return [{k: v for k, v in message.items() if k not in ("ts", "channel")} for _, message in posted]


def is_card(message: dict[str, Any]) -> bool:
    """A card carries the RSVP buttons (a Block Kit actions block, or Discord components)."""
    return any(block.get("type") == "actions" for block in message.get("blocks", [])) or bool(message.get("components"))


async def within(seconds: float, condition: Callable[[], bool]) -> float:
    """How long `condition` took to hold, from now; fails if it does not hold within `seconds`."""
    start = time.monotonic()
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)
    return time.monotonic() - start


async def test_a_rate_limited_channel_delays_no_other_channel(tmp_path: Path) -> None:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        app = quick(build_app(settings(tmp_path, slack, discord), SECRETS, FakeClock(NOW)))
        app.publisher.outbox.sleep = asyncio.sleep  # the outbox waits out Retry-After for real
        await app.start()
        try:
            on_slack, on_discord = SlackEmcee(app, slack), DiscordEmcee(app, discord)
            await on_discord.organizer(
                '/emcee event create bk-june "BookKeeper June" --starts 2026-06-15 18:00 --capacity 2'
            )
            slack.rate_limit_channel(SLOW, LIMITED_FOR, RETRY_AFTER)
            published = await app.engine.handle(CommandLine(ORGANIZER, None, "/emcee event publish bk-june"))
            assert published.ok, published.text
            elsewhere = await within(
                1.0, lambda: len(slack_posts(slack, CHANNEL)) == 2 and len(discord.messages(CHANNEL_ID)) == 2
            )
            held_up = slack_posts(slack, SLOW)
            await on_discord.click("going", GRACE)  # counts change while the slow channel's card waits
            await on_slack.settle()
        finally:
            await app.stop()

    assert elsewhere < 1.0
    assert held_up == []
    healthy, slow = slack_posts(slack, CHANNEL), slack_posts(slack, SLOW)
    assert [is_card(m) for m in healthy] == [True, False]  # the card, then the agenda
    assert [is_card(m) for m in discord.messages(CHANNEL_ID)] == [True, False]
    assert slow == healthy  # card then agenda, each once, and the card shows the counts as they are now
    assert "1/2 going" in str(slow[0])
    posts_to_slow = [c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == SLOW]
    assert len(posts_to_slow) > len(slow)  # the slow channel did refuse posts
