"""Memory: the RSS of an idle `emcee run` holding 1,000 events × 8 agenda items, beside a bare Python
process that imports the same libraries.

`emcee run` runs as a child process with Slack in HTTP mode and Discord against the local fakes, on
a SQLite file of `--events` published events two days ahead and more (8 items each, 3 members with
DM reminders on: about 20,000 planned posts). Its RSS is read from /proc once /healthz answers 200
and `--idle` seconds have passed.

Run: .venv/bin/python bench/bench_memory.py [--events 1000] [--idle 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (
    Fakes,
    Figure,
    Goal,
    child,
    emcee_config,
    emcee_run,
    fill,
    free_port,
    report,
    rss_mb,
    wait_for_line,
    wait_healthy,
)
from fakes.discord import FakeDiscord
from fakes.slack import FakeSlack

from bot.db import Database

RSS_MB = 120.0
# What `emcee run` with Slack and Discord imports, for the bare process.
LIBRARIES = (
    "aiohttp",
    "aiosqlite",
    "alembic",
    "apscheduler.schedulers.asyncio",
    "discord",
    "icalendar",
    "prometheus_client",
    "pydantic",
    "slack_bolt.async_app",
    "slack_sdk.web.async_client",
    "sqlalchemy.ext.asyncio",
    "sqlmodel",
)
BARE = f"import {', '.join(LIBRARIES)}; print('imported', flush=True); import sys; sys.stdin.read()"


async def emcee(folder: Path, events: int, idle: float) -> float:
    database = folder / "emcee.db"
    db = Database(f"sqlite:///{database}")
    await db.upgrade()
    now = datetime.now(UTC)
    await fill(
        db, [now + timedelta(days=2, hours=8 * n) for n in range(events)], timedelta(minutes=30), 3, platform="slack"
    )
    await db.close()
    slack, discord = FakeSlack(), FakeDiscord()
    async with slack, discord:
        port = free_port()
        fakes = Fakes(slack.api_base_url, discord.api_base_url, discord.gateway_url)
        async with child(emcee_run(emcee_config(folder, database, port, fakes)), folder / "emcee.log") as process:
            await wait_healthy(f"http://127.0.0.1:{port}")
            await asyncio.sleep(idle)
            return rss_mb(process.pid)


async def bare(folder: Path) -> float:
    async with child([sys.executable, "-c", BARE], folder / "bare.log") as process:
        await wait_for_line(process, "imported")
        return rss_mb(process.pid)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="emcee-bench-") as name:
        rss, floor = await emcee(Path(name), args.events, args.idle), await bare(Path(name))
    figure = Figure(
        f"RSS of idle `emcee run`, {args.events:,} events × 8 items", rss, floor, "MB", Goal.AT_MOST, RSS_MB
    )
    notes = [f"baseline: python -c 'import {', '.join(LIBRARIES)}'"]
    report("Memory of an idle `emcee run`", [figure], notes)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000, help="published events ahead, 8 items each")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle after /healthz 200, before reading RSS")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
