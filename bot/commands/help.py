"""/emcee help: the commands, generated from the registry."""

from __future__ import annotations

from typing import Any

from bot.commands.args import NAME_LIMIT, Arg, ArgKind
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.messages import Reply


@command(
    ("emcee", "help"),
    "Show the commands, or the details of one",
    (Arg("command", ArgKind.TEXT, "a command name, e.g. rsvp or agenda shift", rest=True, max_length=NAME_LIMIT),),
)
async def show_help(ctx: Context, args: dict[str, Any]) -> Outcome:
    return Outcome(Reply(ctx.registry.help(args.get("command", ""))))
