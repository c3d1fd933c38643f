"""/rsvp: a member's answer to an event, with seats and the waitlist."""

from __future__ import annotations

from typing import Any

from bot.commands.args import Arg, ArgKind, UsageError, event_arg
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.effects import Effect, SeatsChanged
from bot.formatting import format_moment, plural
from bot.messages import Reply
from bot.rsvps import promoted, set_rsvp
from bot.statuses import EventStatus, RsvpAnswer, RsvpStatus


@command(
    ("rsvp",),
    "RSVP to an event, with up to a few guests",
    (
        event_arg(),
        Arg("status", ArgKind.CHOICE, "going, maybe or no; default: going", choices=tuple(RsvpAnswer)),
        Arg("guests", ArgKind.GUESTS, "guests you bring, e.g. +1"),
    ),
)
async def rsvp(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    guests = args.get("guests", 0)
    if guests > ctx.settings.bot.max_guests:
        raise UsageError(f"you can bring at most {plural(ctx.settings.bot.max_guests, 'guest')}")
    if event.status != EventStatus.PUBLISHED:
        raise UsageError(f"{event.title} is {event.status}; RSVPs are closed")
    if event.ends_at <= ctx.clock.now():
        raise UsageError(f"{event.title} is over; RSVPs are closed")
    wanted = RsvpAnswer(args.get("status", RsvpAnswer.GOING)).status
    result = await set_rsvp(ctx.session, event, ctx.actor, wanted, guests, ctx.clock)
    if result.kept_previous:  # a refusal: raising rolls back everything set_rsvp touched
        left = 0 if event.capacity is None else event.capacity - event.seats_taken
        raise UsageError(f"Only {plural(left, 'seat')} left at {event.title}, so your RSVP is unchanged.")
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
    effects: list[Effect] = [SeatsChanged(event.id or 0, result.reminders_moved)]
    effects += promoted(event.id or 0, result.promoted)
    return Outcome(Reply(text), effects)
