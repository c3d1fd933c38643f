"""The Discord command tree is generated from the registry, synced at startup, and autocompletes events."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import discord
import pytest
from conftest import NOW
from discord_harness import ADA, GRACE, SLUG, DiscordEmcee, discord_settings, running_emcee
from fakes.discord import APPLICATION_ID, GUILD_ID, FakeDiscord, interaction_payload

from adapters.discord.tree import build_tree
from bot.commands import Arg, ArgKind, Command, Registry
from bot.commands.catalog import COMMANDS
from bot.models import Event, EventStatus

# Discord's option types: 1 subcommand, 2 subcommand group, 3 string, 4 integer.
SUBCOMMAND, GROUP, STRING, INTEGER = 1, 2, 3, 4


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[DiscordEmcee]:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as running:
        yield running


def leaves(
    commands: list[dict[str, Any]], path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], list[dict[str, Any]]]]:
    """Every invocable command in a synced payload, by path, with its options."""
    for command in commands:
        options = command.get("options") or []
        nested = [option for option in options if option["type"] in (SUBCOMMAND, GROUP)]
        if nested:
            yield from leaves(nested, (*path, command["name"]))
        else:
            yield (*path, command["name"]), options


def expected_option(arg: Arg) -> dict[str, Any]:
    option: dict[str, Any] = {
        "name": arg.name,
        "type": INTEGER if arg.kind in (ArgKind.GUESTS, ArgKind.INT) else STRING,
        "required": arg.required,
    }
    if arg.choices:
        option["choices"] = [{"name": choice, "value": choice} for choice in arg.choices]
    if arg.kind is ArgKind.EVENT:
        option["autocomplete"] = True
    if arg.max_length is not None and not arg.repeat:
        option["max_length"] = arg.max_length
    return option


async def test_the_synced_tree_matches_the_registry(emcee: DiscordEmcee) -> None:
    [sync] = emcee.fake.calls_to("PUT", rf"/applications/{APPLICATION_ID}/guilds/{GUILD_ID}/commands")  # at startup
    synced = dict(leaves(sync.json))

    assert sorted(synced) == sorted(command.path for command in COMMANDS)  # none missing, none extra
    assert emcee.fake.calls_to("PUT", rf"/applications/{APPLICATION_ID}/commands") == []  # no global commands
    for command in COMMANDS:
        options = {option["name"]: option for option in synced[command.path]}
        assert list(options) == [arg.name for arg in sorted(command.args, key=lambda a: not a.required)]
        for arg in command.args:
            option = options[arg.name]
            assert {key: option.get(key, False) for key in expected_option(arg)} == expected_option(arg), arg.name
            assert option["description"] and len(option["description"]) <= 100
    top = {command["name"]: command for command in sync.json}
    assert set(top) == {"rsvp", "events", "agenda", "emcee"}
    groups = {option["name"]: option["type"] for option in top["emcee"]["options"]}
    assert groups == {
        "remind": SUBCOMMAND,
        "help": SUBCOMMAND,
        "announce": SUBCOMMAND,
        "attendees": SUBCOMMAND,
        "event": GROUP,
        "agenda": GROUP,
        "speaker": GROUP,
    }


def test_a_new_registry_command_appears_on_discord_without_writing_it_twice() -> None:
    extra = Command(
        ("emcee", "speaker", "remove"),
        "Remove a speaker",
        (Arg("name", ArgKind.TEXT, "the speaker's name", required=True),),
        organizer=True,
    )

    async def on_command(interaction: discord.Interaction, command: Command, raw: dict[str, Any]) -> None:
        raise AssertionError("not called")

    async def complete(interaction: discord.Interaction, current: str) -> list[Any]:
        return []

    client = discord.Client(intents=discord.Intents(guilds=True))
    tree = build_tree(client, Registry((*COMMANDS, extra)), on_command, complete)

    payload = [command.to_dict(tree) for command in tree.get_commands()]
    assert ("emcee", "speaker", "remove") in dict(leaves(payload))


async def test_autocomplete_offers_upcoming_events_25_at_most(emcee: DiscordEmcee) -> None:
    async with emcee.app.db.session() as session:  # 30 published events, straight in (no cards to post)
        for number in range(30):
            starts = datetime(2026, 7, number + 1, 18, tzinfo=ZoneInfo("America/Los_Angeles"))
            session.add(
                Event(
                    slug=f"book-{number:02}",
                    uid=f"book-{number}@test",
                    title=f"Book club {number}",
                    starts_at=starts,
                    ends_at=starts + timedelta(hours=2),
                    timezone="America/Los_Angeles",
                    status=EventStatus.PUBLISHED,
                    updated_at=NOW,
                )
            )
    await emcee.organizer('/emcee event create book-draft "Book draft" --starts 2026-06-20 18:00')
    await emcee.organizer('/emcee event create book-past "Book past" --starts 2026-05-20 18:00')
    await emcee.organizer("/emcee event publish book-past")
    await emcee.publish(slug=SLUG)  # "BookKeeper June": matches "book" by its title

    member = await emcee.dispatch(interaction_payload("autocomplete_rsvp_event"))  # grace typed "book"
    organizer = await emcee.dispatch(interaction_payload("autocomplete_rsvp_event", member=ADA.member()))

    assert member.response["type"] == 8
    choices = member.response["data"]["choices"]
    assert len(choices) == 25
    assert [c["value"] for c in choices[:3]] == [SLUG, "book-00", "book-01"]  # soonest first; no draft, nothing past
    assert choices[0]["name"] == "BookKeeper June · Mon 15 Jun 2026 18:00 PDT · bk-june"
    assert [c["value"] for c in organizer.response["data"]["choices"][:3]] == [SLUG, "book-draft", "book-00"]


async def test_autocomplete_filters_by_what_was_typed(emcee: DiscordEmcee) -> None:
    await emcee.publish()
    await emcee.organizer('/emcee event create pydata "PyData Summer" --starts 2026-07-01 18:00')
    await emcee.organizer("/emcee event publish pydata")
    payload = interaction_payload(
        "autocomplete_rsvp_event",
        data={"options": [{"name": "event", "type": STRING, "value": "SUMM", "focused": True}]},
        member=GRACE.member(),
    )

    answer = await emcee.dispatch(payload)

    assert answer.response["data"]["choices"] == [
        {"name": "PyData Summer · Wed 01 Jul 2026 18:00 PDT · pydata", "value": "pydata"}
    ]


async def test_a_failed_sync_is_logged_and_the_bot_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "adapters.discord")
    async with FakeDiscord() as fake:
        settings = discord_settings(tmp_path, fake, guild_ids=[42, GUILD_ID])
        async with running_emcee(tmp_path, fake, settings) as emcee:
            assert emcee.adapter.connected
            answer = await emcee.command("emcee help")
    assert answer.response["data"]["content"].startswith("Commands:")
    assert "syncing the slash commands to guild 42 failed (404 Unknown Guild)" in caplog.text
    assert GUILD_ID in fake.commands


async def test_without_guild_ids_the_commands_are_global(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with running_emcee(tmp_path, fake, discord_settings(tmp_path, fake, guild_ids=[])) as emcee:
            answer = await emcee.command("events")
    assert sorted(c["name"] for c in fake.commands[None]) == ["agenda", "emcee", "events", "rsvp"]
    assert answer.response["data"]["embeds"][0]["description"] == "No upcoming events."
