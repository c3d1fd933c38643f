"""/emcee event create|edit|publish|cancel: organizers manage events."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import select

from bot.agenda import AgendaEditor, published_notice
from bot.commands import agenda, announce
from bot.commands.args import (
    DESCRIPTION_LIMIT,
    LINE_LIMIT,
    NAME_LIMIT,
    TITLE_LIMIT,
    URL_LIMIT,
    Arg,
    ArgKind,
    UsageError,
    event_arg,
    time_errors,
)
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.effects import CardPosted, Effect, EventCancelled, EventChanged
from bot.formatting import format_moment, plural
from bot.messages import Reply
from bot.models import Event, EventStatus
from bot.rsvps import promote_waitlist, promoted
from bot.timeparse import (
    DATE_RANGE,
    REMINDER_RANGE,
    WallTime,
    format_duration,
    moved,
    parse_durations,
    zone_named,
)

DEFAULT_EVENT_LENGTH = timedelta(hours=3)
_EDITABLE = frozenset({"title", "venue", "url", "description", "capacity", "timezone", "starts", "ends", "reminders"})


def _fields(creating: bool) -> tuple[Arg, ...]:
    """The --options of event create and edit; create takes the title by position instead."""
    title = () if creating else (Arg("title", ArgKind.TEXT, "the event's title", option=True, max_length=TITLE_LIMIT),)
    return (
        Arg(
            "starts",
            ArgKind.TIME,
            f"start: YYYY-MM-DD HH:MM (or HH:MM on the event's date; HH:MM:SS too); {DATE_RANGE}",
            creating,
            option=True,
        ),
        Arg(
            "ends",
            ArgKind.TIME,
            "end: HH:MM, HH:MM:SS or YYYY-MM-DD HH:MM; default: 3 hours after the start",
            option=True,
        ),
        *title,
        Arg("venue", ArgKind.TEXT, "where it happens", option=True, max_length=LINE_LIMIT),
        Arg("capacity", ArgKind.INT, "seats, guests included; 0 means unlimited", option=True),
        Arg(
            "timezone",
            ArgKind.TEXT,
            "IANA zone, e.g. America/Los_Angeles; default: the bot's",
            option=True,
            max_length=NAME_LIMIT,
        ),
        Arg("url", ArgKind.TEXT, "a link to the event page", option=True, max_length=URL_LIMIT),
        Arg("description", ArgKind.TEXT, "a few lines about the event", option=True, max_length=DESCRIPTION_LIMIT),
        Arg(
            "reminders",
            ArgKind.TEXT,
            f'reminders before it, e.g. "1d,2h" or "30m,40s", {REMINDER_RANGE}; "default" for the configured ones',
            option=True,
            max_length=NAME_LIMIT,
        ),
    )


@command(
    ("emcee", "event", "create"),
    "Create a draft event",
    (
        Arg("slug", ArgKind.SLUG, "short name used in commands, e.g. bk-june", required=True),
        Arg("title", ArgKind.TEXT, "the event's title, in quotes", required=True, max_length=TITLE_LIMIT),
        *_fields(creating=True),
    ),
    organizer=True,
)
async def create(ctx: Context, args: dict[str, Any]) -> Outcome:
    slug = args["slug"]
    if (await ctx.session.exec(select(Event).where(Event.slug == slug))).first():
        raise UsageError(f"an event called '{slug}' already exists")
    zone_name = args.get("timezone", ctx.settings.bot.timezone)
    zone = _zone(zone_name)
    starts_at = _dated(args["starts"], zone, None, "--starts")
    if "ends" in args:
        ends_at = _dated(args["ends"], zone, starts_at, "--ends")
    else:
        with time_errors("the default end (3 hours after the start): "):
            ends_at = moved(starts_at, DEFAULT_EVENT_LENGTH, "the end")
    if ends_at <= starts_at:
        raise UsageError("--ends must be after --starts")
    event = Event(
        slug=slug,
        uid=args.get("uid") or f"{uuid.uuid4()}@emcee",  # an importer keeps the calendar's own UID
        title=args["title"],
        description=args.get("description", ""),
        reminder_offsets=_reminders(args.get("reminders", "default")),
        venue=args.get("venue", ""),
        url=args.get("url", ""),
        starts_at=starts_at,
        ends_at=ends_at,
        timezone=zone_name,
        capacity=args.get("capacity") or None,
        updated_at=ctx.clock.now(),
    )
    ctx.session.add(event)
    await ctx.session.flush()
    text = (
        f"Created draft {event.title} ({slug}), {format_moment(starts_at, zone_name)}. "
        f"{_wall_notes(args, zone, starts_at)}"
        f"Add the agenda with {agenda.add.ref}, then {publish.ref} {slug}."
    )
    return Outcome(Reply(text), [EventChanged(event.id or 0)])


@command(
    ("emcee", "event", "edit"), "Change an event's details", (event_arg(), *_fields(creating=False)), organizer=True
)
async def edit(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    fields = _EDITABLE & set(args)
    if not fields:
        raise UsageError("nothing to change; give at least one --option")
    for name in ("title", "venue", "url", "description"):
        if name in args:
            setattr(event, name, args[name])
    if "reminders" in args:
        event.reminder_offsets = _reminders(args["reminders"])
    if "timezone" in args:
        _zone(args["timezone"])
        event.timezone = args["timezone"]
    zone = ZoneInfo(event.timezone)
    notes = _wall_notes(args, zone, event.starts_at)
    effects: list[Effect] = [EventChanged(event.id or 0)]
    if "starts" in args:
        new_start = _dated(args["starts"], zone, event.starts_at, "--starts")
        delta = new_start - event.starts_at
        with time_errors():
            event.starts_at, event.ends_at = new_start, moved(event.ends_at, delta, "the end")
        editor = AgendaEditor(ctx.session, event, ctx.clock.now())
        effects += published_notice(event, await editor.shift_all(delta))
    if "ends" in args:
        event.ends_at = _dated(args["ends"], zone, event.starts_at, "--ends")
    if event.ends_at <= event.starts_at:
        raise UsageError("the event must end after it starts")
    if "capacity" in args:
        capacity = args["capacity"] or None
        if capacity is not None and capacity < event.seats_taken:
            taken = plural(event.seats_taken, "seat")
            raise UsageError(f"{taken} already taken; capacity can't go below that")
        event.capacity = capacity
    ctx.touch(event)
    await ctx.session.flush()
    effects += promoted(event.id or 0, await promote_waitlist(ctx.session, event))
    return Outcome(Reply(f"Updated {event.title}: {', '.join(sorted(fields))}. {notes}".rstrip()), effects)


@command(("emcee", "event", "publish"), "Publish an event and post its card", (event_arg(),), organizer=True)
async def publish(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    if event.status == EventStatus.PUBLISHED:
        raise UsageError(f"{event.title} is already published; use {announce.announce.ref} to post it again")
    if event.status == EventStatus.CANCELLED:
        raise UsageError(f"{event.title} was cancelled; create a new event instead")
    ctx.touch(event, status=EventStatus.PUBLISHED)
    return Outcome(
        Reply(f"Published {event.title}; its card is on its way to the announce channels."),
        [CardPosted(event.id or 0), EventChanged(event.id or 0)],
    )


@command(("emcee", "event", "cancel"), "Cancel an event and tell everyone", (event_arg(),), organizer=True)
async def cancel(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    if event.status == EventStatus.CANCELLED:
        raise UsageError(f"{event.title} is already cancelled")
    ctx.touch(event, status=EventStatus.CANCELLED)
    return Outcome(
        Reply(f"Cancelled {event.title}. Everyone who RSVPed will see it on the card."),
        [EventCancelled(event.id or 0), EventChanged(event.id or 0)],
    )


def _reminders(text: str) -> str | None:
    """An event's own reminder offsets, normalised ("1d,2h"); None (the configured ones) for "default"."""
    if text.strip().lower() == "default":
        return None
    with time_errors("--reminders: "):
        return ",".join(format_duration(offset) for offset in parse_durations(text))


def _zone(name: str) -> ZoneInfo:
    with time_errors():
        return zone_named(name)


def _day(wall: WallTime, zone: ZoneInfo, default: datetime | None, option: str) -> date:
    """The date a wall time falls on: its own, else that of `default` in `zone`."""
    if wall.day is not None:
        return wall.day
    if default is None:
        raise UsageError(f"{option} needs a date: YYYY-MM-DD HH:MM")
    return default.astimezone(zone).date()


def _dated(wall: WallTime, zone: ZoneInfo, default: datetime | None, option: str) -> datetime:
    day = _day(wall, zone, default, option)
    with time_errors(f"{option}: "):
        return wall.resolve(zone, day)


def _wall_notes(args: dict[str, Any], zone: ZoneInfo, default: datetime) -> str:
    """What the reply says about --starts/--ends wall times that happen twice (which one was taken)."""
    walls = [(name, args[name]) for name in ("starts", "ends") if name in args]
    notes = [wall.note(zone, _day(wall, zone, default, f"--{name}")) for name, wall in walls]
    return "".join(f"{note} " for note in notes if note)
