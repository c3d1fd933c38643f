"""The registry's text parser and generated help."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands import Registry, UsageError, tokenize
from bot.commands.catalog import COMMANDS
from bot.timeparse import WallTime

registry = Registry.default()


@pytest.mark.parametrize(
    ("line", "path", "args"),
    [
        ("rsvp maybe +1", ("rsvp",), {"status": "maybe", "guests": 1}),
        ("rsvp bk-june no", ("rsvp",), {"event": "bk-june", "status": "no"}),
        ("/rsvp", ("rsvp",), {}),
        ("/rsvp +2 bk GOING", ("rsvp",), {"guests": 2, "event": "bk", "status": "going"}),
        ("emcee agenda shift +10m", ("emcee", "agenda", "shift"), {"by": timedelta(minutes=10)}),
        ("emcee agenda shift -5m", ("emcee", "agenda", "shift"), {"by": timedelta(minutes=-5)}),
        ("emcee agenda shift 1h30m --from 3", ("emcee", "agenda", "shift"), {"by": timedelta(hours=1.5), "from": "3"}),
        (
            'emcee agenda add 18:00 "Bookie Storage" --speaker "Matteo Merli"',
            ("emcee", "agenda", "add"),
            {"starts": WallTime(time(18, 0)), "title": "Bookie Storage", "speaker": ["Matteo Merli"]},
        ),
        (
            "emcee agenda add 2016-06-15 19:30 “Panel” --kind panel --panelist A --panelist 'B C'",
            ("emcee", "agenda", "add"),
            {
                "starts": WallTime(time(19, 30), date(2016, 6, 15)),
                "title": "Panel",
                "kind": "panel",
                "panelist": ["A", "B C"],
            },
        ),
        ("emcee remind on bk", ("emcee", "remind"), {"state": "on", "event": "bk"}),
        ("emcee attendees --event=bk", None, None),
        ("emcee help agenda shift", ("emcee", "help"), {"command": "agenda shift"}),
        (
            'emcee speaker add "Franck Cuny" --affiliation Twitter',
            ("emcee", "speaker", "add"),
            {"name": "Franck Cuny", "affiliation": "Twitter"},
        ),
    ],
)
def test_parses(line: str, path: tuple[str, ...] | None, args: dict[str, Any] | None) -> None:
    if path is None:
        with pytest.raises(UsageError, match="unknown option '--event'"):
            registry.read(line).bind()
        return
    text = registry.read(line)
    assert text.command.path == path
    assert text.bind() == args


def test_announce_takes_an_event_only_when_one_is_named() -> None:
    events = ["bk-june", "bk-july"]
    assert registry.read('emcee announce bk-june Doors open at "5:30"').bind(events) == {
        "event": "bk-june",
        "text": 'Doors open at "5:30"',
    }
    assert registry.read("emcee announce doors open soon").bind(events) == {"text": "doors open soon"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(minutes=90)),
        ("-5m", timedelta(minutes=-5)),
        ("1d", timedelta(days=1)),
        ("+2h", timedelta(hours=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert registry.read(f"emcee agenda shift {text}").bind()["by"] == expected


@pytest.mark.parametrize("text", ["5x", "m10", "10", "1h-5m", "+"])
def test_bad_durations_name_the_token(text: str) -> None:
    with pytest.raises(UsageError) as info:
        registry.read(f"emcee agenda shift {text}").bind()
    assert text in info.value.message
    assert info.value.usage == registry.command(("emcee", "agenda", "shift")).usage


def test_tokenizer_keeps_quoted_strings_and_offsets() -> None:
    tokens = tokenize("add 18:00 \"Bookie Storage\" 'x y'")
    assert [t.text for t in tokens] == ["add", "18:00", "Bookie Storage", "x y"]
    assert tokens[2].start == 10


def test_help_lists_every_command_and_details_one() -> None:
    overview = registry.help()
    for command in COMMANDS:
        assert f"/{command.name}" in overview
    details = registry.help("agenda shift")
    assert "/emcee agenda shift <by>" in details and "--from" in details and "organizers only" in details
    with pytest.raises(UsageError, match="no command called 'teleport'"):
        registry.help("teleport")


def test_usage_is_generated_from_arguments() -> None:
    assert registry.command(("rsvp",)).usage == "/rsvp [event] [going|maybe|no] [+N]"
    assert registry.command(("emcee", "remind")).usage == "/emcee remind <on|off> [event]"


def test_typed_options_convert_with_the_same_checks() -> None:
    command = registry.command(("rsvp",))
    assert registry.convert(command, {"event": "BK", "status": "maybe", "guests": 2}) == {
        "event": "bk",
        "status": "maybe",
        "guests": 2,
    }
    with pytest.raises(UsageError, match="not a valid status"):
        registry.convert(command, {"status": "perhaps"})


@given(st.text(max_size=80))
def test_arbitrary_text_raises_only_usage_errors(text: str) -> None:
    for line in (text, f"rsvp {text}", f"emcee {text}", f"emcee agenda add {text}", f"emcee event create {text}"):
        try:
            registry.read(line).bind(["bk-june"])
        except UsageError as exc:
            assert exc.message
