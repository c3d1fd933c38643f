"""The planner: from events, rules, targets and now, the full set of timed posts (pure, table-driven)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import Settings
from bot.delivery import Target
from bot.models import EventStatus
from schedules.planner import EventSnapshot, ItemSnapshot, PostKind, Rules, before, plan

LA = "America/Los_Angeles"
CHANNELS = (Target("slack", "C1"), Target("discord", "42"))
ADA = Target("slack", "U1", user=True)


def local(text: str, zone: str = LA, fold: int = 0) -> datetime:
    """'2026-06-15 18:00' on the wall clock of `zone`, as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def talk(item_id: int, starts_at: datetime, kind: str = "talk") -> ItemSnapshot:
    return ItemSnapshot(item_id, kind, starts_at)


EVENING = EventSnapshot(
    id=1,
    status=EventStatus.PUBLISHED,
    starts_at=local("2026-06-15 18:00"),
    timezone=LA,
    items=(
        talk(11, local("2026-06-15 18:00")),
        talk(12, local("2026-06-15 18:30"), "networking"),
        talk(13, local("2026-06-15 19:00"), "panel"),
    ),
    dm_members=(ADA,),
)
EVENING_POSTS = {
    ("remind:1:1d", local("2026-06-14 18:00")),
    ("remind:1:1h", local("2026-06-15 17:00")),
    ("start:1", local("2026-06-15 18:00")),
    ("next:11", local("2026-06-15 17:55")),
    ("intro:11", local("2026-06-15 18:00")),
    ("next:12", local("2026-06-15 18:25")),
    ("next:13", local("2026-06-15 18:55")),
    ("intro:13", local("2026-06-15 19:00")),
    ("dm:1:slack:U1", local("2026-06-15 17:00")),
}
EARLY = local("2026-06-01 09:00")

# Daylight saving time ends in Los Angeles on Sunday 2026-11-01 at 02:00 (PDT -> PST), and starts
# on Sunday 2026-03-08 at 02:00 (PST -> PDT).
FALL_BACK = replace(EVENING, starts_at=local("2026-11-01 18:00"), items=(), dm_members=())
SPRING_FORWARD = replace(EVENING, starts_at=local("2026-03-08 18:00"), items=(), dm_members=())
# A night event across the fall-back hour: 01:30 happens twice, first in PDT then in PST.
OVERNIGHT = replace(
    EVENING,
    starts_at=local("2026-10-31 22:00"),
    items=(
        talk(21, local("2026-11-01 00:30")),
        talk(22, local("2026-11-01 01:30")),  # PDT, 08:30 UTC
        talk(23, local("2026-11-01 01:30", fold=1)),  # PST, 09:30 UTC
        talk(24, local("2026-11-01 02:30")),
    ),
    dm_members=(),
)


@dataclass(frozen=True)
class Case:
    events: tuple[EventSnapshot, ...]
    now: datetime
    posts: set[tuple[str, datetime]]
    missed: frozenset[str] = frozenset()
    rules: Rules = Rules()
    targets: tuple[Target, ...] = CHANNELS


