"""Invariant 3, the ledger and the outbox: claim, send, mark sent; retries, Retry-After, order per channel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count

import pytest
from conftest import deliver
from ledger_rows import delivery_row

from adapters.plaintext import render
from bot.clock import FakeClock
from bot.db import Database
from bot.delivery import Ledger, Outbox, RetryPolicy, Target
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message, Notice
from bot.models import DeliveryStatus
from bot.ports import SendError

A = Target("rec", "general")
B = Target("rec", "random")
ADA = Target("rec", "ada", user=True)


@dataclass
class Sent:
    target: Target
    message: Message
    at: float  # time.time() when the adapter was called


@dataclass
class Edited:
    ref: MessageRef
    message: Message
    at: float


@dataclass
class RecordingAdapter:
    """An adapter that records every send, DM and edit; `fail` holds exceptions to raise on the next sends."""

    platform: str = "rec"
    sent: list[Sent] = field(default_factory=list)
    edits: list[Edited] = field(default_factory=list)
    fail: list[BaseException] = field(default_factory=list)
    delay: dict[str, float] = field(default_factory=dict)  # seconds a send to this channel id takes
    _ids: count[int] = field(default_factory=lambda: count(1))

    @property
    def connected(self) -> bool:
        return True

    async def start(self, engine: object) -> None: ...

    async def stop(self) -> None: ...

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        return None

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        return await self._record(Target(self.platform, target.channel_id), message)

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef:
        return await self._record(Target(self.platform, user.user_id, user=True), message)

    async def edit(self, ref: MessageRef, message: Message) -> None:
        self.edits.append(Edited(ref, message, time.time()))

    async def _record(self, target: Target, message: Message) -> MessageRef:
        called = time.time()
        if target.id in self.delay:
            await asyncio.sleep(self.delay[target.id])
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(Sent(target, message, called))
        return MessageRef(self.platform, target.id, str(next(self._ids)))

    def texts(self, target: Target | None = None) -> list[str]:
        return [render(s.message) for s in self.sent if target is None or s.target == target]


class Sleeps:
    """An injected sleep that records how long the outbox waited, and does not wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


async def const(text: str) -> Message:
    return Notice(text)


@pytest.fixture
def ledger(db: Database, clock: FakeClock) -> Ledger:
    return Ledger(db, clock)


async def test_one_claim_per_key_and_target(ledger: Ledger) -> None:
    assert await ledger.claim_many("k", [A]) == [A]
    assert await ledger.claim_many("k", [A]) == []
    assert await ledger.claim_many("k", [B]) == [B]
    assert await ledger.claim_many("k", [A, B, ADA]) == [ADA]


async def test_an_expired_claim_can_be_retried_but_a_sent_one_never(ledger: Ledger, clock: FakeClock) -> None:
    assert await ledger.claim_many("k", [A, B]) == [A, B]
    await ledger.finish("k", B, DeliveryStatus.SENT, MessageRef("rec", "random", "1"))
    clock.advance(ledger.lease - timedelta(seconds=1))
    assert await ledger.claim_many("k", [A, B]) == []  # A's sender may still be at work
    clock.advance(timedelta(seconds=2))
    assert await ledger.claim_many("k", [A, B]) == [A]  # A's sender crashed mid-send
    row = await delivery_row(ledger.db, "k", A)
    assert row is not None and row.attempts == 2
    clock.advance(ledger.lease * 10)
    assert await ledger.claim_many("k", [B]) == []


async def test_skip_records_only_posts_without_a_row(ledger: Ledger) -> None:
    await ledger.claim_many("k", [A])
    await ledger.finish("k", A, DeliveryStatus.SENT, MessageRef("rec", "general", "1"))
    await ledger.skip_many([("k", A), ("k", B)], "missed")
    await ledger.skip_many([("k", B)], "missed again")  # already recorded: no error, no change
    sent, skipped = await delivery_row(ledger.db, "k", A), await delivery_row(ledger.db, "k", B)
    assert sent is not None and sent.status == DeliveryStatus.SENT
    assert skipped is not None and skipped.status == DeliveryStatus.SKIPPED and skipped.error == "missed"
    assert await ledger.claim_many("k", [B]) == []
    assert await ledger.settled(["k", "other"]) == {("k", A.encode()), ("k", B.encode())}


async def test_sent_slots_finds_every_key_of_a_slot(ledger: Ledger) -> None:
    for key, target in (("intro:1:a", A), ("intro:1:b", B), ("intro:12:a", ADA), ("intro:3:a", A)):
        await ledger.claim_many(key, [target])
        await ledger.finish(key, target, DeliveryStatus.SENT, MessageRef("rec", target.id, "1"))
    await ledger.claim_many("intro:3:b", [B])  # claimed, not sent
    assert await ledger.sent_slots(["intro:1", "intro:3"]) == {("intro:1", A), ("intro:1", B), ("intro:3", A)}


async def test_claims_of_several_posts_share_a_transaction_and_finishes_a_commit(ledger: Ledger) -> None:
    assert await ledger.claim_posts([("k1", [A, B]), ("k2", [A]), ("k3", [])]) == {"k1": [A, B], "k2": [A], "k3": []}
    assert await ledger.claim_posts([("k1", [A, B]), ("k4", [B])]) == {"k1": [], "k4": [B]}
    ref = MessageRef("rec", "general", "1")
    await asyncio.gather(*(ledger.finish(key, A, DeliveryStatus.SENT, ref) for key in ("k1", "k2")))
    await ledger.finish("k4", B, DeliveryStatus.FAILED, error="nope")
    states = {}
    for key, target in (("k1", A), ("k1", B), ("k2", A), ("k4", B)):
        row = await delivery_row(ledger.db, key, target)
        assert row is not None
        states[key, target] = (row.status, row.message_ref, row.error)
    assert states == {
        ("k1", A): (DeliveryStatus.SENT, "rec:general:1", None),
        ("k1", B): (DeliveryStatus.CLAIMED, None, None),
        ("k2", A): (DeliveryStatus.SENT, "rec:general:1", None),
        ("k4", B): (DeliveryStatus.FAILED, None, "nope"),
    }


