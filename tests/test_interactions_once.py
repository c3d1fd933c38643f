"""Invariant 9: a member's action (a Discord interaction, a Slack trigger) is acted on at most once, however many
replicas receive it and however often a platform delivers it; a refused one may be tried again.

Each scenario runs on SQLite and PostgreSQL (conftest's `db`): the replicas are Apps (or Engines) with Database
objects of their own on the one database. Discord's fake sends every gateway event to every session of the
token, as Discord does for sessions that are not shards.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from conftest import NOW, POSTGRES_ENV, create_event, database_url
from discord_harness import ADA, GRACE, SLUG, DiscordEmcee, callback_path, command_data, discord_settings, quick
from discord_harness import SECRETS as DISCORD_SECRETS
from fakes.discord import CHANNEL_ID, FakeDiscord, Json, click_payload, interaction_payload
from fakes.slack import FakeSlack, signed_headers, slash_command_body
from slack_harness import ALICE, SIGNING_SECRET, Ack, SlackEmcee, slack_settings
from slack_harness import ORGANIZER as SLACK_ORGANIZER
from slack_harness import SECRETS as SLACK_SECRETS
from slack_harness import SLUG as SLACK_SLUG

from adapters.discord.views import custom_id
from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Secrets, Settings
from bot.db import Database
from bot.engine import ALREADY_DONE, Engine
from bot.interactions import KEPT
from bot.invocation import Actor, CommandLine, CommandOptions
from bot.messages import INTERNAL_ERROR
from bot.metrics import CommandOutcome
from bot.models import HandledInteraction, Rsvp, table_of

NOTICE = "Doors open at six"
HANDLED = table_of(HandledInteraction)
ORGANIZER_ON_DISCORD = Actor("discord", "1001", "ada")  # an organizer by id in conftest's settings
BO = Actor("discord", "2002", "bo")


def shared_url(db: Database, tmp_path: Path) -> str:
    """The operator's URL of the test's database, for replicas of their own."""
    return database_url(tmp_path) if db.is_sqlite else os.environ[POSTGRES_ENV]


def on_database(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"bot": settings.bot.model_copy(update={"database_url": url})})


@asynccontextmanager
async def replicas(count: int, settings: Settings, secrets: Secrets) -> AsyncIterator[list[App]]:
    """`count` Apps built from `settings` and started, as `emcee run` replicas on one database."""
    async with AsyncExitStack() as stack:
        apps = []
        for _ in range(count):
            app = quick(build_app(settings, secrets, FakeClock(NOW)))
            await app.start()
            stack.push_async_callback(app.stop)
            apps.append(app)
        yield apps


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def commands(apps: list[App], name: str, outcome: CommandOutcome) -> float:
    """How many times the replicas together counted `name` with `outcome` (emcee_commands_total)."""
    labels = {"command": name, "outcome": outcome}
    return sum(app.metrics.registry.get_sample_value("emcee_commands_total", labels) or 0 for app in apps)


def discord_notices(fake: FakeDiscord) -> list[Json]:
    return [message for message in fake.messages(CHANNEL_ID) if NOTICE in json.dumps(message)]


async def handled(db: Database) -> list[tuple[str, str]]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(sa.select(HANDLED.c.platform, HANDLED.c.interaction_id))
        return sorted((row.platform, row.interaction_id) for row in rows)


async def going(db: Database) -> list[str]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(sa.select(table_of(Rsvp).c.user_id))
        return sorted(row.user_id for row in rows)


# -- Discord: one interaction, two replicas ---------------------------------------------------------------------


async def discord_everywhere(apps: list[App], fake: FakeDiscord, payload: Json) -> list[Json]:
    """Dispatch one interaction to every replica's session; wait until each has answered (or tried to) and
    finished what it set off. The bodies of every answer the interaction got, first the initial response."""
    await fake.dispatch("INTERACTION_CREATE", payload)
    await until(lambda: len(fake.calls_to("POST", callback_path(payload))) == len(apps))
    for app in apps:
        await app.bus.drain()
    interaction = fake.interactions[int(payload["id"])]
    return [interaction.response, *interaction.followups.values()]


async def test_one_discord_announce_received_by_two_replicas_posts_one_notice(db: Database, tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        settings = on_database(discord_settings(tmp_path, fake), shared_url(db, tmp_path))
        async with replicas(2, settings, DISCORD_SECRETS) as apps:
            await create_event(apps[0].engine, SLUG)
            for app in apps:
                await app.bus.drain()
            data = command_data("emcee announce", event=SLUG, text=NOTICE)
            payload = interaction_payload("command_rsvp", data=data, member=ADA.member())

            answers = await discord_everywhere(apps, fake, payload)

            assert len(discord_notices(fake)) == 1
            assert commands(apps, "emcee announce", CommandOutcome.OK) == 1
            assert commands(apps, "emcee announce", CommandOutcome.REFUSED) == 1  # the other replica's copy
            assert INTERNAL_ERROR.text not in json.dumps(answers)
            assert await handled(db) == [("discord", payload["id"])]


async def test_one_discord_rsvp_click_received_by_two_replicas_is_one_rsvp(db: Database, tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        settings = on_database(discord_settings(tmp_path, fake), shared_url(db, tmp_path))
        async with replicas(2, settings, DISCORD_SECRETS) as apps:
            await create_event(apps[0].engine, SLUG)
            await apps[0].bus.drain()  # the card is posted
            card = DiscordEmcee(apps[0], fake).card()
            payload = click_payload(card, custom_id(SLUG, "going"), member=GRACE.member())

            answers = await discord_everywhere(apps, fake, payload)

            assert commands(apps, "rsvp", CommandOutcome.OK) == 1
            assert commands(apps, "rsvp", CommandOutcome.REFUSED) == 1
            assert await going(db) == [str(GRACE.id)]
            assert INTERNAL_ERROR.text not in json.dumps(answers)


# -- two engines at the same moment -----------------------------------------------------------------------------


@asynccontextmanager
async def two_engines(db: Database, tmp_path: Path, settings: Settings) -> AsyncIterator[tuple[Engine, Engine]]:
    """Two engines, each with a Database of its own on the test's database, as two replicas have."""
    url = shared_url(db, tmp_path)
    first, second = Database(url), Database(url)
    try:
        yield Engine(first, settings, FakeClock(NOW)), Engine(second, settings, FakeClock(NOW))
    finally:
        await first.close()
        await second.close()


