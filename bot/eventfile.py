"""Event files (TOML): an event with its speakers and agenda, imported through the engine's own commands.

Importing issues the same commands an organizer would type, so every check of the engine applies.
The whole file is validated first; a file that names an existing event is refused. The commands run in
one transaction, so a file that fails part-way leaves nothing behind.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.commands import UsageError
from bot.engine import Engine, Refused
from bot.invocation import Actor, Invocation
from bot.timeparse import TimeParseError, WallTime, parse_wall_time

IMPORTER = Actor("system", "import", "event file import")


class EventFileError(Exception):
    """The file cannot be imported; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventSpec(_Strict):
    slug: str
    title: str
    starts: str
    ends: str | None = None
    timezone: str
    venue: str = ""
    url: str = ""
    capacity: int = Field(0, ge=0)
    description: str = ""


class SpeakerSpec(_Strict):
    name: str
    affiliation: str = ""
    bio: str = ""
    links: str = ""
    slack: str | None = None
    discord: str | None = None


class ItemSpec(_Strict):
    starts: str
    ends: str | None = None
    title: str
    kind: str = "talk"
    speakers: list[str] = Field(default_factory=list)
    moderator: str | None = None
    panelists: list[str] = Field(default_factory=list)
    abstract: str = ""


class EventFile(_Strict):
    event: EventSpec
    speakers: list[SpeakerSpec] = Field(default_factory=list)
    agenda: list[ItemSpec] = Field(default_factory=list)


def read_event_file(path: Path) -> EventFile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EventFileError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise EventFileError(f"{path}: not valid TOML: {exc}") from None
    try:
        return EventFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise EventFileError(f"{path}: {problems}") from None


def _wall(text: str, where: str) -> WallTime:
    try:
        return parse_wall_time(text)
    except TimeParseError as exc:
        raise EventFileError(f"{where}: {exc}") from None


def moved(spec: EventFile, starts_at: datetime | None) -> dict[str, datetime]:
    """Wall times of the file as aware datetimes, optionally re-anchored at `starts_at` (the demo
    moves the sample evening to tomorrow)."""
    zone = ZoneInfo(spec.event.timezone)
    start_wall = _wall(spec.event.starts, "event.starts")
    day = start_wall.day
    if day is None:
        raise EventFileError("event.starts: needs a date, YYYY-MM-DD HH:MM")
    original = start_wall.resolve(zone, day)
    anchor = starts_at or original

    def place(text: str, where: str) -> datetime:
        moment = _wall(text, where).resolve(zone, day)
        return anchor + (moment - original)

    times = {"event.starts": anchor}
    times["event.ends"] = place(spec.event.ends, "event.ends") if spec.event.ends else anchor + timedelta(hours=3)
    for index, item in enumerate(spec.agenda):
        times[f"agenda.{index}.starts"] = place(item.starts, f"agenda.{index}.starts")
        ends = place(item.ends, f"agenda.{index}.ends") if item.ends else None
        times[f"agenda.{index}.ends"] = ends or times[f"agenda.{index}.starts"] + timedelta(minutes=30)
    return times


def _local(moment: datetime, zone: ZoneInfo) -> str:
    """Local wall time as typed; seconds matter when the demo compresses an evening."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


async def import_event_file(engine: Engine, path: Path, starts_at: datetime | None = None) -> str:
    """Create the event, its speakers (new ones only) and its agenda. Returns the slug."""
    spec = read_event_file(path)
    zone = ZoneInfo(spec.event.timezone)
    times = moved(spec, starts_at)
    if spec.event.slug in await engine.event_slugs():
        raise EventFileError(f"{path}: event '{spec.event.slug}' already exists; nothing was imported")

    async with engine.batch() as batch:  # every command, or none: a refusal below rolls them all back

        async def run(where: str, command: tuple[str, ...], raw: dict[str, Any], tolerate: str = "") -> None:
            """Issue one command with the same conversions and checks as typed platform options."""
            try:
                args = engine.registry.convert(engine.registry.command(command), raw)
                await batch.run(Invocation(IMPORTER, None, command, args))
            except UsageError as exc:
                raise EventFileError(f"{path}: {where}: {exc.message}") from None
            except Refused as exc:
                if not (tolerate and tolerate in exc.message):
                    raise EventFileError(f"{path}: {where}: {exc.message}") from None

        event = spec.event
        await run(
            "event",
            ("emcee", "event", "create"),
            {
                **event.model_dump(exclude={"starts", "ends"}),
                "starts": _local(times["event.starts"], zone),
                "ends": _local(times["event.ends"], zone),
            },
        )
        for index, speaker in enumerate(spec.speakers):
            await run(f"speakers.{index}", ("emcee", "speaker", "add"), speaker.model_dump(), "already a speaker")
        for index, item in enumerate(spec.agenda):
            raw = item.model_dump(exclude={"speakers", "panelists"})
            raw |= {"speaker": item.speakers, "panelist": item.panelists, "event": event.slug}
            raw |= {"starts": _local(times[f"agenda.{index}.starts"], zone)}
            raw |= {"ends": _local(times[f"agenda.{index}.ends"], zone)}
            await run(f"agenda.{index}", ("emcee", "agenda", "add"), raw)
    return event.slug
