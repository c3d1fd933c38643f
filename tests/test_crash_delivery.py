"""Crash tests of durable delivery (issue 11): the real `emcee run` is SIGKILLed mid-send, then restarted.

Each kill point runs three times at once, each time with its own fakes and database, killing at a
different request (the 1st, 2nd, ... of those the trip picks, on Slack or on Discord) and a different
delay after it (0, 30 and 200 ms). Both fakes answer the sends the trips pick 300 ms late, as busy
platforms do, so every kill lands while sends are under way: each kill must leave something undone.
The restarted process must then bring every post to every target exactly once within 20 s (counted
by post key: Slack's message metadata, Discord's nonce), leave no claim behind in /metrics, and stop
cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from crash_harness import (
    CARD,
    SLACK_CHANNELS,
    Emcee,
    Platforms,
    discord_edits,
    discord_posts,
    platforms,
    slack_edits,
    slack_key,
    slack_posts,
    wait_for,
)
from discord_harness import User
from fakes.discord import CHANNEL_ID, FakeDiscord
from fakes.slack import FakeSlack
from fakes.trips import Mode, Trip
from slack_sdk.web.async_client import AsyncWebClient

SLUG = "crash-night"
STARTS = datetime.now(UTC) + timedelta(days=30)
CREATE = f'event create {SLUG} "Crash Night" --starts {STARTS:%Y-%m-%d} 18:00'
SLACK_MEMBERS = (("U0MEMBER01", "member1"), ("U0MEMBER02", "member2"))
DISCORD_MEMBER = User(1301000000000000777, "member3")

Step = Callable[[Emcee, Platforms], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class KillAt:
    """Where one repetition kills: once the `nth` request a trip picks on `platform` ("slack", "discord" or
    "both") arrived, `delay` seconds later."""

    platform: str
    nth: int
    delay: float


@dataclass(frozen=True)
class KillPoint:
    prepare: Step  # the state before the trips are set
    act: Step  # what sets off the sends the trips catch; cut off by the kill
    slack: Callable[[Any], bool]  # the trips' predicates on each platform's requests
    discord: Callable[[Any], bool]
    undone: Callable[[Platforms], list[str]]  # what is not right yet: something after the kill, nothing at the end
    mode: Mode = Mode.ANSWER  # what the platform does with the requests the trips catch


LAG = 0.3  # seconds the fakes take to answer each send a trip picks
RECOVERY = 20.0  # seconds a restarted process has to make everything right


async def crash_three_times(tmp_path: Path, point: KillPoint, kills: tuple[KillAt, ...]) -> None:
    assert len(kills) >= 3
    async with asyncio.TaskGroup() as group:
        for index, kill in enumerate(kills):
            group.create_task(_crash_once(tmp_path / f"run{index}", point, kill))


async def _crash_once(path: Path, point: KillPoint, kill: KillAt) -> None:
    path.mkdir()
    async with platforms(path) as fakes:
        try:
            await _kill_and_restart(fakes, point, kill)
        except Exception as exc:
            exc.add_note(f"killed at {kill}")
            raise


async def _kill_and_restart(fakes: Platforms, point: KillPoint, kill: KillAt) -> None:
    first = await Emcee.start(fakes)
    try:
        await point.prepare(first, fakes)
        trips = _trips(fakes, point, kill)
        acting = asyncio.create_task(point.act(first, fakes))
        try:
            async with asyncio.timeout(20):
                await asyncio.gather(*(trip.tripped.wait() for trip in trips))
        except TimeoutError:
            seen = [len(trip.seen) for trip in trips]
            raise AssertionError(f"the trips saw {seen} requests, not {kill.nth}:\n" + first.log()) from None
        await asyncio.sleep(kill.delay)
        await first.kill()
        with suppress(aiohttp.ClientError):  # the kill may cut the command's own answer off
            await acting
    finally:
        await first.close()
    assert point.undone(fakes), "the kill came after everything was done"
    fakes.clear_trips()
    second = await Emcee.start(fakes)
    try:
        await wait_for(lambda: point.undone(fakes), RECOVERY)
        await second.wait_no_claims()
        await second.stop()
    except AssertionError as exc:
        exc.add_note("the restarted process wrote:\n" + second.log())
        raise
    finally:
        await second.close()


def _trips(fakes: Platforms, point: KillPoint, kill: KillAt) -> list[Trip[Any]]:
    """Both platforms lag; the trips on the kill's platform (or both) are the ones the kill waits for."""
    slack = fakes.slack.trips.add(point.slack, kill.nth, point.mode, LAG)
    discord = fakes.discord.trips.add(point.discord, kill.nth, point.mode, LAG)
    awaited: dict[str, list[Trip[Any]]] = {"slack": [slack], "discord": [discord], "both": [slack, discord]}
    return awaited[kill.platform]


