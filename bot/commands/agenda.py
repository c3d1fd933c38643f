"""/emcee agenda add|move|shift|remove: organizers edit an event's agenda."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot import compose
from bot.agenda import AgendaEditor, published_notice
from bot.commands.args import FIELD_LIMIT, LINE_LIMIT, NAME_LIMIT, TITLE_LIMIT, Arg, ArgKind, event_option
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.effects import AgendaChanged, EventChanged
from bot.messages import Reply
from bot.models import ItemKind
from bot.timeparse import DURATION_RANGE

_ITEM = Arg(
    "item", ArgKind.TEXT, "agenda item: its number or the start of its title", required=True, max_length=LINE_LIMIT
)


@command(
    ("emcee", "agenda", "add"),
    "Add an agenda item",
    (
        Arg(
            "starts", ArgKind.TIME, "start: HH:MM (or HH:MM:SS) on the event's date, or YYYY-MM-DD HH:MM", required=True
        ),
        Arg("title", ArgKind.TEXT, "the item's title, in quotes", required=True, max_length=TITLE_LIMIT),
        Arg("ends", ArgKind.TIME, "end: HH:MM or HH:MM:SS; default: 30 minutes after the start", option=True),
        Arg(
            "kind",
            ArgKind.CHOICE,
            "what kind of item; default: talk",
            choices=tuple(kind.value for kind in ItemKind),
            option=True,
        ),
        Arg("speaker", ArgKind.TEXT, "a speaker's name (repeatable)", option=True, repeat=True, max_length=NAME_LIMIT),
        Arg("moderator", ArgKind.TEXT, "the panel's moderator", option=True, max_length=NAME_LIMIT),
        Arg(
            "panelist", ArgKind.TEXT, "a panelist's name (repeatable)", option=True, repeat=True, max_length=NAME_LIMIT
        ),
        Arg("abstract", ArgKind.TEXT, "what the item is about", option=True, max_length=FIELD_LIMIT),
        event_option(),
    ),
    organizer=True,
)
async def add(ctx: Context, args: dict[str, Any]) -> Outcome:
    return await _edit(ctx, args, AgendaEditor.add)


@command(
    ("emcee", "agenda", "move"),
    "Move one agenda item to a new start time",
    (_ITEM, Arg("to", ArgKind.TIME, "new start: HH:MM or HH:MM:SS", required=True), event_option()),
    organizer=True,
)
async def move(ctx: Context, args: dict[str, Any]) -> Outcome:
    return await _edit(ctx, args, AgendaEditor.move)


@command(
    ("emcee", "agenda", "shift"),
    "Shift the current item and every later one, e.g. +10m when running late",
    (
        Arg("by", ArgKind.DURATION, f"how far: +10m, 1h, -5m, 40s; {DURATION_RANGE}", required=True),
        Arg(
            "from",
            ArgKind.TEXT,
            "first item to move; default: the current or next item",
            option=True,
            max_length=LINE_LIMIT,
        ),
        event_option(),
    ),
    organizer=True,
)
async def shift(ctx: Context, args: dict[str, Any]) -> Outcome:
    return await _edit(ctx, args, AgendaEditor.shift)


@command(("emcee", "agenda", "remove"), "Remove an agenda item", (_ITEM, event_option()), organizer=True)
async def remove(ctx: Context, args: dict[str, Any]) -> Outcome:
    return await _edit(ctx, args, AgendaEditor.remove)


async def _edit(
    ctx: Context, args: dict[str, Any], change: Callable[[AgendaEditor, dict[str, Any]], Awaitable[AgendaChanged]]
) -> Outcome:
    """Apply one edit to the named event's agenda; the reply shows the agenda as it now stands."""
    event = await ctx.event(args.get("event"))
    changed = await change(AgendaEditor(ctx.session, event, ctx.clock.now()), args)
    ctx.touch(event)
    card = await compose.agenda_card(ctx.session, event)
    return Outcome(
        Reply(changed.update.summary, message=card), [*published_notice(event, changed), EventChanged(event.id or 0)]
    )
