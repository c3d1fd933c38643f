"""The publisher's card edits in an RSVP burst: the ledger is read when an edit is made, not for every change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import create_event, make_settings, member
from test_delivery import RecordingAdapter

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Secrets
from bot.invocation import CommandLine, MessageRef
from bot.messages import EventCard

INTERVAL = 0.5  # long enough for a few RSVPs to land inside it


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    settings = make_settings(bot={"database_url": f"sqlite:///{tmp_path / 'emcee.db'}"}, http={"enabled": False})
    application = build_app(settings, Secrets(), clock=clock, adapters={"console": RecordingAdapter("console")})
    application.publisher.edits.interval = INTERVAL
    await application.start()
    yield application
    await application.stop()


async def rsvp(app: App, name: str) -> None:
    reply = await app.engine.handle(CommandLine(member(name), None, "/rsvp going"))
    assert reply.ok, reply.text


async def test_card_edits_within_the_interval_do_not_read_the_ledger(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter = app.adapters["console"]
    assert isinstance(adapter, RecordingAdapter)
    await create_event(app.engine)
    await rsvp(app, "ada")  # the first change edits the card at once; the interval starts
    await app.bus.drain()
    reads: list[str] = []
    sent_refs = app.publisher.ledger.sent_refs

    async def counted(key_prefix: str, showing_other_than: str | None = None) -> list[MessageRef]:
        reads.append(key_prefix)
        return await sent_refs(key_prefix, showing_other_than)

    monkeypatch.setattr(app.publisher.ledger, "sent_refs", counted)
    adapter.edits.clear()

    for name in ("bo", "chen", "dara"):  # inside the interval: one trailing edit covers them
        await rsvp(app, name)
    await app.bus.drain()

    assert len(reads) == 1  # the trailing edit's own read
    [edit] = adapter.edits
    assert isinstance(edit.message, EventCard) and edit.message.going == 4
