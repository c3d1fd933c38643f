"""The RSVP desk's group commit: RSVPs that arrive together are settled in one transaction, each exactly as if
it had been committed alone in arrival order, and one that fails fails alone."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import create_event, member
from sqlmodel import col, select

import bot.rsvps
from bot.commands.args import UsageError
from bot.engine import Engine
from bot.invocation import CommandLine
from bot.messages import INTERNAL_ERROR
from bot.models import Event, Rsvp, RsvpStatus
from bot.rsvp_desk import RsvpAsk, Settled
from bot.seating import Seating

WANTED = (RsvpStatus.GOING, RsvpStatus.GOING, RsvpStatus.GOING, RsvpStatus.MAYBE, RsvpStatus.DECLINED)


def asks(slug: str, seed: int) -> list[RsvpAsk]:
    """Forty answers by twelve members to `slug`: most go, some with guests, many change their minds."""
    pick = random.Random(seed)
    return [
        RsvpAsk(slug, member(f"m{pick.randrange(12)}"), False, pick.choice(WANTED), pick.randrange(3))
        for _ in range(40)
    ]


def seen(result: Settled | BaseException) -> tuple[Any, ...]:
    """What the member is told: their status, guests, place in the queue and who moved up; or the refusal."""
    if isinstance(result, BaseException):
        return ("refused", str(result))
    outcome = result.outcome
    promotions = tuple((p.member.user_id, p.number) for p in outcome.promoted)
    return (outcome.status, outcome.guests, outcome.waitlist_position, promotions, outcome.reminders_moved)


async def stored(engine: Engine, slug: str) -> tuple[int, list[tuple[Any, ...]]]:
    """The event's seats taken, and its RSVPs in queue order."""
    async with engine.db.reading() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        rows = await session.exec(
            select(Rsvp).where(Rsvp.event_id == event.id).order_by(col(Rsvp.queued_at), col(Rsvp.id))
        )
        return event.seats_taken, [(r.user_id, r.status, r.guests, r.queued_at, r.promotions) for r in rows]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_burst_settles_exactly_as_the_same_rsvps_one_at_a_time(engine: Engine, seed: int) -> None:
    await create_event(engine, "one-by-one", capacity=4)
    await create_event(engine, "burst", capacity=4)
    alone = []
    for ask in asks("one-by-one", seed):
        alone.append(seen(*await asyncio.gather(engine.rsvps.settle(ask), return_exceptions=True)))
    together = await asyncio.gather(*(engine.rsvps.settle(ask) for ask in asks("burst", seed)), return_exceptions=True)
    assert [seen(result) for result in together] == alone
    assert await stored(engine, "burst") == await stored(engine, "one-by-one")
    assert any(status is RsvpStatus.WAITLISTED for status, *_ in alone), "the seed should fill the event"


async def test_a_burst_of_rsvps_commits_in_far_fewer_transactions_than_rsvps(engine: Engine) -> None:
    await create_event(engine, capacity=20)
    commits = 0

    def count(*_: object) -> None:
        nonlocal commits
        commits += 1

    sa.event.listen(engine.db.engine.sync_engine, "commit", count)
    replies = await asyncio.gather(
        *(engine.handle(CommandLine(member(f"m{index}"), None, "/rsvp bk-june")) for index in range(50))
    )
    assert all(reply.ok for reply in replies)
    assert sum("You're going" in reply.text for reply in replies) == 20
    assert commits <= 5, f"{commits} transactions for 50 RSVPs"


async def test_an_rsvp_that_fails_in_a_group_fails_alone(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    await create_event(engine)
    save = bot.rsvps.save_seatings

    def failing_for_one(connection: Any, seatings: Iterable[Seating]) -> None:
        seatings = list(seatings)
        if any(party.user_id == "unlucky" for seating in seatings for party in seating.changed.values()):
            raise RuntimeError("the disk failed under this one")
        save(connection, seatings)

    monkeypatch.setattr("bot.rsvp_desk.save_seatings", failing_for_one)
    names = [f"m{index}" for index in range(5)] + ["unlucky"] + [f"m{index}" for index in range(5, 10)]
    replies = await asyncio.gather(*(engine.handle(CommandLine(member(name), None, "/rsvp bk-june")) for name in names))
    answered = dict(zip(names, replies, strict=True))
    assert answered.pop("unlucky") == INTERNAL_ERROR
    assert all(reply.ok for reply in answered.values())
    seats, rows = await stored(engine, "bk-june")
    assert seats == 10 and sorted(user for user, *_ in rows) == sorted(answered)


async def test_a_refused_rsvp_in_a_group_writes_nothing_and_spares_the_others(engine: Engine) -> None:
    await create_event(engine, capacity=2)
    going = [RsvpAsk("bk-june", member(f"m{index}"), False, RsvpStatus.GOING, 0) for index in range(2)]
    await asyncio.gather(*(engine.rsvps.settle(ask) for ask in going))
    more = RsvpAsk("bk-june", member("m0"), False, RsvpStatus.GOING, 2)  # two guests more: no seats left
    nowhere = RsvpAsk("no-such-event", member("m9"), False, RsvpStatus.GOING, 0)
    joins = RsvpAsk("bk-june", member("m2"), False, RsvpStatus.GOING, 0)
    settling = (engine.rsvps.settle(ask) for ask in (more, nowhere, joins))
    results = await asyncio.gather(*settling, return_exceptions=True)
    assert isinstance(results[0], UsageError) and "0 seats left" in str(results[0])
    assert isinstance(results[1], UsageError) and "no event called 'no-such-event'" in str(results[1])
    assert isinstance(results[2], Settled) and results[2].outcome.waitlist_position == 1
    seats, rows = await stored(engine, "bk-june")
    assert seats == 2
    assert [(user, status, guests) for user, status, guests, *_ in rows] == [
        ("m0", RsvpStatus.GOING, 0),
        ("m1", RsvpStatus.GOING, 0),
        ("m2", RsvpStatus.WAITLISTED, 0),
    ]
