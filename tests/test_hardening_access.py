"""Hardening: organizer rights, what members can see, event references, exports and reminders, tried as
careless organizers, curious members and strangers would use Emcee."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest
from conftest import ORGANIZER, create_event, database_url, make_settings, member, snapshot
from discord_harness import ADA, GRACE, SLUG, DiscordEmcee, User, command_data, discord_settings, running_emcee
from fakes.discord import FakeDiscord, Json, interaction_payload, new_snowflake
from sqlmodel import select
from test_delivery import RecordingAdapter

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import ConfigError, Secrets, parse_settings
from bot.engine import Engine
from bot.invocation import Actor, CommandLine, CommandOptions
from bot.messages import AgendaCard
from bot.models import Event, EventStatus

MANAGE_EVENTS = discord.Permissions(manage_events=True).value


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[DiscordEmcee]:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as running:
        yield running


@pytest.fixture
async def global_emcee(tmp_path: Path) -> AsyncIterator[DiscordEmcee]:
    """Commands registered globally (no [discord] guild_ids): every server the bot is in can send them."""
    async with (
        FakeDiscord() as fake,
        running_emcee(tmp_path, fake, discord_settings(tmp_path, fake, guild_ids=[])) as running,
    ):
        yield running


async def stranger_guild(emcee: DiscordEmcee) -> Json:
    """Another server with the bot in it, whose roles carry the same names as the community's (new ids)."""
    guild = copy.deepcopy(emcee.fake.guild_create_payload())
    guild_id = str(new_snowflake())
    guild["id"] = guild_id
    guild.pop("unavailable", None)  # a server that has just added the bot
    for role in guild["roles"]:
        role["id"] = guild_id if role["name"] == "@everyone" else str(new_snowflake())
    for channel in guild["channels"]:
        channel.update(id=str(new_snowflake()), guild_id=guild_id)
    # A server joins once discord.py is past its start-up (before, it counts a new server as one it was in).
    await asyncio.wait_for(emcee.adapter.client.wait_until_ready(), 3)
    joined = asyncio.ensure_future(emcee.adapter.client.wait_for("guild_join", timeout=3))
    await emcee.fake.dispatch("GUILD_CREATE", guild)
    await joined
    return guild


async def command_in(emcee: DiscordEmcee, guild: Json, path: str, user: User, **values: Any) -> Json:
    """A slash command sent from a channel of `guild`; returns the initial response's data."""
    guild_id, channel = guild["id"], guild["channels"][0]
    data = command_data(path, **values) | {"guild_id": guild_id}
    payload = interaction_payload(
        "command_rsvp",
        data=data,
        member=user.member(),
        guild={"id": guild_id},
        guild_id=guild_id,
        channel={"id": channel["id"], "guild_id": guild_id},
        channel_id=channel["id"],
    )
    answer = await emcee.dispatch(payload)
    assert answer.callback is not None
    response: Json = answer.callback["data"]
    return response


async def event_status(emcee: DiscordEmcee, slug: str = SLUG) -> str:
    async with emcee.app.db.session() as session:
        return (await session.exec(select(Event.status).where(Event.slug == slug))).one()


def role_id(guild: Json, name: str) -> int:
    return next(int(role["id"]) for role in guild["roles"] if role["name"] == name)


# -- item 1: organizer rights are tied to a guild ---------------------------------------------------


async def test_role_named_like_the_organizer_role_in_another_guild_grants_nothing(global_emcee: DiscordEmcee) -> None:
    """Hardening item 1: a stranger's own server role called "Organizers" cannot cancel the community's event."""
    emcee = global_emcee
    await emcee.publish()
    guild = await stranger_guild(emcee)
    stranger = User(new_snowflake(), "mallory", (role_id(guild, "Organizers"),))
    before = await snapshot(emcee.app.db)

    answer = await command_in(emcee, guild, "emcee event cancel", stranger, event=SLUG)

    assert answer["content"].startswith("Only organizers can use /emcee event cancel")
    assert await snapshot(emcee.app.db) == before


