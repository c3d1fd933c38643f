"""The runner: the scheduled posts kept equal to the plan, and the sends they make when they fire.

The scheduled posts live in memory, by key, with a timeline of when each fires (a heap); one
APScheduler job (AsyncIOScheduler, timezone UTC) wakes the runner when the earliest of them is due,
so 20,000 planned posts cost 20,000 small entries, not 20,000 jobs. The runner reconciles at
startup and after every change to an event, adding, replacing and removing posts until they match
the planner's output. A firing job re-reads the event, checks that its post is still planned, builds
the message from the current state and hands it to the outbox, whose ledger keeps each key to one
send per target across restarts and replicas. Posts missed while the bot was down are sent late if
they are within the grace window; older ones are recorded as skipped. A late post speaks from when it
goes out ("starts in 58 minutes", "started 2 minutes ago"), and is recorded as skipped instead when
that no longer makes sense (an "up next" whose item has begun).

Run times follow the injected clock: a job fires when the clock reaches its run_at, at the system time
the clock gives for it (with the system clock, that is simply run_at; a demo's fast clock gets there sooner).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
from collections import defaultdict
from collections.abc import Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import compose
from bot.clock import Clock
from bot.db import Database
from bot.delivery import Claimed, Outbox, Target
from bot.effects import Effect, EventChanged, RemindersChanged, SeatsChanged
from bot.messages import AgendaEntry, Message
from bot.metrics import Metrics
from bot.models import AgendaItem, DeliveryStatus, Event, EventStatus, Rsvp, RsvpStatus
from bot.timeparse import TimeParseError, parse_durations, stored_usable
from schedules.planner import ITEM_POSTS, EventSnapshot, ItemSnapshot, Plan, PlannedPost, PostKind, Rules, plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skip:
    """A post that, going out late, would no longer make sense; its claimed targets are recorded as skipped."""

    reason: str


# Posts ready to send (or to record as skipped): (post, message, targets claimed, targets someone else holds).
Prepared = list[tuple[PlannedPost, Message | Skip, Claimed, list[Target]]]

LATE_AFTER = timedelta(seconds=1)  # a post sent this much later than its timer (system time) is logged as late
LOOKBACK = timedelta(days=1)  # events that ended longer ago than this are not planned at all
_POLL = 0.01  # seconds between checks in settle()
WAKE = "wake"  # the one APScheduler job: it fires when the earliest scheduled post is due
WAKES = 100  # WAKE runs that may be waiting for the event loop at once


class Runner:
    """Keeps the scheduled posts equal to the plan, and fires them through the outbox."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        outbox: Outbox,
        targets: Sequence[Target],
        rules: Rules,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.outbox = outbox
        self.ledger = outbox.ledger
        self.targets = tuple(targets)
        self.rules = rules
        self.metrics = metrics
        # Missed posts are the runner's business (sent late within the grace, else skipped), so
        # APScheduler runs every job however late it is.
        self.scheduler = AsyncIOScheduler(
            timezone=UTC, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        )
        logging.getLogger("apscheduler").setLevel(max(logging.getLogger("apscheduler").level, logging.WARNING))
        self._posts: dict[str, PlannedPost] = {}  # the scheduled posts, by key
        self._fires_at: dict[str, datetime] = {}  # when each post fires, on the scheduler's (the system's) clock
        self._timeline: list[tuple[datetime, str]] = []  # (fires at, key), a heap; a removed post's entry stays
        self._wakes_at: datetime | None = None  # when the WAKE job fires
        self._by_event: defaultdict[int, set[str]] = defaultdict(set)
        self._in_flight: set[str] = set()  # fired, not yet sent
        self._due_posts: list[PlannedPost] = []  # fired, waiting for the next batch
        self._batcher: asyncio.Task[None] | None = None
        self._firing: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._waiting: set[int | None] = set()
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Schedule the whole plan, then start firing (missed posts go first)."""
        self._stopped = False
        self.scheduler.start(paused=True)  # the plan is scheduled before anything fires
        await self.reconcile()
        self.scheduler.resume()

    async def stop(self) -> None:
        """Stop firing and wait for the sends under way; unsent posts stay for the next start."""
        self._stopped = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on its loop's next turn
        while self._firing:
            await asyncio.gather(*list(self._firing), return_exceptions=True)
        self._posts.clear()
        self._fires_at.clear()
        self._by_event.clear()
        self._timeline.clear()
        self._wakes_at = None

    async def __call__(self, effect: Effect) -> None:
        """EffectBus subscriber: an event (its agenda, its RSVPs, its reminders) changed."""
        match effect:
            case EventChanged(event_id) | SeatsChanged(event_id, reminders_moved=True) | RemindersChanged(event_id):
                await self.reconcile(event_id)

    async def settle(self, everything: bool = False) -> None:
        """Wait until every post due by now (with `everything`, every scheduled post) has been handled."""
        while True:
            await asyncio.sleep(0)
            if self._firing:
                await asyncio.gather(*list(self._firing), return_exceptions=True)
                continue
            now = datetime.now(UTC)
            if not any(everything or at <= now for at in self._fires_at.values()):
                return
            await asyncio.sleep(_POLL)

    @property
    def jobs(self) -> dict[str, PlannedPost]:
        """The scheduled posts by key (a copy)."""
        return dict(self._posts)

    # -- reconcile ------------------------------------------------------------------------------

    async def reconcile(self, event_id: int | None = None) -> Plan | None:
        """Make the jobs (of one event, or of all) equal to the plan. Returns the plan it applied."""
        if event_id in self._waiting:
            return None  # a reconcile of the same scope has not read the database yet: it will see this change
        self._waiting.add(event_id)
        async with self._lock:
            self._waiting.discard(event_id)
            if self._stopped:
                return None
            now = self.clock.now()
            current = plan(await self.snapshots(now, event_id), self.rules, self.targets, now)
            due = [post for post in current.posts if post.run_at <= now]
            settled = await self.ledger.settled([post.key for post in due]) if due else set()
            done = {post.key for post in due if all((post.key, target.encode()) in settled for target in post.targets)}
            desired = {post.key: post for post in current.posts if post.key not in done}
            scope = set(self._posts) if event_id is None else set(self._by_event.get(event_id, ()))
            for key in scope - desired.keys():
                self._unschedule(key)
            for key, post in desired.items():
                if self._posts.get(key) != post and key not in self._in_flight:
                    self._schedule(post, self.clock.system_time(post.run_at))
            if current.missed:
                await self.ledger.skip_many(
                    ((post.key, target) for post in current.missed for target in post.targets),
                    f"missed by more than the {self.rules.grace} grace window",
                )
            if event_id is None:
                log.info(
                    "scheduled %d posts (%d due now, %d missed beyond grace)",
                    len(desired),
                    len(due) - len(done),
                    len(current.missed),
                )
            self._report()
            return current

    def _schedule(self, post: PlannedPost, at: datetime) -> None:
        self._posts[post.key] = post
        self._fires_at[post.key] = at
        self._by_event[post.event_id].add(post.key)
        heapq.heappush(self._timeline, (at, post.key))
        if self._wakes_at is None or at < self._wakes_at:
            self._wake_at(at)

    def _unschedule(self, key: str) -> None:
        self._forget(key)  # its timeline entry is skipped when it comes up
        if len(self._timeline) > 2 * len(self._fires_at) + 64:  # mostly removed posts: rebuild the heap
            self._timeline = [(at, kept) for kept, at in self._fires_at.items()]
            heapq.heapify(self._timeline)

    def _wake_at(self, at: datetime) -> None:
        # WAKE may be set again, and fire, before the wake that fired last has run: both run, the later finds
        # nothing due, and neither is skipped as a second instance.
        trigger = DateTrigger(at, timezone=UTC)
        self.scheduler.add_job(_wake, trigger, args=(self,), id=WAKE, replace_existing=True, max_instances=WAKES)
        self._wakes_at = at

    async def _wake(self) -> None:
        """The WAKE job fired: every post due by now fires, and WAKE is set for the next one."""
        self._wakes_at = None
        now = datetime.now(UTC)
        while self._timeline and self._timeline[0][0] <= now:
            at, key = heapq.heappop(self._timeline)
            if self._fires_at.get(key) == at:  # not removed nor moved since
                await self._due(key)
        while self._timeline and self._fires_at.get(self._timeline[0][1]) != self._timeline[0][0]:
            heapq.heappop(self._timeline)
        if self._timeline and self._wakes_at is None:
            self._wake_at(self._timeline[0][0])

    def _forget(self, key: str) -> PlannedPost | None:
        post = self._posts.pop(key, None)
        self._fires_at.pop(key, None)
        if post is not None:
            keys = self._by_event[post.event_id]
            keys.discard(key)
            if not keys:
                del self._by_event[post.event_id]
        return post

    def _report(self) -> None:
        if self.metrics is not None:
            self.metrics.set_jobs_pending(len(self._posts))

    # -- firing ---------------------------------------------------------------------------------

    async def _due(self, key: str) -> None:
        """A job fired: queue its post. Posts that come due together are prepared in one transaction."""
        post = self._forget(key)
        if post is None:
            return
        self._in_flight.add(key)
        self._due_posts.append(post)
        if self._batcher is None:
            self._batcher = self._track(self._batches())
        self._report()

    def _track(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Sends run in tasks of the runner's own, so that a scheduler shutdown cannot cut them short."""
        task = asyncio.create_task(work)
        self._firing.add(task)
        task.add_done_callback(self._firing.discard)
        return task

    async def _batches(self) -> None:
        try:
            while self._due_posts:
                await self._fire()
        finally:
            self._batcher = None

    async def _fire(self) -> None:
        """Prepare every queued post in one transaction, then start their sends; they run on in tasks."""
        taken: list[PlannedPost] = []
        try:
            async with self.db.session() as session:
                # The queue is taken once the database is ours: every post that came due meanwhile joins in.
                taken, self._due_posts = self._due_posts, []
                taken.sort(key=lambda post: (post.run_at, post.key))
                ready = await self._prepare(session, taken)
        except Exception:
            log.exception("posts %s failed", ", ".join(post.key for post in taken))
            ready = []
        handed = {post.key for post, *_ in ready}
        for post in taken:
            if post.key not in handed:
                self._in_flight.discard(post.key)
        for post, message, claimed, refused in ready:  # in run_at order: sends to one channel keep it
            task = self._track(self._deliver(post, message, claimed, refused))
            task.add_done_callback(functools.partial(self._sent_or_failed, post.key))

    def _sent_or_failed(self, key: str, _: asyncio.Task[None]) -> None:
        self._in_flight.discard(key)

    async def _prepare(self, session: AsyncSession, posts: list[PlannedPost]) -> Prepared:
        """Re-plan the posts' events, build each message, and claim each post's targets, in `session`.

        Returns (post, message, targets claimed, targets someone else holds) for the posts to send.
        """
        now = self.clock.now()
        expired = [post for post in posts if now - post.run_at > self.rules.grace]
        for post in expired:
            log.warning(
                "skipping post %s: due %s ago, beyond the %s grace", post.key, now - post.run_at, self.rules.grace
            )
        skipped = [(post.key, target) for post in expired for target in post.targets]
        await self.ledger.skip_many(skipped, "missed by more than the grace window", session)
        live = [post for post in posts if post not in expired]
        if not live:
            return []
        kinds = {post.kind for post in live}
        snapshots, events, entries = await self._load(
            session,
            now,
            {post.event_id for post in live},
            entries=bool(kinds & ITEM_POSTS),
            members=PostKind.DM in kinds,
        )
        planned = {post.key: post for post in plan(snapshots, self.rules, self.targets, now).posts}
        latest = _latest_reminders(planned.values(), now)
        built: list[tuple[PlannedPost, Message | Skip]] = []
        for post in live:
            current = planned.get(post.key)
            entry = None if current is None else _entry(current, entries)
            if current is None or (current.item_id is not None and entry is None):
                log.info("post %s is no longer planned; not sent", post.key)
                continue
            built.append((current, self._build(events[post.event_id], current, entry, now, latest)))
        # An item's post goes out once per target, even if the item moved after it went out.
        sent = await self.ledger.sent_slots({post.slot for post, _ in built if post.once_per_item}, session)
        wanted = [(post.key, [t for t in post.targets if (post.slot, t) not in sent]) for post, _ in built]
        claimed = await self.ledger.claim_posts(wanted, session)
        ready = []
        for (post, message), (_, targets) in zip(built, wanted, strict=True):
            mine = claimed[post.key]
            refused = [target for target in targets if target not in mine]
            if mine and isinstance(message, Skip):
                log.warning("skipping post %s: %s", post.key, message.reason)
            elif mine and self._late(post):
                late = now - post.run_at
                log.warning("post %s is late: due %s ago, within the %s grace", post.key, late, self.rules.grace)
            if mine or refused:
                ready.append((post, message, mine, refused))
        return ready

    def _late(self, post: PlannedPost) -> bool:
        """Whether the post goes out later than its timer allows (on the system's clock, so a fast clock's
        jitter is not lateness)."""
        return datetime.now(UTC) - self.clock.system_time(post.run_at) > LATE_AFTER

    def _build(
        self, event: Event, post: PlannedPost, entry: AgendaEntry | None, now: datetime, latest: dict[int, datetime]
    ) -> Message | Skip:
        """The post's message: as planned when on time; when late, said from `now`, or a Skip if now moot.

        `latest` is each event's latest reminder due by now (see _latest_reminders)."""
        if not self._late(post):
            return _message(event, post, entry)
        reason = _moot(event, post, entry, now, latest)
        return Skip(reason) if reason else _message(event, post, entry, now)

    async def _deliver(
        self, post: PlannedPost, message: Message | Skip, claimed: Claimed, refused: list[Target]
    ) -> None:
        try:
            if isinstance(message, Skip):
                skipped = DeliveryStatus.SKIPPED
                await asyncio.gather(*(self.ledger.finish(post.key, t, skipped, error=message.reason) for t in claimed))
            elif claimed:
                await self.outbox.send_claimed(post.key, claimed, message)
            if refused:
                await self._after_lease(post)
        except Exception:
            log.exception("post %s failed", post.key)

    async def _after_lease(self, post: PlannedPost) -> None:
        """A claim held elsewhere may belong to a sender that died: look again once its lease lapses."""
        expiry = await self.ledger.lease_expiry([post.key])
        if expiry is None or expiry - post.run_at > self.rules.grace or self._stopped:
            return
        async with self._lock:
            if post.key not in self._posts:
                self._schedule(post, self.clock.system_time(expiry))
                self._report()

    # -- state ----------------------------------------------------------------------------------

    async def snapshots(self, now: datetime, event_id: int | None = None) -> list[EventSnapshot]:
        """The planner's input as the database has it now (one event, or all that may still owe posts)."""
        async with self.db.reading() as session:
            snapshots, _, _ = await self._load(session, now, None if event_id is None else [event_id])
            return snapshots

    async def _load(
        self,
        session: AsyncSession,
        now: datetime,
        event_ids: Collection[int] | None,
        entries: bool = False,
        members: bool = True,
    ) -> tuple[list[EventSnapshot], dict[int, Event], dict[int, dict[int, AgendaEntry]]]:
        """Snapshots of the events that may still owe posts: the given ones (any status), or every published one.

        Also returns the event rows and, with `entries`, each event's agenda entries by item id (for messages).
        Without `members`, the snapshots leave out DM reminders (a batch without DMs need not read RSVPs).
        """
        scope = [col(Event.ends_at) > now - LOOKBACK]
        if event_ids is None:
            scope.append(col(Event.status) == EventStatus.PUBLISHED)
        else:
            scope.append(col(Event.id).in_(list(event_ids)))
        found = (await session.exec(select(Event).where(*scope))).all()
        events = {event.id or 0: event for event in found if _plannable(event)}
        if not events:
            return [], {}, {}
        items: defaultdict[int, list[ItemSnapshot]] = defaultdict(list)
        agendas: dict[int, dict[int, AgendaEntry]] = {}
        if entries:
            for agenda_event, agenda in (await compose.agendas(session, list(events.values()))).items():
                items[agenda_event] = [ItemSnapshot(item.id or 0, item.kind, item.starts_at) for item, _ in agenda]
                agendas[agenda_event] = {item.id or 0: entry for item, entry in agenda}
        else:
            item_rows = await session.exec(
                select(AgendaItem.id, AgendaItem.event_id, AgendaItem.kind, AgendaItem.starts_at)
                .join(Event, col(Event.id) == col(AgendaItem.event_id))
                .where(*scope)
            )
            for item_id, item_event, kind, starts_at in item_rows.all():
                items[item_event].append(ItemSnapshot(item_id or 0, kind, starts_at))
        opted_in: defaultdict[int, list[Target]] = defaultdict(list)
        if members:
            rsvp_rows = await session.exec(
                select(Rsvp.event_id, Rsvp.platform, Rsvp.user_id)
                .join(Event, col(Event.id) == col(Rsvp.event_id))
                .where(*scope, col(Rsvp.status) == RsvpStatus.GOING, col(Rsvp.dm_reminders).is_(True))
                .where(col(Rsvp.platform).in_(list(self.outbox.adapters)))
                .order_by(col(Rsvp.id))
            )
            for rsvp_event, platform, user_id in rsvp_rows.all():
                opted_in[rsvp_event].append(Target(platform, user_id, user=True))
        snapshots = [
            EventSnapshot(
                id=event_id_,
                status=event.status,
                starts_at=event.starts_at,
                timezone=event.timezone,
                items=tuple(items[event_id_]),
                dm_members=tuple(opted_in[event_id_]),
                offsets=_offsets(event),
            )
            for event_id_, event in events.items()
        ]
        return snapshots, events, agendas


