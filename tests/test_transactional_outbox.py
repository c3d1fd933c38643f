"""A transactional outbox: a command's effects are written in its transaction and dispatched after the commit,
and again at start-up when the process stopped before dispatching them, so a crash after the commit loses nothing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import NOW, ORGANIZER, create_event, member, snapshot
from discord_harness import discord_settings, quick
from fakes.discord import CHANNEL_ID, FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import CHANNEL
from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import select
from test_discord_slack_together import SECRETS
from test_no_duplicates import slack_messages

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.db import Database
from bot.delivery import Ledger, Target
from bot.effects import CardPosted, Effect, EffectBus, MemberPromoted
from bot.engine import Engine
from bot.invocation import Actor, CommandLine, Invocation, MessageRef
from bot.models import DeliveryStatus, Event, EventStatus, PendingEffect
from bot.publisher import agenda_key, card_key

SLACK = Target("slack", CHANNEL)
DISCORD = Target("discord", str(CHANNEL_ID))
LEASE = timedelta(seconds=1)
MEMBER = Actor("slack", "U0MEMBER01", "ada")


async def outbox_rows(db: Database) -> list[PendingEffect]:
    async with db.session() as session:
        return list((await session.exec(select(PendingEffect).order_by(PendingEffect.id))).all())  # type: ignore[arg-type]


async def test_a_commands_effects_are_written_in_its_transaction(db: Database, settings: Settings) -> None:
    engine = Engine(db, settings, FakeClock(NOW), EffectBus())  # no subscriber: nothing is dispatched yet
    await create_event(engine)
    await engine.bus.drain()
    rows = await outbox_rows(db)
    assert [row.kind for row in rows] == ["CardPosted"]  # the publish's post; card edits and re-plans have no row
    assert all(row.done_at is not None for row in rows)  # every subscriber (none) handled them
    event_id = rows[0].payload["event_id"]
    assert rows[0].payload == {"event_id": event_id, "text": "", "post": None}


async def test_an_rsvp_that_posts_nothing_new_writes_no_outbox_row(engine: Engine, db: Database) -> None:
    """Card edits follow the stored counts and the next change edits again: an RSVP pays no outbox write."""
    await create_event(engine)
    await engine.bus.drain()
    before = await outbox_rows(db)
    assert (await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))).ok
    await engine.bus.drain()
    assert await outbox_rows(db) == before


async def test_a_refused_command_writes_no_effect(engine: Engine, db: Database) -> None:
    await create_event(engine)
    await engine.bus.drain()
    before = await snapshot(db)
    reply = await engine.handle(CommandLine(member("ada"), None, "/rsvp going +99"))
    assert not reply.ok
    assert await snapshot(db) == before


async def test_a_rolled_back_transaction_writes_no_effect(engine: Engine, db: Database) -> None:
    await create_event(engine, publish=False)
    await engine.bus.drain()
    before = await outbox_rows(db)
    with pytest.raises(RuntimeError):
        async with engine.batch() as batch:
            await batch.run(Invocation(ORGANIZER, None, ("emcee", "event", "publish"), {"event": "bk-june"}))
            assert batch.effects  # the publish set off its card, in the batch's transaction
            raise RuntimeError("the import failed further on")
    assert await outbox_rows(db) == before


async def test_a_normal_commands_rows_end_done(engine: Engine, db: Database) -> None:
    await create_event(engine)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))
    await engine.bus.drain()
    rows = await outbox_rows(db)
    assert rows and all(row.done_at is not None for row in rows)


@pytest.fixture
async def platforms(tmp_path: Path) -> AsyncIterator[tuple[Settings, FakeSlack, FakeDiscord]]:
    async with FakeSlack(real_ts=True) as slack, FakeDiscord() as discord:
        slack_section = {
            "enabled": True,
            "mode": "http",
            "api_base_url": slack.api_base_url,
            "announce_channels": [CHANNEL],
        }
        yield discord_settings(tmp_path, discord, {"http": {"port": 0}, "slack": slack_section}), slack, discord


async def started(settings: Settings) -> App:
    app = quick(build_app(settings, SECRETS, FakeClock(NOW)))
    await app.start()
    await app.bus.drain()
    return app


async def left_by_a_crash(settings: Settings, effect: Callable[[int], Effect]) -> tuple[int, int]:
    """A process that committed an effect about a published event and stopped before dispatching it:
    (the event's id, the outbox row's id)."""
    app = await started(settings)
    try:
        await create_event(app.engine, publish=False)
        async with app.db.session() as session:
            event = (await session.exec(select(Event))).one()
            event.status = EventStatus.PUBLISHED
            [pending] = await app.engine.outbox.write(session, [effect(event.id or 0)])
        assert pending.id is not None  # a posting effect has its row
        return event.id or 0, pending.id
    finally:
        await app.stop()


async def test_a_card_half_sent_before_a_crash_reaches_only_the_other_channel_after_restart(
    platforms: tuple[Settings, FakeSlack, FakeDiscord],
) -> None:
    settings, slack, discord = platforms
    event_id, post = await left_by_a_crash(settings, CardPosted)
    db = Database(settings.bot.database_url)  # the crashed process had sent the card and agenda to Slack
    try:
        ledger = Ledger(db, FakeClock(NOW))
        for key in (card_key(event_id) + str(post), agenda_key(event_id) + str(post)):
            assert await ledger.claim_many(key, [SLACK]) == [SLACK]
            await ledger.finish(key, SLACK, DeliveryStatus.SENT, MessageRef("slack", CHANNEL, f"1.{len(key)}"))
    finally:
        await db.close()
    app = await started(settings)
    try:
        assert slack_messages(slack, CHANNEL) == []
        assert len(discord.messages(CHANNEL_ID)) == 2  # the card, then the agenda
        assert all(row.done_at is not None for row in await outbox_rows(app.db))
    finally:
        await app.stop()


async def test_a_promotion_left_by_a_crash_is_dmed_once_after_restarts(
    platforms: tuple[Settings, FakeSlack, FakeDiscord],
) -> None:
    settings, slack, _ = platforms
    await left_by_a_crash(settings, lambda event_id: MemberPromoted(event_id, MEMBER, 1))
    for _ in range(2):
        app = await started(settings)
        await app.stop()
    dms = [m for m in slack.messages.values() if str(m["channel"]).startswith("D")]
    assert len(dms) == 1


async def test_a_replayed_card_whose_claims_the_crash_left_goes_out_once_when_they_lapse(
    platforms: tuple[Settings, FakeSlack, FakeDiscord],
) -> None:
    """The crashed process had claimed the card and agenda everywhere, and its Slack card had landed: the replay
    at start-up waits for those claims' lease, then finds the Slack card and sends the rest, each once."""
    settings, slack, discord = platforms
    bot = settings.bot.model_copy(update={"delivery_lease_seconds": LEASE.total_seconds()})
    settings = settings.model_copy(update={"bot": bot})
    event_id, post = await left_by_a_crash(settings, CardPosted)
    card, agenda = card_key(event_id) + str(post), agenda_key(event_id) + str(post)
    db = Database(settings.bot.database_url)  # the crashed process's last moments: claims, and one Slack card
    try:
        for key in (card, agenda):
            assert await Ledger(db, FakeClock(NOW), LEASE).claim_many(key, [SLACK, DISCORD]) == [SLACK, DISCORD]
    finally:
        await db.close()
    metadata = {"event_type": "emcee_post", "event_payload": {"key": card}}
    client = AsyncWebClient(token=SECRETS.slack_bot_token, base_url=slack.api_base_url)
    await client.chat_postMessage(channel=CHANNEL, text="BookKeeper June", metadata=metadata)
    [landed] = slack_messages(slack, CHANNEL)

    app = quick(build_app(settings, SECRETS, FakeClock(NOW)))
    await app.start()
    try:
        await asyncio.sleep(0.2)
        assert slack_messages(slack, CHANNEL) == [landed] and discord.messages(CHANNEL_ID) == []  # claims still live
        assert isinstance(app.engine.clock, FakeClock)
        app.engine.clock.advance(timedelta(seconds=2))
        await app.bus.drain()
        assert [m["ts"] for m in slack_messages(slack, CHANNEL)] == [landed["ts"], ANY]  # found, then the agenda
        assert len(discord.messages(CHANNEL_ID)) == 2  # the card, then the agenda
        assert all(row.done_at is not None for row in await outbox_rows(app.db))
        assert set(await app.publisher.ledger.sent_refs(card)) == {  # later edits reach the card found
            MessageRef("slack", CHANNEL, landed["ts"]),
            MessageRef("discord", str(CHANNEL_ID), str(discord.messages(CHANNEL_ID)[0]["id"])),
        }
    finally:
        await app.stop()