async def test_manage_events_in_an_unconfigured_guild_grants_nothing(global_emcee: DiscordEmcee) -> None:
    """Hardening item 1: Manage Events in a server not listed in [discord] guild_ids makes no organizer."""
    emcee = global_emcee
    await emcee.publish()
    guild = await stranger_guild(emcee)
    owner = User(new_snowflake(), "mallory", permissions=MANAGE_EVENTS)

    answer = await command_in(emcee, guild, "emcee event cancel", owner, event=SLUG)

    assert answer["content"].startswith("Only organizers can use /emcee event cancel")
    assert await event_status(emcee) == EventStatus.PUBLISHED


async def test_organizer_role_id_in_the_configured_guild_is_accepted(emcee: DiscordEmcee) -> None:
    """Hardening item 1: the configured role id, held in the configured guild, makes an organizer."""
    await emcee.publish()
    guild = emcee.fake.guild_create_payload()

    answer = await command_in(emcee, guild, "emcee event cancel", ADA, event=SLUG)

    assert answer["content"].startswith("Cancelled BookKeeper June")
    assert await event_status(emcee) == EventStatus.CANCELLED


async def test_manage_events_in_a_configured_guild_is_accepted(emcee: DiscordEmcee) -> None:
    """Hardening item 1: Discord's own convention: Manage Events in a configured guild makes an organizer."""
    await emcee.publish()
    guild = emcee.fake.guild_create_payload()
    host = User(new_snowflake(), "host", permissions=MANAGE_EVENTS)

    answer = await command_in(emcee, guild, "emcee event cancel", host, event=SLUG)

    assert answer["content"].startswith("Cancelled BookKeeper June")
    assert await event_status(emcee) == EventStatus.CANCELLED


async def test_member_without_role_or_permission_is_refused_in_the_configured_guild(emcee: DiscordEmcee) -> None:
    """Hardening item 1: an ordinary member of the community's own guild stays a member."""
    await emcee.publish()

    answer = await command_in(emcee, emcee.fake.guild_create_payload(), "emcee event cancel", GRACE, event=SLUG)

    assert answer["content"].startswith("Only organizers can use /emcee event cancel")
    assert await event_status(emcee) == EventStatus.PUBLISHED


def test_role_names_in_the_config_are_refused_with_the_new_form() -> None:
    """Hardening item 1: an old `discord_roles = ["Organizers"]` stops start-up, saying how to give role ids."""
    with pytest.raises(ConfigError) as refused:
        parse_settings({"organizers": {"discord_roles": ["Organizers"]}}, "emcee.toml")

    message = str(refused.value)
    assert message.startswith("emcee.toml: [organizers] discord_roles: role names are not accepted")
    assert "[organizers.discord_roles]" in message and "= [" in message


def test_guild_scoped_role_ids_are_read_from_toml() -> None:
    """Hardening item 1: `[organizers.discord_roles]` maps each guild id to its organizer role ids."""
    data = tomllib.loads("[organizers.discord_roles]\n234567890123456789 = [456789012345678901]\n")

    organizers = parse_settings(data, "emcee.toml").organizers

    assert organizers.discord_role_ids(234567890123456789) == {456789012345678901}
    assert organizers.discord_role_ids(456789012345678901) == frozenset()


# -- item 2: members never see drafts or cancelled events -------------------------------------------


async def draft_and_cancelled(engine: Engine) -> None:
    """bk-june published, bk-july a draft ("Secret July"), bk-may published then cancelled."""
    await create_event(engine, "bk-june")
    reply = await engine.handle(
        CommandLine(ORGANIZER, None, '/emcee event create bk-july "Secret July" --starts 2026-07-15 18:00')
    )
    assert reply.ok, reply.text
    await create_event(engine, "bk-may")
    reply = await engine.handle(CommandLine(ORGANIZER, None, "/emcee event cancel bk-may"))
    assert reply.ok, reply.text


@pytest.mark.parametrize("line", ["/agenda bk-july", "/agenda bk-jul", "/rsvp bk-jul", "/rsvp bk-july maybe"])
async def test_members_cannot_reach_a_draft_by_slug_or_prefix(engine: Engine, line: str) -> None:
    """Hardening item 2: a draft's agenda and title stay hidden; members hear it does not exist."""
    await draft_and_cancelled(engine)
    before = await snapshot(engine.db)

    reply = await engine.handle(CommandLine(member("curious"), None, line))

    assert not reply.ok and reply.ephemeral
    assert f"no event called '{line.split()[1]}'" in reply.text
    assert "Secret" not in reply.text and reply.message is None
    assert await snapshot(engine.db) == before


