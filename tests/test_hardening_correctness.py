"""Hardening: correctness fixes found by trying the bot as a new user would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import create_event, member, snapshot
from fakes.slack import FakeSlack
from slack_harness import ALICE, SLUG, SlackEmcee, running_emcee

from adapters import plaintext
from adapters.discord import embeds as discord_embeds
from adapters.slack import blocks as slack_blocks
from bot.commands import Registry, UsageError
from bot.db import Database
from bot.engine import Engine
from bot.eventfile import EventFileError, import_event_file
from bot.formatting import format_lead
from bot.invocation import Actor, CommandLine
from bot.messages import EventCard, EventList, When
from bot.statuses import EventStatus

BOB = ("U0BOB00002", "bob")
registry = Registry.default()
SAMPLE = Path(__file__).parent.parent / "examples" / "bookkeeper-2016-06.toml"


@pytest.fixture
async def slack(tmp_path: Path) -> AsyncIterator[SlackEmcee]:
    async with FakeSlack() as fake, running_emcee(tmp_path, fake) as running:
        yield running


async def test_a_member_promoted_twice_gets_a_dm_each_time(slack: SlackEmcee) -> None:
    """Hardening item 11: every promotion from the waitlist sends its own DM, not only the first."""
    await slack.publish_event(capacity=1)
    steps = [(ALICE, "going"), (BOB, "going"), (ALICE, "no")]  # bob is promoted
    steps += [(BOB, "no"), (ALICE, "going"), (BOB, "going"), (ALICE, "no")]  # bob rejoins the waitlist, promoted again
    for user, choice in steps:
        assert (await slack.command("/rsvp", f"{SLUG} {choice}", user=user)).status == 200
        await slack.settle()

    dms = [m["text"] for m in slack.fake.messages.values() if m["channel"].startswith("D")]
    assert len(dms) == 2
    assert all("A seat opened up: you're going to PyData June" in text for text in dms)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ('emcee announce bk "Doors open at 5"', "Doors open at 5"),
        ("emcee announce bk “Doors open at 5”", "Doors open at 5"),
        ("emcee announce bk 'Doors open at 5'", "Doors open at 5"),
        ('emcee announce bk "Doors" open at 5', '"Doors" open at 5'),  # not one quoted string: kept as typed
        ("emcee announce bk 'Twas a long night, wasn't it", "'Twas a long night, wasn't it"),
        ("emcee announce bk ' marks a quote", "' marks a quote"),
    ],
)
def test_announce_text_loses_its_own_quotes_and_keeps_apostrophes(line: str, text: str) -> None:
    """Hardening item 12: a rest-of-line text that is one quoted string is unquoted; apostrophes are text."""
    assert registry.read(line).bind(["bk"]) == {"event": "bk", "text": text}


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("emcee speaker edit Pat --bio 'Twas", "'Twas"),
        ("emcee speaker edit Pat --bio 'Bob's own talk'", "Bob's own talk"),
        ("emcee speaker edit Pat --bio O'Brien", "O'Brien"),
    ],
)
def test_a_single_quote_opens_a_string_only_when_one_closes_it_at_a_word_end(line: str, value: str) -> None:
    """Hardening item 12: an apostrophe inside or before a word is literal unless a closing quote ends a word."""
    assert registry.read(line).bind() == {"name": "Pat", "bio": value}


@pytest.mark.parametrize("line", ['emcee announce bk "Doors open at 5', "emcee announce bk “Doors open at 5"])
def test_unterminated_double_and_curly_quotes_are_still_refused(line: str) -> None:
    """Hardening item 12: only the single quote became lenient; other unterminated quotes are refused."""
    with pytest.raises(UsageError, match="unterminated quote"):
        registry.read(line).bind(["bk"])


async def test_a_refused_rsvp_writes_nothing_not_even_the_display_name(engine: Engine, db: Database) -> None:
    """Hardening item 16: "Only N seats left, so your RSVP is unchanged" leaves every row as it was."""
    await create_event(engine, capacity=2)
    assert (await engine.handle(CommandLine(Actor("console", "ada", "Ada"), None, "/rsvp going"))).ok
    assert (await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))).ok
    before = await snapshot(db)

    reply = await engine.handle(CommandLine(Actor("console", "ada", "Ada Renamed"), None, "/rsvp going +1"))

    assert await snapshot(db) == before
    assert not reply.ok and "Only 0 seats left" in reply.text and reply.usage == "/rsvp [event] [going|maybe|no] [+N]"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('speakers = ["Diego Ongaro"]', 'speakers = ["Diego Ongaro", "X"]', "agenda.4: no speaker called 'X'"),
        ('kind = "panel"', 'kind = "debate"', "agenda.5: 'debate' is not a valid kind"),
    ],
)
async def test_a_failed_event_file_import_leaves_every_table_as_it_was(
    engine: Engine, db: Database, tmp_path: Path, old: str, new: str, problem: str
) -> None:
    """Hardening item 17: an event file imports all or nothing; its speakers do not stay behind."""
    await create_event(engine)
    before = await snapshot(db)
    bad = tmp_path / "bad.toml"
    bad.write_text(SAMPLE.read_text().replace(old, new))

    with pytest.raises(EventFileError, match=problem):
        await import_event_file(engine, bad)

    assert await snapshot(db) == before


def _card(capacity: int, going: int) -> EventCard:
    start = datetime(2026, 6, 12, 17, 30, tzinfo=UTC)
    when = When(start, start + timedelta(hours=3), "Europe/London")
    return EventCard("pydata-june", "PyData June", when, "", "", "", EventStatus.PUBLISHED, capacity, going, 0, 0)


@pytest.mark.parametrize(("left", "words"), [(1, "1 seat left"), (2, "2 seats left")])
def test_every_renderer_counts_seats_in_good_english(left: int, words: str) -> None:
    """Hardening item 13: "1 seat left", never "1 seats left", on the console, Slack and Discord."""
    card = _card(capacity=10, going=10 - left)
    assert words in plaintext.render(card)
    assert words in json.dumps(slack_blocks.render(card).blocks)
    listing = discord_embeds.render(EventList((card,)))
    assert any(words in (embed.description or "") for page in listing for embed in page.embeds)


@pytest.mark.parametrize(("pages", "words"), [(2, "1 more message not shown"), (3, "2 more messages not shown")])
def test_discord_counts_the_messages_it_left_out(pages: int, words: str) -> None:
    """Hardening item 13: the note under a truncated Discord post uses the helper too."""
    kept = discord_embeds.truncate([discord_embeds.Page(f"page {n}") for n in range(pages)], 1)
    assert words in kept[-1].content


async def test_rsvp_replies_count_guests_and_seats_in_good_english(engine: Engine) -> None:
    """Hardening item 13: the engine's replies say "1 guest", "2 guests" and "Only 1 seat left"."""
    await create_event(engine, capacity=7)
    assert (await engine.handle(CommandLine(member("ada"), None, "/rsvp going"))).ok
    assert "with 1 guest." in (await engine.handle(CommandLine(member("bo"), None, "/rsvp going +1"))).text
    assert "with 2 guests." in (await engine.handle(CommandLine(member("cy"), None, "/rsvp going +2"))).text
    assert "Only 1 seat left" in (await engine.handle(CommandLine(member("ada"), None, "/rsvp going +2"))).text


