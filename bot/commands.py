"""The command registry: every command is declared here once.

The Slack text parser, the Discord command tree, the console REPL, `help` and the Slack manifest
are all derived from COMMANDS. Parsing raises only UsageError, whose message says what was wrong
and carries the command's usage line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.timeparse import DATE_RANGE, DURATION_RANGE, REMINDER_RANGE, TimeParseError, parse_duration, parse_wall_time


class UsageError(Exception):
    """Input that cannot be accepted. `usage` is the usage line of the command it concerns."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class ArgKind(StrEnum):
    EVENT = "event"  # a slug, a unique prefix of one, or omitted for the next event
    CHOICE = "choice"
    GUESTS = "guests"  # +N
    DURATION = "duration"  # 10m, 1h30m, -5m
    TIME = "time"  # HH:MM or YYYY-MM-DD HH:MM in the event's zone
    INT = "int"
    SLUG = "slug"
    TEXT = "text"


# Kinds recognised by shape; a token that fits one of these goes there before a free-form slot.
_SPECIFIC = {ArgKind.CHOICE, ArgKind.GUESTS, ArgKind.DURATION, ArgKind.TIME, ArgKind.INT}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_GUESTS = re.compile(r"^\+(\d{1,3})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab and line breaks, and DEL


def _as_int(text: str) -> int:
    if not re.fullmatch(r"\d{1,9}", text):
        raise UsageError(f"'{text}' is not a whole number")
    return int(text)


def _as_guests(text: str) -> int:
    match = _GUESTS.match(text) or re.fullmatch(r"(\d{1,3})", text)
    if not match:
        raise UsageError(f"'{text}' is not a guest count; write +1, +2, …")
    return int(match.group(1))


def _as_slug(text: str) -> str:
    if not _SLUG.match(text):
        raise UsageError(f"'{text}' is not a valid slug; use lower-case letters, digits and dashes (e.g. bk-june)")
    return text


@contextmanager
def time_errors(prefix: str = "") -> Iterator[None]:
    """Report a TimeParseError (a bad duration, date, wall time or zone) as the UsageError a refusal needs."""
    try:
        yield
    except TimeParseError as exc:
        raise UsageError(f"{prefix}{exc}") from None


def _time_error(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(text: str) -> Any:
        with time_errors():
            return convert(text)

    return wrapped


_CONVERTERS: dict[ArgKind, Callable[[str], Any]] = {
    ArgKind.EVENT: lambda text: text.lower(),
    ArgKind.GUESTS: _as_guests,
    ArgKind.DURATION: _time_error(parse_duration),
    ArgKind.TIME: _time_error(parse_wall_time),
    ArgKind.INT: _as_int,
    ArgKind.SLUG: _as_slug,
    ArgKind.TEXT: lambda text: text,
}


# Caps on free text, from the platforms' limits: a Slack header block takes 150 characters and a section
# 3,000; a Discord embed title 256, its description 4,096, a field 1,024, and a message 2,000.
TITLE_LIMIT = 150
NAME_LIMIT = 100
LINE_LIMIT = 200  # a venue, an affiliation, a reference to an item or a speaker
URL_LIMIT = 512  # a Discord link button
FIELD_LIMIT = 1000  # a bio, an abstract, links
DESCRIPTION_LIMIT = 3000
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class Arg:
    name: str
    kind: ArgKind
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()
    option: bool = False  # given as --name VALUE rather than by position
    repeat: bool = False  # an option that may be given several times
    rest: bool = False  # swallows the rest of the line, quotes and all
    max_length: int | None = None  # for text: the most characters accepted

    @property
    def details(self) -> str:
        """The help text with the cap, for help and the Discord tree."""
        if self.max_length is None:
            return self.help
        return f"{self.help} (at most {self.max_length} characters)"

    def convert(self, text: str) -> Any:
        if self.max_length is not None and len(text) > self.max_length:
            raise UsageError(f"{self.name} is {len(text)} characters; at most {self.max_length}")
        if control := _CONTROL.search(text):
            raise UsageError(f"{self.name} holds a control character (U+{ord(control.group()):04X}); remove it")
        if self.kind is ArgKind.CHOICE:
            value = text.lower()
            if value not in self.choices:
                raise UsageError(f"'{text}' is not a valid {self.name}; choose one of {', '.join(self.choices)}")
            return value
        return _CONVERTERS[self.kind](text)

    def accepts(self, token: str) -> bool:
        if self.kind is ArgKind.EVENT:
            return bool(_SLUG.match(token.lower()))
        try:
            self.convert(token)
        except UsageError:
            return False
        return True

    @property
    def placeholder(self) -> str:
        label = "|".join(self.choices) if self.choices else ("+N" if self.kind is ArgKind.GUESTS else self.name)
        if self.option:
            text = f"--{self.name} <{self.name}>"
            return text if self.required else f"[{text}]"
        return f"<{label}>" if self.required else f"[{label}]"


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    summary: str
    args: tuple[Arg, ...] = ()
    organizer: bool = False

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def usage(self) -> str:
        return " ".join([f"/{self.name}", *(arg.placeholder for arg in self.args)])

    @property
    def positionals(self) -> tuple[Arg, ...]:
        return tuple(arg for arg in self.args if not arg.option)

    @property
    def brief_usage(self) -> str:
        """The usage line with positionals only, for the overview."""
        options = " [--options]" if any(arg.option for arg in self.args) else ""
        return " ".join([f"/{self.name}", *(arg.placeholder for arg in self.positionals)]) + options

    def option(self, name: str) -> Arg | None:
        return next((arg for arg in self.args if arg.option and arg.name == name), None)

    def help(self) -> str:
        lines = [f"{self.usage}", f"  {self.summary}" + ("  (organizers only)" if self.organizer else "")]
        lines += [f"  {arg.placeholder:<28} {arg.details}" for arg in self.args]
        return "\n".join(lines)


def _event(help_text: str = "event slug or unique prefix; default: the next event") -> Arg:
    return Arg("event", ArgKind.EVENT, help_text)


def _event_option() -> Arg:
    return Arg("event", ArgKind.EVENT, "event slug or prefix; default: the next event", option=True)


def _event_fields(creating: bool) -> tuple[Arg, ...]:
    """The --options of event create and edit; create takes the title by position instead."""
    title = () if creating else (Arg("title", ArgKind.TEXT, "the event's title", option=True, max_length=TITLE_LIMIT),)
    return (
        Arg(
            "starts",
            ArgKind.TIME,
            f"start: YYYY-MM-DD HH:MM (or HH:MM on the event's date; HH:MM:SS too); {DATE_RANGE}",
            creating,
            option=True,
        ),
        Arg(
            "ends",
            ArgKind.TIME,
            "end: HH:MM, HH:MM:SS or YYYY-MM-DD HH:MM; default: 3 hours after the start",
            option=True,
        ),
        *title,
        Arg("venue", ArgKind.TEXT, "where it happens", option=True, max_length=LINE_LIMIT),
        Arg("capacity", ArgKind.INT, "seats, guests included; 0 means unlimited", option=True),
        Arg(
            "timezone",
            ArgKind.TEXT,
            "IANA zone, e.g. America/Los_Angeles; default: the bot's",
            option=True,
            max_length=NAME_LIMIT,
        ),
        Arg("url", ArgKind.TEXT, "a link to the event page", option=True, max_length=URL_LIMIT),
        Arg("description", ArgKind.TEXT, "a few lines about the event", option=True, max_length=DESCRIPTION_LIMIT),
        Arg(
            "reminders",
            ArgKind.TEXT,
            f'reminders before it, e.g. "1d,2h" or "30m,40s", {REMINDER_RANGE}; "default" for the configured ones',
            option=True,
            max_length=NAME_LIMIT,
        ),
    )


_SPEAKER_FIELDS = (
    Arg("affiliation", ArgKind.TEXT, "company or project", option=True, max_length=LINE_LIMIT),
    Arg("bio", ArgKind.TEXT, "a short biography", option=True, max_length=FIELD_LIMIT),
    Arg("links", ArgKind.TEXT, "links, separated by spaces", option=True, max_length=FIELD_LIMIT),
    Arg("slack", ArgKind.TEXT, "Slack user id (U…), so the intro can mention them", option=True, max_length=NAME_LIMIT),
    Arg("discord", ArgKind.TEXT, "Discord user id, so the intro can mention them", option=True, max_length=NAME_LIMIT),
)

_ITEM = Arg(
    "item", ArgKind.TEXT, "agenda item: its number or the start of its title", required=True, max_length=LINE_LIMIT
)
_KINDS = ("welcome", "talk", "panel", "break", "networking", "other")

COMMANDS: tuple[Command, ...] = (
    Command(
        ("rsvp",),
        "RSVP to an event, with up to a few guests",
        (
            _event(),
            Arg("status", ArgKind.CHOICE, "going, maybe or no; default: going", choices=("going", "maybe", "no")),
            Arg("guests", ArgKind.GUESTS, "guests you bring, e.g. +1"),
        ),
    ),
    Command(("events",), "List upcoming events with seats left"),
    Command(("agenda",), "Show an event's agenda and speakers", (_event(),)),
    Command(
        ("emcee", "remind"),
        "Turn DM reminders for an event on or off",
        (Arg("state", ArgKind.CHOICE, "on or off", required=True, choices=("on", "off")), _event()),
    ),
    Command(
        ("emcee", "help"),
        "Show the commands, or the details of one",
        (Arg("command", ArgKind.TEXT, "a command name, e.g. rsvp or agenda shift", rest=True, max_length=NAME_LIMIT),),
    ),
    Command(
        ("emcee", "event", "create"),
        "Create a draft event",
        (
            Arg("slug", ArgKind.SLUG, "short name used in commands, e.g. bk-june", required=True),
            Arg("title", ArgKind.TEXT, "the event's title, in quotes", required=True, max_length=TITLE_LIMIT),
            *_event_fields(creating=True),
        ),
        organizer=True,
    ),
    Command(
        ("emcee", "event", "edit"),
        "Change an event's details",
        (_event(), *_event_fields(creating=False)),
        organizer=True,
    ),
    Command(("emcee", "event", "publish"), "Publish an event and post its card", (_event(),), organizer=True),
    Command(("emcee", "event", "cancel"), "Cancel an event and tell everyone", (_event(),), organizer=True),
    Command(
        ("emcee", "agenda", "add"),
        "Add an agenda item",
        (
            Arg(
                "starts",
                ArgKind.TIME,
                "start: HH:MM (or HH:MM:SS) on the event's date, or YYYY-MM-DD HH:MM",
                required=True,
            ),
            Arg("title", ArgKind.TEXT, "the item's title, in quotes", required=True, max_length=TITLE_LIMIT),
            Arg("ends", ArgKind.TIME, "end: HH:MM or HH:MM:SS; default: 30 minutes after the start", option=True),
            Arg("kind", ArgKind.CHOICE, "what kind of item; default: talk", choices=_KINDS, option=True),
            Arg(
                "speaker",
                ArgKind.TEXT,
                "a speaker's name (repeatable)",
                option=True,
                repeat=True,
                max_length=NAME_LIMIT,
            ),
            Arg("moderator", ArgKind.TEXT, "the panel's moderator", option=True, max_length=NAME_LIMIT),
            Arg(
                "panelist",
                ArgKind.TEXT,
                "a panelist's name (repeatable)",
                option=True,
                repeat=True,
                max_length=NAME_LIMIT,
            ),
            Arg("abstract", ArgKind.TEXT, "what the item is about", option=True, max_length=FIELD_LIMIT),
            _event_option(),
        ),
        organizer=True,
    ),
    Command(
        ("emcee", "agenda", "move"),
        "Move one agenda item to a new start time",
        (_ITEM, Arg("to", ArgKind.TIME, "new start: HH:MM or HH:MM:SS", required=True), _event_option()),
        organizer=True,
    ),
    Command(
        ("emcee", "agenda", "shift"),
        "Shift the current item and every later one, e.g. +10m when running late",
        (
            Arg("by", ArgKind.DURATION, f"how far: +10m, 1h, -5m, 40s; {DURATION_RANGE}", required=True),
            Arg(
                "from",
                ArgKind.TEXT,
                "first item to move; default: the current or next item",
                option=True,
                max_length=LINE_LIMIT,
            ),
            _event_option(),
        ),
        organizer=True,
    ),
    Command(("emcee", "agenda", "remove"), "Remove an agenda item", (_ITEM, _event_option()), organizer=True),
    Command(
        ("emcee", "speaker", "add"),
        "Add a speaker",
        (Arg("name", ArgKind.TEXT, "full name, in quotes", required=True, max_length=NAME_LIMIT), *_SPEAKER_FIELDS),
        organizer=True,
    ),
    Command(
        ("emcee", "speaker", "edit"),
        "Change a speaker's details",
        (
            Arg("name", ArgKind.TEXT, "the speaker's name, in quotes", required=True, max_length=NAME_LIMIT),
            *_SPEAKER_FIELDS,
        ),
        organizer=True,
    ),
    Command(
        ("emcee", "announce"),
        "Post an event's card to the announce channels, with an optional message",
        (_event(), Arg("text", ArgKind.TEXT, "what to say above the card", rest=True, max_length=MESSAGE_LIMIT)),
        organizer=True,
    ),
    Command(
        ("emcee", "attendees"),
        "Show who is coming, with a CSV export",
        (_event(),),
        organizer=True,
    ),
)


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # offset in the line, so a rest-of-line argument keeps the original text
    quoted: bool = False


# A single quote opens a string only where a closing one ends a word ('B C', 'Bob's talk'); otherwise,
# as in 'Twas or a lone ', it is an apostrophe and part of the text.
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|“([^”]*)”|\'(.*?)\'(?=\s|$)|(\S+)')
_OPEN_QUOTES = ('"', "“")


def tokenize(text: str) -> list[Token]:
    """Split on spaces, keeping "quoted strings" (straight or curly quotes) whole."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        double, curly, single, bare = match.groups()
        if bare is not None and bare.startswith(_OPEN_QUOTES):
            raise UsageError(f"unterminated quote in: {text.strip()}")
        value = next(group for group in (double, curly, single, bare) if group is not None)
        value = value.replace('\\"', '"') if double is not None else value
        tokens.append(Token(value, match.start(), quoted=bare is None))
    return _join_dates(tokens)


def _join_dates(tokens: list[Token]) -> list[Token]:
    """Glue "2016-06-15" "18:00" into one token, since a time may carry its date."""
    joined: list[Token] = []
    for token in tokens:
        previous = joined[-1] if joined else None
        if (
            previous
            and re.fullmatch(r"\d{4}-\d{2}-\d{2}", previous.text)
            and re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", token.text)
        ):
            joined[-1] = Token(f"{previous.text} {token.text}", previous.start)
        else:
            joined.append(token)
    return joined


@dataclass(frozen=True)
class Parsed:
    command: Command
    args: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Looks commands up by path and parses command lines against them."""

    def __init__(self, commands: tuple[Command, ...] = COMMANDS) -> None:
        self.commands = commands
        self._by_path = {command.path: command for command in commands}
        self.roots = tuple(dict.fromkeys(command.path[0] for command in commands))

    @property
    def help_usage(self) -> str:
        return self._by_path[("emcee", "help")].usage

    def get(self, path: tuple[str, ...]) -> Command | None:
        return self._by_path.get(path)

    def find(self, words: list[str]) -> tuple[Command | None, int]:
        """The longest command path that prefixes `words`, and how many words it used."""
        for length in range(min(len(words), 3), 0, -1):
            command = self._by_path.get(tuple(word.lower() for word in words[:length]))
            if command:
                return command, length
        return None, 0

    def command_of(self, line: str) -> Command | None:
        """The command a line names, read from its first words only: its arguments are not parsed."""
        command, _ = self.find(line.strip().removeprefix("/").split()[:3])
        return command

    def needs_event_names(self, line: str) -> bool:
        """Whether parsing `line` depends on which events exist (an optional event before free text)."""
        command = self.command_of(line)
        if command is None:
            return False
        kinds = {arg.kind for arg in command.positionals}
        return ArgKind.EVENT in kinds and any(arg.rest for arg in command.positionals)

    def parse(self, line: str, events: Collection[str] = ()) -> Parsed:
        """Parse 'rsvp maybe +1' or '/emcee agenda shift +10m'. `events` are known slugs."""
        text = line.strip().removeprefix("/")
        tokens = tokenize(text)
        if not tokens:
            raise UsageError("no command given", self.help_usage)
        command, used = self.find([token.text for token in tokens])
        if command is None:
            raise UsageError(self._unknown(tokens), self.help_usage)
        try:
            return Parsed(command, _bind(command, tokens[used:], text, events))
        except UsageError as exc:
            raise UsageError(exc.message, command.usage) from None

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
        args: dict[str, Any] = {}
        try:
            for arg in command.args:
                value = raw.get(arg.name)
                if value is None or value == "":
                    continue
                if arg.repeat:
                    values = value if isinstance(value, list) else [part.strip() for part in str(value).split(",")]
                    args[arg.name] = [arg.convert(str(item)) for item in values if item]
                else:
                    args[arg.name] = arg.convert(str(value))
            _check_required(command, args)
        except UsageError as exc:
            raise UsageError(exc.message, command.usage) from None
        return args

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
        lines.append("Details: /emcee help <command>, e.g. /emcee help agenda shift")
        return "\n".join(lines)


def _topic_matches(command: Command, words: list[str]) -> bool:
    path = list(command.path)
    return path[: len(words)] == words or path[1 : len(words) + 1] == words


def _bind(command: Command, tokens: list[Token], text: str, events: Collection[str]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    taken_loosely: list[str] = []  # tokens that only a free-form slot accepted
    positionals = list(command.positionals)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.text.startswith("--") and len(token.text) > 2:
            index = _bind_option(command, tokens, index, args)
            continue
        rest_arg = next((a for a in positionals if a.rest and a.name not in args), None)
        arg = _pick_positional(positionals, args, token.text, events, has_rest=rest_arg is not None)
        if arg is None and rest_arg is not None:
            args[rest_arg.name] = rest_arg.convert(_rest(tokens[index:], text))
            break
        if arg is None:
            _explain_misfit(command, args, [*taken_loosely, token.text])
            raise UsageError(f"unexpected '{token.text}'")
        if arg.kind not in _SPECIFIC:
            taken_loosely.append(token.text)
        args[arg.name] = arg.convert(token.text)
        index += 1
    _explain_misfit(command, args, taken_loosely)
    _check_required(command, args)
    return args


def _rest(tokens: list[Token], text: str) -> str:
    """The rest of the line as typed, or the string inside the quotes when it is one quoted string."""
    if len(tokens) == 1 and tokens[0].quoted:
        return tokens[0].text
    return text[tokens[0].start :].strip()


def _explain_misfit(command: Command, args: dict[str, Any], tokens: list[str]) -> None:
    """When a required argument is missing, the likeliest cause is a token meant for it that it
    rejected: raise that argument's own error ("'5x' is not a duration") instead of a vaguer one."""
    for arg in command.positionals:
        if arg.required and arg.name not in args:
            for token in tokens:
                arg.convert(token)


def _pick_positional(
    positionals: list[Arg], args: dict[str, Any], token: str, events: Collection[str], has_rest: bool
) -> Arg | None:
    free = [arg for arg in positionals if arg.name not in args and not arg.rest]
    for arg in free:
        if arg.kind in _SPECIFIC and arg.accepts(token):
            return arg
    for arg in free:
        if arg.kind in _SPECIFIC or not arg.accepts(token):
            continue
        if arg.kind is ArgKind.EVENT and has_rest and not _names_event(token, events):
            continue  # free text follows: only a known event name is taken as the event
        return arg
    return None


def _names_event(token: str, events: Collection[str]) -> bool:
    token = token.lower()
    return any(slug == token or slug.startswith(token) for slug in events)


def _bind_option(command: Command, tokens: list[Token], index: int, args: dict[str, Any]) -> int:
    name, _, inline = tokens[index].text[2:].partition("=")
    arg = command.option(name.lower())
    if arg is None:
        known = ", ".join(f"--{a.name}" for a in command.args if a.option) or "none"
        raise UsageError(f"unknown option '--{name}'; options: {known}")
    if inline:
        value, used = inline, 1
    elif index + 1 < len(tokens):
        value, used = tokens[index + 1].text, 2
    else:
        raise UsageError(f"--{arg.name} needs a value: {arg.help}")
    converted = arg.convert(value)
    if arg.repeat:
        args.setdefault(arg.name, []).append(converted)
    elif arg.name in args:
        raise UsageError(f"--{arg.name} is given twice")
    else:
        args[arg.name] = converted
    return index + used


def _check_required(command: Command, args: dict[str, Any]) -> None:
    missing = [arg for arg in command.args if arg.required and arg.name not in args]
    if missing:
        raise UsageError(f"missing {missing[0].name}: {missing[0].help}")
