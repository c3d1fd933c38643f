"""No duplicate after a crash mid-send: a post taken over from a sender that died is not posted twice.

A crash mid-send leaves a claim row whose lease lapses, and perhaps the message already in the channel.
Emcee runs with the real Slack and Discord adapters against the fakes; the "dead sender" is played by
claiming the post and sending it through the adapter, then letting the claim's lease lapse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, deliver
from discord_harness import discord_settings, quick
from fakes.discord import CHANNEL_ID, FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import CHANNEL
from test_discord_slack_together import SECRETS

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.delivery import DEFAULT_LEASE, Target
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Notice

KEY = "reminder:bk-june:2026-06-15T17:00"
SLACK = Target("slack", CHANNEL)
DISCORD = Target("discord", str(CHANNEL_ID))
MEMBER = "U0MEMBER01"
POST = Notice("⏰ BookKeeper June starts in 1 hour")
EDITED = Notice("⏰ BookKeeper June starts in 59 minutes")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[App, FakeClock, FakeSlack, FakeDiscord]]:
    async with FakeSlack(real_ts=True) as slack, FakeDiscord() as discord:
        slack_section = {"enabled": True, "mode": "http", "api_base_url": slack.api_base_url}
        settings = discord_settings(tmp_path, discord, {"http": {"port": 0}, "slack": slack_section})
        clock = FakeClock(NOW)
        emcee = quick(build_app(settings, SECRETS, clock))
        await emcee.start()
        try:
            yield emcee, clock, slack, discord
        finally:
            await emcee.stop()


async def crashed_mid_send(emcee: App, clock: FakeClock, target: Target, landed: bool) -> None:
    """A sender claims the post, sends it (it lands or not) and dies: its claim's lease lapses."""
    assert await emcee.publisher.outbox.ledger.claim_many(KEY, [target]) == [target]
    if landed:
        adapter = emcee.adapters[target.platform]
        if target.user:
            await adapter.send_dm(Actor(target.platform, target.id), POST, KEY)
        else:
            await adapter.send(ChannelRef(target.platform, target.id), POST, KEY)
    clock.advance(DEFAULT_LEASE * 2)


def slack_messages(slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [message for message in slack.messages.values() if message["channel"] == channel]


async def take_over(emcee: App, target: Target) -> MessageRef | None:
    return await deliver(emcee.publisher.outbox, KEY, target, POST)


async def test_every_slack_post_carries_its_ledger_key_as_metadata(app: Any) -> None:
    emcee, _, slack, _ = app

    await take_over(emcee, SLACK)

    [posted] = slack_messages(slack, CHANNEL)
    assert posted["metadata"] == {"event_type": "emcee_post", "event_payload": {"key": KEY}}


async def test_a_slack_post_that_landed_before_the_crash_is_not_posted_again(app: Any) -> None:
    emcee, clock, slack, _ = app
    await crashed_mid_send(emcee, clock, SLACK, landed=True)
    [first] = slack_messages(slack, CHANNEL)

    ref = await take_over(emcee, SLACK)

    assert slack_messages(slack, CHANNEL) == [first]
    assert ref == MessageRef("slack", CHANNEL, first["ts"])
    assert await emcee.publisher.outbox.ledger.sent_refs(KEY) == [ref]
    history = slack.calls_to("conversations.history")
    assert history and history[0].params["include_all_metadata"] in ("true", "1", True)


async def test_a_later_edit_reaches_the_slack_post_found_after_the_crash(app: Any) -> None:
    emcee, clock, slack, _ = app
    await crashed_mid_send(emcee, clock, SLACK, landed=True)
    await take_over(emcee, SLACK)

    [ref] = await emcee.publisher.outbox.ledger.sent_refs(KEY)
    await emcee.adapters["slack"].edit(ref, EDITED)

    [message] = slack_messages(slack, CHANNEL)
    assert "59 minutes" in str(message)


async def test_a_slack_post_that_never_landed_is_sent_once(app: Any) -> None:
    emcee, clock, slack, _ = app
    await crashed_mid_send(emcee, clock, SLACK, landed=False)

    ref = await take_over(emcee, SLACK)

    [message] = slack_messages(slack, CHANNEL)
    assert ref == MessageRef("slack", CHANNEL, message["ts"])


async def test_a_slack_dm_that_landed_before_the_crash_is_not_sent_again(app: Any) -> None:
    emcee, clock, slack, _ = app
    target = Target("slack", MEMBER, user=True)
    await crashed_mid_send(emcee, clock, target, landed=True)
    [first] = [m for m in slack.messages.values() if m["channel"].startswith("D")]

    ref = await take_over(emcee, target)

    assert [m for m in slack.messages.values() if m["channel"].startswith("D")] == [first]
    assert ref == MessageRef("slack", first["channel"], first["ts"])


async def test_a_discord_post_that_landed_is_not_posted_again_within_the_nonce_window(app: Any) -> None:
    emcee, clock, _, discord = app
    await crashed_mid_send(emcee, clock, DISCORD, landed=True)
    [first] = discord.messages(CHANNEL_ID)

    ref = await take_over(emcee, DISCORD)

    assert discord.messages(CHANNEL_ID) == [first]
    assert ref == MessageRef("discord", str(CHANNEL_ID), str(first["id"]))
    assert await emcee.publisher.outbox.ledger.sent_refs(KEY) == [ref]


async def test_a_discord_post_that_never_landed_is_sent_once(app: Any) -> None:
    emcee, clock, _, discord = app
    await crashed_mid_send(emcee, clock, DISCORD, landed=False)

    ref = await take_over(emcee, DISCORD)

    [message] = discord.messages(CHANNEL_ID)
    assert ref == MessageRef("discord", str(CHANNEL_ID), str(message["id"]))
