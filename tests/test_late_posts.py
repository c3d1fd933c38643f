"""Late posts say the truth: a timed post sent late speaks from when it is sent, or is skipped when moot."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from ledger_rows import delivery_row
from test_delivery import RecordingAdapter
from test_runner import GENERAL, RUN_AT, add_event, make_runner, rows

from adapters import plaintext
from adapters.discord import embeds as discord_embeds
from adapters.slack import blocks as slack_blocks
from bot import compose
from bot.clock import FakeClock
from bot.db import Database
from bot.delivery import Ledger
from bot.formatting import format_start
from bot.messages import Message, Reminder, SpeakerIntro
from bot.models import DeliveryStatus, Event, ItemSpeaker, Speaker
from schedules.planner import Rules

HOUR = timedelta(hours=1)


def renderings(message: Message) -> dict[str, str]:
    """What each platform shows for `message`: console text, Slack's blocks and Discord's embeds, as text."""
    embeds = [embed.to_dict() for page in discord_embeds.render(message) for embed in page.embeds]
    return {
        "plain text": plaintext.render(message),
        "slack": json.dumps(slack_blocks.render(message).blocks, ensure_ascii=False),
        "discord": json.dumps(embeds, ensure_ascii=False),
    }


async def fire_at(db: Database, clock: FakeClock, rules: Rules) -> RecordingAdapter:
    """Start a runner with the clock where it is (the bot came up then), let every due post go, stop it."""
    adapter = RecordingAdapter()
    runner = make_runner(db, clock, adapter, rules)
    await runner.start()
    try:
        await runner.settle()
    finally:
        await runner.stop()
    return adapter


async def test_a_one_hour_reminder_sent_two_minutes_late_says_58_minutes_on_every_renderer(
    db: Database, clock: FakeClock
) -> None:
    start = clock.now() + timedelta(hours=3)
    await add_event(db, start)
    clock.set(start - HOUR + timedelta(minutes=2))
    adapter = await fire_at(db, clock, Rules(event_offsets=(HOUR,)))
    [sent] = adapter.sent
    assert isinstance(sent.message, Reminder)
    for platform, text in renderings(sent.message).items():
        assert "starts in 58 minutes" in text, platform
        assert "1 hour" not in text, platform


async def test_a_reminder_sent_on_time_still_says_its_planned_lead(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=3)
    await add_event(db, start)
    clock.set(start - HOUR)
    adapter = await fire_at(db, clock, Rules(event_offsets=(HOUR,)))
    [sent] = adapter.sent
    for platform, text in renderings(sent.message).items():
        assert "starts in 1 hour" in text, platform


async def test_starting_now_sent_after_the_start_says_how_long_ago_it_started(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=3)
    await add_event(db, start)
    clock.set(start + timedelta(minutes=2))
    adapter = await fire_at(db, clock, Rules(event_offsets=()))
    [sent] = adapter.sent
    for platform, text in renderings(sent.message).items():
        assert "started 2 minutes ago" in text, platform
        assert "starting now" not in text, platform


async def test_a_reminder_for_an_event_that_has_started_is_skipped_and_the_start_says_when(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    start = clock.now() + timedelta(days=3)
    event_id, _ = await add_event(db, start)
    clock.set(start + timedelta(minutes=2))  # a long grace keeps yesterday's 1-day reminder within it
    with caplog.at_level(logging.INFO, logger="schedules.runner"):
        adapter = await fire_at(db, clock, Rules(event_offsets=(timedelta(days=1),), grace=timedelta(days=2)))
    assert [plaintext.render(s.message) for s in adapter.sent] == [
        "⏰ Tuesday talks started 2 minutes ago at Room 1: Thu 04 Jun 2026 12:00–14:00 UTC (UTC)"
    ]
    status = {RUN_AT.sub("", key): row.status for (key, _), row in (await rows(db)).items()}
    assert status == {f"remind:{event_id}:1d": DeliveryStatus.SKIPPED, f"start:{event_id}": DeliveryStatus.SENT}
    assert f"remind:{event_id}:1d" in caplog.text and "the event has started" in caplog.text


async def test_of_two_reminders_due_at_once_only_the_later_one_goes_out(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=3)
    event_id, _ = await add_event(db, start)
    clock.set(start - timedelta(minutes=20))  # down through both the 1-hour and the 30-minute reminder
    rules = Rules(event_offsets=(HOUR, timedelta(minutes=30)), grace=HOUR)
    adapter = await fire_at(db, clock, rules)
    assert [plaintext.render(s.message).split(":")[0] for s in adapter.sent] == [
        "⏰ Tuesday talks starts in 20 minutes at Room 1"
    ]
    row = await delivery_row(db, f"remind:{event_id}:1h:{(start - HOUR).isoformat()}", GENERAL)
    assert row is not None and row.status == DeliveryStatus.SKIPPED


async def test_up_next_sent_late_counts_down_from_when_it_is_sent(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=3)
    await add_event(db, start, [(timedelta(minutes=30), "Consensus in practice", "break")])
    clock.set(start + timedelta(minutes=27))  # 2 minutes after its 5-minute "up next" was due
    adapter = await fire_at(db, clock, Rules(event_offsets=()))
    [sent] = adapter.sent
    assert isinstance(sent.message, Reminder) and sent.message.item is not None
    for platform, text in renderings(sent.message).items():
        assert "Up next in 3 minutes" in text, platform


async def test_up_next_after_its_item_began_is_skipped_and_the_ledger_says_so(
    db: Database, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    start = clock.now() + timedelta(hours=3)
    _, (talk,) = await add_event(db, start, [(timedelta(minutes=30), "Consensus in practice", "talk")])
    item_start = start + timedelta(minutes=30)
    clock.set(item_start + timedelta(minutes=1))
    with caplog.at_level(logging.INFO, logger="schedules.runner"):
        adapter = await fire_at(db, clock, Rules(event_offsets=()))
    assert [type(s.message) for s in adapter.sent] == [SpeakerIntro]  # the intro, not the "up next"
    row = await delivery_row(db, f"next:{talk}:{(item_start - timedelta(minutes=5)).isoformat()}", GENERAL)
    assert row is not None and row.status == DeliveryStatus.SKIPPED
    assert row.error is not None and "its item has begun" in row.error
    assert f"next:{talk}" in caplog.text and "its item has begun" in caplog.text


async def test_an_intro_sent_a_minute_late_still_introduces_the_speaker(db: Database, clock: FakeClock) -> None:
    start = clock.now() + timedelta(hours=3)
    _, (talk,) = await add_event(db, start, [(timedelta(0), "Consensus in practice", "talk")])
    async with db.session() as session:
        speaker = Speaker(name="Ada Lovelace", affiliation="Analytical Engines")
        session.add(speaker)
        await session.flush()
        session.add(ItemSpeaker(item_id=talk, speaker_id=speaker.id or 0))
    clock.set(start + timedelta(minutes=1))
    adapter = await fire_at(db, clock, Rules(event_offsets=()))
    intros = [s.message for s in adapter.sent if isinstance(s.message, SpeakerIntro)]
    assert len(intros) == 1
    for platform, text in renderings(intros[0]).items():
        assert "Now on stage" in text and "Consensus in practice" in text, platform
        assert "Ada Lovelace" in text, platform


async def test_an_up_next_taken_over_from_a_crashed_sender_after_its_item_began_is_skipped(
    db: Database, clock: FakeClock
) -> None:
    start = clock.now() + timedelta(hours=3)
    _, (talk,) = await add_event(db, start, [(timedelta(minutes=30), "Consensus in practice", "talk")])
    up_next = start + timedelta(minutes=25)
    key = f"next:{talk}:{up_next.isoformat()}"
    clock.set(up_next)
    ledger = Ledger(db, clock)
    assert await ledger.claim_many(key, [GENERAL]) == [GENERAL]  # the sender died before sending
    clock.set(up_next + timedelta(minutes=6))  # the talk began a minute ago; the claim's lease has long lapsed
    assert ledger.lease < timedelta(minutes=6)
    adapter = await fire_at(db, clock, Rules(event_offsets=()))
    assert [type(s.message) for s in adapter.sent] == [SpeakerIntro]
    row = await delivery_row(db, key, GENERAL)
    assert row is not None and row.status == DeliveryStatus.SKIPPED and row.error == "its item has begun"


async def test_every_late_post_that_no_longer_makes_sense_is_recorded_as_skipped_with_its_reason(
    db: Database, clock: FakeClock
) -> None:
    start = clock.now() + timedelta(hours=3)
    event_id, (talk,) = await add_event(db, start, [(timedelta(0), "Consensus in practice", "talk")], ["ada"])
    clock.set(start + timedelta(minutes=31))  # the 30-minute talk ended a minute ago; a long grace keeps all in it
    adapter = await fire_at(db, clock, Rules(event_offsets=(), grace=timedelta(hours=2)))
    assert [plaintext.render(s.message).split(" at ")[0] for s in adapter.sent] == [
        "⏰ Tuesday talks started 31 minutes ago"
    ]
    outcome = {RUN_AT.sub("", key): (row.status, row.error) for (key, _), row in (await rows(db)).items()}
    skipped = DeliveryStatus.SKIPPED
    assert outcome == {
        f"dm:{event_id}:rec:ada": (skipped, "the event has started"),
        f"start:{event_id}": (DeliveryStatus.SENT, None),
        f"next:{talk}": (skipped, "its item has begun"),
        f"intro:{talk}": (skipped, "its item has ended"),
    }


def test_a_late_lead_is_rounded_to_whole_minutes() -> None:
    """A reminder sent at an odd second reads "starts in 58 minutes", not "57 minutes 52 seconds"."""
    event = Event(
        slug="bk",
        uid="bk@test",
        title="BookKeeper",
        starts_at=datetime(2026, 6, 15, 18, 0, tzinfo=UTC),
        ends_at=datetime(2026, 6, 15, 21, 0, tzinfo=UTC),
        timezone="UTC",
        updated_at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    sent_at = datetime(2026, 6, 15, 17, 2, 8, tzinfo=UTC)
    assert compose.late_reminder(event, sent_at).lead == timedelta(minutes=58)
    assert format_start(compose.late_reminder(event, sent_at).lead) == "starts in 58 minutes"
