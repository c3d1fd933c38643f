"""Benchmark of the timed posts: plan and reconcile a large schedule, then fire a burst of posts.

1. EVENTS published events with ITEMS agenda items each (and DM opt-ins) on a SQLite file: the time
   to load and plan them, and to reconcile the APScheduler jobs (Runner.start), and the RSS after.
2. BURST posts due within the same WINDOW seconds, fired by real timers through the ledger to a
   recording adapter: lateness when each post's job starts, and when its send is recorded.

Prints a table and the command that made it. Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import SystemClock
from bot.db import Database
from bot.delivery import Claimed, Ledger, Outbox, Target
from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import Message
from bot.models import EventStatus, RsvpStatus
from schedules.planner import PlannedPost, Rules, plan
from schedules.runner import Prepared, Runner, Skip

KINDS = ("welcome", "talk", "talk", "talk", "panel", "talk", "talk", "networking")  # 6 intros in 8 items
CHANNEL = Target("bench", "announcements")


class RecordingAdapter:
    """Counts sends; with `due` (message id -> run_at timestamp) it records how late each send came."""

    platform = "bench"
    connected = True

    def __init__(self) -> None:
        self.sent = 0
        self.due: dict[int, float] = {}
        self.lateness: list[float] = []

    async def start(self, engine: object) -> None: ...

    async def stop(self) -> None: ...

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        return None

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        self.sent += 1
        if id(message) in self.due:
            self.lateness.append(time.time() - self.due[id(message)])
        return MessageRef(self.platform, target.channel_id, str(self.sent))

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef:
        return await self.send(ChannelRef(self.platform, f"dm-{user.user_id}"), message)

    async def edit(self, ref: MessageRef, message: Message) -> None: ...


class TimedRunner(Runner):
    """Records how late each post's batch started to be prepared, and how late its sends were recorded as sent."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.started: list[float] = []
        self.done: list[float] = []
        adapter = self.outbox.adapters["bench"]
        assert isinstance(adapter, RecordingAdapter)
        self.adapter = adapter

    async def _prepare(self, session: AsyncSession, posts: list[PlannedPost]) -> Prepared:
        self.started.extend(time.time() - post.run_at.timestamp() for post in posts)
        return await super()._prepare(session, posts)

    async def _deliver(
        self, post: PlannedPost, message: Message | Skip, claimed: Claimed, refused: list[Target]
    ) -> None:
        self.adapter.due[id(message)] = post.run_at.timestamp()
        await super()._deliver(post, message, claimed, refused)
        self.done.append(time.time() - post.run_at.timestamp())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def fill(
    db: Database, starts: list[datetime], item_gap: timedelta, members: int, kinds: tuple[str, ...] = KINDS
) -> None:
    """Insert published events starting at `starts`, each with one item per kind and `members` DM opt-ins."""
    now = datetime.now(UTC)
    async with db.engine.begin() as connection:
        await connection.execute(
            SQLModel.metadata.tables["event"].insert(),
            [
                {
                    "slug": f"ev{n}",
                    "uid": f"ev{n}@bench",
                    "title": f"Meetup {n}",
                    "description": "",
                    "venue": "Hall",
                    "url": "",
                    "starts_at": start,
                    "ends_at": start + item_gap * (len(kinds) + 1),
                    "timezone": "America/Los_Angeles",
                    "seats_taken": 0,
                    "status": EventStatus.PUBLISHED,
                    "sequence": 0,
                    "updated_at": now,
                }
                for n, start in enumerate(starts, start=1)
            ],
        )
        await connection.execute(
            SQLModel.metadata.tables["agenda_item"].insert(),
            [
                {
                    "event_id": n,
                    "position": position,
                    "starts_at": start + item_gap * (position - 1),
                    "ends_at": start + item_gap * position,
                    "title": f"Item {position}",
                    "kind": kind,
                    "abstract": "",
                }
                for n, start in enumerate(starts, start=1)
                for position, kind in enumerate(kinds, start=1)
            ],
        )
        opt_ins = [
            {
                "event_id": n,
                "platform": "bench",
                "user_id": f"m{n}-{m}",
                "display_name": "",
                "status": RsvpStatus.GOING,
                "guests": 0,
                "queued_at": now,
                "dm_reminders": True,
            }
            for n in range(1, len(starts) + 1)
            for m in range(members)
        ]
        if opt_ins:
            await connection.execute(SQLModel.metadata.tables["rsvp"].insert(), opt_ins)


async def database(folder: Path, name: str) -> Database:
    db = Database(f"sqlite:///{folder / name}")
    await db.upgrade()
    return db


def runner(db: Database, rules: Rules) -> TimedRunner:
    clock = SystemClock()
    return TimedRunner(db, clock, Outbox(Ledger(db, clock), {"bench": RecordingAdapter()}), [CHANNEL], rules)


