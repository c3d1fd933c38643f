"""Event files: the sample meetup imports through the engine's own commands."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import snapshot
from sqlmodel import select

from bot import compose
from bot.engine import Engine
from bot.eventfile import EventFileError, import_event_file
from bot.models import Event

SAMPLE = Path(__file__).parent.parent / "examples" / "bookkeeper-2016-06.toml"


async def test_sample_event_imports_with_agenda_speakers_and_panel(engine: Engine) -> None:
    slug = await import_event_file(engine, SAMPLE)
    async with engine.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == slug))).one()
        agenda = await compose.agenda_card(session, event)
    assert event.status == "draft"
    assert event.starts_at == datetime(2016, 6, 16, 0, 30, tzinfo=UTC)  # 17:30 PDT
    assert "123 Mission" in event.venue and "San Francisco" in event.venue
    titles = [entry.title for entry in agenda.entries]
    assert len(titles) == 7
    assert titles[2] == "Bookie Storage: current implementation and new experiments"
    bookie = agenda.entries[2]
    assert [(s.name, s.affiliation) for s in bookie.speakers] == [("Matteo Merli", "Yahoo")]
    panel = agenda.entries[5]
    assert panel.kind == "panel"
    assert [(s.name, s.role) for s in panel.speakers] == [
        ("Sameer Tiwari", "moderator"),
        ("JV Jujjuri", "panelist"),
        ("Matteo Merli", "panelist"),
        ("Sijie Guo", "panelist"),
    ]


async def test_importing_twice_is_refused_and_writes_nothing(engine: Engine) -> None:
    await import_event_file(engine, SAMPLE)
    before = await snapshot(engine.db)
    with pytest.raises(EventFileError, match="already exists"):
        await import_event_file(engine, SAMPLE)
    assert await snapshot(engine.db) == before


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('starts = "19:00"', 'starts = "19:61"', "agenda.4.starts: '19:61' is not a valid time"),
        (
            'speakers = ["Diego Ongaro"]',
            'speakers = ["Diego Ongaro", "Nobody"]',
            "agenda.4: no speaker called 'Nobody'",
        ),
        ('kind = "panel"', 'kind = "debate"', "agenda.5: 'debate' is not a valid kind"),
    ],
)
async def test_a_broken_agenda_entry_leaves_no_event_behind(
    engine: Engine, tmp_path: Path, old: str, new: str, problem: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SAMPLE.read_text().replace(old, new))
    with pytest.raises(EventFileError, match=problem):
        await import_event_file(engine, bad)
    assert "bk-june-2016" not in await engine.event_slugs()


def test_cli_import_creates_the_event(tmp_path: Path) -> None:
    config = tmp_path / "emcee.toml"
    config.write_text(f'[bot]\ndatabase_url = "sqlite:///{tmp_path / "e.db"}"\n[http]\nenabled = false\n')
    run = [sys.executable, "-m", "bot.cli", "import", str(SAMPLE), "--config", str(config)]
    first = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "imported bk-june-2016" in first.stdout
    again = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
