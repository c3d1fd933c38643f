"""Discord rendering: every message kind as embeds within Discord's limits; long lists split, never rejected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from discord_harness import SLUG, DiscordEmcee, running_emcee
from fakes.discord import CHANNEL_ID, FakeDiscord

from adapters.discord import embeds
from adapters.discord.client import MAX_PAGES
from adapters.discord.embeds import Page, render, render_reply
from bot.invocation import ChannelRef
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

START = datetime(2026, 6, 16, 1, 0, tzinfo=UTC)  # 18:00 in Los Angeles
ZONE = "America/Los_Angeles"
WHEN = When(START, START + timedelta(hours=3), ZONE)
CARD = EventCard(
    SLUG, "BookKeeper June", WHEN, "Yahoo", "https://example.org/bk", "Talks.", EventStatus.PUBLISHED, 40, 12, 3, 1
)


def check_limits(pages: list[Page]) -> None:
    """Every limit Discord documents for one message and its embeds."""
    assert pages
    for page in pages:
        assert page.content or page.embeds
        assert len(page.content) <= 2000
        assert len(page.embeds) <= 10
        assert sum(len(embed) for embed in page.embeds) <= 6000
        for embed in page.embeds:
            data = embed.to_dict()
            assert len(data.get("title", "")) <= 256
            assert len(data.get("description", "")) <= 4096
            assert len(data.get("fields", [])) <= 25
            for field in data.get("fields", []):
                assert 0 < len(field["name"]) <= 256 and 0 < len(field["value"]) <= 1024
            assert len(data.get("footer", {}).get("text", "")) <= 2048


def text_of(pages: list[Page]) -> str:
    parts = []
    for page in pages:
        parts.append(page.content)
        for embed in page.embeds:
            data = embed.to_dict()
            parts += [data.get("title", ""), data.get("description", ""), data.get("footer", {}).get("text", "")]
            parts += [f"{field['name']}\n{field['value']}" for field in data.get("fields", [])]
    return "\n".join(parts)


def long_agenda(count: int = 40) -> AgendaCard:
    entries = []
    for number in range(1, count + 1):
        starts = START + timedelta(minutes=10 * number)
        speakers = tuple(
            SpeakerLine(
                f"Speaker {number}-{n}", "panelist", "Apache Software Foundation", "bio " * 50, None, str(5000 + n)
            )
            for n in range(3)
        )
        title = f"Talk {number}: " + "a rather long title about distributed logs " * 2
        entries.append(
            AgendaEntry(number, title, "panel", When(starts, starts + timedelta(minutes=10), ZONE), speakers)
        )
    return AgendaCard(SLUG, "BookKeeper June", ZONE, tuple(entries))


def attendees(count: int = 300) -> AttendeeList:
    statuses = [RsvpStatus.GOING] * (count - 60) + [RsvpStatus.WAITLISTED] * 30 + [RsvpStatus.MAYBE] * 30
    rows = tuple(
        AttendeeRow(f"Member number {n:03} with a long name", "discord", s, n % 3) for n, s in enumerate(statuses)
    )
    return AttendeeList(SLUG, "BookKeeper June", 250, count - 60, 30, 30, rows)


def test_a_40_item_agenda_is_split_within_the_limits() -> None:
    agenda = long_agenda()

    pages = render(agenda)

    check_limits(pages)
    text = text_of(pages)
    assert all(f"Talk {n}:" in text for n in range(1, 41))  # nothing dropped
    assert "<@5002>" in text and "<t:1781572200:t>–<t:1781572800:t>" in text
    assert len(pages) > 1 or len(pages[0].embeds) > 1


def test_300_attendees_are_split_within_the_limits() -> None:
    pages = render(attendees())

    check_limits(pages)
    text = text_of(pages)
    assert all(f"Member number {n:03}" in text for n in range(300))
    assert len(pages) >= 2
    assert "**Going**" in text and "**Waitlist**" in text and "**Maybe**" in text
    assert "**240** going (capacity 250) · **30** waitlisted · **30** maybe" in text


def test_every_kind_fits_even_with_huge_text() -> None:
    huge = "x" * 9000
    entry = AgendaEntry(1, huge, "talk", WHEN, (SpeakerLine(huge, bio=huge, discord_id="42"),) * 30, huge)
    messages: list[Message] = [
        EventCard(SLUG, huge, WHEN, huge, huge, huge, EventStatus.PUBLISHED, None, 0, 0, 0),
        AgendaCard(SLUG, huge, ZONE, (entry,)),
        SpeakerIntro(SLUG, huge, entry),
        Reminder(SLUG, huge, WHEN, huge, timedelta(hours=1)),
        Reminder(SLUG, huge, WHEN, huge, timedelta(minutes=5), entry),
        AgendaUpdate(SLUG, huge, ZONE, huge, (AgendaChange(huge, START, None),) * 50),
        Notice(huge + "\n" + huge),
        attendees(3),
        EventList((CARD,) * 30),
        EventList(()),
    ]
    for message in messages:
        check_limits(render(message))
    check_limits(render_reply(Reply(huge, ok=False, usage="/rsvp [event]", message=EventList((CARD,) * 30))))


def test_the_event_card() -> None:
    [page] = render(CARD)
    [card] = [embed.to_dict() for embed in page.embeds]

    assert card["title"] == "BookKeeper June" and card["url"] == "https://example.org/bk"
    assert card["description"].startswith("<t:1781571600:F> (<t:1781571600:R>)\n📍 Yahoo")
    fields = {field["name"]: field["value"] for field in card["fields"]}
    assert fields == {"Going": "12 / 40", "Seats left": "28", "Waitlist": "3", "Maybe": "1"}
    assert card["footer"]["text"] == "Mon 15 Jun 2026 18:00–21:00 PDT (America/Los_Angeles) · bk-june"


def test_speakers_with_a_discord_id_are_mentioned() -> None:
    entry = AgendaEntry(
        2,
        "BookKeeper at Twitter",
        "talk",
        WHEN,
        (SpeakerLine("Leigh Stewart", affiliation="Twitter", discord_id="1301000000000000555"), SpeakerLine("Sijie")),
    )

    [intro] = render(SpeakerIntro(SLUG, "BookKeeper June", entry))
    [agenda] = render(AgendaCard(SLUG, "BookKeeper June", ZONE, (entry,)))
    [reminder] = render(Reminder(SLUG, "BookKeeper June", WHEN, "Yahoo", timedelta(minutes=5), entry))

    fields = intro.embeds[0].to_dict()["fields"]
    assert fields[0] == {"name": "Leigh Stewart (Twitter)", "value": "<@1301000000000000555>", "inline": False}
    assert fields[1]["name"] == "Sijie"
    assert "Leigh Stewart (Twitter) · <@1301000000000000555>; Sijie" in agenda.embeds[0].description  # type: ignore[operator]
    assert "<@1301000000000000555>" in reminder.embeds[0].description  # type: ignore[operator]


def test_replies_put_the_usage_under_the_error_and_split_long_text() -> None:
    [refusal] = render_reply(Reply("⚠️ '5x' is not a duration", ok=False, usage="/emcee agenda shift <by>"))
    pages = render_reply(Reply("\n".join(f"line {n:04} " + "y" * 80 for n in range(100)), message=CARD))

    assert refusal.content == "⚠️ '5x' is not a duration\nUsage: `/emcee agenda shift <by>`"
    check_limits(pages)
    assert len(pages) > 1 and pages[-1].embeds  # the text first, the card with its last part
    assert "line 0099" in pages[-1].content


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[DiscordEmcee]:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as running:
        yield running


async def test_discord_accepts_the_split_messages_and_their_edits(emcee: DiscordEmcee) -> None:
    channel = ChannelRef("discord", str(CHANNEL_ID))

    ref = await emcee.adapter.send(channel, attendees(300))
    agenda = await emcee.adapter.send(channel, long_agenda(40))
    ids = ref.message_id.split(",")
    assert len(ids) == len(render(attendees(300))) >= 2 and len(ref.encode()) <= 255
    await emcee.adapter.edit(ref, attendees(3))  # shorter: the second message is no longer needed
    await emcee.adapter.edit(agenda, long_agenda(200))  # longer than the messages posted: trimmed, with a note

    posted = {message["id"]: message for message in emcee.fake.messages(CHANNEL_ID)}
    assert "Member number 002" in posted[ids[0]]["embeds"][0]["description"]
    assert posted[ids[1]]["content"] == "⤴ (see above)" and posted[ids[1]]["embeds"] == []
    last = posted[agenda.message_id.split(",")[-1]]
    assert "more messages not shown)" in last["content"]


def test_a_post_has_at_most_max_pages() -> None:
    pages = embeds.truncate(render(attendees(3000)), MAX_PAGES)

    assert len(pages) == MAX_PAGES
    assert pages[-1].content.startswith("(… ") and pages[-1].content.endswith(" more messages not shown)")
    [first, last] = embeds.truncate(render(Notice("\n".join("z" * 1999 for _ in range(5)))), 2)
    assert first.content == "z" * 1999
    assert len(last.content) <= 2000 and last.content.endswith("\n(… 3 more messages not shown)")
