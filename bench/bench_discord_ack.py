"""200 concurrent /rsvp interactions through the real discord.Client on SQLite: how fast each is acknowledged.

The bot runs as `emcee run` builds it, logged in to the local fake of Discord (tests/fakes/discord.py).
The fake sends the interactions together on the gateway as INTERACTION_CREATE. The ack latency of one
interaction is the time from its dispatch by the fake to the fake receiving its initial response (an
answer, type 4, or a deferral, type 5); Discord drops an interaction after 3 s.

By default the fake runs in a process of its own, as Discord runs elsewhere; `--in-process` runs it
in the bot's event loop instead, where its own work counts against the bot (an upper bound).

Run: .venv/bin/python bench/bench_discord_ack.py [--count N] [--capacity N] [--in-process]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.discord import BOT_TOKEN, CHANNEL_ID, GUILD_ID, FakeDiscord, interaction_payload  # noqa: E402

from bot.app import build_app  # noqa: E402
from bot.config import Secrets, Settings  # noqa: E402
from bot.invocation import Actor, CommandLine  # noqa: E402

DEFERRED = 5
Burst = Callable[[int], Awaitable[dict[str, Any]]]


async def burst(fake: FakeDiscord, count: int) -> dict[str, Any]:
    """Dispatch `count` /rsvp interactions at once; wait until each is answered (deferred ones followed up)."""
    payloads = [
        interaction_payload(
            "command_rsvp",
            data={"options": [{"name": "event", "type": 3, "value": "bench"}]},
            member={"user": {"id": str(10_000 + n), "username": f"member{n}", "global_name": None}},
        )
        for n in range(count)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(fake.dispatch("INTERACTION_CREATE", payload) for payload in payloads))
    interactions = [fake.interactions[int(payload["id"])] for payload in payloads]
    while not all(i.callback and (i.callback["type"] != DEFERRED or i.followups) for i in interactions):
        await asyncio.sleep(0.005)
    return {
        "acks": [(i.answered_at or 0) - i.dispatched_at for i in interactions],
        "deferred": sum(1 for i in interactions if i.callback and i.callback["type"] == DEFERRED),
        "wall": time.perf_counter() - started,
    }


@asynccontextmanager
async def fake_in_process() -> AsyncIterator[tuple[str, str, Burst]]:
    async with FakeDiscord() as fake:
        yield fake.api_base_url, fake.gateway_url, lambda count: burst(fake, count)


@asynccontextmanager
async def fake_in_a_process() -> AsyncIterator[tuple[str, str, Burst]]:
    """The fake in a child process (this script with --serve-fake); a control URL starts a burst there."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-fake", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None and child.stdin is not None
    urls = json.loads(await child.stdout.readline())

    async def remote_burst(count: int) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.post(urls["control"], json={"count": count}) as answer:
            burst: dict[str, Any] = await answer.json()
            return burst

    try:
        yield urls["api"], urls["gateway"], remote_burst
    finally:
        child.stdin.close()  # the child exits when its stdin closes
        await child.wait()


async def serve_fake() -> None:
    """The child: run the fake and a control endpoint until stdin closes."""
    async with FakeDiscord() as fake:

        async def control(request: web.Request) -> web.Response:
            return web.json_response(await burst(fake, (await request.json())["count"]))

        app = web.Application()
        app.router.add_post("/burst", control)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        urls = {"api": fake.api_base_url, "gateway": fake.gateway_url, "control": f"http://127.0.0.1:{port}/burst"}
        print(json.dumps(urls), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()


async def measure(count: int, capacity: int, in_process: bool) -> dict[str, float | int]:
    fake = fake_in_process() if in_process else fake_in_a_process()
    with tempfile.TemporaryDirectory() as folder:
        async with fake as (api, gateway, run_burst):
            settings = Settings.model_validate(
                {
                    "bot": {"database_url": f"sqlite:///{Path(folder) / 'bench.db'}"},
                    "http": {"enabled": False},
                    "console": {"enabled": False},
                    "discord": {
                        "enabled": True,
                        "guild_ids": [GUILD_ID],
                        "announce_channels": [CHANNEL_ID],
                        "api_base_url": api,
                        "gateway_url": gateway,
                    },
                }
            )
            app = build_app(settings, Secrets(discord_token=BOT_TOKEN))
            app.adapters["discord"].guild_ready_timeout = 0.05  # type: ignore[attr-defined]
            await app.start()
            try:
                organizer = Actor("console", "organizer")
                for line in (
                    f'/emcee event create bench "Bench meetup" --starts 2099-01-01 18:00 --capacity {capacity}',
                    "/emcee event publish bench",
                ):
                    assert (await app.engine.handle(CommandLine(organizer, None, line))).ok
                await app.bus.drain()
                result = await run_burst(count)
                await app.bus.drain()
            finally:
                await app.stop()
    acks = sorted(result["acks"])
    return {
        "interactions": count,
        "answered directly (type 4)": count - result["deferred"],
        "deferred, then followed up (type 5)": result["deferred"],
        "ack p50 (ms)": acks[len(acks) // 2] * 1000,
        "ack p99 (ms)": acks[max(0, round(len(acks) * 0.99) - 1)] * 1000,
        "ack max (ms)": acks[-1] * 1000,
        "acks over 3 s (dropped by Discord)": sum(1 for ack in acks if ack > 3),
        "all answered, wall time (s)": result["wall"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=150, help="seats, so that the last members are waitlisted")
    parser.add_argument("--in-process", action="store_true", help="run the fake in the bot's event loop")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.serve_fake:
        asyncio.run(serve_fake())
        return
    results = asyncio.run(measure(args.count, args.capacity, args.in_process))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{'metric':<40}{'value':>10}")
    for name, value in results.items():
        print(f"{name:<40}{value:>10}" if isinstance(value, int) else f"{name:<40}{value:>10.2f}")


if __name__ == "__main__":
    main()
