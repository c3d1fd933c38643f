"""Three `emcee run` replicas on one PostgreSQL database through a compressed evening, one of them SIGKILLed
(issue 13).

Discord runs at `shard_count = 2` (the fake gateway delivers a guild's events to its shard's session only);
Slack in HTTP mode behind a round-robin load balancer, or in Socket Mode with one connection per replica. An
event whose reminder, "up next" posts, start and speaker intros fall within about 20 seconds is published; 60
members RSVP (two thirds on Slack, a third on Discord) and organizers announce and shift the agenda, spread over
the replicas; mid-evening the replica holding shard 0 is SIGKILLed. Then: every interaction was answered within
3 s and acted on once, every post reached every target once (the ledger and the fakes' messages), the seats
never went above capacity, shard 0 was held again within 10 s, and no post was lost.

The kill falls between interactions: each is waited for until its final answer (a deferred one's follow-up).
An interaction is acted on at most once, so one whose replica dies between its acknowledgement and its commit
is lost, as the platforms deliver it only once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import POSTGRES_ENV
from crash_harness import Ledger, wait_for
from discord_harness import ADA, User
from replica_harness import Replicas, SlackMode, replicas
from sqlalchemy.engine import make_url

SLUG = "replica-night"
CAPACITY = 50
ANSWER_LIMIT = 3.0  # seconds: Slack's and Discord's deadline for an interaction's first answer
TAKE_OVER_LIMIT = 10.0  # seconds from the SIGKILL until shard 0 is held by a surviving replica
READY_LIMIT = 30.0  # seconds for replicas to start, or for the shards' sessions to run again after a kill
STARTS_IN = 12  # seconds from the event's creation to its start
REMINDED_AFTER = 4  # seconds from its creation to its reminder
ITEM_SECONDS = 2  # each agenda item's length
SHIFT = 2  # seconds the organizer shifts the agenda by
REMINDERS = """
[reminders]
item_offset = "2s"
"""  # "up next" 2 s before each item
SLACK_MEMBERS = [(f"U0RSVP{n:04d}", f"member{n}") for n in range(40)]
DISCORD_MEMBERS = [User(1301000000000100000 + n, f"guest{n}") for n in range(20)]
BEFORE_KILL = 2 / 3  # the share of each platform's members who RSVP before the kill
SEATS_EVERY = 0.25  # seconds between two checks of the seats
CANCELLING = SLACK_MEMBERS[:3]  # going members who cancel after the kill: three waitlisted are promoted


def postgres_urls() -> tuple[str, str]:
    """The database of POSTGRES_ENV, and its sibling with "_2" after its name (.ci/run creates both): each
    evening needs a database of its own, as the replicas' shard locks are the database's."""
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        pytest.skip(f"set {POSTGRES_ENV} to run three replicas on PostgreSQL")
    parsed = make_url(url)
    return url, parsed.set(database=f"{parsed.database}_2").render_as_string(hide_password=False)


async def test_three_replicas_with_slack_over_http_and_three_in_socket_mode(tmp_path: Path) -> None:
    """The two evenings side by side, each on its own fakes and database."""
    over_http, in_socket_mode = postgres_urls()
    await asyncio.gather(
        evening(tmp_path / "http", over_http, SlackMode.HTTP),
        evening(tmp_path / "socket", in_socket_mode, SlackMode.SOCKET),
    )


async def evening(tmp_path: Path, url: str, mode: SlackMode) -> None:
    tmp_path.mkdir()
    began = time.monotonic()
    async with replicas(tmp_path, url, mode, REMINDERS) as crowd:
        try:
            await crowd.wait_ready(timeout=READY_LIMIT)
            print(f"\n{mode}: three replicas ready in {time.monotonic() - began:.1f}s")
            async with seats_watched(crowd) as overbooked:
                await run_evening(crowd)
            assert overbooked == [], "seats above capacity"
        except BaseException as exc:
            for number, emcee in enumerate(crowd.emcees):
                (tmp_path / f"replica{number}.log").write_text("".join(emcee.output))
            exc.add_note(f"the replicas' logs: {tmp_path}/replica*.log")
            raise


async def run_evening(crowd: Replicas) -> None:
    starts = await publish(crowd)
    slack_first, discord_first = split(SLACK_MEMBERS), split(DISCORD_MEMBERS)
    await rsvps(crowd, slack_first[0], discord_first[0])

    victim = await crowd.holder(0)
    assert victim is not None
    await victim.kill()
    killed = time.monotonic()
    holder = await crowd.wait_held(0, timeout=TAKE_OVER_LIMIT)
    taken_over = time.monotonic() - killed
    assert holder is not victim
    await crowd.wait_ready(timeout=READY_LIMIT)  # every shard runs again (the guild's is 1): Discord answers

    await rsvps(crowd, slack_first[1], discord_first[1])
    await organizers(crowd)

    last_intro = starts + timedelta(seconds=2 * ITEM_SECONDS + SHIFT)
    await asyncio.sleep(max(0.0, (last_intro - datetime.now(UTC)).total_seconds()))
    await wait_for(lambda: evening_problems(crowd), timeout=10, what="the evening's posts")
    assert crowd.late_answers(ANSWER_LIMIT) == []
    assert await once(crowd) == []
    print(
        f"shard 0 held again {taken_over:.1f}s after the SIGKILL; slowest of {len(crowd.answers)} answers: "
        f"{slowest(crowd):.2f}s"
    )


def split(members: list[Any]) -> tuple[list[Any], list[Any]]:
    cut = round(len(members) * BEFORE_KILL)
    return members[:cut], members[cut:]


def slowest(crowd: Replicas) -> float:
    return max(answer.seconds for answer in crowd.answers)


async def publish(crowd: Replicas) -> datetime:
    """An event starting STARTS_IN seconds from now, reminded REMINDED_AFTER seconds after its creation, with two
    talks back to back; returns its start."""
    starts = (datetime.now(UTC) + timedelta(seconds=STARTS_IN)).replace(microsecond=0)
    lead = int((starts - datetime.now(UTC)).total_seconds()) - REMINDED_AFTER
    when = f"--starts {starts:%Y-%m-%d %H:%M:%S} --reminders {lead}s --capacity {CAPACITY}"
    await crowd.slack("/emcee", f'event create {SLUG} "Replica Night" {when}')
    for number in range(2):
        begins = starts + timedelta(seconds=number * ITEM_SECONDS)
        ends = begins + timedelta(seconds=ITEM_SECONDS)
        item = f'"Talk {number + 1}" --ends {ends:%H:%M:%S} --event {SLUG}'
        await crowd.slack("/emcee", f"agenda add {begins:%Y-%m-%d %H:%M:%S} {item}")
    await crowd.slack("/emcee", f"event publish {SLUG}")
    return starts


async def rsvps(crowd: Replicas, slack: list[tuple[str, str]], discord: list[User]) -> None:
    """Everyone going, six at a time, Slack's spread over the replicas and Discord's on the guild's shard."""
    sends: list[Callable[[], Awaitable[Any]]] = [
        *(partial(crowd.slack, "/rsvp", f"{SLUG} going", member) for member in slack),
        *(partial(crowd.discord, "rsvp", user, event=SLUG, status="going") for user in discord),
    ]
    await in_waves(sends, 6)


