"""Invariant 2: the waitlist is first come, first served, and party-aware."""

from __future__ import annotations

from conftest import create_event, member
from test_seats import seats_and_rsvps

from bot.effects import Effect, EffectBus, MemberPromoted
from bot.engine import Engine
from bot.invocation import CommandLine


def statuses(rsvps) -> dict[str, tuple[str, int]]:  # type: ignore[no-untyped-def]
    return {r.user_id: (r.status, r.guests) for r in rsvps}


async def collect(bus: EffectBus) -> list[Effect]:
    seen: list[Effect] = []

    async def record(effect: Effect) -> None:
        seen.append(effect)

    bus.subscribe(record)
    return seen


async def test_waitlist_reply_gives_position(engine: Engine) -> None:
    await create_event(engine, capacity=1)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp"))
    second = await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))
    third = await engine.handle(CommandLine(member("chen"), None, "/rsvp going"))
    assert "waitlist" in second.text and "position 1" in second.text
    assert "position 2" in third.text


async def test_cancellation_promotes_first_party_that_fits_and_smaller_party_may_pass(
    engine: Engine, bus: EffectBus
) -> None:
    promoted = await collect(bus)
    await create_event(engine, capacity=3)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp going +1"))
    await engine.handle(CommandLine(member("dara"), None, "/rsvp going +1"))  # waits first, party of 2
    await engine.handle(CommandLine(member("eli"), None, "/rsvp going"))  # waits second, party of 1
    await engine.handle(CommandLine(member("gus"), None, "/rsvp going"))  # waits third, party of 1

    await engine.handle(CommandLine(member("ada"), None, "/rsvp no"))  # frees 1 seat: dara's 2 don't fit, eli passes
    await bus.drain()
    event, rsvps = await seats_and_rsvps(engine)
    assert statuses(rsvps)["dara"] == ("waitlisted", 1)
    assert statuses(rsvps)["eli"] == ("going", 0)
    assert statuses(rsvps)["gus"] == ("waitlisted", 0)
    assert [e.member.user_id for e in promoted if isinstance(e, MemberPromoted)] == ["eli"]

    await engine.handle(CommandLine(member("bo"), None, "/rsvp no"))  # frees 2: dara's party first, in queue order
    await bus.drain()
    event, rsvps = await seats_and_rsvps(engine)
    assert statuses(rsvps)["dara"] == ("going", 1)
    assert statuses(rsvps)["gus"] == ("waitlisted", 0)
    assert event.seats_taken == 3
    assert [e.member.user_id for e in promoted if isinstance(e, MemberPromoted)] == ["eli", "dara"]


async def test_fewer_guests_frees_seats_for_the_waitlist(engine: Engine) -> None:
    await create_event(engine, capacity=3)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going +2"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going +1"))
    event, rsvps = await seats_and_rsvps(engine)
    assert statuses(rsvps) == {"ada": ("going", 1), "bo": ("going", 0)}
    assert event.seats_taken == 3


async def test_more_guests_than_free_seats_keeps_the_old_rsvp(engine: Engine) -> None:
    await create_event(engine, capacity=3)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))
    reply = await engine.handle(CommandLine(member("ada"), None, "/rsvp going +2"))
    assert not reply.ok and "unchanged" in reply.text
    event, rsvps = await seats_and_rsvps(engine)
    assert statuses(rsvps)["ada"] == ("going", 0)
    assert event.seats_taken == 2


async def test_raising_capacity_promotes_waiting_members(engine: Engine) -> None:
    await create_event(engine, capacity=1)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))
    reply = await engine.handle(CommandLine(member("organizer"), None, "/emcee event edit --capacity 2"))
    assert reply.ok, reply.text
    _, rsvps = await seats_and_rsvps(engine)
    assert statuses(rsvps)["bo"] == ("going", 0)


async def test_waitlisted_member_who_declines_leaves_the_queue(engine: Engine) -> None:
    await create_event(engine, capacity=1)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("chen"), None, "/rsvp going"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp no"))
    await engine.handle(CommandLine(member("ada"), None, "/rsvp no"))
    _, rsvps = await seats_and_rsvps(engine)
    assert statuses(rsvps)["chen"] == ("going", 0)
    assert statuses(rsvps)["bo"] == ("declined", 0)
