"""/emcee remind: a member's DM reminders for an event they are going to."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from bot.commands.args import Arg, ArgKind, UsageError, event_arg
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.effects import RemindersChanged
from bot.messages import Reply
from bot.models import EventStatus, Rsvp, RsvpStatus


@command(
    ("emcee", "remind"),
    "Turn DM reminders for an event on or off",
    (Arg("state", ArgKind.CHOICE, "on or off", required=True, choices=("on", "off")), event_arg()),
)
async def remind(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    if event.status == EventStatus.CANCELLED:
        raise UsageError(f"{event.title} was cancelled, so there is nothing to remind you of")
    rsvp = (
        await ctx.session.exec(
            select(Rsvp).where(
                Rsvp.event_id == event.id, Rsvp.platform == ctx.actor.platform, Rsvp.user_id == ctx.actor.user_id
            )
        )
    ).first()
    if rsvp is None or rsvp.status not in (RsvpStatus.GOING, RsvpStatus.WAITLISTED):
        raise UsageError(f"RSVP going to {event.title} first, then turn reminders on")
    rsvp.dm_reminders = args["state"] == "on"
    ctx.session.add(rsvp)
    state = "on: I'll DM you before it starts" if rsvp.dm_reminders else "off"
    return Outcome(Reply(f"DM reminders for {event.title} are {state}."), [RemindersChanged(event.id or 0)])
