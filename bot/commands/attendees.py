"""/emcee attendees: who is coming, with a CSV export."""

from __future__ import annotations

from typing import Any

from bot import compose
from bot.commands.args import event_arg
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.messages import Reply


@command(("emcee", "attendees"), "Show who is coming, with a CSV export", (event_arg(),), organizer=True)
async def attendees(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    listing, csv_file = await compose.attendee_list(ctx.session, event)
    return Outcome(Reply("", message=listing, attachment=csv_file))
