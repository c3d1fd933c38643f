"""Timed posts: reminder lateness at the Slack fake's receipt with 20,000 planned posts, beside a baseline.

The database holds `--events` published events far ahead (8 agenda items each: about 20,000 planned
posts) and, besides them, events whose posts ("starting now", "up next", speaker intros) fall due
within the next `--window` seconds, `--burst` posts in all. Emcee's runner (schedules/runner.py)
plans and schedules them all, and sends the due ones through the real Slack adapter (slack_sdk) to
the local fake; a post's lateness is the fake's receipt time minus its run_at (read from the post key
in the message metadata).

The baseline, in the same run, posts the same planned posts: sqlite3 holds them (key, run_at,
channel, text), APScheduler's AsyncIOScheduler holds one job per post, and slack_sdk's
AsyncWebClient posts each to the same fake.

Also shown: the time Runner.start takes to load, plan and reconcile the far events' jobs.

Run: .venv/bin/python bench/bench_schedule.py [--events 1000] [--burst 1000] [--window 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from common import KINDS, SLACK_CHANNEL, SLACK_TOKEN, Figure, Goal, fill, percentile, report
from fakes.slack import FakeSlack
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import SlackAdapter
from bot.clock import SystemClock
from bot.config import HttpSettings, Secrets, Settings, SlackSettings
from bot.db import Database
from bot.delivery import Ledger, Outbox, Target
from bot.engine import Engine
from bot.http import HttpServer
from schedules.planner import PlannedPost, Rules, plan
from schedules.runner import Runner

LATENESS_MS = 50.0
RECONCILE_S = 2.0
TARGET = Target("slack", SLACK_CHANNEL)
TALKS = ("talk",) * len(KINDS)  # the burst's events: "starting now", then "up next" and an intro per item
GAP = timedelta(seconds=0.2)  # between two of their items
MEMBERS = 3  # with DM reminders on, in each event ahead: 20 posts an event
RULES = Rules(item_offset=timedelta(seconds=0.5))
RUN_AT = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00$")  # a post key ends with its run_at


class ReceivingFakeSlack(FakeSlack):
    """Notes how late each chat.postMessage arrives: its receipt minus the run_at in its post key."""

    def __init__(self) -> None:
        super().__init__()
        self.lateness: list[float] = []  # ms

    def _chat_post_message(self, params: dict[str, Any], token: str) -> dict[str, Any]:
        metadata = params.get("metadata") or {}
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        if run_at := RUN_AT.search(metadata.get("event_payload", {}).get("key", "")):
            self.lateness.append((time.time() - datetime.fromisoformat(run_at[0]).timestamp()) * 1000)
        return super()._chat_post_message(params, token)


async def database(folder: Path, name: str, far: int, burst: int, window: float) -> tuple[Database, int]:
    """A database of `far` events from two days ahead and, due within `window` seconds, about `burst` posts;
    the number of those."""
    db = Database(f"sqlite:///{folder / name}")
    await db.upgrade()
    now = datetime.now(UTC)
    ahead = [now + timedelta(days=2, hours=8 * n) for n in range(far)]
    await fill(db, ahead, timedelta(minutes=30), MEMBERS, platform="slack")
    t0 = now + timedelta(seconds=3)  # setup time, so that no burst post is due yet
    last = window - GAP.total_seconds() * (len(TALKS) - 1) - 0.05
    rng = random.Random(7)
    events = burst // (1 + 2 * len(TALKS))
    soon = [t0 + timedelta(seconds=rng.uniform(1.0, last)) for _ in range(events)]
    await fill(db, soon, GAP, 0, TALKS, first=far + 1)
    return db, events * (1 + 2 * len(TALKS))


async def planned(db: Database) -> list[PlannedPost]:
    runner = Runner(db, SystemClock(), Outbox(Ledger(db, SystemClock()), {}), [TARGET], RULES)
    now = datetime.now(UTC)
    return plan(await runner.snapshots(now), RULES, [TARGET], now).posts


async def until(received: list[float], count: int, window: float) -> None:
    async with asyncio.timeout(window + 30):
        while len(received) < count:
            await asyncio.sleep(0.05)


async def emcee(folder: Path, args: argparse.Namespace) -> tuple[list[float], float, int]:
    """Lateness of each burst post, the seconds Runner.start took, and the posts it scheduled."""
    fake = ReceivingFakeSlack()
    async with fake:
        db, due = await database(folder, "emcee.db", args.events, args.burst, args.window)
        clock = SystemClock()
        slack = SlackSettings(enabled=True, mode="http", api_base_url=fake.api_base_url)
        adapter = SlackAdapter(
            slack,
            Secrets(slack_bot_token=SLACK_TOKEN, slack_signing_secret="unused"),
            HttpServer(HttpSettings(port=0), lambda: asyncio.sleep(0, {})),
        )
        await adapter.start(Engine(db, Settings(), clock))
        runner = Runner(db, clock, Outbox(Ledger(db, clock), {"slack": adapter}), [TARGET], RULES)
        try:
            started = time.perf_counter()
            await runner.start()
            reconcile = time.perf_counter() - started
            jobs = len(runner.jobs)
            await until(fake.lateness, due, args.window)
        finally:
            await runner.stop()
            await adapter.stop()
            await db.close()
        return fake.lateness, reconcile, jobs


async def baseline(folder: Path, args: argparse.Namespace) -> list[float]:
    """The same posts through sqlite3, APScheduler and slack_sdk."""
    fake = ReceivingFakeSlack()
    async with fake:
        db, due = await database(folder, "planned.db", args.events, args.burst, args.window)
        posts = await planned(db)
        await db.close()
        store = sqlite3.connect(folder / "baseline.db")
        store.execute("CREATE TABLE post (key TEXT PRIMARY KEY, run_at REAL, channel TEXT, text TEXT)")
        rows = [(p.key, p.run_at.timestamp(), SLACK_CHANNEL, f"{p.kind} of event {p.event_id}") for p in posts]
        store.executemany("INSERT INTO post VALUES (?, ?, ?, ?)", rows)
        store.commit()
        client = AsyncWebClient(token=SLACK_TOKEN, base_url=fake.api_base_url)
        scheduler = AsyncIOScheduler(timezone=UTC)
        for key, run_at, channel, text in store.execute("SELECT key, run_at, channel, text FROM post"):
            metadata = {"event_type": "emcee_post", "event_payload": {"key": key}}
            scheduler.add_job(
                client.chat_postMessage,
                "date",
                run_date=datetime.fromtimestamp(run_at, UTC),
                kwargs={"channel": channel, "text": text, "metadata": metadata},
                misfire_grace_time=None,
            )
        scheduler.start()
        try:
            await until(fake.lateness, due, args.window)
        finally:
            scheduler.shutdown(wait=False)
            store.close()
        return fake.lateness


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="emcee-bench-") as name:
        lateness, reconcile, jobs = await emcee(Path(name), args)
        floor = await baseline(Path(name), args)
    figures = [
        Figure(
            f"reminder lateness at the fake, p99, {jobs:,} posts scheduled",
            percentile(lateness, 0.99),
            percentile(floor, 0.99),
            "ms",
            Goal.AT_MOST,
            LATENESS_MS,
        ),
        Figure(
            "reminder lateness at the fake, p50", percentile(lateness, 0.5), percentile(floor, 0.5), "ms", Goal.NONE
        ),
        Figure("Runner.start: load, plan, reconcile", reconcile, None, "s", Goal.AT_MOST, RECONCILE_S),
    ]
    notes = [
        f"{args.events:,} events × {len(KINDS)} items ahead; {len(lateness):,} posts due within {args.window:g} s",
        "baseline: sqlite3 + APScheduler (AsyncIOScheduler, a job per post) + slack_sdk posting the same posts",
    ]
    report("Timed posts: lateness with a large schedule", figures, notes)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000, help="events planned ahead (8 items each)")
    parser.add_argument("--burst", type=int, default=1000, help="posts due within the window")
    parser.add_argument("--window", type=float, default=10.0, help="seconds the burst is spread over")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
