"""/events and /agenda: what members look at."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot import compose
from bot.commands.args import event_arg
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.messages import EventList, Reply
from bot.models import Event, EventStatus


@command(("events",), "List upcoming events with seats left")
async def events(ctx: Context, args: dict[str, Any]) -> Outcome:
    found = (
        await ctx.session.exec(
            select(Event)
            .where(Event.status == EventStatus.PUBLISHED, col(Event.ends_at) > ctx.clock.now())
            .order_by(col(Event.starts_at))
        )
    ).all()
    base_url = ctx.settings.http.link_base
    listing = EventList(tuple([await compose.event_card(ctx.session, event, base_url) for event in found]))
    return Outcome(Reply("", message=listing))


@command(("agenda",), "Show an event's agenda and speakers", (event_arg(),))
async def agenda(ctx: Context, args: dict[str, Any]) -> Outcome:
    event = await ctx.event(args.get("event"))
    return Outcome(Reply("", message=await compose.agenda_card(ctx.session, event)))
