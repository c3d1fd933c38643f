"""A crowd of members answering `/rsvp SLUG going` at once, from an engine process of its own.

    python tests/rsvp_crowd.py DATABASE_URL SLUG NAME_PREFIX COUNT

Prints "ready" once connected, waits for a line on stdin (so that several crowds start together), then
sends COUNT RSVPs concurrently and prints {user_id: reply text} as one line of JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.clock import SystemClock
from bot.config import Settings
from bot.db import Database
from bot.engine import Engine
from bot.invocation import Actor, CommandLine


async def crowd(url: str, slug: str, prefix: str, count: int) -> dict[str, str]:
    engine = Engine(Database(url), Settings(), SystemClock())
    try:
        await engine.db.ping()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        names = [f"{prefix}{i}" for i in range(count)]
        replies = await asyncio.gather(
            *(engine.handle(CommandLine(Actor("console", name, name), None, f"/rsvp {slug} going")) for name in names)
        )
    finally:
        await engine.db.close()
    return {name: reply.text for name, reply in zip(names, replies, strict=True)}


if __name__ == "__main__":
    url, slug, prefix, count = sys.argv[1:]
    print(json.dumps(asyncio.run(crowd(url, slug, prefix, int(count)))), flush=True)
