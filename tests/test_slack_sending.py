"""Slack sending: posts, edits and DMs through the Web API; 429s retried; missing channels logged, not fatal."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakes.slack import FakeSlack
from ledger_rows import count_deliveries
from slack_harness import ALICE, CHANNEL, SLUG, SlackEmcee, running_emcee
from slack_sdk.http_retry import builtin_async_handlers

from adapters.slack import SlackSendError
from adapters.slack.adapter import RATE_LIMIT_RETRIES
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Notice
from bot.models import DeliveryStatus

BOB = ("U0BOB00002", "bob")


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[SlackEmcee]:
    async with FakeSlack() as fake, running_emcee(tmp_path, fake) as running:
        yield running


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The rate-limit handler's waits, recorded instead of slept (and without its random jitter)."""
    recorded: list[float] = []

    async def no_wait(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(builtin_async_handlers, "asyncio", SimpleNamespace(sleep=no_wait))
    monkeypatch.setattr(builtin_async_handlers, "random", SimpleNamespace(random=lambda: 0.0))
    return recorded


async def test_send_edit_and_dm(emcee: SlackEmcee) -> None:
    adapter = emcee.adapter

    ref = await adapter.send(ChannelRef("slack", CHANNEL), Notice("Doors open at 18:00 & pizza"))
    await adapter.edit(ref, Notice("Doors open at 18:15"))
    dm = await adapter.send_dm(Actor("slack", ALICE[0]), Notice("psst"))
    again = await adapter.send_dm(Actor("slack", ALICE[0]), Notice("psst again"))

    assert ref == MessageRef("slack", CHANNEL, ref.message_id)
    posted = emcee.fake.messages[ref.message_id]
    assert posted["text"] == "Doors open at 18:15"
    assert posted["blocks"][0]["text"] == {"type": "mrkdwn", "text": "Doors open at 18:15"}
    [first] = emcee.fake.calls_to("chat.postMessage")[:1]
    assert first.params["text"] == "Doors open at 18:00 &amp; pizza" and first.token == "xoxb-emcee-test"
    # One conversations.open per member: the DM channel is remembered.
    assert len(emcee.fake.calls_to("conversations.open")) == 1
    assert dm.channel_id == again.channel_id and dm.channel_id.startswith("D")
    assert emcee.fake.messages[again.message_id]["channel"] == dm.channel_id


async def test_a_promoted_member_is_told_by_dm(emcee: SlackEmcee) -> None:
    await emcee.publish_event(capacity=1)
    for user, choice in ((ALICE, "going"), (BOB, "going"), (ALICE, "no")):
        assert (await emcee.command("/rsvp", f"{SLUG} {choice}", user=user)).status == 200
    await emcee.settle()

    [opened] = emcee.fake.calls_to("conversations.open")
    assert opened.params["users"] == BOB[0]
    dms = [m for m in emcee.fake.messages.values() if m["channel"].startswith("D")]
    assert len(dms) == 1 and "A seat opened up: you're going to PyData June" in dms[0]["text"]


async def test_a_429_is_retried_and_posts_exactly_once(emcee: SlackEmcee, waits: list[float]) -> None:
    emcee.fake.rate_limit_next("chat.postMessage", retry_after=7, times=RATE_LIMIT_RETRIES)

    ref = await emcee.adapter.send(ChannelRef("slack", CHANNEL), Notice("hello"))

    assert len(emcee.fake.calls_to("chat.postMessage")) == RATE_LIMIT_RETRIES + 1
    assert list(emcee.fake.messages) == [ref.message_id]
    assert waits == [7.0] * RATE_LIMIT_RETRIES  # Slack's Retry-After, whole


async def test_still_rate_limited_after_the_retries_raises_with_retry_after(
    emcee: SlackEmcee, waits: list[float]
) -> None:
    emcee.fake.rate_limit_next("chat.postMessage", retry_after=30, times=RATE_LIMIT_RETRIES + 1)

    with pytest.raises(SlackSendError) as failed:
        await emcee.adapter.send(ChannelRef("slack", CHANNEL), Notice("hello"))

    assert (failed.value.error, failed.value.retry_after) == ("ratelimited", 30)
    assert emcee.fake.messages == {}


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
async def test_a_missing_channel_is_logged_with_a_hint_and_the_run_goes_on(
    emcee: SlackEmcee, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    emcee.fake.fail_next("chat.postMessage", error, times=1)

    with caplog.at_level(logging.WARNING, logger="adapters.slack"):
        await emcee.publish()  # the card fails, and is not retried; the agenda after it still goes out

    assert len(emcee.fake.calls_to("chat.postMessage")) == 2
    warnings = [r.getMessage() for r in caplog.records if r.name == "adapters.slack.adapter"]
    assert warnings and all(CHANNEL in w and error in w and "invite the bot to #channel" in w for w in warnings)
    assert await count_deliveries(emcee.app.db, DeliveryStatus.FAILED) == 1
    assert await count_deliveries(emcee.app.db, DeliveryStatus.SENT) == 1
    ack = await emcee.command("/rsvp", SLUG)
    assert ack.status == 200 and "You're going" in ack.body["text"]
    assert "xoxb" not in caplog.text  # tokens never reach the logs
