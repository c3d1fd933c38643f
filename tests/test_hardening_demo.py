"""`emcee demo` tried as a new user would: the interactive console, the replay's evening, and true docs."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path

import pytest

from bot.clock import FastClock, SystemClock
from bot.commands import ArgKind
from bot.commands.catalog import COMMANDS
from bot.config import Settings, load_settings
from bot.demo import run_demo
from bot.timeparse import parse_duration, parse_wall_time

ROOT = Path(__file__).parent.parent


async def interactive(tmp_path: Path, lines: str) -> str:
    """The interactive demo's transcript for `lines` typed in (edits unthrottled, files into tmp_path)."""
    out = io.StringIO()
    await run_demo(out, interactive=io.StringIO(lines), speed=50, files=tmp_path)
    return out.getvalue()


def test_interactive_demo_prints_each_reply_and_its_effects_before_the_next_prompt(tmp_path: Path) -> None:
    """Hardening item 26: the real CLI, fed on stdin, finishes each command's output before the next prompt."""
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "demo", "--interactive"],
        input="/rsvp going +1\n/agenda\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    text = result.stdout
    assert result.returncode == 0 and "Traceback" not in text + result.stderr
    rsvp, agenda = text.index("organizer> /rsvp going +1"), text.index("organizer> /agenda")
    assert rsvp < text.index("You're going to BookKeeper June 2016 meetup") < agenda
    assert rsvp < text.index("· message 1 updated] 2/6 going") < agenda  # the card's new count, before the prompt
    assert text.find("🗓 Agenda", agenda) > agenda and text.rstrip().endswith("organizer>")  # the last prompt waits


async def test_quit_and_exit_end_the_interactive_demo(tmp_path: Path) -> None:
    """Hardening item 26: /quit and /exit stop reading; nothing typed after them runs."""
    for word in ("/quit", "/exit"):
        text = await interactive(tmp_path, f"{word}\n/rsvp going\n")
        assert "You're going" not in text and "unknown command" not in text.lower()


async def test_as_switches_the_acting_member_so_the_waitlist_can_be_tried(tmp_path: Path) -> None:
    """Hardening item 26: /as NAME acts as that member: fill the 6 seats, queue, cancel, see the promotion."""
    text = await interactive(
        tmp_path,
        "/as ada\n/rsvp going +2\n/as bo\n/rsvp going +2\n/as chen\n/rsvp going +1\n"
        "/as dara\n/rsvp going\n/as bo\n/rsvp no\n/as nobody?\n/as organizer\n/emcee attendees\n",
    )
    assert "ada> /rsvp going +2" in text and "dara> /rsvp going" in text
    assert "You're on the waitlist" in text
    cancelled = text.index("bo> /rsvp no")  # bo's three seats seat chen's party of two, and dara
    # Each DM goes to its own member, at its own pace: both follow the cancel, in either order.
    assert cancelled < text.index("[DM → chen] 🎉 A seat opened up")
    assert cancelled < text.index("[DM → dara] 🎉 A seat opened up")
    assert "Usage: /as NAME" in text  # a bad name is refused with the usage, and the member stays bo
    assert "bo> /as organizer" in text
    assert "ada" in text[text.index("organizer> /emcee attendees") :]


async def test_attendee_csv_is_written_to_a_file_and_its_path_printed(tmp_path: Path) -> None:
    """Hardening item 26: the CSV that /emcee attendees exports lands in a file whose path the console prints."""
    text = await interactive(tmp_path, "/rsvp going +1\n/emcee attendees\n")
    path = tmp_path / "bk-june-2016-attendees.csv"
    assert f"📎 {path}" in text
    assert "organizer" in path.read_text() and path.read_text().splitlines()[0].lower().startswith("name")


async def test_help_inside_the_repl_mentions_as_and_quit(tmp_path: Path) -> None:
    """Hardening item 26: the REPL's own help, printed before the first prompt, names /as NAME and /quit."""
    text = await interactive(tmp_path, "")
    intro = text[: text.rindex("organizer>")]
    assert "/as NAME" in intro and "/quit" in intro and "/emcee help" in intro


