"""Slack and Discord together: one event, one room. A 1-seat event gets one RSVP from each platform at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from conftest import NOW
from discord_harness import GRACE, SLUG, DiscordEmcee, discord_settings, quick
from fakes.discord import BOT_TOKEN, FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import ALICE, CHANNEL, SIGNING_SECRET, SlackEmcee
from sqlmodel import select

from bot.app import build_app
from bot.clock import FakeClock
from bot.config import Secrets, Settings
from bot.models import Rsvp

SECRETS = Secrets(slack_bot_token="xoxb-emcee-test", slack_signing_secret=SIGNING_SECRET, discord_token=BOT_TOKEN)


def settings(tmp_path: Path, slack: FakeSlack, discord: FakeDiscord) -> Settings:
    """Both platforms on one app: Slack in HTTP mode on the app's server, Discord as in the other scenarios."""
    slack_section = {
        "enabled": True,
        "mode": "http",
        "api_base_url": slack.api_base_url,
        "announce_channels": [CHANNEL],
    }
    return discord_settings(tmp_path, discord, {"http": {"port": 0}, "slack": slack_section})


async def test_one_seat_two_platforms(tmp_path: Path) -> None:
    async with FakeSlack() as slack, FakeDiscord() as discord:
        app = quick(build_app(settings(tmp_path, slack, discord), SECRETS, FakeClock(NOW)))
        await app.start()
        try:
            on_slack, on_discord = SlackEmcee(app, slack), DiscordEmcee(app, discord)
            await on_discord.publish(capacity=1)  # the card goes to both platforms

            slack_ack, discord_answer = await asyncio.gather(
                on_slack.command("/rsvp", f"{SLUG} going", user=ALICE), on_discord.click("going", GRACE)
            )
            await app.bus.drain()

            async with app.db.session() as session:
                rows = (await session.exec(select(Rsvp))).all()
            discord_card = on_discord.card()
            slack_card = json.dumps(slack.messages[on_slack.card_ts()], ensure_ascii=False)
        finally:
            await app.stop()

    assert {row.platform: row.status for row in rows}.keys() == {"slack", "discord"}
    assert sorted(row.status for row in rows) == ["going", "waitlisted"]
    going = next(row.platform for row in rows if row.status == "going")
    slack_text, discord_text = slack_ack.body["text"], discord_answer.response["data"]["content"]
    winner, waiting = (slack_text, discord_text) if going == "slack" else (discord_text, slack_text)
    assert "You're going to BookKeeper June" in winner
    assert "You're on the waitlist, position 1" in waiting
    # Both cards show the one room: 1 of 1 seat taken, 1 on the waitlist.
    fields = {field["name"]: field["value"] for field in discord_card["embeds"][0]["fields"]}
    assert fields == {"Going": "1 / 1", "Seats left": "0", "Waitlist": "1", "Maybe": "0"}
    assert "1/1 going, 0 seats left, 1 on the waitlist" in slack_card