# --- steps ------------------------------------------------------------------------------------


async def create(emcee: Emcee, fakes: Platforms) -> None:
    await emcee.slack("/emcee", f"{CREATE} --capacity 5")


async def publish(emcee: Emcee, fakes: Platforms) -> None:
    await emcee.slack("/emcee", f"event publish {SLUG}")


async def nothing(emcee: Emcee, fakes: Platforms) -> None:
    return None


def card_and_agenda(fakes: Platforms) -> list[str]:
    event_id = fakes.event_id(SLUG)
    targets = fakes.announce_targets()
    return fakes.undelivered({f"card:{event_id}:": targets, f"agenda:{event_id}:": targets})


async def published(emcee: Emcee, fakes: Platforms) -> None:
    await create(emcee, fakes)
    await publish(emcee, fakes)
    await wait_for(lambda: card_and_agenda(fakes), RECOVERY)


# --- the kill points --------------------------------------------------------------------------


async def test_kill_mid_card_fan_out(tmp_path: Path) -> None:
    point = KillPoint(create, publish, slack_posts("card:"), discord_posts(CARD), card_and_agenda)
    kills = (KillAt("slack", 1, 0), KillAt("discord", 2, 0.03), KillAt("slack", 2, 0.2))
    await crash_three_times(tmp_path, point, kills)


async def test_kill_mid_agenda_post(tmp_path: Path) -> None:
    point = KillPoint(create, publish, slack_posts("agenda:"), discord_posts("🗓 Agenda"), card_and_agenda)
    kills = (KillAt("discord", 1, 0), KillAt("slack", 2, 0.03), KillAt("discord", 2, 0.2))
    await crash_three_times(tmp_path, point, kills)


async def test_kill_during_sends_whose_answers_stall(tmp_path: Path) -> None:
    """Slack and Discord both store the card, but their answers never come: the restart finds the Slack
    post by its metadata and resends to Discord with the same nonce, which Discord answers with the first."""
    point = KillPoint(create, publish, slack_posts("card:"), discord_posts(CARD), card_and_agenda, Mode.STALL)
    kills = (KillAt("both", 1, 0), KillAt("both", 2, 0.03), KillAt("both", 1, 0.2))
    await crash_three_times(tmp_path, point, kills)


async def waitlisted(emcee: Emcee, fakes: Platforms) -> None:
    """Capacity 2: the first Slack member is going with a guest; the second, then the Discord member, wait."""
    await emcee.slack("/emcee", f"{CREATE} --capacity 2")
    await publish(emcee, fakes)
    await wait_for(lambda: card_and_agenda(fakes), RECOVERY)
    await emcee.slack("/rsvp", f"{SLUG} going +1", SLACK_MEMBERS[0])
    await emcee.slack("/rsvp", f"{SLUG} going", SLACK_MEMBERS[1])
    await emcee.discord("rsvp", DISCORD_MEMBER, event=SLUG, status="going")


async def first_cancels(emcee: Emcee, fakes: Platforms) -> None:
    await emcee.slack("/rsvp", f"{SLUG} no", SLACK_MEMBERS[0])


def promotion_dms(fakes: Platforms) -> list[str]:
    """Each promoted member is told once, in their DMs."""
    event_id = fakes.event_id(SLUG)
    slack_user, discord_user = SLACK_MEMBERS[1][0], DISCORD_MEMBER.id
    return fakes.undelivered(
        {
            f"promoted:{event_id}:{slack_user}:": [f"slack:@{slack_user}"],
            f"promoted:{event_id}:{discord_user}:": [f"discord:@{discord_user}"],
        }
    )


async def test_kill_mid_promotion_dm(tmp_path: Path) -> None:
    point = KillPoint(waitlisted, first_cancels, slack_posts("promoted:"), discord_posts("🎉"), promotion_dms)
    kills = (KillAt("slack", 1, 0), KillAt("discord", 1, 0.03), KillAt("slack", 1, 0.2))
    await crash_three_times(tmp_path, point, kills)


async def one_goes(emcee: Emcee, fakes: Platforms) -> None:
    await emcee.slack("/rsvp", f"{SLUG} going", SLACK_MEMBERS[0])