async def test_fan_out_sends_each_target_once_and_records_refs(ledger: Ledger) -> None:
    adapter = RecordingAdapter()
    outbox = Outbox(ledger, {"rec": adapter})
    first = await outbox.fan_out("k", [A, B, ADA], lambda: const("hello"))
    second = await outbox.fan_out("k", [A, B, ADA], lambda: const("hello"))
    assert sorted(first.sent, key=Target.encode) == sorted([A, B, ADA], key=Target.encode)
    assert second.sent == {} and second.refused == [A, B, ADA]
    assert len(adapter.sent) == 3
    assert [ref.encode() for ref in await ledger.sent_refs("k")] == [ref.encode() for ref in first.sent.values()]


async def test_failed_sends_retry_with_backoff_then_are_marked_failed(ledger: Ledger) -> None:
    adapter = RecordingAdapter(fail=[RuntimeError("boom")] * 2)
    sleeps = Sleeps()
    outbox = Outbox(ledger, {"rec": adapter}, RetryPolicy(delays=(0.5, 1.0, 2.0)), sleep=sleeps)
    assert await deliver(outbox, "k1", A, lambda: const("x")) is not None
    assert sleeps.waits == [0.5, 1.0]
    row = await delivery_row(ledger.db, "k1", A)
    assert row is not None and row.status == DeliveryStatus.SENT and row.attempts == 3

    adapter.fail = [RuntimeError(f"boom {n}") for n in range(4)]
    sleeps.waits.clear()
    assert await deliver(outbox, "k2", A, lambda: const("x")) is None
    assert sleeps.waits == [0.5, 1.0, 2.0]
    row = await delivery_row(ledger.db, "k2", A)
    assert row is not None and row.status == DeliveryStatus.FAILED and row.error == "RuntimeError: boom 3"
    assert row.lease_until is None
    assert await deliver(outbox, "k2", A, lambda: const("x")) is None  # failed is final
    assert len(adapter.sent) == 1


async def test_a_reported_retry_after_is_honoured(ledger: Ledger) -> None:
    adapter = RecordingAdapter(
        fail=[SendError("rate limited", retry_after=30.0), SendError("ratelimited", retry_after=12)]
    )
    sleeps = Sleeps()
    outbox = Outbox(ledger, {"rec": adapter}, sleep=sleeps)
    assert await deliver(outbox, "k", A, lambda: const("x")) is not None
    assert sleeps.waits == [30.0, 12.0]
    row = await delivery_row(ledger.db, "k", A)
    assert row is not None and row.attempts == 3


async def test_the_lease_outlasts_a_long_retry_after(ledger: Ledger, clock: FakeClock) -> None:
    """While a sender waits out a Retry-After, nobody else may claim its post."""
    other = Ledger(ledger.db, clock)

    async def sleep(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))
        assert await other.claim_many("k", [A]) == []

    adapter = RecordingAdapter(fail=[SendError("rate limited", retry_after=200.0)])
    assert await deliver(Outbox(ledger, {"rec": adapter}, sleep=sleep), "k", A, lambda: const("x")) is not None


async def test_sends_to_one_channel_keep_their_order_and_other_channels_do_not_wait(ledger: Ledger) -> None:
    adapter = RecordingAdapter(delay={"general": 0.2})
    outbox = Outbox(ledger, {"rec": adapter})
    await asyncio.gather(
        outbox.fan_out("first", [A, B], lambda: const("first")),
        outbox.fan_out("second", [A], lambda: const("second")),
        outbox.fan_out("third", [B], lambda: const("third")),
    )
    assert adapter.texts(A) == ["first", "second"]
    assert adapter.texts(B) == ["first", "third"]
    done_b = [s.at for s in adapter.sent if s.target == B]
    assert max(done_b) < min(s.at for s in adapter.sent if s.target == A) + 0.2  # B did not queue behind A


async def test_a_message_that_cannot_be_built_marks_the_claims_failed(ledger: Ledger) -> None:
    async def broken() -> Message:
        raise LookupError("event 7 is gone")

    adapter = RecordingAdapter()
    result = await Outbox(ledger, {"rec": adapter}).fan_out("k", [A], broken)
    row = await delivery_row(ledger.db, "k", A)
    assert result.sent == {} and adapter.sent == []
    assert row is not None and row.status == DeliveryStatus.FAILED and "event 7 is gone" in (row.error or "")


async def test_a_permanent_failure_is_not_retried(ledger: Ledger) -> None:
    adapter = RecordingAdapter(fail=[SendError("channel_not_found", permanent=True)])
    sleeps = Sleeps()
    outbox = Outbox(ledger, {"rec": adapter}, sleep=sleeps)
    assert await deliver(outbox, "k", A, lambda: const("hello")) is None
    assert sleeps.waits == [] and adapter.sent == []
    row = await delivery_row(ledger.db, "k", A)
    assert row is not None and row.status == DeliveryStatus.FAILED and "channel_not_found" in (row.error or "")
