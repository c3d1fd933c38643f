"""`emcee demo`: the BookKeeper June 2016 evening, replayed on the console with no tokens or servers.

It imports the sample event into a throw-away SQLite file and compresses its times while it is still
a draft (an hour of the evening takes HOUR seconds). Then it publishes the event, fills the room past
its capacity, frees seats to promote waiting parties, and lets the real scheduler play the evening:
the 1-hour reminder, "starting now", "up next" and the speaker intro for each talk and the panel,
and, mid-evening, the organizer's "running late" shift, after which the later items fire at their
new times. Nothing bypasses the scheduler: the event's times and the reminder offsets are scaled,
and the clock is the real one.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.app import App, build_app
from bot.config import Secrets, Settings
from bot.eventfile import import_event_file, read_event_file
from bot.invocation import Actor
from bot.models import AgendaItem, Event
from bot.timeparse import format_duration, parse_wall_time

if TYPE_CHECKING:
    from adapters.console import ConsoleAdapter

SAMPLE = Path(__file__).parent / "data" / "bookkeeper-2016-06.toml"
ORGANIZER = Actor("console", "organizer", "organizer")

HOUR = 15.0  # seconds that one hour of the evening takes at speed 1: the replay lasts about 80 s
PREPARE = 25.0  # seconds at speed 1 for the announcement and the RSVPs, before the 1-hour reminder
RUNNING_LATE = timedelta(minutes=10)  # the organizer's shift, in evening time

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


def demo_settings(folder: Path, scale: float) -> Settings:
    """Defaults, a SQLite file in `folder`, and the reminder offsets compressed like the evening."""
    hour = timedelta(hours=1) * scale
    return Settings.model_validate(
        {
            "bot": {"database_url": f"sqlite:///{folder / 'demo.db'}"},
            "http": {"enabled": False},
            "reminders": {"event_offsets": [hour], "item_offset": timedelta(minutes=5) * scale, "dm_offset": hour},
        }
    )


async def run_demo(
    out: TextIO, interactive: TextIO | None = None, speed: float = 1.0, files: Path | None = None
) -> None:
    """Replay the evening (about 80 s; `speed` > 1 runs it faster), or with `interactive` read commands.

    Files the console writes (the attendee CSV) go to `files`, by default the current folder."""
    scale = 1.0 if interactive is not None else HOUR / 3600 / speed
    with tempfile.TemporaryDirectory(prefix="emcee-demo-") as folder:
        app = build_app(demo_settings(Path(folder), scale), Secrets(), console_out=out)
        console = cast("ConsoleAdapter", app.adapters["console"])
        console.files = files
        app.publisher.edits.interval /= speed
        await app.start()
        try:
            if interactive is not None:
                slug = await import_event_file(app.engine, SAMPLE, starts_at=tomorrow_same_time(app.engine.clock.now()))
                console.say(f"Imported the sample event as '{slug}', moved to tomorrow evening.")
                await console.command(ORGANIZER, f"/emcee event publish {slug}")
                await app.bus.drain()
                await console.repl(ORGANIZER, interactive)
                return
            await _replay(console, app, scale, speed)
        finally:
            await app.stop()


async def _replay(console: ConsoleAdapter, app: App, scale: float, speed: float) -> None:
    assert app.runner is not None

    async def step(actor: Actor, line: str) -> None:
        await console.command(actor, line)
        await app.bus.drain()

    clock = app.engine.clock
    hour = timedelta(hours=1) * scale  # one hour of the evening, compressed
    slug = await import_event_file(
        app.engine, SAMPLE, starts_at=clock.now() + timedelta(seconds=PREPARE / speed) + hour
    )
    agenda = await compress(app, slug, scale)
    await app.bus.drain()
    console.say(
        f"Imported the sample event as '{slug}', starting in {(agenda[0][1] - clock.now()).total_seconds():.0f} s.\n"
        f"Its times are compressed: an hour of the evening takes {HOUR / speed:g} s, so the reminders\n"
        f"below say {format_duration(hour)} for one hour. The scheduler and the clock are the real ones."
    )
    console.say("\n=== The organizer publishes the event ===")
    await step(ORGANIZER, f"/emcee event publish {slug}")
    console.say("\n=== Members RSVP: 6 seats, more people than that ===")
    for name, line in MEMBERS:
        await step(member(name), line)
    await step(member("ada"), "/emcee remind on")
    console.say("\n=== Two going members cancel; waiting parties are promoted in order ===")
    for name, line in CANCELLATIONS:
        await step(member(name), line)
    console.say("\n=== A member looks at the agenda ===")
    await step(member("fay"), "/agenda")

    console.say("\n=== The evening: the scheduler posts reminders, 'up next' and speaker intros ===")
    (_, starts_at, ends_at), items = agenda[0], agenda[1:]
    middle = starts_at + (ends_at - starts_at) / 2
    _, talk_starts, talk_ends = next(item for item in items if item[1] <= middle < item[2])
    await asyncio.sleep(max((talk_starts + (talk_ends - talk_starts) / 2 - clock.now()).total_seconds(), 0))
    minutes = RUNNING_LATE.total_seconds() / 60
    console.say(f"\n=== The organizer, mid-talk: we're running {minutes:g} minutes late ===")
    late = math.ceil(RUNNING_LATE.total_seconds() * scale)
    await step(ORGANIZER, f"/emcee agenda shift +{late}s")
    await app.runner.settle(everything=True)
    await app.bus.drain()
    await step(ORGANIZER, "/emcee attendees")
    console.say("\nThat was the BookKeeper June 2016 evening. Try it yourself: emcee demo --interactive")


async def compress(app: App, slug: str, scale: float) -> list[tuple[str, datetime, datetime]]:
    """Scale the imported draft's times around its start, to sub-second precision (typed times stop at
    seconds, and a 5-minute item must keep its length at any speed). Returns (title, start, end) of the
    event, then of each agenda item in order."""
    async with app.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        anchor = event.starts_at

        def squeeze(moment: datetime) -> datetime:
            return anchor + (moment - anchor) * scale

        event.ends_at = squeeze(event.ends_at)
        session.add(event)
        times = [(event.title, event.starts_at, event.ends_at)]
        items = await session.exec(
            select(AgendaItem).where(AgendaItem.event_id == event.id).order_by(col(AgendaItem.position))
        )
        for item in items.all():
            item.starts_at, item.ends_at = squeeze(item.starts_at), squeeze(item.ends_at)
            session.add(item)
            times.append((item.title, item.starts_at, item.ends_at))
    return times