def stale_cards(fakes: Platforms) -> list[str]:
    """The posted cards that do not show the one member going (of 5 seats)."""
    prefix = f"card:{fakes.event_id(SLUG)}:"
    cards = [m for m in fakes.slack.messages.values() if slack_key(m).startswith(prefix)]
    stale = [f"slack {m['channel']}" for m in cards if "1/5 going" not in json.dumps(m["blocks"])]
    for channel_id in fakes.discord_channels:
        for message in fakes.discord.messages(channel_id):
            fields = {f["name"]: f["value"] for embed in message["embeds"] for f in embed.get("fields", [])}
            if message["components"] and fields.get("Going") != "1 / 5":
                stale.append(f"discord {channel_id}: Going {fields.get('Going')}")
    return stale


async def test_kill_mid_card_edit(tmp_path: Path) -> None:
    """The edits the trip picks, from the nth on, never reach the platform: the sender died first."""
    point = KillPoint(published, one_goes, slack_edits, discord_edits, stale_cards, Mode.HOLD)
    kills = (KillAt("slack", 1, 0), KillAt("discord", 2, 0.03), KillAt("slack", 2, 0.2))
    await crash_three_times(tmp_path, point, kills)


REMINDER_DUE = 4  # seconds from the event's creation to its reminder


async def reminded_soon(emcee: Emcee, fakes: Platforms) -> None:
    """A published event whose own reminder falls a few seconds from now (its start is on a whole minute)."""
    now = datetime.now(UTC)
    starts = (now + timedelta(hours=3)).replace(second=0, microsecond=0)
    lead = int((starts - now).total_seconds()) - REMINDER_DUE
    when = f"--starts {starts:%Y-%m-%d %H:%M} --reminders {lead}s"
    await emcee.slack("/emcee", f'event create {SLUG} "Crash Night" {when}')
    await publish(emcee, fakes)
    await wait_for(lambda: card_and_agenda(fakes), RECOVERY)


def reminder(fakes: Platforms) -> list[str]:
    return fakes.undelivered({f"remind:{fakes.event_id(SLUG)}:": fakes.announce_targets()})


async def test_kill_mid_timed_fan_out(tmp_path: Path) -> None:
    point = KillPoint(reminded_soon, nothing, slack_posts("remind:"), discord_posts("⏰"), reminder)
    kills = (KillAt("slack", 1, 0), KillAt("discord", 2, 0.03), KillAt("slack", 2, 0.2))
    await crash_three_times(tmp_path, point, kills)


# --- the fakes as the platforms document them -------------------------------------------------


async def test_fake_slack_shows_a_stalled_post_in_history_with_its_metadata() -> None:
    """Slack's conversations.history returns a message's metadata with include_all_metadata."""
    async with FakeSlack(real_ts=True) as fake:
        client = AsyncWebClient(token="xoxb-emcee-crash", base_url=fake.api_base_url)
        trip = fake.trips.add(lambda call: call.method == "chat.postMessage", mode=Mode.STALL)
        metadata = {"event_type": "emcee_post", "event_payload": {"key": "card:1:1"}}
        channel = SLACK_CHANNELS[0]
        posting = asyncio.create_task(client.chat_postMessage(channel=channel, text="card", metadata=metadata))
        await asyncio.wait_for(trip.tripped.wait(), 5)
        history = await client.conversations_history(channel=channel, include_all_metadata=True)
        assert not posting.done()
        assert [m["metadata"] for m in history["messages"]] == [metadata]
        fake.trips.clear()
        assert (await posting)["ts"] == history["messages"][0]["ts"]


async def test_fake_discord_answers_an_enforced_nonce_with_the_stalled_message() -> None:
    """Discord: with enforce_nonce, a nonce already used by the same author in the past few minutes returns
    that message and creates none; without enforce_nonce, the nonce is not checked."""
    async with FakeDiscord() as fake, aiohttp.ClientSession() as client:
        url = f"{fake.api_base_url}/channels/{CHANNEL_ID}/messages"
        headers = {"Authorization": f"Bot {fake.token}"}
        body = {"content": "card", "nonce": "card-1", "enforce_nonce": True}
        trip = fake.trips.add(discord_posts("card"), mode=Mode.STALL)
        stalled = asyncio.create_task(client.post(url, json=body, headers=headers))
        await asyncio.wait_for(trip.tripped.wait(), 5)
        assert len(fake.messages(CHANNEL_ID)) == 1 and not stalled.done()
        fake.trips.clear()
        async with client.post(url, json=body, headers=headers) as again:
            retried = await again.json()
        async with client.post(url, json={**body, "enforce_nonce": False}, headers=headers) as unchecked:
            other = await unchecked.json()
        (await stalled).close()
        assert [m["id"] for m in fake.messages(CHANNEL_ID)] == [retried["id"], other["id"]]
        assert retried["id"] != other["id"]
