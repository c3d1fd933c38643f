"""What every bench shares: the report table, percentiles, the raw SQLite RSVP store the baselines use,
`emcee run` as a child process with a config pointing at the local fakes, and reading a process's RSS.

Each bench prints one table: the figure, the baseline measured in the same run, their ratio, the
target and whether it is met, then the exact command that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import shlex
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from bot.db import Database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fakes: `from fakes.slack import FakeSlack`

SIGNING_SECRET = "bench-signing-secret"
SLACK_TOKEN = "xoxb-bench"
SLACK_CHANNEL = "C0BENCH001"
SLUG = "bench"
KINDS = ("welcome", "talk", "talk", "talk", "panel", "talk", "talk", "networking")  # 6 intros in 8 items


# --- the report ------------------------------------------------------------------------------------


class Goal(enum.Enum):
    """How a figure is held to its target."""

    RATIO_AT_LEAST = "ratio >="  # figure / baseline at least the target (throughput)
    RATIO_AT_MOST = "ratio <="  # figure / baseline at most the target (latency beside a bare library)
    AT_MOST = "<="  # the figure itself at most the target
    YES = "yes"  # a yes/no figure that must be yes
    NONE = ""  # shown for context, held to no target


@dataclass(frozen=True)
class Figure:
    name: str
    value: float  # for Goal.YES: 1.0 for yes, 0.0 for no
    baseline: float | None
    unit: str
    goal: Goal
    target: float = 0.0

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.goal is Goal.NONE:
            return None
        if self.goal is Goal.YES:
            return self.value == 1.0
        if self.goal is Goal.AT_MOST:
            return self.value <= self.target
        ratio = self.ratio
        if ratio is None:
            return False
        return ratio >= self.target if self.goal is Goal.RATIO_AT_LEAST else ratio <= self.target

    def cells(self) -> tuple[str, ...]:
        ratio = self.ratio
        target = {Goal.YES: "yes", Goal.NONE: ""}.get(self.goal, f"{self.goal.value} {_number(self.target)}")
        if self.goal is Goal.AT_MOST:
            target += f" {self.unit}"
        return (
            self.name,
            self._show(self.value),
            "" if self.baseline is None else self._show(self.baseline),
            "" if ratio is None else f"{ratio:.3g}×",
            target,
            {True: "yes", False: "NO", None: ""}[self.met],
        )

    def _show(self, value: float) -> str:
        if self.goal is Goal.YES:
            return "yes" if value == 1.0 else "no"
        return f"{_number(value)} {self.unit}"


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def command_line() -> str:
    """The command that ran this bench, as typed from the repository's root."""
    executable = os.path.relpath(sys.executable) if sys.executable.startswith(str(ROOT)) else sys.executable
    return shlex.join([executable, os.path.relpath(sys.argv[0]), *sys.argv[1:]])


