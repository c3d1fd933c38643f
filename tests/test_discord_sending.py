"""Discord sending: posts, edits and DMs; nonces for ledger retries; 429s left to discord.py; refusals logged."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
import pytest
from conftest import deliver
from discord_harness import GRACE, SLUG, DiscordEmcee, discord_settings, running_emcee
from fakes.discord import CHANNEL_ID, FakeDiscord
from sqlmodel import select

from adapters.discord import DiscordSendError
from adapters.discord.client import nonce
from bot.delivery import Target
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message, Notice
from bot.models import Delivery

BOT_ROLE_ID = "1301000000000000301"  # the bot's managed role in the fake guild
CHANNEL = ChannelRef("discord", str(CHANNEL_ID))


async def const(message: Message) -> Message:
    return message


async def deliveries(emcee: DiscordEmcee) -> dict[str, tuple[str, str | None]]:
    async with emcee.app.db.session() as session:
        rows = (await session.exec(select(Delivery))).all()
    return {f"{row.key.split(':')[0]} {row.target}": (row.status, row.error) for row in rows}


async def test_send_edit_and_dm(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        ref = await emcee.adapter.send(CHANNEL, Notice("Doors open at 18:00 @everyone"))
        await emcee.adapter.edit(ref, Notice("Doors open at 18:15"))
        dm = await emcee.adapter.send_dm(Actor("discord", str(GRACE.id)), Notice("psst"))
        again = await emcee.adapter.send_dm(Actor("discord", str(GRACE.id)), Notice("psst again"))

    assert ref == MessageRef("discord", str(CHANNEL_ID), ref.message_id)
    [posted] = fake.messages(CHANNEL_ID)
    assert posted["id"] == ref.message_id and posted["content"] == "Doors open at 18:15"
    [post] = fake.calls_to("POST", rf"/channels/{CHANNEL_ID}/messages")
    assert post.json["allowed_mentions"] == {"parse": []}  # organizer text never pings
    assert post.json["enforce_nonce"] is True and len(post.json["nonce"]) <= 25
    assert dm.channel_id == again.channel_id == str(fake.dm_channel_id(GRACE.id))
    assert [m["content"] for m in fake.messages(fake.dm_channel_id(GRACE.id))] == ["psst", "psst again"]
    assert len(fake.calls_to("POST", "/users/@me/channels")) == 1  # the DM channel is remembered


def test_nonces_follow_the_target_and_the_post() -> None:
    same = nonce(CHANNEL_ID, 0, "card:1:abc")
    assert same == nonce(CHANNEL_ID, 0, "card:1:abc") and len(same) == 25
    assert len({same, nonce(CHANNEL_ID + 1, 0, "card:1:abc"), nonce(CHANNEL_ID, 1, "card:1:abc")}) == 3
    assert nonce(CHANNEL_ID, 0, "card:1:def") != same


async def test_two_posts_with_the_same_text_are_two_messages(tmp_path: Path) -> None:
    """An organizer who announces twice gets two announcements, though their text is the same."""
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        target = Target("discord", str(CHANNEL_ID))
        first = await deliver(emcee.app.publisher.outbox, "announce:1:a", target, lambda: const(Notice("Doors open")))
        second = await deliver(emcee.app.publisher.outbox, "announce:1:b", target, lambda: const(Notice("Doors open")))

    assert first != second
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["Doors open", "Doors open"]


async def test_a_ledger_retry_after_a_lost_response_posts_once(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        adapter = emcee.adapter
        send = adapter.send
        attempts: list[MessageRef] = []

        async def response_lost_once(target: ChannelRef, message: Message, key: str = "") -> MessageRef:
            attempts.append(await send(target, message, key))  # Discord posted it...
            if len(attempts) == 1:
                raise ConnectionResetError("connection reset before the response")  # ...but we never heard
            return attempts[-1]

        adapter.send = response_lost_once  # type: ignore[method-assign]
        ref = await deliver(
            emcee.app.publisher.outbox,
            "reminder:1:1d",
            Target("discord", str(CHANNEL_ID)),
            lambda: const(Notice("Tomorrow!")),
        )

    assert len(attempts) == 2 and attempts[0] == attempts[1] == ref  # Discord answered the retry with the same message
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["Tomorrow!"]


async def test_a_429_is_left_to_discord_py_and_posts_once(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        fake.rate_limit_next("POST", rf"/channels/{CHANNEL_ID}/messages", retry_after=0.05)
        ref = await emcee.adapter.send(CHANNEL, Notice("after the limit"))

    assert [c.status for c in fake.calls_to("POST", rf"/channels/{CHANNEL_ID}/messages")] == [429, 200]
    assert [m["id"] for m in fake.messages(CHANNEL_ID)] == [ref.message_id]


async def test_missing_permissions_are_logged_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "adapters.discord")
    async with FakeDiscord() as fake:
        speakers = fake.add_channel("speakers")
        # The bot's role may not embed links in #meetups; Discord refuses its posts there.
        fake.channel(CHANNEL_ID)["permission_overwrites"] = [
            {"id": BOT_ROLE_ID, "type": 0, "allow": "0", "deny": str(discord.Permissions(embed_links=True).value)}
        ]
        fake.fail_channel(CHANNEL_ID)
        settings = discord_settings(tmp_path, fake, announce_channels=[CHANNEL_ID, speakers])
        async with running_emcee(tmp_path, fake, settings) as emcee:
            await emcee.publish()
            answer = await emcee.command("rsvp", event=SLUG)  # the bot still works
            ledger = await deliveries(emcee)

    assert f"Discord announce channel {CHANNEL_ID}: the bot lacks embed_links" in caplog.text  # at startup
    assert (
        f"Discord refused sending a message in channel {CHANNEL_ID}: 403 Missing Permissions; the bot lacks embed_links"
        in caplog.text
    )
    assert ledger[f"card discord:{CHANNEL_ID}"][0] == "failed"
    assert "403 Missing Permissions; the bot lacks embed_links" in (ledger[f"card discord:{CHANNEL_ID}"][1] or "")
    assert ledger[f"card discord:{speakers}"] == ("sent", None)
    assert len(fake.messages(speakers)) == 2  # card and agenda
    refused_posts = [c for c in fake.calls if c.method == "POST" and c.path == f"/channels/{CHANNEL_ID}/messages"]
    assert len(refused_posts) == 2  # card and agenda, each tried once: a 403 is not retried
    assert "You're going" in answer.response["data"]["content"]


async def test_a_missing_channel_is_logged_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "adapters.discord")
    gone = 1301000000000000299
    async with FakeDiscord() as fake:
        settings = discord_settings(tmp_path, fake, announce_channels=[gone, CHANNEL_ID])
        async with running_emcee(tmp_path, fake, settings) as emcee:
            await emcee.publish()
            ledger = await deliveries(emcee)

    assert f"Discord announce channel {gone}: not visible to the bot" in caplog.text
    assert f"Discord sending a message in channel {gone} failed: 404 Unknown Channel" in caplog.text
    assert ledger[f"card discord:{gone}"][0] == "failed"
    assert ledger[f"card discord:{CHANNEL_ID}"] == ("sent", None)


async def test_a_member_who_blocks_dms(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "adapters.discord")
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        fake.fail_channel(fake.dm_channel_id(GRACE.id), 403, 50007, "Cannot send messages to this user")
        with pytest.raises(DiscordSendError) as refused:
            await emcee.adapter.send_dm(Actor("discord", str(GRACE.id)), Notice("psst"))

    assert refused.value.detail == "403 Cannot send messages to this user"
    assert f"channel {fake.dm_channel_id(GRACE.id)}: 403 Cannot send messages to this user" in caplog.text