@pytest.mark.parametrize(("events", "words"), [(5, "…and 1 more event."), (6, "…and 2 more events.")])
def test_slack_counts_the_events_it_left_out(events: int, words: str) -> None:
    """Hardening item 13: an event list too long for Slack's blocks says "1 more event"."""
    listing = EventList(tuple(_card(10, n) for n in range(events)))
    blocks = slack_blocks.blocks_for(listing, 9)  # room for four events (two blocks each) and the note
    assert words in json.dumps([block.to_dict() for block in blocks], ensure_ascii=False)


@pytest.mark.parametrize(
    ("lead", "words"),
    [
        (timedelta(hours=1), "in 1 hour"),
        (timedelta(days=1), "in 1 day"),
        (timedelta(days=2, hours=1), "in 2 days 1 hour"),
        (timedelta(minutes=5), "in 5 minutes"),
        (timedelta(hours=1, minutes=30), "in 1 hour 30 minutes"),
        (timedelta(seconds=40), "in 40 seconds"),
        (timedelta(0), "now"),
    ],
)
def test_reminders_say_how_long_in_words(lead: timedelta, words: str) -> None:
    """Hardening items 13 and 27: a reminder reads "starts in 1 hour", counted in good English, not "in 1h"."""
    assert format_lead(lead) == words