class Stamped(io.StringIO):
    """A stream that remembers when each piece of output arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def write(self, text: str) -> int:
        self.times.append(time.monotonic())
        return super().write(text)


async def test_the_replayed_evening_shows_real_times_on_a_fast_clock_and_never_goes_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hardening item 27: the replay runs the sample's own date and times on a fast clock, says what the clock
    is doing in quiet stretches, and speaks in minutes and hours, never seconds."""
    speed = 10  # the CLI's speed 1 takes about 80 s
    out = Stamped()
    started = time.monotonic()
    await run_demo(out, speed=speed, files=tmp_path)
    text = out.getvalue()
    assert "Wed 15 Jun 2016 17:30–20:30 PDT (America/Los_Angeles)" in text  # the card, on the sample's own date
    assert "starts in 1 hour at" in text and "/emcee agenda shift +10m" in text
    assert "running 10 minutes late: " in text  # the agenda update says it in words
    assert "Bookie Storage" in text[text.index("[#announcements] 🎤 Now on stage") :]
    assert "18:00–18:30" in text and "19:40–20:10" in text  # the panel, 10 minutes later after the shift
    assert "⏩" in text  # the clock's fast-forward is narrated
    assert not re.search(r"\d+ ?s\b", text), re.search(r".*\d+ ?s\b.*", text)  # no "in 15s", "+3s", "25 s"
    assert not re.search(r"\b\d\d:\d\d:\d\d\b", text)  # times on the minute, never HH:MM:SS
    gaps = [later - earlier for earlier, later in zip([started, *out.times], out.times, strict=False)]
    assert max(gaps) * speed <= 5.0  # no quiet stretch over 5 s of demo time
    assert "Traceback" not in text
    assert not [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]  # none late


def test_config_example_shows_the_defaults_it_claims() -> None:
    """Hardening item 28: config.example.toml says its values are the defaults; loading it gives Settings()."""
    example = ROOT / "config.example.toml"
    assert "the values below are the defaults (examples are in comments)" in example.read_text()
    assert load_settings(example) == Settings()


def test_help_of_durations_and_times_shows_seconds() -> None:
    """Hardening item 28: seconds work in durations ("40s") and times (HH:MM:SS); the help text says so."""
    timed = [arg for command in COMMANDS for arg in command.args if arg.kind in (ArgKind.DURATION, ArgKind.TIME)]
    reminders = [arg for command in COMMANDS for arg in command.args if arg.name == "reminders"]
    assert timed and reminders
    for arg in timed:
        shown = re.search(r"\d+s\b", arg.help) if arg.kind is ArgKind.DURATION else "HH:MM:SS" in arg.help
        assert shown, (arg.name, arg.help)
    for arg in reminders:
        assert re.search(r"\d+s\b", arg.help), arg.help
    assert parse_duration("40s") == timedelta(seconds=40) and parse_wall_time("18:00:30").clock == dt_time(18, 0, 30)


def test_readme_documents_reminders_option_and_second_level_input() -> None:
    """Hardening item 28: README names --reminders on event create/edit and under [reminders], and shows that
    durations take seconds (40s) and times HH:MM:SS."""
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("| `")}
    for row in ("`/emcee event create <slug> <title> [--options]`", "`/emcee event edit [event] [--options]`"):
        assert "--reminders" in rows[row], row
    assert "--reminders" in rows["`[reminders]`"]
    assert "`40s`" in readme and "HH:MM:SS" in readme


def test_timers_follow_the_clock_fast_or_real() -> None:
    """Hardening item 27: a timer for a moment of the clock fires when the clock reads it: an hour ahead on a
    3600× clock is a second of system time; the system clock maps a moment to itself; a change of speed
    does not make the clock jump."""
    clock = FastClock(datetime(2016, 6, 15, 23, 20, tzinfo=UTC))
    clock.set_speed(3600)
    due = clock.system_time(clock.now() + timedelta(hours=1)) - datetime.now(UTC)
    assert timedelta(seconds=0.9) < due <= timedelta(seconds=1)
    before = clock.now()
    clock.set_speed(1)
    assert timedelta(0) <= clock.now() - before < timedelta(minutes=1)
    moment = datetime(2016, 6, 16, 1, 0, tzinfo=UTC)
    assert SystemClock().system_time(moment) == moment
