"""iCalendar import: one VEVENT as meetup sites export it, matched by UID; broken files write nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ORGANIZER, snapshot
from sqlmodel import select

from bot.calendar import IcsError, import_ics, read_ics
from bot.cli import main
from bot.engine import Engine
from bot.invocation import CommandLine
from bot.models import AgendaItem, Event

ICS = Path(__file__).parent / "payloads" / "ics"
TZID = ICS / "meetup-tzid.ics"  # TZID with its VTIMEZONE, a VALARM, folded lines, escaped commas
UTC_VARIANT = ICS / "meetup-utc.ics"  # the same event (same UID) in UTC, no VTIMEZONE
STARTS = datetime(2026, 7, 16, 1, 30, tzinfo=UTC)  # 18:30 PDT on 15 July
ENDS = datetime(2026, 7, 16, 4, 0, tzinfo=UTC)


async def only_event(engine: Engine) -> Event:
    async with engine.db.session() as session:
        return (await session.exec(select(Event))).one()


def variant(tmp_path: Path, old: str, new: str, source: Path = TZID) -> Path:
    text = source.read_bytes().decode()
    assert old in text, old
    path = tmp_path / "variant.ics"
    path.write_text(text.replace(old, new), encoding="utf-8", newline="")
    return path


async def test_a_meetup_export_becomes_a_draft_event(engine: Engine) -> None:
    result = await import_ics(engine, TZID)
    assert (result.slug, result.action) == ("sf-python-project-night-july-2026", "created")
    event = await only_event(engine)
    assert event.uid == "event_305123456@meetup.com"
    assert event.title == "SF Python Project Night: July 2026"
    assert (event.starts_at, event.ends_at, event.timezone) == (STARTS, ENDS, "America/Los_Angeles")
    assert event.venue == "Salesforce Tower (415 Mission St, San Francisco, CA)"
    assert event.url == "https://www.meetup.com/sf-python/events/305123456/"
    assert event.description.startswith("SF Python\nWednesday, July 15 at 6:30 PM\n\nBring a project, or help")
    assert event.status == "draft" and event.capacity is None


async def test_reimporting_changes_nothing_in_either_time_form(engine: Engine) -> None:
    await import_ics(engine, TZID)
    before = await snapshot(engine.db)
    assert (await import_ics(engine, TZID)).action == "unchanged"
    assert (await import_ics(engine, UTC_VARIANT)).action == "unchanged"  # same UID, same instants
    assert await snapshot(engine.db) == before


async def test_a_utc_only_file_gets_the_utc_zone(engine: Engine, tmp_path: Path) -> None:
    path = variant(tmp_path, "UID:event_305123456@meetup.com", "UID:event_999@meetup.com", UTC_VARIANT)
    await import_ics(engine, path)
    event = await only_event(engine)
    assert (event.starts_at, event.ends_at, event.timezone) == (STARTS, ENDS, "UTC")


async def test_an_updated_file_edits_the_event_and_moves_its_agenda(engine: Engine, tmp_path: Path) -> None:
    result = await import_ics(engine, TZID)
    reply = await engine.handle(
        CommandLine(ORGANIZER, None, f'/emcee agenda add 19:30 "Lightning talks" --event {result.slug}')
    )
    assert reply.ok, reply.text
    sequence = (await only_event(engine)).sequence
    moved = variant(tmp_path, "20260715T183000", "20260715T190000")  # starts 30 minutes later, same end
    moved.write_bytes(moved.read_bytes().replace(b"Project Night: July", b"Project Night (moved): July"))

    result = await import_ics(engine, moved)
    assert (result.action, result.changed) == ("updated", ("ends", "starts", "title"))
    event = await only_event(engine)
    assert event.title == "SF Python Project Night (moved): July 2026"
    assert (event.starts_at, event.ends_at) == (datetime(2026, 7, 16, 2, 0, tzinfo=UTC), ENDS)
    assert event.sequence == sequence + 1
    async with engine.db.session() as session:
        item = (await session.exec(select(AgendaItem))).one()
    assert item.starts_at == datetime(2026, 7, 16, 3, 0, tzinfo=UTC)  # 19:30 moved with the event to 20:00
    assert (await import_ics(engine, moved)).action == "unchanged"


async def test_slugs_stay_unique(engine: Engine, tmp_path: Path) -> None:
    await import_ics(engine, TZID)
    other = variant(tmp_path, "UID:event_305123456@meetup.com", "UID:event_2@meetup.com")
    assert (await import_ics(engine, other)).slug == "sf-python-project-night-july-2026-2"


def test_floating_times_use_the_configured_zone(tmp_path: Path) -> None:
    path = variant(tmp_path, "DTSTART;TZID=America/Los_Angeles:", "DTSTART:")
    spec = read_ics(path, "Europe/Berlin")
    assert spec.timezone == "Europe/Berlin" and spec.starts_at.utcoffset() is not None


DTSTART = "DTSTART;TZID=America/Los_Angeles:20260715T183000"
DTEND = "DTEND;TZID=America/Los_Angeles:20260715T210000"
BROKEN = [
    ("no-colon", "LOCATION:Salesforce", "LOCATION Salesforce", r"line 39: not an iCalendar line"),
    ("unclosed", "END:VEVENT\r\n", "", r"line 48: END:VCALENDAR where END:VEVENT \(line 27\) belongs"),
    ("bad-date", DTSTART, "DTSTART:2026-07-15", r"line 29: DTSTART: "),
    ("no-dtstart", DTSTART + "\r\n", "", r"VEVENT: missing DTSTART"),
    ("no-uid", "UID:event_305123456@meetup.com\r\n", "", r"VEVENT: missing UID"),
    ("unknown-zone", DTSTART, DTSTART.replace("America/Los_Angeles", "Mars/Olympus"), r"line 29: DTSTART: unknown"),
    ("ends-first", DTEND, DTEND.replace("T21", "T17"), r"line 30: DTEND: the event must end after it starts"),
    ("all-day", DTSTART, "DTSTART;VALUE=DATE:20260715", r"line 29: DTSTART: a date without a time"),
    ("bad-alarm", "TRIGGER:-PT1H", "TRIGGER:soon", r"line 46: TRIGGER: "),
    ("long-title", "SUMMARY:SF", "SUMMARY:" + "x" * 200, r"line 32: SUMMARY: longer than 200"),
    ("not-a-calendar", "BEGIN:VCALENDAR", "BEGIN:VCARD", r"line 49: END:VCALENDAR where END:VCARD \(line 1\) belongs"),
    ("two-calendars", "END:VCALENDAR\r\n", "END:VCALENDAR\r\nBEGIN:VCALENDAR\r\n", r"line 50: a second calendar"),
]


@pytest.mark.parametrize(("old", "new", "message"), [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
async def test_broken_files_are_rejected_with_the_line_and_nothing_written(
    engine: Engine, tmp_path: Path, old: str, new: str, message: str
) -> None:
    before = await snapshot(engine.db)
    path = variant(tmp_path, old, new)
    with pytest.raises(IcsError, match=rf"^{path}: {message}"):
        await import_ics(engine, path)
    assert await snapshot(engine.db) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "not an iCalendar file"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\nEND:VCALENDAR\r\n", "no VEVENT"),
        (b"BEGIN:VCALENDAR\r\nSUMMARY:caf\xe9\r\n", "line 2: not UTF-8 text"),
    ],
    ids=["empty", "no-vevent", "latin-1"],
)
async def test_files_without_an_event_are_rejected(
    engine: Engine, tmp_path: Path, content: str | bytes, message: str
) -> None:
    path = tmp_path / "x.ics"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(IcsError, match=message):
        await import_ics(engine, path)
    assert await engine.event_slugs() == []


async def test_two_events_in_one_file_are_refused(engine: Engine, tmp_path: Path) -> None:
    text = TZID.read_bytes().decode()
    vevent = text[text.index("BEGIN:VEVENT") : text.index("END:VEVENT") + len("END:VEVENT\r\n")]
    path = variant(tmp_path, "END:VCALENDAR", vevent + "END:VCALENDAR")
    with pytest.raises(IcsError, match=r"2 VEVENTs \(lines 27, 49\)"):
        await import_ics(engine, path)


def test_cli_imports_reimports_and_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "emcee.toml"
    config.write_text(f'[bot]\ndatabase_url = "sqlite:///{tmp_path / "cli.db"}"\n')
    assert main(["import", "ics", str(TZID), "--config", str(config)]) == 0
    # The command line runs on the real clock: once the event is over, the answer says it is a past event.
    over = datetime.now(UTC) >= datetime(2026, 7, 16, 4, 0, tzinfo=UTC)  # 21:00 PDT on 15 July
    kind = "a past event" if over else "a draft"
    assert f"imported sf-python-project-night-july-2026 as {kind}" in capsys.readouterr().out
    assert main(["import", str(UTC_VARIANT), "--config", str(config)]) == 0  # the .ics suffix selects iCalendar
    assert "already up to date; nothing changed" in capsys.readouterr().out

    broken = tmp_path / "broken.txt"
    broken.write_text(TZID.read_text().replace("DTSTART;TZID=America/Los_Angeles:20260715T183000\n", ""))
    assert main(["import", "ics", str(broken), "--config", str(config)]) == 1
    assert f"error: {broken}: VEVENT: missing DTSTART" in capsys.readouterr().err
