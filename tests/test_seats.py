"""Invariant 1: going seats never exceed capacity, however many RSVPs race."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import create_event, member
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.db import Database
from bot.engine import Engine
from bot.invocation import CommandLine
from bot.models import Event, Rsvp, RsvpStatus


async def seats_and_rsvps(engine: Engine, slug: str = "bk-june") -> tuple[Event, list[Rsvp]]:
    async with engine.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        rsvps = list((await session.exec(select(Rsvp).where(Rsvp.event_id == event.id))).all())
    return event, rsvps


def going_seats(rsvps: list[Rsvp]) -> int:
    return sum(1 + r.guests for r in rsvps if r.status == RsvpStatus.GOING)


async def test_200_concurrent_rsvps_never_exceed_50_seats(engine: Engine) -> None:
    await create_event(engine, capacity=50)
    replies = await asyncio.gather(
        *(engine.handle(CommandLine(member(f"m{i}"), None, "/rsvp going")) for i in range(200))
    )
    assert all(reply.ok for reply in replies)
    event, rsvps = await seats_and_rsvps(engine)
    assert going_seats(rsvps) == 50 == event.seats_taken
    assert sum(r.status == RsvpStatus.WAITLISTED for r in rsvps) == 150
    assert sum("waitlist" in reply.text for reply in replies) == 150


async def test_concurrent_parties_fill_exactly_and_never_overflow(engine: Engine) -> None:
    await create_event(engine, capacity=10)
    lines = ["/rsvp going +2", "/rsvp going +1", "/rsvp going"] * 20
    await asyncio.gather(*(engine.handle(CommandLine(member(f"p{i}"), None, line)) for i, line in enumerate(lines)))
    event, rsvps = await seats_and_rsvps(engine)
    assert going_seats(rsvps) == event.seats_taken <= 10
    # Parties of one are always able to use a last free seat, so the room ends full.
    assert event.seats_taken == 10


_actions = st.lists(
    st.tuples(st.integers(0, 7), st.sampled_from(["going", "maybe", "no"]), st.integers(0, 2)), max_size=25
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=_actions, capacity=st.integers(1, 6))
async def test_any_rsvp_sequence_keeps_seats_and_waitlist_consistent(
    engine: Engine, actions: list[tuple[int, str, int]], capacity: int
) -> None:
    slug = f"prop-{abs(hash((tuple(actions), capacity))) % 10**9}"
    await create_event(engine, slug=slug, capacity=capacity)
    for who, status, guests in actions:
        await engine.handle(CommandLine(member(f"u{who}"), None, f"/rsvp {slug} {status} +{guests}"))
        event, rsvps = await seats_and_rsvps(engine, slug)
        assert going_seats(rsvps) == event.seats_taken <= capacity
        # Nobody waits who would fit: every waiting party is larger than the free seats.
        free = capacity - event.seats_taken
        assert all(1 + r.guests > free for r in rsvps if r.status == RsvpStatus.WAITLISTED)


async def test_two_processes_on_one_sqlite_file_share_one_capacity(engine: Engine, tmp_path: Path) -> None:
    """Two Database objects have separate pools and locks, as two processes would."""
    if not engine.db.is_sqlite:
        pytest.skip("PostgreSQL proves this through its pooled connections in the other tests")
    await create_event(engine, capacity=20)
    other = Engine(Database(engine.db.url.replace("sqlite+aiosqlite", "sqlite")), engine.settings, engine.clock)
    try:
        await asyncio.gather(
            *(engine.handle(CommandLine(member(f"a{i}"), None, "/rsvp going")) for i in range(40)),
            *(other.handle(CommandLine(member(f"b{i}"), None, "/rsvp going")) for i in range(40)),
        )
    finally:
        await other.db.close()
    event, rsvps = await seats_and_rsvps(engine)
    assert going_seats(rsvps) == event.seats_taken == 20
    assert sum(r.status == RsvpStatus.WAITLISTED for r in rsvps) == 60
