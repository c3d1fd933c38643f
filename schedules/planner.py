"""The plan: every timed post the bot owes, computed from state alone (no I/O, no clock).

A post's key ends with its run_at, so a moved item or event gets new keys and fires at its new
time, while the ledger keeps each key to one send per target. Whole days of an offset are taken
in the event's own zone (same wall-clock time the day before, across daylight-saving changes);
the rest of an offset is plain elapsed time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.delivery import Target
from bot.models import EventStatus, ItemKind
from bot.timeparse import format_duration

DAY = timedelta(days=1)
INTRO_KINDS = frozenset({ItemKind.TALK, ItemKind.PANEL})


class PostKind(StrEnum):
    """What a timed post says; the first part of its key."""

    REMINDER = "remind"  # before the event, at each event offset
    STARTING = "start"  # "starting now"
    UP_NEXT = "next"  # before each agenda item
    INTRO = "intro"  # the speakers, when a talk or panel starts
    DM = "dm"  # a member's own reminder


# Posts about one agenda item. Each goes out once per item: moving an item after its intro was posted
# (a "running late" shift of the talk on stage) must not introduce it again.
ITEM_POSTS = frozenset({PostKind.UP_NEXT, PostKind.INTRO})


@dataclass(frozen=True)
class ItemSnapshot:
    id: int
    kind: str
    starts_at: datetime


@dataclass(frozen=True)
class EventSnapshot:
    """What the planner needs to know about one event. `offsets` None means the configured ones."""

    id: int
    status: str
    starts_at: datetime
    timezone: str
    items: tuple[ItemSnapshot, ...] = ()
    dm_members: tuple[Target, ...] = ()  # going, opted in with `emcee remind on`
    offsets: tuple[timedelta, ...] | None = None


@dataclass(frozen=True)
class Rules:
    event_offsets: tuple[timedelta, ...] = (DAY, timedelta(hours=1))
    item_offset: timedelta = timedelta(minutes=5)
    speaker_intros: bool = True
    dm_offset: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        reminders = settings.reminders
        return cls(
            event_offsets=tuple(reminders.event_offsets),
            item_offset=reminders.item_offset,
            speaker_intros=reminders.speaker_intros,
            dm_offset=reminders.dm_offset,
            grace=timedelta(minutes=settings.bot.grace_minutes),
        )


@dataclass(frozen=True, slots=True)
class PlannedPost:
    key: str
    run_at: datetime
    kind: PostKind
    event_id: int
    targets: tuple[Target, ...]
    item_id: int | None = None
    lead: timedelta = timedelta(0)  # how long before the event or item it goes out
    slot: str = field(default="", compare=False)  # the key without its run_at

    @property
    def once_per_item(self) -> bool:
        return self.kind in ITEM_POSTS


@dataclass(frozen=True)
class Plan:
    posts: list[PlannedPost]  # to schedule: due now or later, or missed by at most the grace
    missed: list[PlannedPost]  # missed by more than the grace: to be recorded as skipped


def before(moment: datetime, offset: timedelta, zone: ZoneInfo) -> datetime:
    """`moment` minus `offset`: whole days on the local calendar, the remainder in elapsed time."""
    days, rest = divmod(offset, DAY)
    local = moment.astimezone(zone)
    return ((local - days * DAY).astimezone(UTC) if days else moment.astimezone(UTC)) - rest


def plan(events: Iterable[EventSnapshot], rules: Rules, targets: Sequence[Target], now: datetime) -> Plan:
    """The posts owed for published `events`, sent to `targets` (DMs to each opted-in member)."""
    posts: list[PlannedPost] = []
    missed: list[PlannedPost] = []
    oldest = now - rules.grace
    for event in events:
        if event.status != EventStatus.PUBLISHED:
            continue
        for post in event_posts(event, rules, tuple(targets)):
            (posts if post.run_at >= oldest else missed).append(post)
    posts.sort(key=lambda post: (post.run_at, post.key))
    return Plan(posts, missed)


def event_posts(event: EventSnapshot, rules: Rules, targets: tuple[Target, ...]) -> Iterable[PlannedPost]:
    zone = ZoneInfo(event.timezone)

    def post(
        kind: PostKind,
        slot: str,
        run_at: datetime,
        to: tuple[Target, ...],
        item_id: int | None = None,
        lead: timedelta = timedelta(0),
    ) -> PlannedPost:
        run_at = run_at.astimezone(UTC)
        return PlannedPost(f"{slot}:{run_at.isoformat()}", run_at, kind, event.id, to, item_id, lead, slot)

    if targets:
        for offset in event.offsets if event.offsets is not None else rules.event_offsets:
            if offset > timedelta(0):
                run_at = before(event.starts_at, offset, zone)
                slot = f"{PostKind.REMINDER}:{event.id}:{format_duration(offset)}"
                yield post(PostKind.REMINDER, slot, run_at, targets, lead=offset)
        yield post(PostKind.STARTING, f"{PostKind.STARTING}:{event.id}", event.starts_at, targets)
        for item in event.items:
            run_at = before(item.starts_at, rules.item_offset, zone)
            slot = f"{PostKind.UP_NEXT}:{item.id}"
            yield post(PostKind.UP_NEXT, slot, run_at, targets, item_id=item.id, lead=rules.item_offset)
            if rules.speaker_intros and item.kind in INTRO_KINDS:
                yield post(PostKind.INTRO, f"{PostKind.INTRO}:{item.id}", item.starts_at, targets, item_id=item.id)
    dm_at = before(event.starts_at, rules.dm_offset, zone)
    for member in event.dm_members:
        slot = f"{PostKind.DM}:{event.id}:{member.platform}:{member.id}"
        yield post(PostKind.DM, slot, dm_at, (member,), lead=rules.dm_offset)