async def _wake(runner: Runner) -> None:
    """The APScheduler job function."""
    await runner._wake()


def _plannable(event: Event) -> bool:
    """Whether the row can be planned; one that a newer version would refuse is logged and left out."""
    return stored_usable(event.slug, event.starts_at, event.ends_at, event.timezone, "timed posts")


def _offsets(event: Event) -> tuple[timedelta, ...] | None:
    """The event's own reminder offsets ("1d, 2h"), when it has any that parse."""
    if not event.reminder_offsets:
        return None
    try:
        return parse_durations(event.reminder_offsets)
    except TimeParseError as exc:
        log.warning("event %s: ignoring its reminder offsets: %s", event.slug, exc)
        return None


def _entry(post: PlannedPost, entries: dict[int, dict[int, AgendaEntry]]) -> AgendaEntry | None:
    """The agenda entry an item's post is about, as it is now (None: not an item's post, or the item is gone)."""
    return None if post.item_id is None else entries.get(post.event_id, {}).get(post.item_id)


def _message(event: Event, post: PlannedPost, entry: AgendaEntry | None, late_at: datetime | None = None) -> Message:
    """The post's message from the event and its agenda entry as they are now; sent late, it speaks from `late_at`."""
    if post.kind is PostKind.INTRO and entry is not None:
        return compose.speaker_intro(event, entry)
    if late_at is None:
        return compose.reminder(event, post.lead, entry)
    return compose.late_reminder(event, late_at, entry)


def _latest_reminders(posts: Iterable[PlannedPost], now: datetime) -> dict[int, datetime]:
    """When each event's latest reminder already due at `now` was due (an earlier one late is superseded)."""
    latest: dict[int, datetime] = {}
    for post in posts:
        if post.kind is PostKind.REMINDER and post.run_at <= now:
            latest[post.event_id] = max(post.run_at, latest.get(post.event_id, post.run_at))
    return latest


def _moot(
    event: Event, post: PlannedPost, entry: AgendaEntry | None, now: datetime, latest: dict[int, datetime]
) -> str | None:
    """Why a late post going out at `now` would no longer make sense (None: it still does)."""
    if post.kind in (PostKind.REMINDER, PostKind.DM) and event.starts_at <= now:
        return "the event has started"
    if post.kind is PostKind.REMINDER and latest.get(post.event_id, post.run_at) > post.run_at:
        return "a later reminder is due"
    if entry is not None and post.kind is PostKind.UP_NEXT and entry.when.starts_at <= now:
        return "its item has begun"
    if entry is not None and post.kind is PostKind.INTRO and entry.when.ends_at <= now:
        return "its item has ended"
    return None
