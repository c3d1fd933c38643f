"""`emcee demo`: the BookKeeper June 2016 evening, replayed on the console with no tokens or servers.

It imports the sample event into a throw-away SQLite file on its own date and times, on a clock that
reads 16:20 in San Francisco that day. The organizer publishes it, the room fills past its capacity,
and freed seats promote waiting parties. Then the clock runs EVENING_SPEED times as fast as the
system's and the real scheduler plays the evening: the 1-hour reminder, "starting now", "up next" and
the speaker intro for each talk and the panel, and, mid-evening, the organizer's "running late" shift,
after which the later items fire at their new times. Quiet stretches say where the clock is.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.app import App, build_app
from bot.clock import FastClock
from bot.config import Secrets, Settings
from bot.eventfile import import_event_file, moved, read_event_file
from bot.formatting import format_clock, format_moment
from bot.invocation import Actor
from bot.models import AgendaItem, Event
from bot.timeparse import format_duration, parse_wall_time

if TYPE_CHECKING:
    from adapters.console import ConsoleAdapter
    from schedules.runner import Runner

SAMPLE = Path(__file__).parent / "data" / "bookkeeper-2016-06.toml"
ORGANIZER = Actor("console", "organizer", "organizer")

EVENING_SPEED = 225.0  # the evening clock's pace at speed 1 (an hour in 16 s): with the RSVPs, about 80 s in all
CURTAIN = timedelta(minutes=70)  # the clock starts this long before the event: the RSVPs come in at 16:20
QUIET = 3.0  # seconds at speed 1 the console may stay silent before it says where the clock is
RUNNING_LATE = timedelta(minutes=10)  # the organizer's shift

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


@dataclass(frozen=True)
class Evening:
    """The imported event's times: its zone, and (start, end) of the event, then of each agenda item."""

    zone: str
    times: tuple[tuple[datetime, datetime], ...]

    def clock(self, moment: datetime) -> str:
        """'17:25': a moment in the event's zone, to the minute."""
        return format_clock(moment.replace(second=0, microsecond=0), self.zone)

    def mid_talk(self) -> datetime:
        """The middle of the item under way halfway through the evening: when the organizer says "we're late"."""
        (starts_at, ends_at), items = self.times[0], self.times[1:]
        middle = starts_at + (ends_at - starts_at) / 2
        start, end = next(item for item in items if item[0] <= middle < item[1])
        return start + (end - start) / 2


def curtain() -> datetime:
    """When the demo's clock starts: CURTAIN before the sample event, on its own date."""
    return moved(read_event_file(SAMPLE), None)["event.starts"] - CURTAIN


def tomorrow_same_time(now: datetime) -> datetime:
    """The sample's 17:30 start in its own zone, on the day after `now`."""
    spec = read_event_file(SAMPLE).event
    zone = ZoneInfo(spec.timezone)
    start = parse_wall_time(spec.starts).clock
    return datetime.combine(now.astimezone(zone).date() + timedelta(days=1), start, tzinfo=zone)


def member(name: str) -> Actor:
    return Actor("console", name, name)


def demo_settings(folder: Path) -> Settings:
    """The defaults, with a SQLite file in `folder` and no HTTP server."""
    return Settings.model_validate(
        {"bot": {"database_url": f"sqlite:///{folder / 'demo.db'}"}, "http": {"enabled": False}}
    )


async def run_demo(
    out: TextIO, interactive: TextIO | None = None, speed: float = 1.0, files: Path | None = None
) -> None:
    """Replay the evening (about 80 s; `speed` > 1 runs it faster), or with `interactive` read commands.

    Files the console writes (the attendee CSV) go to `files`, by default the system's temporary folder."""
    clock = FastClock(curtain())  # the replay's; the interactive demo runs on the system clock
    with tempfile.TemporaryDirectory(prefix="emcee-demo-") as folder:
        settings = demo_settings(Path(folder))
        app = build_app(settings, Secrets(), clock=clock if interactive is None else None, console_out=out)
        console = cast("ConsoleAdapter", app.adapters["console"])
        console.files = files or Path(tempfile.gettempdir())
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
            await _replay(console, app, clock, speed)
        finally:
            await app.stop()


async def _replay(console: ConsoleAdapter, app: App, clock: FastClock, speed: float) -> None:
    runner = app.runner
    assert runner is not None

    async def step(actor: Actor, line: str) -> None:
        await console.command(actor, line)
        await app.bus.drain()

    slug = await import_event_file(app.engine, SAMPLE)
    evening = await timetable(app, slug)
    await app.bus.drain()
    opening = format_moment(clock.now().replace(second=0, microsecond=0), evening.zone)
    console.say(
        f"Imported the sample event as '{slug}', on its own date and times. The demo's clock reads\n"
        f"{opening}: the RSVPs come in, then the clock runs "
        f"{EVENING_SPEED * speed:g}× as fast as yours\nthrough the evening. The scheduler is the real one."
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
    await runner.stop()  # its timers were set at the system's pace: set them again at the evening's
    clock.set_speed(EVENING_SPEED * speed)
    await runner.start()
    narrator = asyncio.create_task(narrate(console, clock, runner, evening, QUIET / speed))
    try:
        await asyncio.sleep(max((evening.mid_talk() - clock.now()) / timedelta(seconds=1) / clock.speed, 0))
        minutes = RUNNING_LATE / timedelta(minutes=1)
        console.say(f"\n=== The organizer, mid-talk: we're running {minutes:g} minutes late ===")
        await step(ORGANIZER, f"/emcee agenda shift +{format_duration(RUNNING_LATE)}")
        await runner.settle(everything=True)
        await app.bus.drain()
    finally:
        narrator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await narrator
    await step(ORGANIZER, "/emcee attendees")
    console.say("\nThat was the BookKeeper June 2016 evening. Try it yourself: emcee demo --interactive")


async def narrate(console: ConsoleAdapter, clock: FastClock, runner: Runner, evening: Evening, quiet: float) -> None:
    """Whenever the console has been silent for `quiet` seconds, say where the clock is and where it is going."""
    while True:
        wait = console.last_said + quiet - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        upcoming = [post.run_at for post in runner.jobs.values()]
        target = f" → {evening.clock(min(upcoming))}" if upcoming else ""
        console.say(f"⏩ {evening.clock(clock.now())}{target} …")


async def timetable(app: App, slug: str) -> Evening:
    """The imported event's zone and times, and those of its agenda items in order."""
    async with app.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        items = await session.exec(
            select(AgendaItem).where(AgendaItem.event_id == event.id).order_by(col(AgendaItem.position))
        )
        times = [(event.starts_at, event.ends_at), *((item.starts_at, item.ends_at) for item in items.all())]
    return Evening(event.timezone, tuple(times))
