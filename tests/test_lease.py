"""Invariant 3, the claim's lease: a live sender keeps its claim however slow its send; a dead one's claim
is taken over within 15 seconds; a claim missed beyond the grace window is closed as skipped."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from conftest import deliver
from ledger_rows import delivery_row
from test_delivery import RecordingAdapter, const
from test_runner import GENERAL, add_event, make_runner

from bot.clock import FakeClock
from bot.db import Database
from bot.delivery import Ledger, Outbox, Target
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message, Notice
from bot.models import DeliveryStatus
from schedules.planner import Rules

A = Target("rec", "general")
SHORT = timedelta(milliseconds=300)  # a lease short enough that a test sees its heartbeats in real time


class StalledAdapter(RecordingAdapter):
    """An adapter whose channel sends hang until the test releases them (an HTTP answer that does not come)."""

    def __init__(self) -> None:
        super().__init__()
        self.called = asyncio.Event()
        self.release = asyncio.Event()

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        return None

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        self.called.set()
        await self.release.wait()
        return await super().send(target, message, key)


async def stalled_send(db: Database, clock: FakeClock) -> tuple[StalledAdapter, asyncio.Task[MessageRef | None]]:
    """Start sending "k" to A on a short lease; returns once the adapter holds the send."""
    stalled = StalledAdapter()
    sending = asyncio.create_task(
        deliver(Outbox(Ledger(db, clock, SHORT), {"rec": stalled}), "k", A, lambda: const("hi"))
    )
    await stalled.called.wait()
    return stalled, sending


async def lease_until(db: Database, key: str, target: Target) -> datetime | None:
    row = await delivery_row(db, key, target)
    assert row is not None and row.status == DeliveryStatus.CLAIMED
    return row.lease_until


async def renewed_beyond(db: Database, key: str, target: Target, moment: datetime | None) -> datetime:
    """Wait (a few seconds at most) until the claim's lease has been moved past `moment`; the new lease."""
    assert moment is not None
    for _ in range(200):
        lease = await lease_until(db, key, target)
        if lease is not None and lease > moment:
            return lease
        await asyncio.sleep(0.01)
    raise AssertionError(f"the lease of {key} stayed at {moment}")


async def test_a_send_slower_than_the_lease_keeps_its_claim_and_its_lease_moves(db: Database, clock: FakeClock) -> None:
    stalled, sending = await stalled_send(db, clock)
    other = RecordingAdapter()
    rival = Outbox(Ledger(db, clock, SHORT), {"rec": other})
    leases = []
    for _ in range(5):  # five times two thirds of a lease: the send outlasts its lease more than three times over
        before = await lease_until(db, "k", A)
        clock.advance(SHORT * 2 / 3)
        leases.append(await renewed_beyond(db, "k", A, before))
        assert await deliver(rival, "k", A, lambda: const("hi")) is None
    assert leases == sorted(leases) and leases[-1] > leases[0]
    stalled.release.set()
    assert await sending is not None
    row = await delivery_row(db, "k", A)
    assert row is not None and row.status == DeliveryStatus.SENT and row.lease_until is None
    assert len(stalled.sent) == 1 and other.sent == []


async def test_a_post_waiting_its_turn_behind_a_slow_send_keeps_its_claim(db: Database, clock: FakeClock) -> None:
    """A second post to the same channel waits for the first, however long: its claim is renewed while it
    waits, so no other sender takes it over and it goes out once, after the first."""
    stalled = StalledAdapter()
    outbox = Outbox(Ledger(db, clock, SHORT), {"rec": stalled})
    first = asyncio.create_task(deliver(outbox, "k", A, lambda: const("first")))
    await stalled.called.wait()
    second = asyncio.create_task(deliver(outbox, "k2", A, lambda: const("second")))
    await asyncio.sleep(0.05)  # "k2" is claimed and queued behind "k"
    rival = Outbox(Ledger(db, clock, SHORT), {"rec": RecordingAdapter()})
    for _ in range(5):  # the wait outlasts the lease more than three times over
        before = await lease_until(db, "k2", A)
        clock.advance(SHORT * 2 / 3)
        await renewed_beyond(db, "k2", A, before)
        assert await deliver(rival, "k2", A, lambda: const("second")) is None
    stalled.release.set()
    assert await first is not None and await second is not None
    assert [sent.message for sent in stalled.sent] == [Notice("first"), Notice("second")]


async def test_a_sender_cut_off_mid_send_is_taken_over_once_its_last_lease_lapses(
    db: Database, clock: FakeClock
) -> None:
    _, sending = await stalled_send(db, clock)
    before = await lease_until(db, "k", A)
    clock.advance(SHORT / 2)
    last = await renewed_beyond(db, "k", A, before)
    sending.cancel()  # the sender is gone: nothing renews its claim any more
    await asyncio.gather(sending, return_exceptions=True)
    await asyncio.sleep(SHORT.total_seconds())  # time for a heartbeat, were one still running
    assert await lease_until(db, "k", A) == last
    other = RecordingAdapter()
    rival = Outbox(Ledger(db, clock, SHORT), {"rec": other})
    clock.set(last)
    assert await deliver(rival, "k", A, lambda: const("hi")) is None
    clock.advance(timedelta(milliseconds=1))
    assert await deliver(rival, "k", A, lambda: const("hi")) is not None
    assert len(other.sent) == 1


async def test_a_claim_with_no_live_sender_is_taken_over_once_15_seconds_pass_and_not_before(
    db: Database, clock: FakeClock
) -> None:
    assert await Ledger(db, clock).claim_many("k", [A]) == [A]  # its sender died right after claiming
    other = Ledger(db, clock)
    clock.advance(timedelta(seconds=15) - timedelta(milliseconds=1))
    assert await other.claim_many("k", [A]) == []
    clock.advance(timedelta(milliseconds=2))
    assert await other.claim_many("k", [A]) == [A]
    row = await delivery_row(db, "k", A)
    assert row is not None and row.attempts == 2


async def test_a_claim_expired_beyond_the_grace_window_is_closed_as_skipped(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=2)
    event_id, _ = await add_event(db, start)
    post = f"start:{event_id}:{start.isoformat()}"
    clock.set(start)
    assert await Ledger(db, clock).claim_many(post, [GENERAL]) == [GENERAL]  # the sender died before sending
    rules = Rules(event_offsets=())
    clock.set(start + rules.grace + timedelta(minutes=1))
    adapter = RecordingAdapter()
    runner = make_runner(db, clock, adapter, rules)
    await runner.start()
    await runner.settle()
    await runner.stop()
    row = await delivery_row(db, post, GENERAL)
    assert adapter.sent == []
    assert row is not None and row.status == DeliveryStatus.SKIPPED and row.lease_until is None
    assert "grace" in (row.error or "")
