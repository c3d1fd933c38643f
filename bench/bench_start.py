"""Start-up: `emcee run` with Slack in HTTP mode and Discord, as a child process, against the local fakes.

Measured from the exec of the child: the time to its first /healthz answer (any status: 503
"starting" counts), and, after the Discord fake sends READY, the time to /healthz 200. The fake holds
READY back for `--hold` seconds after the bot identifies, as a slow gateway does; halfway through, a
signed Slack /rsvp is sent: it counts as answered when its HTTP 200 comes back before READY.

Baselines, in the same run: the bare Bolt bot of bench/baselines (exec to its first HTTP answer) and
the bare discord.py bot (READY to its on_ready), against the same fakes.

Run: .venv/bin/python bench/bench_start.py [--hold 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from common import (
    SIGNING_SECRET,
    SLUG,
    Fakes,
    Figure,
    Goal,
    baseline_command,
    child,
    emcee_config,
    emcee_run,
    free_port,
    now_ms,
    prepare_emcee_database,
    report,
    wait_for_line,
)
from fakes.discord import FakeDiscord
from fakes.slack import FakeSlack, load_payload, new_trigger_id, signed_headers

FIRST_ANSWER_S = 0.5
HEALTHY_AFTER_READY_S = 1.5
POLL = 0.002  # seconds between two tries


@contextlib.asynccontextmanager
async def held_fake(hold: float) -> AsyncIterator[FakeDiscord]:
    """A Discord fake that holds READY back for `hold` seconds after IDENTIFY, as a slow gateway does."""

    async def release() -> None:
        await fake.identified.wait()
        await asyncio.sleep(hold)
        fake.release_ready()

    fake = FakeDiscord()
    fake.hold_ready()
    async with fake:
        releasing = asyncio.create_task(release())
        try:
            yield fake
        finally:
            releasing.cancel()


def ready_ms(fake: FakeDiscord) -> float:
    """When the fake sent READY, on now_ms()'s clock."""
    assert fake.ready_at is not None
    return fake.ready_at * 1000


@dataclass(frozen=True)
class Started:
    first_answer_s: float  # exec to the first HTTP answer
    healthy_after_ready_s: float  # READY to /healthz 200 (the bare discord.py bot: to on_ready)
    slack_answered: bool  # a Slack command sent while Discord was connecting


async def first_answer(session: aiohttp.ClientSession, url: str, status: int | None = None) -> float:
    """When (ms) `url` first answers (with `status`, when given)."""
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as response:
                if status is None or response.status == status:
                    return now_ms()
        await asyncio.sleep(POLL)


async def slack_command(session: aiohttp.ClientSession, url: str, fake: FakeSlack, timeout: float) -> bool:
    """Whether one signed /rsvp is answered with a 200 within `timeout` seconds."""
    fields = {
        "command": "/rsvp",
        "text": SLUG,
        "response_url": fake.response_url("during-connect"),
        "trigger_id": new_trigger_id(),
    }
    body = urlencode(load_payload("slash_command_rsvp") | fields)
    try:
        async with asyncio.timeout(timeout):
            async with session.post(url, data=body.encode(), headers=signed_headers(body, SIGNING_SECRET)) as r:
                return r.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def emcee(folder: Path, hold: float) -> Started:
    async with FakeSlack() as slack, held_fake(hold) as discord, aiohttp.ClientSession() as session:
        port = free_port()
        database = folder / "emcee.db"
        await prepare_emcee_database(database, capacity=100)
        fakes = Fakes(slack.api_base_url, discord.api_base_url, discord.gateway_url)
        argv = emcee_run(emcee_config(folder, database, port, fakes))
        url = f"http://127.0.0.1:{port}"
        started = now_ms()
        async with child(argv, folder / "emcee.log"):

            async def during_connect() -> bool:
                await discord.identified.wait()
                await asyncio.sleep(hold / 2)
                answered = await slack_command(session, f"{url}/slack/events", slack, hold / 2)
                return answered and discord.ready_at is None

            answered = asyncio.create_task(during_connect())
            first = await first_answer(session, f"{url}/healthz")
            healthy = await first_answer(session, f"{url}/healthz", 200)
            return Started((first - started) / 1000, (healthy - ready_ms(discord)) / 1000, await answered)


async def bare_bolt(folder: Path) -> float:
    """Exec to the bare Bolt bot's first HTTP answer, in seconds."""
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        port = free_port()
        argv = baseline_command("slack_rsvp", "--db", str(folder / "bolt.db"), "--port", str(port))
        started = now_ms()
        async with child([*argv, "--api-base-url", fake.api_base_url], folder / "bolt.log"):
            return (await first_answer(session, f"http://127.0.0.1:{port}/slack/events") - started) / 1000


async def bare_discord(folder: Path, hold: float) -> float:
    """READY to the bare discord.py bot's on_ready, in seconds."""
    async with held_fake(hold) as fake:
        argv = baseline_command("discord_rsvp", "--db", str(folder / "discord.db"))
        argv += ["--api-base-url", fake.api_base_url, "--gateway-url", fake.gateway_url]
        async with child(argv, folder / "discord.log") as process:
            await wait_for_line(process, "ready")
            return (now_ms() - ready_ms(fake)) / 1000


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="emcee-bench-") as name:
        folder = Path(name)
        bolt, discord = await bare_bolt(folder), await bare_discord(folder, args.hold)
        started = await emcee(folder, args.hold)
    figures = [
        Figure("exec to the first /healthz answer", started.first_answer_s, bolt, "s", Goal.AT_MOST, FIRST_ANSWER_S),
        Figure(
            "Discord READY to /healthz 200",
            started.healthy_after_ready_s,
            discord,
            "s",
            Goal.AT_MOST,
            HEALTHY_AFTER_READY_S,
        ),
        Figure(
            "a Slack command sent while Discord connects is answered", float(started.slack_answered), None, "", Goal.YES
        ),
    ]
    notes = [
        f"the Discord fake holds READY {args.hold:g} s after IDENTIFY; the Slack command goes halfway through",
        "baselines: the bare Bolt bot's first HTTP answer after exec; the bare discord.py bot's on_ready after READY",
    ]
    report("Start-up of `emcee run` (Slack HTTP mode and Discord)", figures, notes)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hold", type=float, default=1.0, help="seconds the Discord fake holds READY back")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
