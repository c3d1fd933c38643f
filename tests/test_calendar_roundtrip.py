"""iCalendar round trip: our own export of an event with its agenda imports back as the same event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import snapshot
from sqlmodel import select

from bot import compose
from bot.calendar import IcsError, event_feed, import_ics
from bot.clock import FakeClock
from bot.config import Settings
from bot.db import Database
from bot.engine import Engine
from bot.eventfile import import_event_file
from bot.messages import AgendaEntry
from bot.models import Event

SAMPLE = Path(__file__).parent.parent / "examples" / "bookkeeper-2016-06.toml"
FIELDS = ("uid", "title", "description", "venue", "url", "starts_at", "ends_at", "timezone")


@pytest.fixture
async def fresh(tmp_path: Path, settings: Settings, clock: FakeClock) -> AsyncIterator[Engine]:
    """A second, empty database: where the exported file is imported."""
    database = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    await database.upgrade()
    yield Engine(database, settings, clock)
    await database.close()


async def event_and_agenda(engine: Engine, slug: str | None = None) -> tuple[Event, list[AgendaEntry]]:
    async with engine.db.session() as session:
        query = select(Event) if slug is None else select(Event).where(Event.slug == slug)
        event = (await session.exec(query)).one()
        return event, [entry for _, entry in await compose.agenda_rows(session, event)]


async def export_sample(engine: Engine, tmp_path: Path) -> Path:
    slug = await import_event_file(engine, SAMPLE)
    event, _ = await event_and_agenda(engine, slug)
    async with engine.db.session() as session:
        feed = await event_feed(session, event)
    path = tmp_path / feed.filename
    path.write_bytes(feed.body)
    return path


async def test_an_exported_event_with_its_agenda_imports_back_the_same(
    engine: Engine, fresh: Engine, tmp_path: Path
) -> None:
    """Hardening item 18: export the sample with its agenda, import it into a fresh database, get it back."""
    path = await export_sample(engine, tmp_path)
    original, original_agenda = await event_and_agenda(engine)

    assert (await import_ics(fresh, path)).action == "created"

    imported, imported_agenda = await event_and_agenda(fresh)
    assert {name: getattr(imported, name) for name in FIELDS} == {name: getattr(original, name) for name in FIELDS}
    assert imported_agenda == original_agenda
    assert len(imported_agenda) == 7 and any(entry.speakers for entry in imported_agenda)


async def test_reimporting_our_own_export_changes_nothing(engine: Engine, fresh: Engine, tmp_path: Path) -> None:
    """Hardening item 18: importing the same export again is idempotent."""
    path = await export_sample(engine, tmp_path)
    await import_ics(fresh, path)
    before = await snapshot(fresh.db)

    assert (await import_ics(fresh, path)).action == "unchanged"
    assert await snapshot(fresh.db) == before


async def test_unrelated_extra_events_are_still_refused(engine: Engine, fresh: Engine, tmp_path: Path) -> None:
    """Hardening item 18: only VEVENTs RELATED-TO the main one are its agenda; other events are refused."""
    path = await export_sample(engine, tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("RELATED-TO;RELTYPE=PARENT:", "X-WAS-RELATED-TO:"), encoding="utf-8", newline="")

    with pytest.raises(IcsError, match=r"8 VEVENTs .* not RELATED-TO one event; import takes one event"):
        await import_ics(fresh, path)
    assert await fresh.event_slugs() == []