async def test_a_prefix_shared_with_a_draft_names_only_the_published_event(engine: Engine) -> None:
    """Hardening item 2: "bk-ju" would match the draft too; a member sees no ambiguity that betrays it."""
    await draft_and_cancelled(engine)

    reply = await engine.handle(CommandLine(member("curious"), None, "/rsvp bk-ju"))

    assert reply.ok, reply.text
    assert "bk-july" not in reply.text and reply.text.startswith("✅ You're going to BookKeeper June")


@pytest.mark.parametrize("line", ["/agenda bk-may", "/rsvp bk-may", "/emcee remind on bk-may"])
async def test_members_who_never_rsvped_cannot_reach_a_cancelled_event(engine: Engine, line: str) -> None:
    """Hardening item 2: a cancelled event answers as if it never existed to a member who did not RSVP."""
    await draft_and_cancelled(engine)

    reply = await engine.handle(CommandLine(member("curious"), None, line))

    assert not reply.ok
    assert "no event called 'bk-may'" in reply.text


async def test_organizers_still_reach_drafts(engine: Engine) -> None:
    """Hardening item 2: the organizer's own view is unchanged: a draft's agenda by prefix."""
    await draft_and_cancelled(engine)

    reply = await engine.handle(CommandLine(ORGANIZER, None, "/agenda bk-jul"))

    assert reply.ok, reply.text
    assert isinstance(reply.message, AgendaCard) and reply.message.title == "Secret July"


async def test_autocomplete_offers_members_no_draft_or_cancelled_event(emcee: DiscordEmcee) -> None:
    """Hardening item 2: the Discord event autocomplete offers a member only published events."""
    await emcee.publish(slug="bk-may")
    await emcee.organizer("/emcee event cancel bk-may")
    await emcee.organizer('/emcee event create bk-draft "BookKeeper draft" --starts 2026-06-20 18:00')
    await emcee.publish()

    answer = await emcee.dispatch(interaction_payload("autocomplete_rsvp_event"))  # a member typed "book"

    assert answer.callback is not None
    assert [choice["value"] for choice in answer.callback["data"]["choices"]] == [SLUG]


# -- item 3: % and _ in an event reference are plain characters ---------------------------------


@pytest.mark.parametrize("ref", ["%", "bk%", "bk_june", "_k-june"])
async def test_like_wildcards_in_an_event_reference_match_nothing(engine: Engine, ref: str) -> None:
    """Hardening item 3: `%` and `_` (as Discord passes them through) match only themselves."""
    await draft_and_cancelled(engine)

    for actor in (member("curious"), ORGANIZER):
        reply = await engine.handle(CommandOptions(actor, None, ("agenda",), {"event": ref}))
        assert not reply.ok
        assert f"no event called '{ref}'" in reply.text


@pytest.mark.parametrize("typed", ["%", "_", "b%k"])
async def test_autocomplete_treats_like_wildcards_as_text(emcee: DiscordEmcee, typed: str) -> None:
    """Hardening item 3: typing `%` or `_` in the event box of /rsvp offers nothing, not every event."""
    await emcee.publish()
    payload = interaction_payload(
        "autocomplete_rsvp_event",
        data={"options": [{"name": "event", "type": 3, "value": typed, "focused": True}]},
        member=ADA.member(),
    )

    answer = await emcee.dispatch(payload)

    assert answer.callback is not None
    assert answer.callback["data"]["choices"] == []


async def test_a_member_who_rsvped_hears_the_event_was_cancelled(engine: Engine) -> None:
    """Hardening item 2: a member who RSVPed saw the event; to them a cancelled event is named as cancelled."""
    await create_event(engine, "bk-may")
    assert (await engine.handle(CommandLine(member("fan"), None, "/rsvp bk-may"))).ok
    await engine.handle(CommandLine(ORGANIZER, None, "/emcee event cancel bk-may"))

    reply = await engine.handle(CommandLine(member("fan"), None, "/rsvp bk-may"))

    assert not reply.ok
    assert "BookKeeper June is cancelled; RSVPs are closed" in reply.text


# -- item 4: the attendee CSV carries no live formula -----------------------------------------------


