"""/rsvp: a member's answer to an event, with seats and the waitlist."""

from __future__ import annotations

from typing import Any

from bot.commands.args import Arg, ArgKind, UsageError, event_arg
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.effects import SeatsChanged
from bot.formatting import format_moment, plural
from bot.messages import Reply
from bot.rsvp_desk import RsvpAsk
from bot.statuses import RsvpAnswer, RsvpStatus


@command(
    ("rsvp",),
    "RSVP to an event, with up to a few guests",
    (
        event_arg(),
        Arg("status", ArgKind.CHOICE, "going, maybe or no; default: going", choices=tuple(RsvpAnswer)),
        Arg("guests", ArgKind.GUESTS, "guests you bring, e.g. +1"),
    ),
    desk_writes=True,
)
async def rsvp(ctx: Context, args: dict[str, Any]) -> Outcome:
    guests = args.get("guests", 0)
    if guests > ctx.settings.bot.max_guests:
        raise UsageError(f"you can bring at most {plural(ctx.settings.bot.max_guests, 'guest')}")
    wanted = RsvpAnswer(args.get("status", RsvpAnswer.GOING)).status
    ask = RsvpAsk(args.get("event"), ctx.actor, ctx.organizer, wanted, guests, ctx.interaction_id)
    settled = await ctx.rsvps.settle(ask)
    event, result = settled.event, settled.outcome
    party = f" with {plural(result.guests, 'guest')}" if result.guests else ""
    if result.status is RsvpStatus.GOING:
        text = f"✅ You're going to {event.title}{party}. {format_moment(event.starts_at, event.timezone)}."
    elif result.status is RsvpStatus.WAITLISTED:
        text = (
            f"{event.title} is full. You're on the waitlist{party}, position {result.waitlist_position}. "
            "We'll DM you if a seat frees up."
        )
    elif result.status is RsvpStatus.MAYBE:
        text = f"Noted: maybe for {event.title}."
    else:
        text = f"Noted: you can't make {event.title}."
    return Outcome(Reply(text), [SeatsChanged(event.id or 0, result.reminders_moved)], settled.written)
