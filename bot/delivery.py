"""The delivery ledger and the outbox: each post reaches each target at most once per key.

Sending is claim, send, mark sent. The claim is a row insert guarded by the unique (key, target)
constraint, so two processes cannot both claim; a claim whose lease expired (the sender crashed
mid-send) may be claimed again. The lease is short (15 s): while a send is in progress its sender
renews it (a heartbeat every third of the lease), so a slow live sender keeps its claim and a dead
one's claim lapses within a lease of its last heartbeat. A claim taken over from a dead sender
first asks the platform whether that sender's message landed (Adapter.find_sent), and records the
message found instead of sending it again. The outbox sends what was claimed: across
targets concurrently, to one target in the order the posts were handed to it, retrying failed sends
with backoff and waiting out the Retry-After of a rate limit (an adapter's SendError says which
failures are worth a retry and how long to wait), then marking the row sent (with the message ref
that later edits use) or failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.db import Database
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message, digest
from bot.models import Delivery, DeliveryStatus, table_of
from bot.ports import Adapter, SendError

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=15)
HEARTBEATS_PER_LEASE = 3  # a claim's lease is renewed this often per lease while its send is in progress
FINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
_CHUNK = 500  # keys per IN (...) query
LAPSE_FLOOR = 0.05  # seconds: the shortest wait for another sender's claim to lapse


@dataclass(frozen=True)
class Target:
    """Where a post goes: a channel, or a member's DMs (user=True). Encoded as platform:id or platform:@id."""

    platform: str
    id: str
    user: bool = False

    def encode(self) -> str:
        return f"{self.platform}:{'@' if self.user else ''}{self.id}"

    @classmethod
    def decode(cls, text: str) -> Target:
        platform, _, rest = text.partition(":")
        return cls(platform, rest.removeprefix("@"), rest.startswith("@"))


@dataclass(frozen=True)
class RetryPolicy:
    """Waits before each retry of a failed send; a send is tried len(delays) + 1 times in all."""

    delays: tuple[float, ...] = (0.5, 1.0, 2.0)
    max_retry_after: float = 300.0  # a longer Retry-After is capped, so one post cannot stall a channel for long


class Claimed(list[Target]):
    """The targets of one post that a caller now owns, in order; `taken_over` holds those whose claim it took
    over from a sender that stopped renewing it, each with when that post was first claimed."""

    def __init__(self, targets: Iterable[Target] = (), taken_over: Mapping[Target, datetime] | None = None) -> None:
        super().__init__(targets)
        self.taken_over = dict(taken_over or {})