async def in_waves(sends: list[Callable[[], Awaitable[Any]]], width: int) -> None:
    for start in range(0, len(sends), width):
        await asyncio.gather(*(send() for send in sends[start : start + width]))


async def organizers(crowd: Replicas) -> None:
    """An announce and an agenda shift on Discord (the commands issue 13 saw run twice), an announce on Slack, and
    three going members cancelling on Slack, which promotes three waitlisted ones."""
    await crowd.discord("emcee announce", ADA, event=SLUG, text="Doors open in a moment")
    await crowd.discord("emcee agenda shift", ADA, by=f"{SHIFT}s", event=SLUG)
    await crowd.slack("/emcee", f"announce {SLUG} Last call for seats")
    await in_waves([partial(crowd.slack, "/rsvp", f"{SLUG} no", member) for member in CANCELLING], 3)


@asynccontextmanager
async def seats_watched(crowd: Replicas) -> AsyncIterator[list[str]]:
    """Check the seats every SEATS_EVERY seconds while the block runs; the list gathers what was ever wrong."""
    found: list[str] = []

    async def watch() -> None:
        while True:
            if await crowd.scalar("SELECT count(*) FROM event WHERE slug = :slug", slug=SLUG):
                found.extend(await seats(crowd))
            await asyncio.sleep(SEATS_EVERY)

    watcher = asyncio.create_task(watch())
    try:
        yield found
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
    found.extend(await seats(crowd))


