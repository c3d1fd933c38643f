"""/emcee announce: post an event's card again, with a message."""

from __future__ import annotations

from typing import Any

from bot.commands import events
from bot.commands.args import MESSAGE_LIMIT, Arg, ArgKind, UsageError, event_arg
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.effects import CardPosted
from bot.messages import Reply
from bot.models import EventStatus


@command(
    ("emcee", "announce"),
    "Post an event's card to the announce channels, with an optional message",
    (event_arg(), Arg("text", ArgKind.TEXT, "what to say above the card", rest=True, max_length=MESSAGE_LIMIT)),
    organizer=True,
)
async def announce(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    if event.status != EventStatus.PUBLISHED:
        raise UsageError(f"{event.title} is {event.status}; publish it first with {events.publish.ref}")
    return Outcome(
        Reply(f"Announcing {event.title} in the announce channels."),
        [CardPosted(event.id or 0, args.get("text", ""))],
    )