async def test_the_same_announce_on_two_engines_at_once_is_carried_out_once(
    db: Database, tmp_path: Path, settings: Settings
) -> None:
    async with two_engines(db, tmp_path, settings) as (first, second):
        await create_event(first)
        request = CommandLine(ORGANIZER_ON_DISCORD, None, f"/emcee announce bk-june {NOTICE}", "1301000000000424242")

        replies = await asyncio.gather(first.handle(request), second.handle(request))

        announced = "Announcing BookKeeper June in the announce channels."
        assert sorted(reply.text for reply in replies) == [announced, ALREADY_DONE.text]
        async with db.engine.connect() as connection:
            cards = await connection.execute(sa.text("SELECT count(*) FROM pending_effect WHERE kind = 'CardPosted'"))
            assert cards.scalar_one() == 2  # the publish, and one announce


async def test_the_same_rsvp_on_two_engines_at_once_is_one_rsvp(
    db: Database, tmp_path: Path, settings: Settings
) -> None:
    async with two_engines(db, tmp_path, settings) as (first, second):
        await create_event(first, capacity=1)
        ask = CommandOptions(BO, None, ("rsvp",), {"event": "bk-june"}, "1301000000000515151")

        replies = await asyncio.gather(first.handle(ask), second.handle(ask))

        texts = sorted(reply.text for reply in replies)
        assert texts[0] == ALREADY_DONE.text and texts[1].startswith("✅ You're going to BookKeeper June.")
        assert await going(db) == [BO.user_id]


async def test_a_duplicate_in_an_rsvp_group_is_refused_and_spares_the_others(engine: Engine) -> None:
    await create_event(engine, capacity=3)
    asks = [
        CommandOptions(Actor("slack", f"U{n}", f"m{n}"), None, ("rsvp",), {"event": "bk-june"}, f"trigger-{n}")
        for n in (1, 2, 2, 3)
    ]

    replies = await asyncio.gather(*(engine.handle(ask) for ask in asks))

    assert [reply.text.split(" to ")[0] for reply in replies] == [
        "✅ You're going",
        "✅ You're going",
        ALREADY_DONE.text,
        "✅ You're going",
    ]
    assert await going(engine.db) == ["U1", "U2", "U3"]
    assert await handled(engine.db) == [("slack", "trigger-1"), ("slack", "trigger-2"), ("slack", "trigger-3")]


