"""The Discord command tree, generated from the command registry (bot/commands/).

Each registry command becomes an `app_commands.Command` whose parameters are typed from its Args:
a choice list for CHOICE arguments, integers for guest counts and numbers, strings for the rest, with
autocomplete on every event argument. The path gives the nesting: `/rsvp`, and `/emcee agenda shift`
as a subcommand of the `agenda` group under `/emcee`. Nothing here is written out by hand, so a new
registry command appears on Discord with the next start.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import discord
from discord import app_commands

from bot.commands import Arg, ArgKind, Command, Registry
from bot.formatting import shorten

DESCRIPTION = 100  # characters in a command's or option's description
_LARGEST = 999_999_999  # the registry reads whole numbers of up to 9 digits

CommandHandler = Callable[[discord.Interaction, Command, dict[str, Any]], Awaitable[None]]
Completer = Callable[[discord.Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]]


def build_tree(
    client: discord.Client,
    registry: Registry,
    on_command: CommandHandler,
    complete_event: Completer,
    guild_ids: Sequence[int] = (),
) -> app_commands.CommandTree[discord.Client]:
    """A CommandTree for `client` holding every registry command, in the given guilds (global if none)."""
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    guilds = [discord.Object(guild_id) for guild_id in guild_ids]  # none: global
    groups: dict[tuple[str, ...], app_commands.Group] = {}

    def group(path: tuple[str, ...]) -> app_commands.Group:
        if path not in groups:
            parent = group(path[:-1]) if len(path) > 1 else None
            groups[path] = app_commands.Group(
                name=path[-1], description=_group_description(registry, path), parent=parent
            )
            if parent is None:
                tree.add_command(groups[path], guilds=guilds)
        return groups[path]

    for command in registry.commands:
        parent = group(command.path[:-1]) if len(command.path) > 1 else None
        slash: app_commands.Command[Any, ..., None] = app_commands.Command(
            name=command.path[-1],
            description=shorten(command.summary, DESCRIPTION),
            callback=_callback(command, on_command, complete_event),
            parent=parent,
        )
        if parent is None:
            tree.add_command(slash, guilds=guilds)
        else:
            parent.add_command(slash)
    return tree


def _group_description(registry: Registry, path: tuple[str, ...]) -> str:
    below = [command for command in registry.commands if command.path[: len(path)] == path]
    children = ", ".join(dict.fromkeys(command.path[len(path)] for command in below))
    kind = "Organizer commands" if all(command.organizer for command in below) else "Commands"
    return shorten(f"{kind}: {children}", DESCRIPTION)


def parameter_name(arg: Arg) -> str:
    """The Python name of an option: `from` is a keyword, so it travels as `from_` and is renamed back."""
    return f"{arg.name}_" if keyword.iskeyword(arg.name) else arg.name


def _annotation(arg: Arg) -> Any:
    if arg.kind is ArgKind.GUESTS:
        return app_commands.Range[int, 0, 999]
    if arg.kind is ArgKind.INT:
        return app_commands.Range[int, 0, _LARGEST]
    if arg.max_length is not None and not arg.repeat:  # a repeated option travels as one comma-separated string
        return app_commands.Range[str, None, arg.max_length]
    return str


def _description(arg: Arg) -> str:
    text = f"{arg.help}; separate several with commas" if arg.repeat else arg.help
    return shorten(text, DESCRIPTION)


def _callback(command: Command, on_command: CommandHandler, complete_event: Completer) -> Callable[..., Any]:
    """A callback whose signature declares the command's options, so discord.py builds typed parameters from it."""
    names = {parameter_name(arg): arg.name for arg in command.args}

    async def run(interaction: discord.Interaction, **values: Any) -> None:
        await on_command(
            interaction, command, {names[key]: value for key, value in values.items() if value is not None}
        )

    parameters = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(
            parameter_name(arg),
            inspect.Parameter.KEYWORD_ONLY,
            annotation=_annotation(arg),
            default=inspect.Parameter.empty if arg.required else None,
        )
        for arg in command.args
    ]
    # inspect reads __signature__ from any callable; typeshed declares no such attribute on functions.
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__qualname__ = run.__name__ = "_".join(command.path)
    if command.args:
        app_commands.describe(**{parameter_name(arg): _description(arg) for arg in command.args})(run)
    choices = {
        parameter_name(arg): [app_commands.Choice(name=choice, value=choice) for choice in arg.choices]
        for arg in command.args
        if arg.choices
    }
    if choices:
        app_commands.choices(**choices)(run)
    events = {parameter_name(arg): complete_event for arg in command.args if arg.kind is ArgKind.EVENT}
    if events:
        app_commands.autocomplete(**events)(run)
    renames = {parameter_name(arg): arg.name for arg in command.args if parameter_name(arg) != arg.name}
    if renames:
        app_commands.rename(**renames)(run)
    return run
