"""Organizers edit an event: its details, its capacity and its own reminder offsets."""

from __future__ import annotations

from conftest import ORGANIZER, create_event
from sqlmodel import select

from bot.engine import Engine
from bot.invocation import CommandLine
from bot.models import Event


async def test_an_events_own_reminders_replace_the_configured_ones(engine: Engine) -> None:
    await create_event(engine, publish=False)
    reply = await engine.handle(CommandLine(ORGANIZER, None, '/emcee event edit --reminders "2h, 30m"'))
    assert reply.ok, reply.text
    async with engine.db.session() as session:
        event = (await session.exec(select(Event))).one()
    assert event.reminder_offsets == "2h,30m"
    refused = await engine.handle(CommandLine(ORGANIZER, None, "/emcee event edit --reminders -1h"))
    assert not refused.ok and "must be positive" in refused.text
    await engine.handle(CommandLine(ORGANIZER, None, "/emcee event edit --reminders default"))
    async with engine.db.session() as session:
        assert (await session.exec(select(Event))).one().reminder_offsets is None
