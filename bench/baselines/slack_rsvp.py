"""A bare slack-bolt `/rsvp` bot in HTTP mode: the floor that Emcee's Slack acks are measured against.

Bolt's AsyncApp with `process_before_response=True` (the listener runs before the HTTP answer, with no
polling for the ack), served by Bolt's own aiohttp app at /slack/events. It stores each RSVP in
SQLite (common.RawStore) and answers in the ack. Web API calls (Bolt's auth.test) go to
`--api-base-url`, e.g. the local fake of bench/bench_ack.py.

Run: SLACK_BOT_TOKEN=xoxb-... SLACK_SIGNING_SECRET=... .venv/bin/python bench/baselines/slack_rsvp.py \
         --db rsvp.db [--port 3000] [--capacity 150] [--api-base-url https://slack.com/api/]
It prints "listening on URL" once it answers, and runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import RawStore, parse_rsvp_text  # noqa: E402


def build(store: RawStore, token: str, signing_secret: str, api_base_url: str) -> AsyncApp:
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_base_url),
        signing_secret=signing_secret,
        process_before_response=True,
    )

    @app.command("/rsvp")
    async def rsvp(ack: AsyncAck, command: dict[str, Any]) -> None:
        status, guests = parse_rsvp_text(command.get("text", ""))
        await ack(text=store.rsvp(command["user_id"], status, guests), response_type="ephemeral")

    return app


async def serve(args: argparse.Namespace) -> None:
    store = RawStore(args.db, args.capacity)
    app = build(store, os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_SIGNING_SECRET"], args.api_base_url)
    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print(f"listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await runner.cleanup()
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True, help="the SQLite file")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--capacity", type=int, default=150, help="seats of the one event")
    parser.add_argument("--api-base-url", default="https://slack.com/api/")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