def going_on_cards(slack_card: dict[str, Any], discord_card: dict[str, Any]) -> tuple[str, str]:
    """How many going each posted card shows: Slack's "N/C going" line, Discord's "Going" field."""
    [slack] = set(re.findall(r"(\d+)/\d+ going", str(slack_card)))  # the text and the blocks agree
    [discord] = [
        field["value"].split(" /")[0] for field in discord_card["embeds"][0]["fields"] if field["name"] == "Going"
    ]
    return slack, discord


async def test_a_card_edit_cut_off_by_a_crash_is_made_at_the_next_start_and_only_then(
    platforms: tuple[Settings, FakeSlack, FakeDiscord],
) -> None:
    """An RSVP committed just before a crash (its card edit never made): the next start edits the posted cards
    to show it; a start after that finds them up to date and edits nothing."""
    settings, slack, discord = platforms
    app = await started(settings)
    try:
        await create_event(app.engine)
        await app.bus.drain()
    finally:
        await app.stop()
    [slack_card, _] = slack_messages(slack, CHANNEL)
    [discord_card, _] = discord.messages(CHANNEL_ID)
    assert going_on_cards(slack_card, discord_card) == ("0", "0")
    db = Database(settings.bot.database_url)
    try:  # the crashed process: its RSVP is committed, nothing after it ran
        crashed = Engine(db, settings, FakeClock(NOW), EffectBus())
        assert (await crashed.handle(CommandLine(MEMBER, None, "/rsvp going"))).ok
    finally:
        await db.close()

    for start in range(2):
        edits = len(slack.calls_to("chat.update"))
        app = await started(settings)  # started() waits until the bus is drained
        await app.stop()
        [slack_card, _] = slack_messages(slack, CHANNEL)
        [discord_card, _] = discord.messages(CHANNEL_ID)
        assert going_on_cards(slack_card, discord_card) == ("1", "1")
        assert len(slack.calls_to("chat.update")) == edits + (1 if start == 0 else 0)