async def seats(crowd: Replicas) -> list[str]:
    """What is wrong with the seats: more going than capacity, or a count that differs from the rows."""
    ((capacity, taken, going),) = await crowd.rows(
        "SELECT e.capacity, e.seats_taken, COALESCE(SUM(1 + r.guests) FILTER (WHERE r.status = 'going'), 0) "
        "FROM event e LEFT JOIN rsvp r ON r.event_id = e.id WHERE e.slug = :slug GROUP BY e.id",
        slug=SLUG,
    )
    found = [f"{going} going of {capacity}"] if going > capacity else []
    return found + ([f"seats_taken {taken}, going rows {going}"] if taken != going else [])


async def once(crowd: Replicas) -> list[str]:
    """Each member has one RSVP (60 in all, the capacity full) and each Discord interaction one initial response."""
    members = await crowd.rows("SELECT platform, user_id, count(*) FROM rsvp GROUP BY platform, user_id")
    found = [f"{platform} {user} has {count} RSVPs" for platform, user, count in members if count != 1]
    if len(members) != len(SLACK_MEMBERS) + len(DISCORD_MEMBERS):
        found.append(f"{len(members)} members have an RSVP")
    going = await crowd.scalar("SELECT count(*) FROM rsvp WHERE status = 'going'")
    if going != CAPACITY:
        found.append(f"{going} going, not {CAPACITY}")
    fake = crowd.platforms.discord
    for interaction_id in fake.interactions:
        if (answers := len(fake.calls_to("POST", rf"/interactions/{interaction_id}/.*/callback"))) != 1:
            found.append(f"Discord interaction {interaction_id} answered {answers} times")
    return found


async def evening_problems(crowd: Replicas) -> list[str]:
    """Every post of the evening once per target (by the ledger and by the fakes' messages), none missing."""
    ledger = await crowd.ledger()
    event_id = await crowd.scalar("SELECT id FROM event WHERE slug = :slug", slug=SLUG)
    items = [row[0] for row in await crowd.rows("SELECT id FROM agenda_item ORDER BY starts_at")]
    promoted = await crowd.rows("SELECT platform, user_id FROM rsvp WHERE promotions > 0")
    channels = crowd.platforms.announce_targets()
    posts = {
        f"card:{event_id}:": (3, channels),  # published, announced on Discord, announced on Slack
        f"agenda:{event_id}:": (3, channels),
        f"announce:{event_id}:": (2, channels),
        f"agenda-update:{event_id}:": (1, channels),
        f"remind:{event_id}:": (1, channels),
        f"start:{event_id}:": (1, channels),
        **{f"{kind}:{item}:": (1, channels) for item in items for kind in ("next", "intro")},
        **{f"promoted:{event_id}:{user}:": (1, [f"{platform}:@{user}"]) for platform, user in promoted},
    }
    found = [] if len(promoted) == len(CANCELLING) else [f"{len(promoted)} promoted, not {len(CANCELLING)}"]
    for prefix, (count, targets) in posts.items():
        found += posted(crowd, ledger, prefix, count, targets)
    return found + crowd.strays(ledger)


def posted(crowd: Replicas, ledger: Ledger, prefix: str, count: int, targets: list[str]) -> list[str]:
    keys = sorted({key for key, _ in ledger if key.startswith(prefix)})
    if len(keys) != count:
        return [f"{prefix}: {len(keys)} post keys, not {count}: {keys}"]
    return [problem for key in keys for problem in crowd.platforms.problems(key, targets, ledger)]
