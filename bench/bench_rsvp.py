"""1,000 sequential RSVPs through the engine on SQLite: the time per command a member waits for.

Run: .venv/bin/python bench/bench_rsvp.py [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bot.clock import SystemClock
from bot.config import Settings
from bot.db import Database
from bot.engine import Engine
from bot.invocation import Actor, CommandLine


async def measure(count: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
        await db.upgrade()
        engine = Engine(db, Settings(), SystemClock())
        organizer = Actor("console", "organizer")
        await engine.handle(
            CommandLine(organizer, None, '/emcee event create bench "Bench" --starts 2099-01-01 18:00 --capacity 500')
        )
        await engine.handle(CommandLine(organizer, None, "/emcee event publish bench"))
        timings = []
        for index in range(count):
            line = ("/rsvp bench going", "/rsvp bench maybe", "/rsvp bench going +1", "/rsvp bench no")[index % 4]
            started = time.perf_counter()
            reply = await engine.handle(CommandLine(Actor("console", f"member-{index}"), None, line))
            timings.append(time.perf_counter() - started)
            assert reply.ok, reply.text
        await engine.bus.drain()
        await db.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    timings = asyncio.run(measure(args.count))
    total = time.perf_counter() - started
    ms = sorted(t * 1000 for t in timings)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'metric':<28}{'value':>12}")
    print(f"{'RSVPs (sequential)':<28}{args.count:>12}")
    print(f"{'total wall time (s)':<28}{total:>12.2f}")
    print(f"{'mean per RSVP (ms)':<28}{statistics.fmean(ms):>12.2f}")
    print(f"{'p50 per RSVP (ms)':<28}{ms[len(ms) // 2]:>12.2f}")
    print(f"{'p99 per RSVP (ms)':<28}{ms[int(len(ms) * 0.99) - 1]:>12.2f}")
    print(f"{'RSVPs per second':<28}{args.count / sum(timings):>12.0f}")


if __name__ == "__main__":
    main()
