"""Hardening: correctness fixes found by trying the bot as a new user would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.slack import FakeSlack
from slack_harness import ALICE, SLUG, SlackEmcee, running_emcee

BOB = ("U0BOB00002", "bob")


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
