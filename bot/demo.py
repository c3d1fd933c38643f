"""`emcee demo`: the BookKeeper June 2016 evening, replayed on the console with no tokens or servers.

It imports the sample event into a throw-away SQLite file, publishes it, fills the room past its
capacity, frees seats to promote waiting parties, and shows an organizer shifting the agenda.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from adapters.console import ConsoleAdapter
from bot.app import build_app
from bot.config import Secrets, Settings
from bot.eventfile import import_event_file, read_event_file
from bot.invocation import Actor
from bot.timeparse import parse_wall_time

SAMPLE = Path(__file__).parent / "data" / "bookkeeper-2016-06.toml"
ORGANIZER = Actor("console", "organizer", "organizer")

# Who RSVPs, in order: the room (6 seats) fills, then three parties queue.
MEMBERS: tuple[tuple[str, str], ...] = (
    ("ada", "/rsvp going +1"),
    ("bo", "/rsvp going"),
    ("chen", "/rsvp going +2"),
    ("dara", "/rsvp going +1"),
    ("eli", "/rsvp going"),
    ("fay", "/rsvp maybe"),
    ("gus", "/rsvp going"),
)
# bo's one seat lets eli pass dara's party of two; chen's three seats then seat dara's party and gus.
CANCELLATIONS = (("bo", "/rsvp no"), ("chen", "/rsvp no"))


def tomorrow_same_time(now: datetime) -> datetime:
    """The sample's 17:30 start in its own zone, on the day after `now`."""
    spec = read_event_file(SAMPLE).event
    zone = ZoneInfo(spec.timezone)
    start = parse_wall_time(spec.starts).clock
    return datetime.combine(now.astimezone(zone).date() + timedelta(days=1), start, tzinfo=zone)


def member(name: str) -> Actor:
    return Actor("console", name, name)


async def run_demo(out: TextIO, interactive: TextIO | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="emcee-demo-") as folder:
        settings = Settings.model_validate(
            {"bot": {"database_url": f"sqlite:///{Path(folder) / 'demo.db'}"}, "http": {"enabled": False}}
        )
        console = ConsoleAdapter(out)
        app = build_app(settings, Secrets(), adapters={"console": console})
        await app.start()
        try:
            slug = await import_event_file(app.engine, SAMPLE, starts_at=tomorrow_same_time(app.engine.clock.now()))
            await app.bus.drain()
            console.say(f"Imported the sample event as '{slug}', moved to tomorrow evening.")
            if interactive is not None:
                await console.command(ORGANIZER, f"/emcee event publish {slug}")
                await app.bus.drain()
                await console.repl(ORGANIZER, interactive)
                return
            await _replay(console, app, slug)
        finally:
            await app.stop()


async def _replay(console: ConsoleAdapter, app, slug: str) -> None:  # type: ignore[no-untyped-def]
    async def step(actor: Actor, line: str) -> None:
        await console.command(actor, line)
        await app.bus.drain()

    console.say("\n=== The organizer publishes the event ===")
    await step(ORGANIZER, f"/emcee event publish {slug}")
    console.say("\n=== Members RSVP: 6 seats, more people than that ===")
    for name, line in MEMBERS:
        await step(member(name), line)
    console.say("\n=== Two going members cancel; waiting parties are promoted in order ===")
    for name, line in CANCELLATIONS:
        await step(member(name), line)
    console.say("\n=== A member looks at the agenda ===")
    await step(member("fay"), "/agenda")
    console.say("\n=== The organizer: we're running 10 minutes late ===")
    await step(ORGANIZER, "/emcee agenda shift +10m")
    await step(ORGANIZER, "/emcee attendees")
    console.say("\nThat was the BookKeeper June 2016 evening. Try it yourself: emcee demo --interactive")
