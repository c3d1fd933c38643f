"""Invariant 7: only organizers change events, the agenda or speakers, announce, or read attendees."""

from __future__ import annotations

import pytest
from conftest import DISCORD_GUILD, DISCORD_ORGANIZER_ROLE, create_event, member, snapshot

from bot.commands.catalog import COMMANDS
from bot.engine import Engine
from bot.invocation import Actor, CommandLine

ORGANIZER_LINES = {
    ("emcee", "event", "create"): '/emcee event create bk-x "X" --starts 2026-07-01 18:00',
    ("emcee", "event", "edit"): "/emcee event edit --venue Elsewhere",
    ("emcee", "event", "publish"): "/emcee event publish",
    ("emcee", "event", "cancel"): "/emcee event cancel",
    ("emcee", "agenda", "add"): '/emcee agenda add 18:00 "Sneaky talk"',
    ("emcee", "agenda", "move"): "/emcee agenda move 1 19:00",
    ("emcee", "agenda", "shift"): "/emcee agenda shift +10m",
    ("emcee", "agenda", "remove"): "/emcee agenda remove 1",
    ("emcee", "speaker", "add"): '/emcee speaker add "Someone"',
    ("emcee", "speaker", "edit"): '/emcee speaker edit "Someone" --bio hi',
    ("emcee", "announce"): "/emcee announce hello",
    ("emcee", "attendees"): "/emcee attendees",
}


def test_every_organizer_command_is_covered_here() -> None:
    assert {c.path for c in COMMANDS if c.organizer} == set(ORGANIZER_LINES)


@pytest.mark.parametrize("path", sorted(ORGANIZER_LINES))
async def test_members_are_refused_organizer_commands(engine: Engine, path: tuple[str, ...]) -> None:
    await create_event(engine)
    await engine.handle(CommandLine(member("organizer"), None, '/emcee agenda add 18:00 "Real talk"'))
    before = await snapshot(engine.db)
    for outsider in (
        Actor("slack", "UMEMBER", "member"),
        Actor("discord", "2002", "m", guild_id=DISCORD_GUILD, role_ids=frozenset({5301})),
    ):
        reply = await engine.handle(CommandLine(outsider, None, ORGANIZER_LINES[path]))
        assert not reply.ok and reply.ephemeral
        assert "Only organizers" in reply.text
    assert await snapshot(engine.db) == before


async def test_organizers_by_id_and_by_discord_role(engine: Engine) -> None:
    await create_event(engine)
    for organizer in (
        Actor("slack", "UORG"),
        Actor("discord", "1001"),
        Actor("discord", "3003", guild_id=DISCORD_GUILD, role_ids=frozenset({DISCORD_ORGANIZER_ROLE})),
    ):
        reply = await engine.handle(CommandLine(organizer, None, "/emcee attendees"))
        assert reply.ok, reply.text


async def test_slack_organizer_id_does_not_grant_discord_rights(engine: Engine) -> None:
    await create_event(engine)
    reply = await engine.handle(CommandLine(Actor("discord", "UORG"), None, "/emcee attendees"))
    assert not reply.ok
