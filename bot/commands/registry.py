"""Commands and the registry that holds them.

A feature module declares each command beside its handler with `@command(...)`; the registry collects them.
The Slack text parser, the Discord command tree, the console REPL, `help` and the Slack manifest are all
derived from the registry. Parsing raises only UsageError, carrying the command's usage line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bot.commands.args import Arg, ArgKind, UsageError
from bot.commands.parsing import Token, bind, convert, tokenize, unterminated

if TYPE_CHECKING:
    from bot.commands.context import Context, Outcome

Handler = Callable[["Context", dict[str, Any]], Awaitable["Outcome"]]


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    summary: str
    args: tuple[Arg, ...] = ()
    organizer: bool = False
    handler: Handler | None = field(default=None, compare=False, repr=False)
    # The handler writes through a desk that commits in groups (the RSVP desk), not in its own session;
    # it gets a read-only session.
    desk_writes: bool = False

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def ref(self) -> str:
        """The command as a member types it, e.g. /emcee event publish."""
        return f"/{self.name}"

    @property
    def group_ref(self) -> str:
        """The group the command belongs to, as a member types it, e.g. /emcee agenda for /emcee agenda add."""
        return f"/{' '.join(self.path[:-1])}"

    @property
    def usage(self) -> str:
        return " ".join([self.ref, *(arg.placeholder for arg in self.args)])

    @cached_property
    def positionals(self) -> tuple[Arg, ...]:
        return tuple(arg for arg in self.args if not arg.option)

    @property
    def brief_usage(self) -> str:
        """The usage line with positionals only, for the overview."""
        options = " [--options]" if any(arg.option for arg in self.args) else ""
        return " ".join([self.ref, *(arg.placeholder for arg in self.positionals)]) + options

    @cached_property
    def needs_event_names(self) -> bool:
        """Whether parsing depends on which events exist (an optional event before free text)."""
        kinds = {arg.kind for arg in self.positionals}
        return ArgKind.EVENT in kinds and any(arg.rest for arg in self.positionals)

    def option(self, name: str) -> Arg | None:
        return next((arg for arg in self.args if arg.option and arg.name == name), None)

    def help(self) -> str:
        lines = [f"{self.usage}", f"  {self.summary}" + ("  (organizers only)" if self.organizer else "")]
        lines += [f"  {arg.placeholder:<28} {arg.details}" for arg in self.args]
        return "\n".join(lines)


def command(
    path: tuple[str, ...],
    summary: str,
    args: Iterable[Arg] = (),
    organizer: bool = False,
    desk_writes: bool = False,
) -> Callable[[Handler], Command]:
    """Declare a command on its handler: the decorated name becomes the Command, which the registry collects."""

    def declare(handler: Handler) -> Command:
        return Command(path, summary, tuple(args), organizer, handler, desk_writes)

    return declare


def declared(module: ModuleType) -> tuple[Command, ...]:
    """The commands a feature module declares, in the order it declares them."""
    return tuple(value for value in vars(module).values() if isinstance(value, Command) and value.handler)


@dataclass(frozen=True)
class CommandText:
    """A command line read as far as its command, once: its arguments are still tokens, bound by `bind`
    (after the access check, and with the known events when the command needs them)."""

    command: Command
    text: str  # the line without its leading slash; a rest-of-line argument is cut from it
    tokens: list[Token]  # the argument tokens, after the command's words

    def bind(self, events: Collection[str] = ()) -> dict[str, Any]:
        """The typed arguments; UsageError (with the command's usage line) when they do not fit."""
        if problem := unterminated(self.tokens, self.text):
            raise problem
        try:
            return bind(self.command, self.tokens, self.text, events)
        except UsageError as exc:
            raise UsageError(exc.message, self.command.usage) from None


class Registry:
    """Looks commands up by path and parses command lines against them."""

    def __init__(self, commands: tuple[Command, ...]) -> None:
        self.commands = commands
        self._by_path = {command.path: command for command in commands}
        self.roots = tuple(dict.fromkeys(command.path[0] for command in commands))

    @classmethod
    def default(cls) -> Registry:
        """Every command of the feature modules."""
        from bot.commands.catalog import COMMANDS  # the feature modules import this module

        return cls(COMMANDS)

    @property
    def help_command(self) -> Command:
        return self._by_path[("emcee", "help")]

    @property
    def help_usage(self) -> str:
        return self.help_command.usage

    def get(self, path: tuple[str, ...]) -> Command | None:
        return self._by_path.get(path)

    def command(self, path: tuple[str, ...]) -> Command:
        """The command at `path`; UsageError when there is none."""
        command = self._by_path.get(path)
        if command is None:
            raise self.unknown(path)
        return command

    def find(self, words: list[str]) -> tuple[Command | None, int]:
        """The longest command path that prefixes `words`, and how many words it used."""
        for length in range(min(len(words), 3), 0, -1):
            command = self._by_path.get(tuple(word.lower() for word in words[:length]))
            if command:
                return command, length
        return None, 0

    def read(self, line: str) -> CommandText:
        """Read 'rsvp maybe +1' or '/emcee agenda shift +10m' up to its command; UsageError when it names none."""
        text = line.strip().removeprefix("/")
        tokens = tokenize(text)
        if not tokens:
            raise UsageError("no command given", self.help_usage)
        command, used = self.find([token.text for token in tokens])
        if command is None:
            raise unterminated(tokens, text) or UsageError(self._unknown(tokens), self.help_usage)
        return CommandText(command, text, tokens[used:])

    def unknown(self, path: tuple[str, ...]) -> UsageError:
        """The refusal of a command path no command has."""
        return UsageError(f"unknown command '{' '.join(path)}'. Try {self.help_command.ref}")

    def _unknown(self, tokens: list[Token]) -> str:
        words = [token.text.lower() for token in tokens[:3]]
        known = max(
            (n for n in range(1, len(words) + 1) if any(c.path[:n] == tuple(words[:n]) for c in self.commands)),
            default=0,
        )
        if known == 0:
            return f"unknown command '{words[0]}'"
        prefix = tuple(words[:known])
        children = ", ".join(sorted({c.path[known] for c in self.commands if c.path[:known] == prefix}))
        if known < len(words):
            return f"/{' '.join(prefix)} has no '{words[known]}'; use one of: {children}"
        return f"/{' '.join(prefix)} needs one of: {children}"

    def convert(self, command: Command, raw: dict[str, Any]) -> dict[str, Any]:
        """Typed options from a platform (e.g. Discord) to engine values, with the same checks as text."""
        try:
            return convert(command, raw)
        except UsageError as exc:
            raise UsageError(exc.message, command.usage) from None

    def help(self, topic: str = "") -> str:
        """Generated help: every command, or the details of those matching `topic`."""
        if topic:
            words = topic.strip().removeprefix("/").lower().split()
            matches = [c for c in self.commands if _topic_matches(c, words)]
            if not matches:
                raise UsageError(f"no command called '{topic}'", self.help_usage)
            return "\n\n".join(c.help() for c in matches)
        members = [c for c in self.commands if not c.organizer]
        organizers = [c for c in self.commands if c.organizer]
        lines = ["Commands:"] + [f"  {c.brief_usage:<46} {c.summary}" for c in members]
        lines += ["Organizer commands:"] + [f"  {c.brief_usage:<46} {c.summary}" for c in organizers]
        lines.append(f"Details: {self.help_command.ref} <command>, e.g. {self.help_command.ref} agenda shift")
        return "\n".join(lines)


def _topic_matches(command: Command, words: list[str]) -> bool:
    path = list(command.path)
    return path[: len(words)] == words or path[1 : len(words) + 1] == words
