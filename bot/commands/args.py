"""Typed command arguments: their kinds, caps and conversion from text.

Conversion raises only UsageError, whose message says what was wrong; the registry adds the usage line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.timeparse import TimeParseError, parse_duration, parse_wall_time


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
SHAPED_KINDS = {ArgKind.CHOICE, ArgKind.GUESTS, ArgKind.DURATION, ArgKind.TIME, ArgKind.INT}
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
        if self.kind is ArgKind.CHOICE and token.lower() not in self.choices:
            return False  # what convert would refuse, without building its message (the binder asks often)
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


def event_arg(help_text: str = "event slug or unique prefix; default: the next event") -> Arg:
    return Arg("event", ArgKind.EVENT, help_text)


def event_option() -> Arg:
    return Arg("event", ArgKind.EVENT, "event slug or prefix; default: the next event", option=True)