async def bench_reconcile(folder: Path, events: int, members: int) -> dict[str, float]:
    db = await database(folder, "reconcile.db")
    now = datetime.now(UTC)
    await fill(db, [now + timedelta(days=2, hours=8 * n) for n in range(events)], timedelta(minutes=30), members)
    rules = Rules()
    scheduler = runner(db, rules)
    try:
        started = time.perf_counter()
        snapshots = await scheduler.snapshots(now)
        loaded = time.perf_counter()
        posts = plan(snapshots, rules, [CHANNEL], now).posts
        planned = time.perf_counter()
        began = time.perf_counter()
        await scheduler.start()
        reconciled = time.perf_counter()
        jobs = len(scheduler.scheduler.get_jobs())
        rss = rss_mb()
    finally:
        await scheduler.stop()
        await db.close()
    return {
        "posts": len(posts),
        "jobs": jobs,
        "load": loaded - started,
        "plan": planned - loaded,
        "start": reconciled - began,
        "rss": rss,
    }


async def bench_burst(folder: Path, burst: int, window: float, members: int) -> dict[str, float]:
    talks = ("talk",) * len(KINDS)
    per_event = 1 + 2 * len(talks) + members  # starting now, up next and intro per talk, DMs
    events = burst // per_event
    db = await database(folder, "burst.db")
    gap = timedelta(seconds=0.2)
    t0 = datetime.now(UTC) + timedelta(seconds=3)  # setup time, so the first post is not due yet
    rng = random.Random(7)
    last = window - gap.total_seconds() * (len(KINDS) - 1) - 0.05
    starts = [t0 + timedelta(seconds=rng.uniform(1.0, last)) for _ in range(events)]
    await fill(db, starts, gap, members, talks)
    all_talks = Rules(item_offset=timedelta(seconds=0.5), dm_offset=timedelta(seconds=1))
    scheduler = runner(db, all_talks)
    try:
        await scheduler.start()
        due = sum(1 for post in scheduler.jobs.values() if post.run_at <= t0 + timedelta(seconds=window))
        await scheduler.settle(everything=True)
    finally:
        await scheduler.stop()
        await db.close()
    started, sent, done = sorted(scheduler.started), sorted(scheduler.adapter.lateness), sorted(scheduler.done)
    return {
        "posts": due,
        "fired": len(done),
        "start_p50": statistics.median(started),
        "start_p99": percentile(started, 99),
        "sent_p50": statistics.median(sent),
        "sent_p99": percentile(sent, 99),
        "sent_max": sent[-1],
        "done_p50": statistics.median(done),
        "done_p99": percentile(done, 99),
    }


def percentile(ordered: list[float], p: int) -> float:
    return ordered[max(int(len(ordered) * p / 100) - 1, 0)]


def ms(result: dict[str, float], name: str) -> str:
    return f"{result[name + '_p50'] * 1000:.0f} / {result[name + '_p99'] * 1000:.0f} ms"


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="emcee-bench-") as folder:
        reconcile = await bench_reconcile(Path(folder), args.events, args.members)
        burst = await bench_burst(Path(folder), args.burst, args.window, args.members)
    print(f"$ {shlex.join(['python', *sys.argv])}")
    print()
    rows = [
        ("planned posts", f"{reconcile['posts']:,} ({args.events:,} events × {len(KINDS)} items)", ""),
        ("load from SQLite", f"{reconcile['load'] * 1000:.0f} ms", ""),
        ("plan (pure)", f"{reconcile['plan'] * 1000:.0f} ms", ""),
        ("Runner.start: load, plan, reconcile", f"{reconcile['start']:.2f} s ({reconcile['jobs']:,} jobs)", "< 2 s"),
        ("RSS after reconcile", f"{reconcile['rss']:.0f} MB", ""),
        ("burst", f"{burst['fired']:,} of {burst['posts']:,} posts due within {args.window:g} s", ""),
        ("lateness, batch start p50 / p99", ms(burst, "start"), ""),
        (
            "lateness, adapter send p50 / p99",
            f"{ms(burst, 'sent')} (max {burst['sent_max'] * 1000:.0f})",
            "p99 < 250 ms",
        ),
        ("lateness, ledger marked sent p50 / p99", ms(burst, "done"), ""),
    ]
    widths = [max(len(row[i]) for row in [("measure", "result", "target"), *rows]) for i in range(3)]
    for row in [("measure", "result", "target"), tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events for the reconcile benchmark")
    parser.add_argument("--members", type=int, default=3, help="DM opt-ins per event")
    parser.add_argument("--burst", type=int, default=2000, help="posts due within the window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds the burst is spread over")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
