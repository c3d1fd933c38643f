"""Slack Block Kit rendering: every message kind, Slack date tokens, escaping, and the size limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from adapters.slack.blocks import MAX_BLOCKS, MAX_HEADER_TEXT, MAX_SECTION_TEXT, Rendered, render, render_reply, wrap
from bot.messages import (
    AgendaCard,
    AgendaChange,
    AgendaEntry,
    AgendaUpdate,
    AttendeeList,
    AttendeeRow,
    EventCard,
    EventList,
    Message,
    Notice,
    Reminder,
    Reply,
    SpeakerIntro,
    SpeakerLine,
    When,
)
from bot.statuses import EventStatus, RsvpStatus

ZONE = "Europe/London"
START = datetime(2026, 6, 12, 17, 30, tzinfo=UTC)  # 18:30 BST
WHEN = When(START, START + timedelta(hours=3), ZONE)


def card(**changes: Any) -> EventCard:
    fields: dict[str, Any] = {
        "slug": "pydata-june",
        "title": "PyData June",
        "when": WHEN,
        "venue": "The Library",
        "url": "https://example.org/pydata?june=1&b=2",
        "description": "Talks & pizza",
        "status": EventStatus.PUBLISHED,
        "capacity": 40,
        "going": 12,
        "waitlist": 0,
        "maybe": 3,
    }
    return EventCard(**(fields | changes))


def entry(position: int, title: str = "", speakers: int = 1) -> AgendaEntry:
    starts = START + timedelta(minutes=5 * position)
    lines = tuple(
        SpeakerLine(f"Speaker {position}-{n}", "speaker", "Some Affiliation Inc.", "bio", f"U0SPK{position:03d}{n}")
        for n in range(speakers)
    )
    return AgendaEntry(position, title or f"Talk number {position}", "talk", When(starts, starts, ZONE), lines, "")


def attendees(count: int) -> AttendeeList:
    rows = tuple(AttendeeRow(f"Member Number {n:05d}", "slack", RsvpStatus.GOING, n % 3) for n in range(count))
    return AttendeeList("pydata-june", "PyData June", None, count, 0, 0, rows)


EVERY_KIND: list[Message] = [
    card(),
    AgendaCard("pydata-june", "PyData June", ZONE, tuple(entry(n) for n in range(1, 6))),
    SpeakerIntro("pydata-june", "PyData June", entry(1, speakers=2)),
    Reminder("pydata-june", "PyData June", WHEN, "The Library", timedelta(hours=1)),
    Reminder("pydata-june", "PyData June", WHEN, "The Library", timedelta(minutes=5), entry(2)),
    AgendaUpdate(
        "pydata-june",
        "PyData June",
        ZONE,
        "running 10 minutes late",
        (AgendaChange("Talk 1", START, START + timedelta(minutes=10)), AgendaChange("Talk 2", START, None)),
    ),
    Notice("Doors open at 18:00"),
    attendees(3),
    EventList((card(), card(slug="pydata-july", title="PyData July"))),
    EventList(()),
]


def texts_of(block: dict[str, Any]) -> list[str]:
    found = [block["text"]["text"]] if "text" in block else []
    return found + [element["text"] for element in block.get("elements", []) if isinstance(element.get("text"), str)]


def all_text(rendered: Rendered) -> str:
    return "\n".join(text for block in rendered.blocks for text in texts_of(block))


def assert_within_slack_limits(rendered: Rendered) -> None:
    assert 0 < len(rendered.blocks) <= MAX_BLOCKS
    assert rendered.text
    for block in rendered.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.to_dict()  # slack_sdk's own validators: lengths, element counts
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_TEXT
        for text in texts_of(block):
            assert 0 < len(text) <= MAX_SECTION_TEXT


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda m: type(m).__name__)
def test_every_message_kind_renders_within_limits(message: Message) -> None:
    assert_within_slack_limits(render(message))


def test_event_card_has_local_times_with_a_fallback_in_the_event_zone_and_rsvp_buttons() -> None:
    rendered = render(card())

    start, end = int(START.timestamp()), int((START + timedelta(hours=3)).timestamp())
    assert (
        f"*When:* <!date^{start}^{{date_short_pretty}} at {{time}}|Fri 12 Jun 2026 18:30 BST> – "
        f"<!date^{end}^{{time}}|21:30 BST>"
    ) in all_text(rendered)
    [actions] = [b for b in rendered.blocks if b["type"] == "actions"]
    assert [(e["text"]["text"], e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("Going", "rsvp:going", "pydata-june"),
        ("Maybe", "rsvp:maybe", "pydata-june"),
        ("Can't go", "rsvp:no", "pydata-june"),
    ]
    assert actions["elements"][0]["style"] == "primary"
    assert "12/40 going, 28 seats left, 3 maybe" in all_text(rendered)
    assert "Talks &amp; pizza" in all_text(rendered) and "june=1&amp;b=2" in all_text(rendered)
    assert rendered.text.startswith("📣 PyData June")  # the notification text is the plain rendering


def test_a_cancelled_card_has_no_buttons() -> None:
    rendered = render(card(status=EventStatus.CANCELLED))

    assert not [b for b in rendered.blocks if b["type"] == "actions"]
    assert "cancelled" in rendered.blocks[0]["text"]["text"]


def test_times_across_a_daylight_saving_change_keep_their_instant() -> None:
    # 1 Nov 2026: Los Angeles falls back from PDT to PST at 02:00; the evening is in PST.
    evening = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    rendered = render(
        Reminder("x", "X", When(evening, evening + timedelta(hours=2), "America/Los_Angeles"), "", timedelta(hours=1))
    )

    assert (
        f"<!date^{int(evening.timestamp())}^{{date_short_pretty}} at {{time}}|Sun 01 Nov 2026 18:00 PST>"
        in all_text(rendered)
    )


def test_speaker_intro_mentions_speakers_by_slack_id() -> None:
    rendered = render(SpeakerIntro("pydata-june", "PyData June", entry(3, speakers=1)))

    assert "*Speaker 3-0* (<@U0SPK0030>) — Some Affiliation Inc." in all_text(rendered)
    assert rendered.blocks[0]["text"]["text"] == "🎤 Now on stage: Talk number 3"


def test_forty_item_agenda_fits_whole() -> None:
    long_title = "A rather long talk title about distributed logs, consensus and storage " * 2
    rendered = render(AgendaCard("bk", "BookKeeper", ZONE, tuple(entry(n, long_title, 4) for n in range(1, 41))))

    assert_within_slack_limits(rendered)
    text = all_text(rendered)
    assert all(f"  {n}. A rather long" in text for n in range(1, 41))
    assert "more items" not in text


def test_a_huge_agenda_is_trimmed_with_a_count_of_what_was_left_out() -> None:
    rendered = render(AgendaCard("bk", "BookKeeper", ZONE, tuple(entry(n, "x" * 2900) for n in range(1, 1001))))

    assert_within_slack_limits(rendered)
    assert len(rendered.blocks) == MAX_BLOCKS
    text = all_text(rendered)
    shown = sum(1 for n in range(1, 1001) if f"  {n}. x" in text)
    assert 0 < shown < 1000
    assert rendered.blocks[-1]["elements"][0]["text"] == f"…and {1000 - shown} more items: see `/agenda bk`."


def test_three_hundred_attendees_are_all_listed_within_limits() -> None:
    rendered = render(attendees(300))

    assert_within_slack_limits(rendered)
    text = all_text(rendered)
    assert all(f"Member Number {n:05d}" in text for n in range(300))
    assert "*300* going (capacity unlimited)" in text


def test_thousands_of_attendees_are_trimmed_and_point_to_the_csv() -> None:
    rendered = render(attendees(5000))

    assert_within_slack_limits(rendered)
    shown = all_text(rendered).count("Member Number")
    assert 0 < shown < 5000
    assert rendered.blocks[-1]["elements"][0]["text"] == (
        f"…and {5000 - shown} more not shown; the CSV export lists everyone."
    )


def test_long_texts_are_split_and_trimmed_never_rejected() -> None:
    description = ("word & <tag> " * 1500).strip()  # 19,500 characters, 31,500 escaped
    rendered = render(card(title="T" * 500, description=description, venue="V" * 5000))

    assert_within_slack_limits(rendered)
    assert rendered.blocks[0]["text"]["text"].endswith("…")
    sections = [b["text"]["text"] for b in rendered.blocks if b["type"] == "section"]
    assert " ".join(sections[1:]) == description.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_wrapping_never_splits_an_entity() -> None:
    chunks = wrap("&" * 4000 + " <" * 10)

    assert all(len(chunk) <= MAX_SECTION_TEXT for chunk in chunks)
    assert all(chunk.replace("&amp;", "").replace("&lt;", "").count("&") == 0 for chunk in chunks)
    assert "".join(chunks).replace(" ", "") == "&amp;" * 4000 + "&lt;" * 10


def test_many_events_are_listed_up_to_the_block_limit() -> None:
    listing = EventList(tuple(card(slug=f"event-{n}", title=f"Event {n}") for n in range(40)))

    rendered = render(listing)

    assert_within_slack_limits(rendered)
    assert rendered.blocks[-1]["elements"][0]["text"] == "…and 16 more events."


def test_a_refusal_carries_the_usage_line() -> None:
    reply = Reply("⚠️ unexpected 'sideways'", ok=False, usage="/rsvp [event] [going|maybe|no] [+N]")

    rendered = render_reply(reply)

    assert rendered.blocks[0]["text"]["text"] == "⚠️ unexpected 'sideways'"
    assert rendered.blocks[-1]["elements"][0]["text"] == "Usage: `/rsvp [event] [going|maybe|no] [+N]`"


def test_a_reply_with_a_big_message_stays_within_limits() -> None:
    reply = Reply("Here is everyone.\n" * 400, message=attendees(5000))

    assert_within_slack_limits(render_reply(reply, note="📎 the CSV comes by DM"))
