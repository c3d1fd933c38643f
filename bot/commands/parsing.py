"""Command lines to arguments: the tokenizer, and the binder that fits tokens to a command's arguments."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.commands.args import SHAPED_KINDS, Arg, ArgKind, UsageError

if TYPE_CHECKING:
    from bot.commands.registry import Command


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # offset in the line, so a rest-of-line argument keeps the original text
    quoted: bool = False
    unterminated: bool = False  # a word that opens a double or curly quote that nothing closes


# A single quote opens a string only where a closing one ends a word ('B C', 'Bob's talk'); otherwise,
# as in 'Twas or a lone ', it is an apostrophe and part of the text.
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|“([^”]*)”|\'(.*?)\'(?=\s|$)|(\S+)')
_OPEN_QUOTES = ('"', "“")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{1,2}:\d{2}(:\d{2})?")


def tokenize(text: str) -> list[Token]:
    """Split on spaces, keeping "quoted strings" (straight or curly quotes) whole. An unterminated quote
    is marked, not refused, so that the command before it can still be read (see unterminated)."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(text):
        double, curly, single, bare = match.groups()
        value = next(group for group in (double, curly, single, bare) if group is not None)
        value = value.replace('\\"', '"') if double is not None else value
        unterminated = bare is not None and bare.startswith(_OPEN_QUOTES)
        tokens.append(Token(value, match.start(), quoted=bare is None, unterminated=unterminated))
    return _join_dates(tokens)


def unterminated(tokens: list[Token], text: str) -> UsageError | None:
    """The refusal of a line with a quote that nothing closes; None when every quote closes."""
    return UsageError(f"unterminated quote in: {text.strip()}") if any(t.unterminated for t in tokens) else None


def _join_dates(tokens: list[Token]) -> list[Token]:
    """Glue "2016-06-15" "18:00" into one token, since a time may carry its date."""
    joined: list[Token] = []
    for token in tokens:
        previous = joined[-1] if joined else None
        if previous and _DATE.fullmatch(previous.text) and _TIME.fullmatch(token.text):
            joined[-1] = Token(f"{previous.text} {token.text}", previous.start)
        else:
            joined.append(token)
    return joined


def bind(command: Command, tokens: list[Token], text: str, events: Collection[str]) -> dict[str, Any]:
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
        if arg.kind not in SHAPED_KINDS:
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
        if arg.kind in SHAPED_KINDS and arg.accepts(token):
            return arg
    for arg in free:
        if arg.kind in SHAPED_KINDS or not arg.accepts(token):
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


def convert(command: Command, raw: dict[str, Any]) -> dict[str, Any]:
    """Typed options (from a platform such as Discord, or a file) to engine values, with the same checks as text."""
    args: dict[str, Any] = {}
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
    return args