# -- refusals are not recorded ----------------------------------------------------------------------------------


async def test_a_refused_command_is_not_recorded_and_may_be_tried_again(engine: Engine) -> None:
    rsvp = CommandOptions(BO, None, ("rsvp",), {"event": "bk-june"}, "rsvp-1")
    announce = CommandLine(ORGANIZER_ON_DISCORD, None, f"/emcee announce bk-june {NOTICE}", "announce-1")

    refused = [await engine.handle(rsvp), await engine.handle(announce)]
    assert [reply.ok for reply in refused] == [False, False]
    assert await handled(engine.db) == []

    await create_event(engine)
    again = [await engine.handle(rsvp), await engine.handle(announce)]
    assert [reply.text.split(" ")[0] for reply in again] == ["✅", "Announcing"]
    assert await handled(engine.db) == [("discord", "announce-1"), ("discord", "rsvp-1")]


async def test_handled_interactions_are_forgotten_after_an_hour(engine: Engine, clock: FakeClock) -> None:
    await create_event(engine)
    await engine.handle(CommandOptions(BO, None, ("rsvp",), {"event": "bk-june"}, "old"))
    clock.advance(KEPT + KEPT / 6)

    await engine.handle(CommandOptions(Actor("discord", "2003", "cy"), None, ("rsvp",), {"event": "bk-june"}, "new"))
    await engine.bus.drain()

    assert await handled(engine.db) == [("discord", "new")]


# -- Slack: a retry, on another replica or the same one ---------------------------------------------------------


async def test_a_slack_retry_on_another_replica_is_acted_on_once(db: Database, tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        settings = on_database(slack_settings(tmp_path, fake), shared_url(db, tmp_path))
        async with replicas(2, settings, SLACK_SECRETS) as apps:
            first, second = (SlackEmcee(app, fake) for app in apps)
            await first.publish()
            fields = first.command_fields(
                "/emcee", f"announce {SLACK_SLUG} {NOTICE}", (SLACK_ORGANIZER.user_id, "olga")
            )
            body = slash_command_body(fields)

            ack = await first.post(body)
            retry = await post(second, body, {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
            for app in apps:
                await app.bus.drain()

            assert ack.status == retry.status == 200
            assert ack.body["text"].startswith("Announcing PyData June")
            assert retry.body["text"] == ALREADY_DONE.text and retry.body["response_type"] == "ephemeral"
            assert len([m for m in fake.messages.values() if NOTICE in json.dumps(m)]) == 1


async def post(emcee: SlackEmcee, body: str, headers: dict[str, str]) -> Ack:
    """POST a signed body to a replica with more headers (Slack's retry headers)."""
    headers = signed_headers(body, SIGNING_SECRET) | headers
    async with (
        aiohttp.ClientSession() as session,
        session.post(emcee.events_url, data=body.encode(), headers=headers) as response,
    ):
        return Ack(response.status, await response.text())


async def test_a_socket_mode_click_delivered_twice_is_one_rsvp(db: Database, tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        settings = on_database(slack_settings(tmp_path, fake, mode="socket"), shared_url(db, tmp_path))
        async with replicas(1, settings, SLACK_SECRETS) as [app]:
            emcee = SlackEmcee(app, fake)
            await emcee.publish()
            click = emcee.click_payload(user=ALICE)

            for _ in range(2):  # a new envelope each time, the same trigger_id in it
                await fake.push("interactive", click)
            await fake.wait_until(lambda: len(fake.calls_to("chat.postEphemeral")) == 2)
            await app.bus.drain()

            texts = sorted(call.params["text"] for call in fake.calls_to("chat.postEphemeral"))
            assert texts[0] == ALREADY_DONE.text and texts[1].startswith("✅ You're going to PyData June.")
            assert await going(db) == [ALICE[0]]