class Ledger:
    """The delivery table. Claims and slot checks can join the caller's transaction (`session`); finishes
    that arrive together are written in one transaction (a group commit), which keeps a burst of
    posts from queueing behind one commit each. An unfinished row's updated_at is when it was claimed:
    renewals and takeovers move only its lease, so the age of a stuck claim shows, and a takeover knows since
    when the post may have landed."""

    def __init__(self, db: Database, clock: Clock, lease: timedelta = DEFAULT_LEASE) -> None:
        self.db = db
        self.clock = clock
        self.lease = lease
        self._finishing: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def _insert(self) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING needs the dialect's own insert()."""
        return (sqlite if self.db.is_sqlite else postgresql).insert(Delivery)

    @asynccontextmanager
    async def _session(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        if session is not None:
            yield session
        else:
            async with self.db.session() as own:
                yield own

    async def claim_many(self, key: str, targets: Sequence[Target]) -> Claimed:
        """Claim `key` for each target; returns those this caller now owns, in order."""
        return (await self.claim_posts([(key, targets)]))[key]

    async def claim_posts(
        self, posts: Sequence[tuple[str, Sequence[Target]]], session: AsyncSession | None = None
    ) -> dict[str, Claimed]:
        """Claim several posts in one transaction: for each key, the targets this caller now owns, in order.

        A target is claimed when it has no row yet, or when its claim's lease expired before it was sent
        (taken over: its first claim's time is kept, since the dead sender's message may have landed).
        """
        now = self.clock.now()
        lease_until = now + self.lease
        wanted = dict.fromkeys((key, target.encode()) for key, targets in posts for target in targets)
        owned: set[tuple[str, str]] = set()
        taken_over: dict[tuple[str, str], datetime] = {}
        rows = [
            {
                "key": key,
                "target": target,
                "status": DeliveryStatus.CLAIMED,
                "attempts": 1,
                "lease_until": lease_until,
                "updated_at": now,
            }
            for key, target in wanted
        ]
        async with self._session(session) as session:
            for start in range(0, len(rows), _CHUNK):
                inserted = await session.exec(
                    self._insert()
                    .values(rows[start : start + _CHUNK])
                    .on_conflict_do_nothing(index_elements=["key", "target"])
                    .returning(col(Delivery.key), col(Delivery.target))
                )
                owned.update((key, target) for key, target in inserted.all())
            rest = [pair for pair in wanted if pair not in owned]
            for start in range(0, len(rest), _CHUNK):
                reclaimed = await session.exec(
                    update(Delivery)
                    .where(sa.tuple_(col(Delivery.key), col(Delivery.target)).in_(rest[start : start + _CHUNK]))
                    .where(*_lapsed(now))
                    .values(attempts=col(Delivery.attempts) + 1, lease_until=lease_until)
                    .returning(col(Delivery.key), col(Delivery.target), col(Delivery.updated_at))
                )
                taken_over.update(((key, target), claimed_at) for key, target, claimed_at in reclaimed.all())
        owned.update(taken_over)
        return {key: _claimed(key, targets, owned, taken_over) for key, targets in posts}

    async def renew(self, key: str, target: Target, wait: timedelta) -> None:
        """Count another attempt and keep the lease beyond the coming wait, so no one else re-claims it."""
        async with self.db.session() as session:
            await session.exec(
                self._unfinished(key, target).values(
                    attempts=col(Delivery.attempts) + 1, lease_until=self.clock.now() + wait + self.lease
                )
            )

    @asynccontextmanager
    async def holding(self, key: str, target: Target) -> AsyncIterator[None]:
        """Renew the claim's lease every third of a lease while the body (a send) runs."""
        beats = asyncio.create_task(self._heartbeats(key, target))
        try:
            yield
        finally:
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)

    async def _heartbeats(self, key: str, target: Target) -> None:
        while True:
            await asyncio.sleep(self._seconds_until(self.clock.now() + self.lease / HEARTBEATS_PER_LEASE))
            try:
                await self._extend(key, target)
            except Exception as exc:  # the next beat may get through; the lease has two more beats' slack
                log.warning("renewing the claim on %s to %s failed: %s", key, target.encode(), exc)

    def _seconds_until(self, moment: datetime) -> float:
        """Seconds of real time until the clock reads `moment` (a fast clock gets there sooner)."""
        return max((self.clock.system_time(moment) - datetime.now(UTC)).total_seconds(), 0.0)

    async def _extend(self, key: str, target: Target) -> None:
        """Move the claim's lease to one lease from now (never shortening it, e.g. below a Retry-After wait)."""
        until = self.clock.now() + self.lease
        async with self.db.session() as session:
            await session.exec(
                self._unfinished(key, target).where(col(Delivery.lease_until) < until).values(lease_until=until)
            )

    @staticmethod
    def _unfinished(key: str, target: Target) -> Any:
        """UPDATE of the (key, target) row while it is still claimed (a finished row is never touched again)."""
        return (
            update(Delivery)
            .where(col(Delivery.key) == key, col(Delivery.target) == target.encode())
            .where(col(Delivery.status) == DeliveryStatus.CLAIMED)
        )

    async def finish(
        self,
        key: str,
        target: Target,
        status: DeliveryStatus,
        ref: MessageRef | None = None,
        error: str | None = None,
        shown: str | None = None,
    ) -> None:
        """Record how a claimed send ended: sent with its message ref and the digest of what it shows (None when
        not known: a message an earlier sender sent), or failed with the error."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        values = {"b_key": key, "b_target": target.encode(), "status": status, "error": error, "shown": shown}
        self._finishing.append(({**values, "message_ref": ref.encode() if ref else None}, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(done)

    async def _flush(self) -> None:
        table = table_of(Delivery)
        statement = (
            sa.update(table)
            .where(table.c.key == sa.bindparam("b_key"), table.c.target == sa.bindparam("b_target"))
            .values(lease_until=None, updated_at=sa.bindparam("b_now"))
        )
        try:
            while self._finishing:
                batch: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
                try:
                    async with self.db.session() as session:
                        # Taken once the database is ours: every finish that arrived meanwhile joins this commit.
                        batch, self._finishing = self._finishing, []
                        now = self.clock.now()
                        await session.exec(statement, params=[{**values, "b_now": now} for values, _ in batch])
                except Exception as exc:
                    outcome: BaseException | None = exc
                else:
                    outcome = None
                for _, done in batch:
                    if done.done():
                        continue
                    if outcome is None:
                        done.set_result(None)
                    else:
                        done.set_exception(outcome)
        finally:
            self._flusher = None

    async def skip_many(
        self, posts: Iterable[tuple[str, Target]], reason: str, session: AsyncSession | None = None
    ) -> None:
        """Record each (key, target) as skipped unless it already has a row (sent, claimed, ...); a claim whose
        lease lapsed (its sender died) is closed as skipped too."""
        now = self.clock.now()
        rows = [
            {
                "key": key,
                "target": target.encode(),
                "status": DeliveryStatus.SKIPPED,
                "attempts": 0,
                "error": reason,
                "updated_at": now,
            }
            for key, target in posts
        ]
        if not rows:
            return
        async with self._session(session) as session:
            for start in range(0, len(rows), _CHUNK):
                await session.exec(
                    self._insert()
                    .values(rows[start : start + _CHUNK])
                    .on_conflict_do_nothing(index_elements=["key", "target"])
                )
                pairs = [(row["key"], row["target"]) for row in rows[start : start + _CHUNK]]
                await session.exec(
                    update(Delivery)
                    .where(sa.tuple_(col(Delivery.key), col(Delivery.target)).in_(pairs))
                    .where(*_lapsed(now))
                    .values(status=DeliveryStatus.SKIPPED, error=reason, lease_until=None, updated_at=now)
                )

    async def settled(self, keys: Collection[str]) -> set[tuple[str, str]]:
        """The (key, encoded target) pairs among `keys` that are sent, failed or skipped: never to be tried again."""
        found: set[tuple[str, str]] = set()
        ordered = sorted(keys)
        for start in range(0, len(ordered), _CHUNK):
            async with self.db.reading() as session:
                rows = await session.exec(
                    select(Delivery.key, Delivery.target)
                    .where(col(Delivery.key).in_(ordered[start : start + _CHUNK]))
                    .where(col(Delivery.status).in_(FINAL))
                )
                found.update((key, target) for key, target in rows.all())
        return found

    async def sent_slots(self, slots: Collection[str], session: AsyncSession | None = None) -> set[tuple[str, Target]]:
        """(slot, target) for every target that was sent a post under a key `slot:...`, whatever its run_at."""
        if not slots:
            return set()
        found: set[tuple[str, Target]] = set()
        async with self._session(session) as session:
            rows = await session.exec(
                select(Delivery.key, Delivery.target)
                .where(sa.or_(*(col(Delivery.key).startswith(slot + ":", autoescape=True) for slot in slots)))
                .where(Delivery.status == DeliveryStatus.SENT)
            )
            for key, target in rows.all():
                found.update((slot, Target.decode(target)) for slot in slots if key.startswith(slot + ":"))
        return found

    async def lease_expiry(self, keys: Collection[str]) -> datetime | None:
        """When the last unfinished claim on any of `keys` lapses (None if there is none)."""
        async with self.db.reading() as session:
            return (
                await session.exec(
                    select(sa.func.max(Delivery.lease_until)).where(
                        col(Delivery.key).in_(list(keys)), Delivery.status == DeliveryStatus.CLAIMED
                    )
                )
            ).one()

    async def lapse(self, keys: Collection[str]) -> None:
        """Wait until the unfinished claims on `keys`, as they stand now, lapse (if no one renews them)."""
        expiry = await self.lease_expiry(keys)
        # The floor keeps a claim finished meanwhile (no expiry) or just taken over by another from a busy loop.
        await asyncio.sleep(max(self._seconds_until(expiry) if expiry else 0.0, LAPSE_FLOOR))

    async def sent_refs(self, key_prefix: str, showing_other_than: str | None = None) -> list[MessageRef]:
        """Message refs of every post sent under keys starting with `key_prefix` (for later edits); with
        `showing_other_than`, only those not known to show the message of that digest."""
        query = (
            select(Delivery.message_ref)
            .where(col(Delivery.key).startswith(key_prefix), Delivery.status == DeliveryStatus.SENT)
            .where(col(Delivery.message_ref).is_not(None))
            .order_by(col(Delivery.id))
        )
        if showing_other_than is not None:
            query = query.where(sa.or_(col(Delivery.shown).is_(None), col(Delivery.shown) != showing_other_than))
        async with self.db.reading() as session:
            refs = (await session.exec(query)).all()
        return [MessageRef.decode(ref) for ref in refs if ref]

    async def showing(self, key_prefix: str, refs: Collection[MessageRef], shown: str) -> None:
        """Record that the messages `refs`, posted under `key_prefix`, now show the message of digest `shown`."""
        if not refs:
            return
        async with self.db.session() as session:
            await session.exec(
                update(Delivery)
                .where(col(Delivery.key).startswith(key_prefix), col(Delivery.status) == DeliveryStatus.SENT)
                .where(col(Delivery.message_ref).in_([ref.encode() for ref in refs]))
                .values(shown=shown)
            )


_Turn = tuple[asyncio.Future[None] | None, asyncio.Future[None]]  # (the previous send's, this send's)
Build = Callable[[], Awaitable[Message]] | Message


@dataclass(frozen=True)
class Post:
    """One post for Outbox.settle: its ledger key, where it goes, and its message (or how to build it)."""

    key: str
    targets: Sequence[Target]
    build: Build


@dataclass
class FanOut:
    """What one fan-out did: the refs of the sends that succeeded, and the targets someone else holds or sent."""

    sent: dict[Target, MessageRef]
    refused: list[Target]


class Outbox:
    """Claims, sends and records posts through the adapters, in order per target and concurrently across targets."""

    def __init__(
        self,
        ledger: Ledger,
        adapters: Mapping[str, Adapter],
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.ledger = ledger
        self.adapters = adapters
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self._tails: dict[Target, asyncio.Future[None]] = {}

    def fan_out(self, key: str, targets: Sequence[Target], build: Build) -> asyncio.Task[FanOut]:
        """Send `key` to every target that this caller can claim. `build` runs once, only if something was claimed.

        The post takes its place in each target's queue before this returns, so posts handed over one after
        another reach each target in that order, while each target's queue moves at its own pace.
        """
        turns = {target: self._queue(target) for target in targets}
        return asyncio.create_task(self._fan_out(key, turns, build))

    async def _fan_out(self, key: str, turns: dict[Target, _Turn], build: Build) -> FanOut:
        targets = list(turns)
        result = FanOut({}, [])
        try:
            claimed = await self.ledger.claim_many(key, targets)
            result.refused = [target for target in targets if target not in claimed]
            for target in result.refused:
                self._leave(target, turns.pop(target))
            if not claimed:
                return result
            try:
                message = await build() if callable(build) else build
            except Exception as exc:
                log.warning("post %s could not be built: %s", key, exc)
                for target in claimed:
                    await self.ledger.finish(key, target, DeliveryStatus.FAILED, error=_describe(exc))
                return result
            result.sent = await self._send_all(key, message, turns, claimed.taken_over)
            return result
        finally:
            for target, turn in turns.items():
                self._leave(target, turn)

    async def settle(self, posts: Sequence[Post]) -> None:
        """Fan out each post, in order, and return once every target of every post is sent, failed or skipped.

        A target whose claim another sender holds is tried again when that claim's lease lapses: the sender may
        have died mid-send (a replay at start-up meets its own crashed claims this way), and the takeover asks
        the platform whether its message landed. Retries go out in the posts' order, as the first round did.
        """
        waiting = [list(post.targets) for post in posts]
        while True:
            rounds = [self.fan_out(post.key, targets, post.build) for post, targets in zip(posts, waiting, strict=True)]
            waiting = [(await task).refused for task in rounds]
            held = [post.key for post, targets in zip(posts, waiting, strict=True) if targets]
            if not held:
                return
            settled = await self.ledger.settled(held)
            waiting = [
                [t for t in targets if (post.key, t.encode()) not in settled]
                for post, targets in zip(posts, waiting, strict=True)
            ]
            if not any(waiting):
                return
            await self.ledger.lapse(held)

    async def send_claimed(self, key: str, claimed: Claimed, message: Message) -> dict[Target, MessageRef]:
        """Send a post whose targets the caller already claimed (Ledger.claim_posts), and record each send."""
        turns = {target: self._queue(target) for target in claimed}
        try:
            return await self._send_all(key, message, turns, claimed.taken_over)
        finally:
            for target, turn in turns.items():
                self._leave(target, turn)

    async def _send_all(
        self, key: str, message: Message, turns: dict[Target, _Turn], taken_over: Mapping[Target, datetime]
    ) -> dict[Target, MessageRef]:
        targets = list(turns)
        sends = (self._send_in_turn(key, t, message, turns[t], taken_over.get(t)) for t in targets)
        refs = await asyncio.gather(*sends)
        return {target: ref for target, ref in zip(targets, refs, strict=True) if ref is not None}

    def _queue(self, target: Target) -> _Turn:
        previous = self._tails.get(target)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[target] = mine
        return previous, mine

    def _leave(self, target: Target, turn: _Turn) -> None:
        mine = turn[1]
        if not mine.done():
            mine.set_result(None)
        if self._tails.get(target) is mine:
            del self._tails[target]

    async def _send_in_turn(
        self, key: str, target: Target, message: Message, turn: _Turn, since: datetime | None
    ) -> MessageRef | None:
        """Send in the target's turn and record the outcome; `since`: the claim was taken over from a sender
        who began then, so first look for the message that sender may have sent."""
        previous = turn[0]
        async with self.ledger.holding(key, target):  # the claim holds while the post waits its turn, and sends
            if previous is not None:
                await asyncio.shield(previous)
            try:
                ref, error = await self._attempts(key, target, message, since)
            finally:
                self._leave(target, turn)  # the next post to this target need not wait for the bookkeeping
        if ref is not None:
            # A takeover may have found the earlier sender's message, built from the state of its time.
            shown = digest(message) if since is None else None
            await self.ledger.finish(key, target, DeliveryStatus.SENT, ref, shown=shown)
        else:
            log.warning("post %s to %s failed for good: %s", key, target.encode(), error)
            await self.ledger.finish(key, target, DeliveryStatus.FAILED, error=error)
        return ref

    async def _attempts(
        self, key: str, target: Target, message: Message, since: datetime | None
    ) -> tuple[MessageRef | None, str]:
        """Send, retrying with backoff (or after the reported Retry-After); the ref, or None and the last error."""
        adapter = self.adapters.get(target.platform)
        if adapter is None:
            return None, f"no {target.platform} adapter"
        delays = self.policy.delays
        error: Exception
        for attempt in range(len(delays) + 1):
            try:
                return await self._find_or_send(adapter, key, target, message, since), ""
            except SendError as exc:
                error = exc
                if exc.permanent:
                    break
            except Exception as exc:  # a failure the adapter did not classify: worth another try
                error = exc
            if attempt == len(delays):
                break
            wait = delays[attempt]
            if isinstance(error, SendError) and error.retry_after is not None:
                wait = min(max(error.retry_after, wait), self.policy.max_retry_after)
            log.info("post %s to %s failed (%s); retrying in %.1fs", key, target.encode(), error, wait)
            await self.ledger.renew(key, target, timedelta(seconds=wait))
            await self.sleep(wait)
        return None, _describe(error)

    async def _find_or_send(
        self, adapter: Adapter, key: str, target: Target, message: Message, since: datetime | None
    ) -> MessageRef:
        """The message an earlier sender already sent (when the claim was taken over), else a new one."""
        to: ChannelRef | Actor = (
            Actor(target.platform, target.id) if target.user else ChannelRef(target.platform, target.id)
        )
        if since is not None:
            found = await adapter.find_sent(to, key, self.ledger.clock.system_time(since))
            if found is not None:
                log.info("post %s to %s had landed before its sender stopped; not sent again", key, target.encode())
                return found
        if isinstance(to, Actor):
            return await adapter.send_dm(to, message, key)
        return await adapter.send(to, message, key)


def _claimed(
    key: str,
    targets: Sequence[Target],
    owned: Collection[tuple[str, str]],
    taken_over: Mapping[tuple[str, str], datetime],
) -> Claimed:
    """The targets of `key` that are owned, in order, with the takeovers' first claim times."""
    mine = [target for target in targets if (key, target.encode()) in owned]
    return Claimed(mine, {t: taken_over[key, t.encode()] for t in mine if (key, t.encode()) in taken_over})


def _lapsed(now: datetime) -> tuple[Any, ...]:
    """Conditions on a row that is claimed by a sender who stopped renewing it (it died mid-send)."""
    return col(Delivery.status) == DeliveryStatus.CLAIMED, col(Delivery.lease_until) < now


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