@pytest.mark.parametrize("name", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
async def test_attendee_csv_neutralises_names_a_spreadsheet_would_run(engine: Engine, name: str) -> None:
    """Hardening item 4: a display name starting with = + - @ tab or CR becomes text, prefixed with a quote."""
    await create_event(engine)
    assert (await engine.handle(CommandLine(Actor("slack", "UEVIL", name), None, "/rsvp"))).ok
    assert (await engine.handle(CommandLine(Actor("slack", "UOK", "Ada Lovelace"), None, "/rsvp"))).ok

    reply = await engine.handle(CommandLine(Actor("slack", "UORG"), None, "/emcee attendees"))

    assert reply.attachment is not None
    rows = list(csv.DictReader(io.StringIO(reply.attachment.content, newline="")))
    assert [row["name"] for row in rows] == [f"'{name}", "Ada Lovelace"]
    assert [row["user_id"] for row in rows] == ["UEVIL", "UOK"]


# -- items 14 and 15: /emcee remind ----------------------------------------------------------------


@pytest.fixture
async def recorded_app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    """The whole app (publisher and runner) on the console, whose sends and edits are recorded."""
    settings = make_settings(bot={"database_url": database_url(tmp_path)}, http={"enabled": False})
    app = build_app(settings, Secrets(), clock=clock, adapters={"console": RecordingAdapter("console")})
    app.publisher.edits.interval = 0
    await app.start()
    yield app
    await app.stop()


def dm_reminders(app: App) -> list[str]:
    assert app.runner is not None
    return [post.targets[0].id for post in app.runner.jobs.values() if post.slot.startswith("dm:")]


async def test_turning_dm_reminders_on_and_off_replans_without_editing_public_messages(recorded_app: App) -> None:
    """Hardening item 14: `/emcee remind on|off` changes the member's planned DM, and no card or agenda."""
    adapter = recorded_app.adapters["console"]
    assert isinstance(adapter, RecordingAdapter)
    await create_event(recorded_app.engine)
    assert (await recorded_app.engine.handle(CommandLine(member("ada"), None, "/rsvp going"))).ok
    await recorded_app.bus.drain()
    edits = len(adapter.edits)

    on = await recorded_app.engine.handle(CommandLine(member("ada"), None, "/emcee remind on"))
    await recorded_app.bus.drain()
    planned = dm_reminders(recorded_app)
    off = await recorded_app.engine.handle(CommandLine(member("ada"), None, "/emcee remind off"))
    await recorded_app.bus.drain()

    assert on.ok and off.ok
    assert planned == ["ada"] and dm_reminders(recorded_app) == []
    assert len(adapter.edits) == edits


async def test_reminders_for_a_cancelled_event_say_it_was_cancelled(engine: Engine) -> None:
    """Hardening item 15: a member who RSVPed hears the event was cancelled, not "RSVP going first"."""
    await create_event(engine)
    assert (await engine.handle(CommandLine(member("ada"), None, "/rsvp going bk-june"))).ok
    await engine.handle(CommandLine(ORGANIZER, None, "/emcee event cancel bk-june"))
    before = await snapshot(engine.db)

    reply = await engine.handle(CommandLine(member("ada"), None, "/emcee remind on bk-june"))

    assert not reply.ok and reply.ephemeral
    assert "BookKeeper June was cancelled" in reply.text and "RSVP going" not in reply.text
    assert await snapshot(engine.db) == before


# -- item 7's access part: permission before parsing --------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "/emcee agenda shift 99999999999d",
        "/emcee agenda shift soon",
        '/emcee event create bk-x "X" --starts someday',
        '/emcee speaker add "unterminated',
    ],
)
async def test_members_hear_only_organizers_before_their_arguments_are_read(engine: Engine, line: str) -> None:
    """Hardening item 7 (access): a member's organizer command is refused for access, whatever its arguments."""
    await create_event(engine)
    before = await snapshot(engine.db)

    reply = await engine.handle(CommandLine(member("curious"), None, line))

    assert not reply.ok and reply.ephemeral
    name = " ".join(line.split()[:3]).removeprefix("/")
    assert reply.text == f"Only organizers can use /{name}."
    labels = {"command": name, "outcome": "denied"}
    assert engine.metrics.registry.get_sample_value("emcee_commands_total", labels) == 1
    assert await snapshot(engine.db) == before
