"""The console adapter posts, edits and DMs in plain text, with times in the event's zone."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from conftest import create_event, member

from adapters.console import ConsoleAdapter
from bot.effects import EffectBus
from bot.engine import Engine
from bot.formatting import format_clock, format_moment
from bot.invocation import ChannelRef
from bot.messages import Notice
from bot.publisher import Publisher


async def test_publish_posts_the_card_and_rsvps_update_it(engine: Engine, bus: EffectBus) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(out)
    await console.start(engine)
    bus.subscribe(Publisher(engine.db, engine.clock, {"console": console}, {"console": [console.channel]}))
    await create_event(engine, capacity=2)
    await bus.drain()
    card = out.getvalue()
    assert "[#announcements] 📣 BookKeeper June" in card
    assert "Mon 15 Jun 2026 18:00–21:00 PDT (America/Los_Angeles)" in card
    assert "0/2 going, 2 seats left" in card

    await console.command(member("ada"), "/rsvp going +1")
    await bus.drain()
    assert "· message 1 updated] 2/2 going, 0 seats left" in out.getvalue()


async def test_replies_say_who_sees_them(engine: Engine) -> None:
    out = io.StringIO()
    console = ConsoleAdapter(out)
    await console.start(engine)
    reply = await console.command(member("ada"), "/rsvp")
    assert not reply.ok
    assert "ada> /rsvp" in out.getvalue()
    assert "(only you see this) ⚠️ there is no upcoming event" in out.getvalue()


async def test_dm_and_send_return_refs_that_edit_targets() -> None:
    out = io.StringIO()
    console = ConsoleAdapter(out)
    ref = await console.send(ChannelRef("console", "general"), Notice("hello"))
    await console.edit(ref, Notice("hello again"))
    dm = await console.send_dm(member("bo"), Notice("psst"))
    assert ref.channel_id == "general" and dm.channel_id == "dm-bo"
    assert "[#general · message 1 updated] hello again" in out.getvalue()
    assert "[DM → bo] psst" in out.getvalue()


def test_times_show_seconds_only_when_they_have_them() -> None:
    on_the_minute = datetime(2026, 6, 16, 1, 0, tzinfo=UTC)
    assert format_moment(on_the_minute, "America/Los_Angeles") == "Mon 15 Jun 2026 18:00 PDT"
    assert format_clock(on_the_minute.replace(second=7, microsecond=500), "America/Los_Angeles") == "18:00:07"
