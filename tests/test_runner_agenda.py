"""Agenda changes and RSVPs through the app: posts move, posted cards are edited in place (throttled), one notice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import ORGANIZER, create_event, make_settings, member
from test_delivery import RecordingAdapter

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Secrets
from bot.invocation import CommandLine
from bot.messages import AgendaCard, AgendaUpdate, EventCard

SLUG = "bk-june"


@pytest.fixture
async def app(tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    database = f"sqlite:///{tmp_path / 'emcee.db'}"
    settings = make_settings(bot={"database_url": database, "timezone": "America/Los_Angeles"}, http={"enabled": False})
    application = build_app(settings, Secrets(), clock=clock, adapters={"console": RecordingAdapter("console")})
    application.publisher.edits.interval = 0.05  # the throttle has its own test; keep the others fast
    await application.start()
    yield application
    await application.stop()


def recorder(app: App) -> RecordingAdapter:
    adapter = app.adapters["console"]
    assert isinstance(adapter, RecordingAdapter)
    return adapter


async def organizer(app: App, line: str) -> None:
    reply = await app.engine.handle(CommandLine(ORGANIZER, None, line))
    assert reply.ok, reply.text
    await app.bus.drain()


def schedule(app: App) -> dict[str, str]:
    """slot -> local run time of every scheduled post."""
    assert app.runner is not None
    return {post.slot: post.run_at.strftime("%H:%M") for post in app.runner.jobs.values()}


async def test_shift_move_and_remove_reschedule_edit_the_posted_cards_and_post_one_notice(app: App) -> None:
    adapter = recorder(app)
    await create_event(app.engine, publish=False)  # 18:00 in Los Angeles: 01:00 UTC
    for line in ('18:00 "Talk one"', '18:30 "Talk two"', '19:00 "Talk three"'):
        await organizer(app, f"/emcee agenda add {line} --event {SLUG}")
    await organizer(app, f"/emcee event publish {SLUG}")
    assert [type(s.message) for s in adapter.sent] == [EventCard, AgendaCard]  # messages 1 and 2
    before = schedule(app)
    assert before["next:2"] == "01:25" and before["intro:3"] == "02:00"

    changes = (
        ("shift +10m --from 2", {"next:2": "01:35", "intro:2": "01:40", "next:3": "02:05", "intro:3": "02:10"}),
        ("move 3 20:00", {"next:3": "02:55", "intro:3": "03:00"}),
        ("remove 1", {"next:1": None, "intro:1": None}),
    )
    for change, moved in changes:
        adapter.sent.clear()
        adapter.edits.clear()
        await organizer(app, f"/emcee agenda {change} --event {SLUG}")
        after = schedule(app)
        expected = {slot: time for slot, time in (before | moved).items() if time is not None}
        assert after == expected, change
        before = after
        notices = [s.message for s in adapter.sent]
        assert len(notices) == 1 and isinstance(notices[0], AgendaUpdate), change
        edited = {edit.ref.message_id: edit.message for edit in adapter.edits}
        assert set(edited) == {"2"}, change  # the agenda, edited in place; the card reads the same, so it is not
        new_agenda = edited["2"]
        assert isinstance(new_agenda, AgendaCard)
        assert [entry.title for entry in new_agenda.entries] == [
            title for title in ("Talk one", "Talk two", "Talk three") if change != "remove 1" or title != "Talk one"
        ]


async def test_rsvp_bursts_edit_the_card_at_most_once_per_interval_and_the_last_state_lands(app: App) -> None:
    interval = 0.3
    app.publisher.edits.interval = interval
    adapter = recorder(app)
    await create_event(app.engine)
    await app.bus.drain()
    adapter.edits.clear()
    names = ["ada", "bo", "chen", "dara", "eli", "fay"]
    for name in names:  # six RSVPs within a few milliseconds
        reply = await app.engine.handle(CommandLine(member(name), None, "/rsvp going"))
        assert reply.ok
    await app.bus.drain()  # the trailing edit is part of handling the effects
    cards = [edit for edit in adapter.edits if isinstance(edit.message, EventCard)]
    assert 1 <= len(cards) <= 2
    last = cards[-1].message
    assert isinstance(last, EventCard) and last.going == len(names)
    assert all(b.at - a.at >= interval - 0.02 for a, b in zip(cards, cards[1:], strict=False)), [c.at for c in cards]


async def test_opting_in_to_dm_reminders_schedules_one(app: App) -> None:
    assert app.runner is not None
    await create_event(app.engine)
    for line in ("/rsvp going", "/emcee remind on"):
        reply = await app.engine.handle(CommandLine(member("ada"), None, line))
        assert reply.ok, reply.text
    await app.bus.drain()
    dms = [post for post in app.runner.jobs.values() if post.slot.startswith("dm:")]
    assert [(post.targets[0].id, post.run_at.strftime("%H:%M")) for post in dms] == [("ada", "00:00")]
    assert dms[0].lead == timedelta(hours=1)


async def test_dm_jobs_follow_opted_in_members_in_and_out_of_the_room_and_plain_rsvps_replan_nothing(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert app.runner is not None
    runner = app.runner
    await create_event(app.engine, capacity=1)
    for who, line in (("ada", "/rsvp going"), ("bo", "/rsvp going"), ("bo", "/emcee remind on")):
        assert (await app.engine.handle(CommandLine(member(who), None, line))).ok
    await app.bus.drain()
    reconciles: list[int | None] = []
    reconcile = app.runner.reconcile

    async def counted(event_id: int | None = None) -> object:
        reconciles.append(event_id)
        return await reconcile(event_id)

    monkeypatch.setattr(app.runner, "reconcile", counted)

    def dm_targets() -> list[str]:
        return [post.targets[0].id for post in runner.jobs.values() if post.slot.startswith("dm:")]

    assert dm_targets() == []  # bo is waiting: no reminder yet
    await app.engine.handle(CommandLine(member("chen"), None, "/rsvp maybe"))
    await app.bus.drain()
    assert reconciles == []  # nobody with DM reminders moved: the schedule stays as it is
    await app.engine.handle(CommandLine(member("ada"), None, "/rsvp no"))  # bo, opted in, is promoted
    await app.bus.drain()
    assert len(reconciles) == 1 and dm_targets() == ["bo"]
    await app.engine.handle(CommandLine(member("bo"), None, "/rsvp no"))
    await app.bus.drain()
    assert len(reconciles) == 2 and dm_targets() == []


async def test_the_app_reconciles_at_startup_and_stops_its_runner(tmp_path: Path, clock: FakeClock) -> None:
    settings = make_settings(bot={"database_url": f"sqlite:///{tmp_path / 'emcee.db'}"}, http={"enabled": False})
    first = build_app(settings, Secrets(), clock=clock, adapters={"console": RecordingAdapter("console")})
    await first.start()
    await create_event(first.engine)
    await first.bus.drain()
    assert first.runner is not None
    planned = set(first.runner.jobs)
    assert {post.split(":")[0] for post in planned} == {"remind", "start"}
    await first.stop()
    assert first.runner.jobs == {} and not first.runner.scheduler.running

    again = build_app(settings, Secrets(), clock=clock, adapters={"console": RecordingAdapter("console")})
    await again.start()
    try:
        assert again.runner is not None and set(again.runner.jobs) == planned
    finally:
        await again.stop()
