"""The runner: real timers on short offsets, restarts, crashes mid-fan-out, and two runners on one database."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from conftest import ORGANIZER
from ledger_rows import delivery_row
from sqlmodel import select
from test_delivery import RecordingAdapter

from bot.clock import Clock, FakeClock, SystemClock
from bot.config import Settings
from bot.db import Database
from bot.delivery import Ledger, Outbox, Target
from bot.effects import EffectBus
from bot.engine import Engine
from bot.invocation import CommandLine, MessageRef
from bot.messages import Message, Reminder, SpeakerIntro
from bot.models import AgendaItem, Delivery, DeliveryStatus, Event, EventStatus, Rsvp, RsvpStatus
from schedules.planner import PlannedPost, PostKind, Rules
from schedules.runner import Runner

GENERAL = Target("rec", "general")
RANDOM = Target("rec", "random")
ADA = Target("rec", "ada", user=True)
# Reminders a few hundred milliseconds apart, so that real timers fire within the test.
FAST = Rules(event_offsets=(), item_offset=timedelta(milliseconds=300), dm_offset=timedelta(milliseconds=200))


async def add_event(
    db: Database,
    starts_at: datetime,
    items: Sequence[tuple[timedelta, str, str]] = (),
    members: Sequence[str] = (),
    timezone: str = "UTC",
) -> tuple[int, list[int]]:
    """A published event with agenda items (offset from the start, title, kind) and members who opted in to DMs."""
    async with db.session() as session:
        event = Event(
            slug=f"ev-{starts_at.timestamp():.0f}",
            uid=f"{starts_at.timestamp()}@test",
            title="Tuesday talks",
            venue="Room 1",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            timezone=timezone,
            status=EventStatus.PUBLISHED,
            updated_at=starts_at,
        )
        session.add(event)
        await session.flush()
        rows = [
            AgendaItem(
                event_id=event.id or 0,
                position=position,
                starts_at=starts_at + offset,
                ends_at=starts_at + offset + timedelta(minutes=30),
                title=title,
                kind=kind,
            )
            for position, (offset, title, kind) in enumerate(items, start=1)
        ]
        session.add_all(rows)
        for name in members:
            session.add(
                Rsvp(
                    event_id=event.id or 0,
                    platform="rec",
                    user_id=name,
                    status=RsvpStatus.GOING,
                    queued_at=starts_at,
                    dm_reminders=True,
                )
            )
        await session.flush()
        return event.id or 0, [row.id or 0 for row in rows]


def make_runner(
    db: Database,
    clock: Clock,
    adapter: RecordingAdapter,
    rules: Rules = FAST,
    targets: Sequence[Target] = (GENERAL,),
) -> Runner:
    return Runner(db, clock, Outbox(Ledger(db, clock), {"rec": adapter}), targets, rules)


async def rows(db: Database) -> dict[tuple[str, str], Delivery]:
    async with db.session() as session:
        return {(row.key, row.target): row for row in (await session.exec(select(Delivery))).all()}


def slot_of(runner: Runner, slot: str) -> PlannedPost:
    return next(post for post in runner.jobs.values() if post.slot == slot)


# -- real timers ------------------------------------------------------------------------------


async def test_posts_fire_within_a_second_of_their_run_at_and_are_built_when_they_fire(db: Database) -> None:
    now = SystemClock().now()
    _, (talk,) = await add_event(db, now + timedelta(seconds=1), [(timedelta(seconds=0.4), "Draft", "talk")])
    adapter = RecordingAdapter()
    runner = make_runner(db, SystemClock(), adapter)
    await runner.start()
    try:
        planned = {post.kind: post for post in runner.jobs.values()}
        assert set(planned) == {PostKind.STARTING, PostKind.UP_NEXT, PostKind.INTRO}
        async with db.session() as session:  # the job reads the agenda when it fires, not when it was planned
            item = await session.get(AgendaItem, talk)
            assert item is not None
            item.title = "Consensus in practice"
            session.add(item)
        await runner.settle(everything=True)
    finally:
        await runner.stop()
    assert sorted(kind_of(s.message) for s in adapter.sent) == sorted(planned)
    for sent in adapter.sent:
        post = planned[kind_of(sent.message)]
        lateness = sent.at - post.run_at.timestamp()
        assert -0.05 <= lateness < 1.0, (post.key, lateness)
    intro = next(s.message for s in adapter.sent if isinstance(s.message, SpeakerIntro))
    assert isinstance(intro, SpeakerIntro) and intro.entry.title == "Consensus in practice"
    assert not runner.jobs


def kind_of(message: Message) -> PostKind:
    if isinstance(message, SpeakerIntro):
        return PostKind.INTRO
    assert isinstance(message, Reminder)
    return PostKind.STARTING if message.item is None else PostKind.UP_NEXT


def _engine(db: Database, runner: Runner) -> Engine:
    bus = EffectBus()
    bus.subscribe(runner)
    return Engine(db, Settings(), SystemClock(), bus)


async def test_a_shift_moves_the_posts_of_the_items_it_moves(db: Database) -> None:
    now = SystemClock().now()
    _, (talk,) = await add_event(db, now + timedelta(seconds=2.2), [(timedelta(seconds=-1.2), "Opening", "talk")])
    adapter = RecordingAdapter()
    runner = make_runner(db, SystemClock(), adapter)
    engine = _engine(db, runner)
    await runner.start()
    try:
        before = slot_of(runner, f"intro:{talk}")
        reply = await engine.handle(CommandLine(ORGANIZER, None, "/emcee agenda shift +1s"))
        assert reply.ok, reply.text
        await engine.bus.drain()
        after = slot_of(runner, f"intro:{talk}")
        assert after.run_at == before.run_at + timedelta(seconds=1) and after.key != before.key
        assert before.key not in runner.jobs
        await runner.settle(everything=True)
    finally:
        await runner.stop()
    intro = next(s for s in adapter.sent if isinstance(s.message, SpeakerIntro))
    assert after.run_at.timestamp() - 0.05 <= intro.at < after.run_at.timestamp() + 1.0
    assert (before.key, GENERAL.encode()) not in await rows(db)


async def test_removing_an_item_cancels_its_posts(db: Database) -> None:
    now = SystemClock().now()
    _, (first, second) = await add_event(
        db,
        now + timedelta(seconds=1),
        [(timedelta(seconds=0.4), "Lightning talks", "talk"), (timedelta(seconds=0.8), "Keynote", "talk")],
    )
    adapter = RecordingAdapter()
    runner = make_runner(db, SystemClock(), adapter)
    engine = _engine(db, runner)
    await runner.start()
    try:
        assert {post.item_id for post in runner.jobs.values()} == {None, first, second}
        reply = await engine.handle(CommandLine(ORGANIZER, None, "/emcee agenda remove Lightning"))
        assert reply.ok, reply.text
        await engine.bus.drain()
        assert {post.item_id for post in runner.jobs.values()} == {None, second}
        await runner.settle(everything=True)  # the keynote fires after the removed talk's time
    finally:
        await runner.stop()
    assert "Lightning talks" not in "\n".join(adapter.texts())
    assert sum("Keynote" in text for text in adapter.texts()) == 2
    assert not [key for key, _ in await rows(db) if key.startswith((f"next:{first}:", f"intro:{first}:"))]


async def test_two_runners_on_one_database_send_each_key_to_each_target_once(db: Database) -> None:
    now = SystemClock().now()
    await add_event(
        db,
        now + timedelta(seconds=2),  # time for both runners to start and plan before anything is due
        [(timedelta(seconds=0), "Welcome", "welcome"), (timedelta(seconds=0.3), "Talk", "talk")],
        members=["ada", "bo"],
    )
    other_db = Database(db.url)  # a second process: its own engine and connections
    adapters = RecordingAdapter(), RecordingAdapter()
    runners = [
        make_runner(database, SystemClock(), adapter, targets=(GENERAL, RANDOM))
        for database, adapter in zip((db, other_db), adapters, strict=True)
    ]
    try:
        for runner in runners:
            await runner.start()
        planned = {(post.key, target) for post in runners[0].jobs.values() for target in post.targets}
        assert planned == {(post.key, target) for post in runners[1].jobs.values() for target in post.targets}
        last = max(post.run_at for post in runners[0].jobs.values())
        await asyncio.sleep((last - SystemClock().now()).total_seconds() + 0.1)
        for runner in runners:  # (the runner that lost a claim looks again when its lease lapses: not waited for)
            await runner.settle()
    finally:
        for runner in runners:
            await runner.stop()
        await other_db.close()
    ledger = await rows(db)
    assert len(planned) == 2 * 4 + 2  # starting now, 2 up next, 1 intro on two channels; a DM each to ada and bo
    assert {(key, Target.decode(target)) for key, target in ledger} == planned
    assert {row.status for row in ledger.values()} == {DeliveryStatus.SENT}
    assert len(adapters[0].sent) + len(adapters[1].sent) == len(planned)


# -- a controllable clock ---------------------------------------------------------------------


RUN_AT = re.compile(r":\d{4}-\d{2}-\d{2}T[^:]*:.*$")  # a post key ends with ":<run_at in ISO form>"


async def test_a_restart_sends_nothing_twice_sends_late_within_grace_and_skips_beyond(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    start = clock.now() + timedelta(days=1, minutes=30)
    event_id, (first, second) = await add_event(
        db, start, [(timedelta(0), "First talk", "talk"), (timedelta(minutes=30), "Second talk", "talk")]
    )
    before = Rules()  # 1 day and 1 hour before, 5 minutes before each item, 15 minutes' grace

    clock.set(start - timedelta(days=1) + timedelta(minutes=2))  # up 2 minutes after the 1-day reminder was due
    one = RecordingAdapter()
    runner = make_runner(db, clock, one, before)
    with caplog.at_level(logging.WARNING, logger="schedules.runner"):
        await runner.start()
        await runner.settle()
    await runner.stop()
    assert [type(s.message) for s in one.sent] == [Reminder]
    assert "late" in caplog.text

    clock.set(start + timedelta(minutes=12))  # down through the start of the evening
    caplog.clear()
    two = RecordingAdapter()
    runner = make_runner(db, clock, two, before)
    with caplog.at_level(logging.WARNING, logger="schedules.runner"):
        await runner.start()
        await runner.settle()
    try:
        texts = two.texts()
        assert len(texts) == 2  # starting now (12 min ago) and the first intro (12 min ago): late, within grace
        assert any("⏰ Tuesday talks started 12 minutes ago" in text for text in texts)  # said from its send
        assert any("First talk" in text and "Now on stage" in text for text in texts)
        assert not any("starts in 1 day" in text for text in texts)  # already sent before the restart
        assert "late" in caplog.text
        ledger = await rows(db)
        status = {RUN_AT.sub("", key): row.status for (key, _), row in ledger.items()}
        assert status == {
            f"remind:{event_id}:1d": DeliveryStatus.SENT,
            f"remind:{event_id}:1h": DeliveryStatus.SKIPPED,  # 72 minutes ago: beyond grace
            f"next:{first}": DeliveryStatus.SKIPPED,  # 17 minutes ago
            f"start:{event_id}": DeliveryStatus.SENT,
            f"intro:{first}": DeliveryStatus.SENT,
        }
        assert {post.slot for post in runner.jobs.values()} == {f"next:{second}", f"intro:{second}"}
    finally:
        await runner.stop()


async def test_a_crash_mid_fan_out_is_retried_once_and_a_sent_target_never(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=2)
    event_id, _ = await add_event(db, start)
    rules = Rules(event_offsets=())
    post = f"start:{event_id}:{start.isoformat()}"
    ledger = Ledger(db, clock)
    clock.set(start)  # the crashed process claimed both channels and sent to one of them
    assert await ledger.claim_many(post, [GENERAL, RANDOM]) == [GENERAL, RANDOM]
    await ledger.finish(post, RANDOM, DeliveryStatus.SENT, MessageRef("rec", "random", "9"))

    clock.set(start + ledger.lease + timedelta(minutes=1))  # its lease has lapsed, the grace has not
    for restart in range(2):
        adapter = RecordingAdapter()
        runner = make_runner(db, clock, adapter, rules, targets=(GENERAL, RANDOM))
        await runner.start()
        await runner.settle()
        await runner.stop()
        assert [s.target for s in adapter.sent] == ([GENERAL] if restart == 0 else [])
    retried = await delivery_row(db, post, GENERAL)
    assert retried is not None and retried.status == DeliveryStatus.SENT and retried.attempts == 2


async def test_a_claim_under_its_lease_is_looked_at_again_when_the_lease_lapses(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=2)
    event_id, _ = await add_event(db, start)
    post = f"start:{event_id}:{start.isoformat()}"
    clock.set(start)
    assert await Ledger(db, clock).claim_many(post, [GENERAL]) == [GENERAL]  # another process is sending it right now
    clock.advance(timedelta(seconds=5))
    adapter = RecordingAdapter()
    runner = make_runner(db, clock, adapter, Rules(event_offsets=()))
    await runner.start()
    await runner.settle()
    try:
        assert adapter.sent == []
        assert post in runner.jobs  # scheduled again for when the other claim's lease runs out
    finally:
        await runner.stop()


async def test_cancelled_events_lose_their_jobs_and_dms_follow_the_opt_in(db: Database, clock: FakeClock) -> None:
    event_id, _ = await add_event(db, clock.now() + timedelta(days=3), members=["ada"])
    runner = make_runner(db, clock, RecordingAdapter(), Rules())
    await runner.start()
    try:
        assert {post.kind for post in runner.jobs.values()} == {PostKind.REMINDER, PostKind.STARTING, PostKind.DM}
        async with db.session() as session:
            rsvp = (await session.exec(select(Rsvp))).one()
            rsvp.dm_reminders = False
            session.add(rsvp)
        await runner.reconcile(event_id)
        assert PostKind.DM not in {post.kind for post in runner.jobs.values()}
        async with db.session() as session:
            event = await session.get(Event, event_id)
            assert event is not None
            event.status = EventStatus.CANCELLED
            session.add(event)
        await runner.reconcile(event_id)
        assert runner.jobs == {}
    finally:
        await runner.stop()
