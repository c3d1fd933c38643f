"""/emcee speaker add|edit: the people on the agenda."""

from __future__ import annotations

from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.commands.args import FIELD_LIMIT, LINE_LIMIT, NAME_LIMIT, Arg, ArgKind, UsageError
from bot.commands.context import Context, Outcome
from bot.commands.registry import command
from bot.messages import Reply
from bot.models import Speaker

_FIELDS = (
    Arg("affiliation", ArgKind.TEXT, "company or project", option=True, max_length=LINE_LIMIT),
    Arg("bio", ArgKind.TEXT, "a short biography", option=True, max_length=FIELD_LIMIT),
    Arg("links", ArgKind.TEXT, "links, separated by spaces", option=True, max_length=FIELD_LIMIT),
    Arg("slack", ArgKind.TEXT, "Slack user id (U…), so the intro can mention them", option=True, max_length=NAME_LIMIT),
    Arg("discord", ArgKind.TEXT, "Discord user id, so the intro can mention them", option=True, max_length=NAME_LIMIT),
)
# Option names to Speaker columns.
_COLUMNS = {"affiliation": "affiliation", "bio": "bio", "links": "links", "slack": "slack_id", "discord": "discord_id"}


@command(
    ("emcee", "speaker", "add"),
    "Add a speaker",
    (Arg("name", ArgKind.TEXT, "full name, in quotes", required=True, max_length=NAME_LIMIT), *_FIELDS),
    organizer=True,
)
async def add(ctx: Context, args: dict[str, Any]) -> Outcome:
    name = args["name"].strip()
    if not name:
        raise UsageError("the speaker needs a name")
    if await find_speaker(ctx.session, name):
        raise UsageError(f"'{name}' is already a speaker; use {edit.ref}")
    speaker = Speaker(name=name)
    _set_fields(speaker, args)
    ctx.session.add(speaker)
    return Outcome(Reply(f"Added speaker {name}."))


@command(
    ("emcee", "speaker", "edit"),
    "Change a speaker's details",
    (Arg("name", ArgKind.TEXT, "the speaker's name, in quotes", required=True, max_length=NAME_LIMIT), *_FIELDS),
    organizer=True,
)
async def edit(ctx: Context, args: dict[str, Any]) -> Outcome:
    speaker = await find_speaker(ctx.session, args["name"])
    if speaker is None:
        raise UsageError(f"no speaker called '{args['name']}'; add them with {add.ref}")
    changed = _set_fields(speaker, args)
    if not changed:
        raise UsageError("nothing to change; give at least one --option")
    ctx.session.add(speaker)
    return Outcome(Reply(f"Updated {speaker.name}: {', '.join(changed)}."))


async def find_speaker(session: AsyncSession, name: str) -> Speaker | None:
    return (await session.exec(select(Speaker).where(Speaker.name == name.strip()))).first()


async def require_speaker(session: AsyncSession, name: str) -> Speaker:
    """The speaker called `name`; an agenda item may name only speakers added first."""
    speaker = await find_speaker(session, name)
    if speaker is None:
        raise UsageError(f"no speaker called '{name}'; add them first with {add.ref} \"{name}\"")
    return speaker


def _set_fields(speaker: Speaker, args: dict[str, Any]) -> list[str]:
    changed = [name for name in _COLUMNS if name in args]
    for name in changed:
        setattr(speaker, _COLUMNS[name], args[name])
    return changed
