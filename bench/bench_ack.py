"""Slack and Discord acks: Emcee beside the bare libraries (bench/baselines/), against the same local fakes.

Each bot runs as a child process of its own (`emcee run` with a config pointing at the fakes; the bare
bots as bench/baselines/*.py); this process plays the platform: the fakes of tests/fakes, and the load.
For each platform and each bot, on SQLite, with fewer seats than takers (so part of the room ends on
the waitlist) and members mixing going, going +1, maybe and no:

- a warm burst: after the connections are open and one warm-up command, 200 commands, 50 in flight at
  once; the time from sending each to its ack (Slack: the HTTP answer to the signed slash command;
  Discord: the interaction's initial response reaching the fake), p99;
- the time until each member of that burst sees the real answer: the ack when it carries it, else the
  follow-up (Slack: the POST to its response_url; Discord: the followup message or the edit of the
  deferred original), p99;
- one command at a time: the ack, p50.

Run: .venv/bin/python bench/bench_ack.py [--platform slack|discord|both] [--requests 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
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
    percentile,
    prepare_emcee_database,
    report,
    wait_for_line,
    wait_healthy,
)
from fakes.discord import FakeDiscord, interaction_payload
from fakes.slack import FakeSlack, load_payload, new_trigger_id, signed_headers

from adapters.slack.adapter import WORKING

CHOICES = (("going", 0), ("going", 1), ("maybe", 0), ("going", 0), ("no", 0))
SEQUENTIAL = 100  # commands sent one at a time
ACK_RATIO = 1.5  # Emcee's burst ack p99 at most this times the bare library's
ONE_AT_A_TIME_MS = 2.0
ANSWER_MS = 300.0


class Bot(enum.Enum):
    BARE = "bare library"
    EMCEE = "Emcee"


@dataclass
class Timings:
    """What one bot did on one platform: milliseconds per command."""

    burst_acks: list[float]
    burst_answers: list[float]
    answered_in_ack: int  # of the burst
    sequential_acks: list[float]


class Load:
    """What the members of one phase saw: the answers that came in the ack, and those still to come."""

    def __init__(self) -> None:
        self.answers: list[float] = []  # ms from sending to the answer
        self.in_ack = 0

    def reset(self) -> None:
        self.answers, self.in_ack = [], 0

    async def phase(self, concurrency: int, commands: range, member: Callable[[int], Any]) -> list[float]:
        """Send `commands`, `concurrency` in flight at once; the acks in ms, once every answer has come."""
        gate = asyncio.Semaphore(concurrency)

        async def gated(index: int) -> float:
            async with gate:
                return await self.command(member(index), index)

        self.reset()
        acks = list(await asyncio.gather(*(gated(index) for index in commands)))
        await self.settle()
        return acks

    async def command(self, member: Any, index: int) -> float:
        raise NotImplementedError

    async def settle(self) -> None:
        """Wait until every member has seen the answer."""
        raise NotImplementedError


async def measure(load: Load, args: argparse.Namespace, member: Callable[[int], Any]) -> Timings:
    """A warm-up command, the burst, then one command at a time."""
    await load.phase(1, range(1), lambda _: member(-1))
    burst = await load.phase(args.concurrency, range(args.requests), member)
    answers, in_ack = load.answers, load.in_ack
    sequential = await load.phase(1, range(args.requests, args.requests + SEQUENTIAL), member)
    return Timings(burst, answers, in_ack, sequential)


# --- the fakes, timing what the members see ------------------------------------------------------------


class TimedFakeSlack(FakeSlack):
    """Notes when each response_url (named after its member) is first posted to."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    async def _response_url(self, request: web.Request) -> web.Response:
        self.arrived.setdefault(request.match_info["name"], now_ms())
        return await super()._response_url(request)