CASES = {
    "defaults: 1d and 1h reminders, starting now, up next, intros for talks and panels, DMs": Case(
        (EVENING,), EARLY, EVENING_POSTS
    ),
    "1 day before is the same wall-clock time the day before DST ends (25 h earlier)": Case(
        (FALL_BACK,),
        EARLY,
        {
            ("remind:1:1d", local("2026-10-31 18:00")),
            ("remind:1:1h", local("2026-11-01 17:00")),
            ("start:1", local("2026-11-01 18:00")),
        },
    ),
    "1 day before is the same wall-clock time the day before DST starts (23 h earlier)": Case(
        (SPRING_FORWARD,),
        local("2026-01-01 09:00"),
        {
            ("remind:1:1d", local("2026-03-07 18:00")),
            ("remind:1:1h", local("2026-03-08 17:00")),
            ("start:1", local("2026-03-08 18:00")),
        },
    ),
    "an event across the fall-back hour: minutes before an item are elapsed minutes": Case(
        (OVERNIGHT,),
        EARLY,
        {
            ("remind:1:1d", local("2026-10-30 22:00")),
            ("remind:1:1h", local("2026-10-31 21:00")),
            ("start:1", local("2026-10-31 22:00")),
            ("next:21", utc("2026-11-01 07:25")),
            ("intro:21", utc("2026-11-01 07:30")),
            ("next:22", utc("2026-11-01 08:25")),
            ("intro:22", utc("2026-11-01 08:30")),
            ("next:23", utc("2026-11-01 09:25")),
            ("intro:23", utc("2026-11-01 09:30")),
            ("next:24", utc("2026-11-01 10:25")),
            ("intro:24", utc("2026-11-01 10:30")),
        },
    ),
    "draft and cancelled events plan nothing": Case(
        (replace(EVENING, status=EventStatus.DRAFT), replace(EVENING, id=2, status=EventStatus.CANCELLED)), EARLY, set()
    ),
    "posts missed by more than the grace are left out, within it they stay": Case(
        (EVENING,),
        local("2026-06-15 18:11"),
        {
            ("start:1", local("2026-06-15 18:00")),  # 11 minutes ago, grace is 15
            ("intro:11", local("2026-06-15 18:00")),
            ("next:12", local("2026-06-15 18:25")),
            ("next:13", local("2026-06-15 18:55")),
            ("intro:13", local("2026-06-15 19:00")),
        },
        missed=frozenset({"remind:1:1d", "remind:1:1h", "dm:1:slack:U1", "next:11"}),
    ),
    "a post missed by exactly the grace is still sent": Case(
        (replace(EVENING, items=(), dm_members=()),),
        local("2026-06-15 18:15"),
        {("start:1", local("2026-06-15 18:00"))},
        missed=frozenset({"remind:1:1d", "remind:1:1h"}),
    ),
    "configured offsets, and no intros when they are turned off": Case(
        (EVENING,),
        EARLY,
        {
            ("remind:1:2d", local("2026-06-13 18:00")),
            ("remind:1:1d1h", local("2026-06-14 17:00")),
            ("start:1", local("2026-06-15 18:00")),
            ("next:11", local("2026-06-15 17:50")),
            ("next:12", local("2026-06-15 18:20")),
            ("next:13", local("2026-06-15 18:50")),
            ("dm:1:slack:U1", local("2026-06-15 15:30")),
        },
        rules=Rules(
            event_offsets=(timedelta(days=2), timedelta(days=1, hours=1)),
            item_offset=timedelta(minutes=10),
            speaker_intros=False,
            dm_offset=timedelta(hours=2, minutes=30),
        ),
    ),
    "an event's own offsets replace the configured ones": Case(
        (replace(EVENING, items=(), dm_members=(), offsets=(timedelta(hours=3),)),),
        EARLY,
        {("remind:1:3h", local("2026-06-15 15:00")), ("start:1", local("2026-06-15 18:00"))},
    ),
    "without announce channels only DMs are planned": Case(
        (EVENING,), EARLY, {("dm:1:slack:U1", local("2026-06-15 17:00"))}, targets=()
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan(case: Case) -> None:
    result = plan(case.events, case.rules, case.targets, case.now)
    assert {(post.slot, post.run_at) for post in result.posts} == case.posts
    assert {post.slot for post in result.missed} == case.missed
    for post in result.posts + result.missed:
        assert post.key == f"{post.slot}:{post.run_at.isoformat()}"  # the key includes run_at
        assert post.run_at.tzinfo == UTC
        assert post.targets == ((ADA,) if post.kind is PostKind.DM else case.targets)
    assert [post.run_at for post in result.posts] == sorted(post.run_at for post in result.posts)


def test_one_day_before_keeps_the_wall_clock_across_dst() -> None:
    zone = ZoneInfo(LA)
    for event_start, hours in ((FALL_BACK.starts_at, 25), (SPRING_FORWARD.starts_at, 23)):
        reminder = before(event_start, timedelta(days=1), zone)
        assert reminder.astimezone(zone).time() == event_start.astimezone(zone).time()
        assert event_start - reminder == timedelta(hours=hours)
        assert event_start - before(event_start, timedelta(hours=1), zone) == timedelta(hours=1)


def test_moving_an_item_gives_its_posts_new_keys() -> None:
    moved = replace(EVENING, items=(talk(11, local("2026-06-15 18:10")), *EVENING.items[1:]))
    old = {post.key: post.slot for post in plan([EVENING], Rules(), CHANNELS, EARLY).posts}
    new = {post.key: post.slot for post in plan([moved], Rules(), CHANNELS, EARLY).posts}
    assert {old[key] for key in old.keys() - new.keys()} == {"next:11", "intro:11"}
    assert {new[key] for key in new.keys() - old.keys()} == {"next:11", "intro:11"}


def test_rules_come_from_the_settings() -> None:
    settings = Settings.model_validate(
        {"bot": {"grace_minutes": 5}, "reminders": {"event_offsets": ["2h"], "item_offset": "3m"}}
    )
    rules = Rules.from_settings(settings)
    assert rules == Rules(
        event_offsets=(timedelta(hours=2),), item_offset=timedelta(minutes=3), grace=timedelta(minutes=5)
    )
