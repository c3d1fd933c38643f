"""A transactional outbox: a command's effects are written in its transaction and dispatched after the commit,
and again at start-up when the process stopped before dispatching them, so a crash after the commit loses nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from conftest import NOW, ORGANIZER, create_event, member, snapshot
from discord_harness import discord_settings, quick
from fakes.discord import CHANNEL_ID, FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import CHANNEL
from sqlmodel import select
from test_discord_slack_together import SECRETS
from test_no_duplicates import slack_messages

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.db import Database
from bot.delivery import Target
from bot.effects import CardPosted, Effect, EffectBus, MemberPromoted
from bot.engine import Engine
from bot.invocation import Actor, CommandLine, Invocation, MessageRef
from bot.models import DeliveryStatus, Event, EventStatus, PendingEffect
from bot.publisher import agenda_key, card_key

SLACK = Target("slack", CHANNEL)
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
        slack_section = {"enabled": True, "mode": "http", "api_base_url": slack.api_base_url}
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
    app = await started(settings)
    try:
        ledger = app.publisher.ledger
        for key in (card_key(event_id) + str(post), agenda_key(event_id) + str(post)):  # Slack had both
            assert await ledger.claim_many(key, [SLACK]) == [SLACK]
            await ledger.finish(key, SLACK, DeliveryStatus.SENT, MessageRef("slack", CHANNEL, f"1.{len(key)}"))
        await app.stop()
        app = await started(settings)
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