class TimedFakeDiscord(FakeDiscord):
    """Notes when each interaction is acked, and when its member sees the answer (in the ack, or after)."""

    def __init__(self) -> None:
        super().__init__()
        self.acked: dict[int, asyncio.Future[float]] = {}
        self.seen: dict[int, asyncio.Future[float]] = {}

    def expect(self, interaction_id: int) -> None:
        loop = asyncio.get_running_loop()
        self.acked[interaction_id], self.seen[interaction_id] = loop.create_future(), loop.create_future()

    async def _post_callback(self, request: web.Request) -> web.Response:
        at = now_ms()
        response = await super()._post_callback(request)
        interaction_id = int(request.match_info["interaction_id"])
        interaction = self.interactions.get(interaction_id)
        if interaction is not None and interaction.callback is not None:
            _settle(self.acked.get(interaction_id), at)
            if interaction.callback["type"] == 4:
                _settle(self.seen.get(interaction_id), at)
        return response

    async def _post_followup(self, request: web.Request) -> web.Response:
        return await self._answered_after(request, super()._post_followup)

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        return await self._answered_after(request, super()._patch_webhook_message)

    async def _answered_after(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> web.Response:
        at = now_ms()
        response = await handler(request)
        _settle(self.seen.get(self._webhook_interaction(request).id), at)
        return response


def _settle(future: asyncio.Future[float] | None, at: float) -> None:
    if future is not None and not future.done():
        future.set_result(at)


# --- Slack ---------------------------------------------------------------------------------------------


class SlackLoad(Load):
    """Signed /rsvp slash commands, each member with a response_url of their own on the fake."""

    def __init__(self, fake: TimedFakeSlack, url: str, session: aiohttp.ClientSession) -> None:
        super().__init__()
        self.fake, self.url, self.session = fake, url, session
        self.template = load_payload("slash_command_rsvp") | {"command": "/rsvp"}
        self.pending: list[tuple[str, float]] = []  # deferred members: response_url name, when sent

    async def command(self, member: Any, index: int) -> float:
        """Send one member's /rsvp; the ack in ms. A deferred answer is awaited in `settle`."""
        status, guests = CHOICES[index % len(CHOICES)]
        text = f"{SLUG} {status}" + (f" +{guests}" if guests else "")
        fields = {
            "user_id": member,
            "user_name": member,
            "text": text,
            "response_url": self.fake.response_url(member),
            "trigger_id": new_trigger_id(),
        }
        body = urlencode(self.template | fields)
        sent = now_ms()
        async with self.session.post(self.url, data=body.encode(), headers=signed_headers(body, SIGNING_SECRET)) as r:
            answer = await r.text()
            assert r.status == 200, f"{r.status} {answer}"
        acked = now_ms()
        if json.loads(answer).get("text") != WORKING:
            self.in_ack += 1
            self.answers.append(acked - sent)
        else:
            self.pending.append((member, sent))
        return acked - sent

    async def settle(self) -> None:
        await self.fake.wait_until(lambda: all(name in self.fake.arrived for name, _ in self.pending), timeout=60)
        self.answers += [self.fake.arrived[name] - sent for name, sent in self.pending]
        self.pending.clear()


async def slack(bot: Bot, folder: Path, args: argparse.Namespace) -> Timings:
    fake = TimedFakeSlack()
    async with fake:
        port = free_port()
        database = folder / f"slack-{bot.name.lower()}.db"
        if bot is Bot.BARE:
            options = ["--db", str(database), "--port", str(port), "--capacity", str(args.capacity)]
            argv = baseline_command("slack_rsvp", *options, "--api-base-url", fake.api_base_url)
        else:
            await prepare_emcee_database(database, args.capacity)
            argv = emcee_run(emcee_config(folder, database, port, Fakes(slack_api=fake.api_base_url)))
        async with child(argv, folder / f"slack-{bot.name.lower()}.log") as process:
            if bot is Bot.BARE:
                await wait_for_line(process, "listening on")
            else:
                await wait_healthy(f"http://127.0.0.1:{port}")
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                load = SlackLoad(fake, f"http://127.0.0.1:{port}/slack/events", session)
                await open_connections(session, load.url, args.concurrency)
                return await measure(load, args, lambda index: f"U{index + 1:09d}")


async def open_connections(session: aiohttp.ClientSession, url: str, count: int) -> None:
    """Open `count` kept-alive connections with refused (unsigned) requests, as traffic through a load
    balancer arrives."""

    async def knock() -> None:
        async with session.post(url, data=b"x") as response:
            await response.read()

    await asyncio.gather(*(knock() for _ in range(count)))


# --- Discord ------------------------------------------------------------------------------------------


class DiscordLoad(Load):
    """/rsvp interactions on the fake's gateway."""

    def __init__(self, fake: TimedFakeDiscord) -> None:
        super().__init__()
        self.fake = fake
        self.pending: list[tuple[int, float]] = []

    async def command(self, member: Any, index: int) -> float:
        status, guests = CHOICES[index % len(CHOICES)]
        options = [
            {"name": "event", "type": 3, "value": SLUG},
            {"name": "status", "type": 3, "value": status},
            {"name": "guests", "type": 4, "value": guests},
        ]
        payload = interaction_payload(
            "command_rsvp",
            data={"options": options},
            member={"user": {"id": str(member), "username": f"member{member}", "global_name": None}},
        )
        interaction_id = int(payload["id"])
        self.fake.expect(interaction_id)
        sent = now_ms()
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        async with asyncio.timeout(10):
            acked = await self.fake.acked[interaction_id]
        if self.fake.seen[interaction_id].done():
            self.in_ack += 1
        self.pending.append((interaction_id, sent))
        return acked - sent

    async def settle(self) -> None:
        async with asyncio.timeout(60):
            for interaction_id, sent in self.pending:
                self.answers.append(await self.fake.seen[interaction_id] - sent)
        self.pending.clear()


async def discord(bot: Bot, folder: Path, args: argparse.Namespace) -> Timings:
    fake = TimedFakeDiscord()
    async with fake:
        database = folder / f"discord-{bot.name.lower()}.db"
        port = free_port()
        if bot is Bot.BARE:
            options = ["--db", str(database), "--capacity", str(args.capacity)]
            argv = baseline_command(
                "discord_rsvp", *options, "--api-base-url", fake.api_base_url, "--gateway-url", fake.gateway_url
            )
        else:
            await prepare_emcee_database(database, args.capacity)
            fakes = Fakes(discord_api=fake.api_base_url, discord_gateway=fake.gateway_url)
            argv = emcee_run(emcee_config(folder, database, port, fakes))
        async with child(argv, folder / f"discord-{bot.name.lower()}.log") as process:
            if bot is Bot.BARE:
                await wait_for_line(process, "ready")
            else:
                await wait_healthy(f"http://127.0.0.1:{port}")
            return await measure(DiscordLoad(fake), args, lambda index: 10_001 + index)


# --- the report ---------------------------------------------------------------------------------------


def figures(platform: str, ack: str, answer: str, bare: Timings, emcee: Timings) -> list[Figure]:
    return [
        Figure(
            f"{platform}: {ack}, warm burst, p99",
            percentile(emcee.burst_acks, 0.99),
            percentile(bare.burst_acks, 0.99),
            "ms",
            Goal.RATIO_AT_MOST,
            ACK_RATIO,
        ),
        Figure(
            f"{platform}: {ack}, one at a time, p50",
            percentile(emcee.sequential_acks, 0.5),
            percentile(bare.sequential_acks, 0.5),
            "ms",
            Goal.AT_MOST,
            ONE_AT_A_TIME_MS,
        ),
        Figure(
            f"{platform}: answer seen ({answer}), burst, p99",
            percentile(emcee.burst_answers, 0.99),
            percentile(bare.burst_answers, 0.99),
            "ms",
            Goal.AT_MOST,
            ANSWER_MS,
        ),
        Figure(
            f"{platform}: burst answers carried in the ack", emcee.answered_in_ack, bare.answered_in_ack, "", Goal.NONE
        ),
    ]


async def main(args: argparse.Namespace) -> None:
    rows: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="emcee-bench-") as name:
        folder = Path(name)
        if args.platform in ("slack", "both"):
            bare, emcee = await slack(Bot.BARE, folder, args), await slack(Bot.EMCEE, folder, args)
            rows += figures("Slack", "HTTP ack", "ack or response_url", bare, emcee)
        if args.platform in ("discord", "both"):
            bare, emcee = await discord(Bot.BARE, folder, args), await discord(Bot.EMCEE, folder, args)
            rows += figures("Discord", "initial response", "response or followup", bare, emcee)
    notes = [
        f"burst: {args.requests} /rsvp commands, {args.concurrency} in flight; one at a time: {SEQUENTIAL}; "
        f"{args.capacity} seats; SQLite",
        "baseline: bench/baselines/slack_rsvp.py (Bolt, process_before_response) and bench/baselines/discord_rsvp.py",
    ]
    report("Acks and answers: Emcee beside the bare libraries", rows, notes)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", choices=("slack", "discord", "both"), default="both")
    parser.add_argument("--requests", type=int, default=200, help="commands in the burst")
    parser.add_argument("--concurrency", type=int, default=50, help="commands in flight at once in the burst")
    parser.add_argument("--capacity", type=int, default=150, help="seats, so that the last members are waitlisted")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
