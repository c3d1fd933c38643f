"""200 concurrent signed /rsvp slash commands at Slack HTTP mode on SQLite: the time to the HTTP ack.

The app runs as `emcee run` builds it: the real AsyncApp on the shared aiohttp server, SQLite, the
publisher editing the posted card; its Web API calls and response_url posts go to the local Slack
fake from tests/fakes. Members are mixed (going, going +1, maybe, no) on an event with fewer seats
than takers, so part of the room ends on the waitlist.

The load comes from a separate process, as Slack's requests come from elsewhere. It opens its
connections first (with refused, unsigned requests), as traffic through a load balancer arrives
over kept-alive connections; `--cold` fires on new connections instead (200 at once can overflow
the listen backlog of 128, and then the kernel's one-second SYN retry shows in the tail). Then one
warm-up command (Bolt's first auth.test), then the burst.

Run: .venv/bin/python bench/bench_slack_ack.py [--requests 200] [--capacity 150] [--cold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakes.slack import FakeSlack, load_payload, signed_headers  # noqa: E402

from adapters.slack.adapter import WORKING  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.config import Secrets, Settings  # noqa: E402
from bot.invocation import Actor, CommandLine  # noqa: E402
from bot.models import Event  # noqa: E402

SECRET = "bench-signing-secret"
SECRETS = Secrets(slack_bot_token="xoxb-bench", slack_signing_secret=SECRET)
ORGANIZER = Actor("slack", "U0ORGANIZE", "organizer")
CHOICES = ("going", "going +1", "maybe", "going", "no")


# --- the load generator (a child process) ------------------------------------------------------


async def _post(session: aiohttp.ClientSession, url: str, body: str, signed: bool = True) -> tuple[float, int, str]:
    headers = signed_headers(body, SECRET) if signed else {}
    started = time.perf_counter()
    async with session.post(url, data=body.encode(), headers=headers) as response:
        text = await response.text()
    return time.perf_counter() - started, response.status, text


async def load(url: str, response_url: str, requests: int, cold: bool) -> dict[str, object]:
    template = load_payload("slash_command_rsvp") | {"command": "/rsvp", "response_url": response_url}

    def body(index: int) -> str:
        member = {"user_id": f"U{index:09d}", "user_name": f"member{index}", "text": CHOICES[index % len(CHOICES)]}
        return urlencode(template | member)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        if not cold:
            await asyncio.gather(*(_post(session, url, "x", signed=False) for _ in range(requests)))
        await _post(session, url, body(requests))
        bodies = [body(index) for index in range(requests)]
        started = time.perf_counter()
        results = await asyncio.gather(*(_post(session, url, text) for text in bodies))
        total = time.perf_counter() - started
    return {"results": results, "total": total}


# --- the app under test ------------------------------------------------------------------------


async def measure(requests: int, capacity: int, cold: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        async with FakeSlack() as fake:
            settings = Settings.model_validate(
                {
                    "bot": {"database_url": f"sqlite:///{Path(folder) / 'bench.db'}"},
                    "organizers": {"slack": [ORGANIZER.user_id]},
                    "http": {"port": 0},
                    "slack": {
                        "enabled": True,
                        "mode": "http",
                        "api_base_url": fake.api_base_url,
                        "announce_channels": ["C0BENCH001"],
                    },
                    "console": {"enabled": False},
                }
            )
            app = build_app(settings, SECRETS)
            await app.start()
            try:
                starts = (app.engine.clock.now() + timedelta(days=7)).strftime("%Y-%m-%d %H:%M")
                for line in (
                    f'/emcee event create bench "Bench night" --starts {starts} --capacity {capacity}',
                    "/emcee event publish bench",
                ):
                    assert (await app.engine.handle(CommandLine(ORGANIZER, None, line))).ok
                await app.bus.drain()
                assert app.http is not None
                arguments = ["--load", f"{app.http.url}/slack/events", fake.response_url("bench"), str(requests)]
                child = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, *arguments, *(["--cold"] if cold else []), stdout=asyncio.subprocess.PIPE
                )
                output, _ = await child.communicate()
                assert child.returncode == 0, "the load generator failed"
                measured: dict[str, Any] = json.loads(output)
                deferred = sum(json.loads(text).get("text") == WORKING for *_, text in measured["results"])
                await fake.wait_until(lambda: len(fake.responses) >= deferred, timeout=60)  # the later answers
                await app.bus.drain()
                async with app.db.session() as session:
                    event = await session.get(Event, 1)
                    seats = event.seats_taken if event else -1
            finally:
                await app.stop()
            return measured | {"seats": seats, "edits": len(fake.calls_to("chat.update"))}


def percentile(sorted_ms: list[float], fraction: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(fraction * len(sorted_ms)) - 1))]


def report(args: argparse.Namespace, measured: dict[str, Any]) -> None:
    results = measured["results"]
    ms = sorted(seconds * 1000 for seconds, _, _ in results)
    statuses = Counter(status for _, status, _ in results)
    replies = Counter("deferred" if json.loads(text).get("text") == WORKING else "in the ack" for *_, text in results)
    rows = [
        ("concurrent /rsvp requests", f"{args.requests}"),
        ("connections", "new (cold)" if args.cold else "opened before"),
        ("HTTP statuses", ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))),
        ("replies", ", ".join(f"{k}: {v}" for k, v in sorted(replies.items()))),
        ("p50 time to ack (ms)", f"{percentile(ms, 0.50):.1f}"),
        ("p90 time to ack (ms)", f"{percentile(ms, 0.90):.1f}"),
        ("p99 time to ack (ms)", f"{percentile(ms, 0.99):.1f}"),
        ("max time to ack (ms)", f"{ms[-1]:.1f}"),
        ("mean time to ack (ms)", f"{statistics.fmean(ms):.1f}"),
        ("total, burst to last ack (ms)", f"{measured['total'] * 1000:.1f}"),
        (f"seats taken (capacity {args.capacity})", f"{measured['seats']}"),
        ("card edits (chat.update)", f"{measured['edits']}"),
    ]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    width = max(len(name) for name, _ in rows) + 2
    print(f"{'metric':<{width}}{'value':>20}")
    for name, value in rows:
        print(f"{name:<{width}}{value:>20}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=150)
    parser.add_argument("--cold", action="store_true", help="fire on new connections (see above)")
    parser.add_argument("--load", nargs=3, metavar=("URL", "RESPONSE_URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        url, response_url, requests = args.load
        print(json.dumps(asyncio.run(load(url, response_url, int(requests), args.cold))))
        return
    report(args, asyncio.run(measure(args.requests, args.capacity, args.cold)))


if __name__ == "__main__":
    main()