def report(title: str, figures: Sequence[Figure], notes: Sequence[str] = ()) -> None:
    """Print the table of figures, any notes, and the command."""
    header = ("figure", "Emcee", "baseline", "ratio", "target", "met")
    rows = [header, *(figure.cells() for figure in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(f"## {title}")
    for index, row in enumerate(rows):
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    for note in notes:
        print(f"- {note}")
    print(f"command: {command_line()}")
    print(flush=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction 0.99 for p99) of unsorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# --- the raw store the baselines share --------------------------------------------------------------


class RawStore:
    """RSVPs in SQLite through the sqlite3 module, in the engine's journal mode (bot/db.py: WAL,
    synchronous=NORMAL, BEGIN IMMEDIATE): a seat is taken with one conditional UPDATE, the RSVP
    inserted, and both committed. The floor of what storing an RSVP costs. Each member RSVPs once in
    the benches, so a change of mind (which would free seats) is not modelled."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            self.connection.execute(f"PRAGMA {pragma}")
        self.connection.executescript(
            "CREATE TABLE IF NOT EXISTS event (id INTEGER PRIMARY KEY, capacity INTEGER NOT NULL,"
            " seats_taken INTEGER NOT NULL DEFAULT 0);"
            "CREATE TABLE IF NOT EXISTS rsvp (event_id INTEGER NOT NULL REFERENCES event(id),"
            " user_id TEXT NOT NULL, status TEXT NOT NULL, guests INTEGER NOT NULL, PRIMARY KEY (event_id, user_id));"
        )
        self.connection.execute("INSERT OR IGNORE INTO event (id, capacity) VALUES (1, ?)", (capacity,))

    def rsvp(self, user_id: str, status: str = "going", guests: int = 0) -> str:
        """Store one RSVP; the answer a member would see."""
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            if status == "going":
                cursor.execute(
                    "UPDATE event SET seats_taken = seats_taken + ? WHERE id = 1 AND seats_taken + ? <= capacity",
                    (1 + guests, 1 + guests),
                )
                status = "going" if cursor.rowcount else "waitlisted"
            cursor.execute(
                "INSERT INTO rsvp (event_id, user_id, status, guests) VALUES (1, ?, ?, ?)"
                " ON CONFLICT (event_id, user_id) DO UPDATE SET status = excluded.status, guests = excluded.guests",
                (user_id, status, guests),
            )
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return f"You're {status}" + (f" with {guests} guest{'s' * (guests > 1)}." if guests else ".")

    def close(self) -> None:
        self.connection.close()


def parse_rsvp_text(text: str) -> tuple[str, int]:
    """A bare bot's reading of `/rsvp [event] [going|maybe|no] [+N]`: the status and the guests."""
    words = text.split()
    status = next((word for word in words if word in ("going", "maybe", "no")), "going")
    guests = next((int(word[1:]) for word in words if word.startswith("+") and word[1:].isdigit()), 0)
    return status, guests


# --- Emcee and the bare bots as child processes --------------------------------------------------------


def free_port() -> int:
    """A port free now, for a child that must be reached before it can say which port it bound."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """A TOML file from sections of strings, numbers, booleans and lists of them (JSON writes those alike)."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Fakes:
    """Where the platforms are: URLs of the local fakes (None for a platform left out)."""

    slack_api: str | None = None
    discord_api: str | None = None
    discord_gateway: str | None = None


def emcee_config(folder: Path, database: Path, port: int, fakes: Fakes) -> Path:
    """A config for `emcee run`: SQLite `database`, the HTTP server on `port`, the platforms of `fakes`."""
    from fakes.discord import CHANNEL_ID, GUILD_ID

    sections: dict[str, dict[str, Any]] = {
        "bot": {"database_url": f"sqlite:///{database}"},
        "http": {"host": "127.0.0.1", "port": port},
        "console": {"enabled": False},
    }
    if fakes.slack_api:
        sections["slack"] = {
            "enabled": True,
            "mode": "http",
            "api_base_url": fakes.slack_api,
            "announce_channels": [SLACK_CHANNEL],
        }
    if fakes.discord_api and fakes.discord_gateway:
        sections["discord"] = {
            "enabled": True,
            "guild_ids": [GUILD_ID],
            "announce_channels": [CHANNEL_ID],
            "api_base_url": fakes.discord_api,
            "gateway_url": fakes.discord_gateway,
        }
    path = folder / "emcee.toml"
    path.write_text(toml(sections))
    return path


def bot_environment() -> dict[str, str]:
    """The environment of a bot under test: the tokens the fakes accept."""
    from fakes.discord import BOT_TOKEN

    tokens = {"SLACK_BOT_TOKEN": SLACK_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "DISCORD_TOKEN": BOT_TOKEN}
    return os.environ | tokens


def emcee_run(config: Path) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "run", "--config", str(config)]


def baseline_command(module: str, *arguments: str) -> list[str]:
    """A bare bot of bench/baselines, as a child process."""
    return [sys.executable, str(ROOT / "bench" / "baselines" / f"{module}.py"), *arguments]


@contextlib.asynccontextmanager
async def child(argv: list[str], log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """A child process (stderr to `log`, stdout a pipe), stopped with SIGTERM when the block ends."""
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=errors, env=bot_environment(), cwd=ROOT
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def wait_for_line(process: asyncio.subprocess.Process, prefix: str, timeout: float = 30) -> str:
    """The first line of the child's stdout that starts with `prefix`."""
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        while line := (await process.stdout.readline()).decode():
            if line.startswith(prefix):
                return line.strip()
    raise RuntimeError(f"the child exited before printing {prefix!r}")


async def wait_healthy(url: str, timeout: float = 60) -> None:
    """Wait until `url`/healthz answers 200."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.02)


async def prepare_emcee_database(database: Path, capacity: int, starts: datetime | None = None) -> None:
    """A migrated SQLite file holding one published event (`SLUG`) with `capacity` seats, announced: its
    card is left in the outbox, as by a process that stopped before dispatching it, so `emcee run` posts
    it to every platform at start-up and edits its counts after each RSVP."""
    from bot.clock import SystemClock
    from bot.config import Settings
    from bot.db import Database
    from bot.effects import EffectBus, EffectLog, Pending
    from bot.engine import Engine
    from bot.invocation import Actor, CommandLine

    class Undispatched(EffectBus):
        def publish(self, effects: Sequence[Pending], outbox: EffectLog) -> None:
            """Leave every effect's row for the next start."""

    db = Database(f"sqlite:///{database}")
    await db.upgrade()
    engine = Engine(db, Settings(), SystemClock(), Undispatched())
    organizer = Actor("console", "organizer")
    moment = (starts or datetime.now(UTC) + timedelta(days=7)).strftime("%Y-%m-%d %H:%M")
    for line in (
        f'/emcee event create {SLUG} "Bench night" --starts {moment} --capacity {capacity}',
        f"/emcee event publish {SLUG}",
        f"/emcee announce {SLUG}",
    ):
        reply = await engine.handle(CommandLine(organizer, None, line))
        assert reply.ok, reply.text
    await db.close()


async def fill(
    db: Database,
    starts: list[datetime],
    item_gap: timedelta,
    members: int,
    kinds: tuple[str, ...] = KINDS,
    platform: str = "bench",
    first: int = 1,
) -> None:
    """Insert published events starting at `starts` (ids from `first`), each with one item per kind and
    `members` of `platform` going, with DM reminders on."""
    from sqlmodel import SQLModel

    from bot.models import EventStatus, RsvpStatus

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
                for n, start in enumerate(starts, start=first)
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
                for n, start in enumerate(starts, start=first)
                for position, kind in enumerate(kinds, start=1)
            ],
        )
        opt_ins = [
            {
                "event_id": n,
                "platform": platform,
                "user_id": f"m{n}-{m}",
                "display_name": "",
                "status": RsvpStatus.GOING,
                "guests": 0,
                "queued_at": now,
                "dm_reminders": True,
            }
            for n in range(first, first + len(starts))
            for m in range(members)
        ]
        if opt_ins:
            await connection.execute(SQLModel.metadata.tables["rsvp"].insert(), opt_ins)


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def now_ms() -> float:
    """Milliseconds on the system-wide monotonic clock (the same in every process of this machine)."""
    return time.monotonic() * 1000
