"""Slack RSVP buttons: a click RSVPs the clicker, answers them alone, and updates the card's counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.slack import FakeSlack, block_actions_body
from slack_harness import ALICE, CHANNEL, SLUG, SlackEmcee, running_emcee

BOB = ("U0BOB00002", "bob")
CAROL = ("U0CAROL003", "carol")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


@pytest.fixture
async def emcee(tmp_path: Path, fake: FakeSlack) -> AsyncIterator[SlackEmcee]:
    async with running_emcee(tmp_path, fake) as running:
        yield running


def card_text(emcee: SlackEmcee, ts: str) -> str:
    return "\n".join(
        element["text"]
        for block in emcee.fake.messages[ts]["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
    )


async def ephemeral_to(emcee: SlackEmcee, user: str) -> str:
    await emcee.fake.wait_until(
        lambda: any(c.params["user"] == user for c in emcee.fake.calls_to("chat.postEphemeral"))
    )
    [call] = [c for c in emcee.fake.calls_to("chat.postEphemeral") if c.params["user"] == user]
    assert call.params["channel"] == CHANNEL
    text: str = call.params["text"]
    return text


async def test_going_click_rsvps_answers_the_clicker_and_updates_the_card(emcee: SlackEmcee) -> None:
    card_ts = await emcee.publish_event(capacity=2)

    ack = await emcee.click("going", ALICE)
    answer = await ephemeral_to(emcee, ALICE[0])
    await emcee.settle()

    assert (ack.status, ack.text) == (200, "")  # acknowledged at once, with no body
    assert answer.startswith("✅ You're going to PyData June.")
    assert "1/2 going, 1 seat left" in card_text(emcee, card_ts)
    assert emcee.fake.calls_to("chat.update")[-1].params["ts"] == card_ts


async def test_a_full_event_puts_the_clicker_on_the_waitlist_with_their_position(emcee: SlackEmcee) -> None:
    card_ts = await emcee.publish_event(capacity=1)

    await emcee.click("going", ALICE)
    await emcee.click("going", BOB)
    await emcee.click("going", CAROL)
    await emcee.settle()

    assert "You're on the waitlist, position 1" in await ephemeral_to(emcee, BOB[0])
    assert "You're on the waitlist, position 2" in await ephemeral_to(emcee, CAROL[0])
    assert "1/1 going, 0 seats left, 2 on the waitlist" in card_text(emcee, card_ts)


async def test_maybe_and_cant_go_buttons(emcee: SlackEmcee) -> None:
    card_ts = await emcee.publish_event()

    await emcee.click("maybe", ALICE)
    await emcee.click("no", BOB)
    await emcee.settle()

    assert await ephemeral_to(emcee, ALICE[0]) == "Noted: maybe for PyData June."
    assert await ephemeral_to(emcee, BOB[0]) == "Noted: you can't make PyData June."
    assert "1 maybe" in card_text(emcee, card_ts)


async def test_a_click_works_after_a_restart(tmp_path: Path, fake: FakeSlack) -> None:
    async with running_emcee(tmp_path, fake) as before:
        card_ts = await before.publish_event()
        payload = before.click_payload("going", ALICE)

    # A new process, same database: nothing about the card lives in memory.
    async with running_emcee(tmp_path, fake, fresh=False) as after:
        ack = await after.post(block_actions_body(payload))
        answer = await ephemeral_to(after, ALICE[0])
        await after.settle()

    assert ack.status == 200
    assert answer.startswith("✅ You're going to PyData June.")
    assert "1/2 going" in card_text(after, card_ts)


async def test_a_click_on_a_cancelled_event_is_refused_to_the_clicker_only(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    payload = emcee.click_payload("going", ALICE)
    await emcee.organizer(f"/emcee event cancel {SLUG}")
    posts = len(emcee.fake.calls_to("chat.postMessage"))

    ack = await emcee.post(block_actions_body(payload))
    answer = await ephemeral_to(emcee, ALICE[0])

    assert ack.status == 200
    # ALICE never RSVPed, so to her a cancelled event is one that does not exist (hardening item 2).
    assert f"no event called '{SLUG}'" in answer
    assert len(emcee.fake.calls_to("chat.postMessage")) == posts  # nothing public


async def test_where_the_bot_cannot_post_the_answer_goes_by_response_url(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    emcee.fake.fail_next("chat.postEphemeral", "channel_not_found")

    await emcee.click("maybe", ALICE)
    await emcee.fake.wait_until(lambda: emcee.fake.responses)

    [response] = emcee.fake.responses
    assert response.name == "click"
    assert response.body["response_type"] == "ephemeral" and response.body["replace_original"] is False
    assert response.body["text"] == "Noted: maybe for PyData June."
