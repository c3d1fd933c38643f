"""Invariant 6: a rejected command writes nothing and tells the sender what was wrong, with usage."""

from __future__ import annotations

from typing import NoReturn

import pytest
from conftest import ORGANIZER, create_event, member, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.engine import Engine
from bot.invocation import CommandLine

REJECTED = [
    ("/rsvp nope-event", "no event called 'nope-event'", "/rsvp [event]"),
    ("/rsvp going +9", "at most 2 guests", "/rsvp [event]"),
    ("/rsvp going +1 +2", "unexpected '+2'", "/rsvp [event]"),
    ("/emcee agenda add 18:00", "missing title", "/emcee agenda add <starts> <title>"),
    ('/emcee agenda add 25:00 "Late talk"', "not a valid time", "/emcee agenda add"),
    ('/emcee agenda add 18:00 "Talk" --speaker "Nobody Known"', "no speaker called 'Nobody Known'", None),
    ("/emcee agenda shift 5x", "'5x' is not a duration", "/emcee agenda shift <by>"),
    ("/emcee agenda shift +10m --colour red", "unknown option '--colour'", "/emcee agenda shift"),
    ("/emcee agenda remove 99", "no agenda item '99'", "/emcee agenda remove"),
    ('/emcee event create Bad_Slug "X" --starts 2026-07-01 18:00', "not a valid slug", "/emcee event create"),
    ('/emcee event create bk-june "Again" --starts 2026-07-01 18:00', "already exists", "/emcee event create"),
    ('/emcee event create bk-july "X" --starts 18:00', "needs a date", "/emcee event create"),
    ('/emcee event create bk-july "X" --starts 2026-07-01 18:00 --timezone Mars/Base', "unknown time zone", None),
    ('/emcee event create bk-july "X" --starts 2026-07-01 18:00 --ends 17:00', "--ends must be after", None),
    ("/emcee event edit --capacity 1", "already taken", "/emcee event edit"),
    ("/emcee event edit", "nothing to change", "/emcee event edit"),
    ("/emcee event publish", "already published", "/emcee event publish"),
    ('/emcee speaker edit "Nobody"', "no speaker called 'Nobody'", "/emcee speaker edit"),
    ('/rsvp "unterminated', "unterminated quote", None),
    ("/emcee frobnicate", "/emcee has no 'frobnicate'; use one of: agenda, announce", "/emcee help"),
    ("/emcee agenda", "/emcee agenda needs one of: add, move, remove, shift", "/emcee help"),
    ("/party", "unknown command 'party'", "/emcee help"),
    ("/emcee remind maybe", "not a valid state", "/emcee remind"),
]


@pytest.mark.parametrize(("line", "problem", "usage"), REJECTED)
async def test_rejected_command_writes_nothing_and_explains(
    engine: Engine, line: str, problem: str, usage: str | None
) -> None:
    await create_event(engine, capacity=5)
    await engine.handle(CommandLine(member("ada"), None, "/rsvp going +1"))
    await engine.handle(CommandLine(member("bo"), None, "/rsvp going"))
    before = await snapshot(engine.db)
    reply = await engine.handle(CommandLine(ORGANIZER, None, line))
    assert not reply.ok
    assert reply.ephemeral
    assert problem in reply.text
    if usage:
        assert reply.usage is not None and reply.usage.startswith(usage)
    assert "Traceback" not in reply.text
    assert await snapshot(engine.db) == before


async def test_rsvp_to_a_draft_or_cancelled_event_is_refused(engine: Engine) -> None:
    await create_event(engine, slug="draft-one", publish=False)
    before = await snapshot(engine.db)
    reply = await engine.handle(CommandLine(member("ada"), None, "/rsvp draft-one"))
    assert not reply.ok and "draft" in reply.text
    assert await snapshot(engine.db) == before


async def test_an_internal_failure_answers_politely_and_writes_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create_event(engine)
    before = await snapshot(engine.db)

    def broken(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("bot.rsvp_desk.save_seatings", broken)
    reply = await engine.handle(CommandLine(member("ada"), None, "/rsvp"))
    assert not reply.ok
    assert "nothing was changed" in reply.text and "disk on fire" not in reply.text
    assert await snapshot(engine.db) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
async def test_any_command_text_works_or_is_rejected_without_writes(engine: Engine, text: str) -> None:
    """Property: arbitrary text after /rsvp or /emcee never crashes; a refusal changes nothing."""
    for line in (f"/rsvp {text}", f"/emcee {text}", f"/emcee agenda {text}"):
        before = await snapshot(engine.db)
        reply = await engine.handle(CommandLine(member("fuzzer"), None, line))
        assert "Something went wrong" not in reply.text
        if not reply.ok:
            assert await snapshot(engine.db) == before