async def test_effects_another_process_left_are_dispatched_by_a_running_one(
    platforms: tuple[Settings, FakeSlack, FakeDiscord],
) -> None:
    """A replica killed after its commit, before its dispatch, may never restart: a running one takes its effects
    on once they are older than two delivery leases, and sends each post once."""
    settings, slack, discord = platforms
    bot = settings.bot.model_copy(update={"delivery_lease_seconds": 1.0})
    app = await started(settings.model_copy(update={"bot": bot}))
    try:
        await create_event(app.engine, publish=False)
        async with app.db.session() as session:  # what the killed replica committed, and never dispatched
            event = (await session.exec(select(Event))).one()
            event.status = EventStatus.PUBLISHED
            await app.engine.outbox.write(session, [CardPosted(event.id or 0)])
        await asyncio.sleep(1.5)  # a look: too young to be taken on yet
        assert slack_messages(slack, CHANNEL) == [] and discord.messages(CHANNEL_ID) == []
        clock = app.engine.clock
        assert isinstance(clock, FakeClock)
        clock.advance(timedelta(seconds=3))
        async with asyncio.timeout(5):
            while len(discord.messages(CHANNEL_ID)) < 2 or len(slack_messages(slack, CHANNEL)) < 2:
                await asyncio.sleep(0.05)
        await app.bus.drain()
        assert len(slack_messages(slack, CHANNEL)) == 2 and len(discord.messages(CHANNEL_ID)) == 2  # card, agenda
        assert all(row.done_at is not None for row in await outbox_rows(app.db))
    finally:
        await app.stop()
