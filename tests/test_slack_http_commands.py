"""Slack HTTP mode: signed slash commands reach /slack/events on the running server and are answered in the ack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import snapshot
from fakes.slack import FakeSlack, slash_command_body
from slack_harness import CHANNEL, ORGANIZER, SLUG, SlackEmcee, running_emcee

from adapters.slack.adapter import WORKING

BOB = ("U0BOB00002", "bob")


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[SlackEmcee]:
    async with FakeSlack() as fake, running_emcee(tmp_path, fake) as running:
        yield running


def texts(body: dict[str, Any]) -> str:
    """Every text of an ack body: the fallback and each block's text, for assertions."""
    parts = [body.get("text", "")]
    for block in body.get("blocks", []):
        parts.append((block.get("text") or {}).get("text", ""))
        parts += [element.get("text", "") for element in block.get("elements", []) if block["type"] == "context"]
    return "\n".join(parts)


async def test_rsvp_is_answered_in_the_ack_and_updates_the_card(emcee: SlackEmcee) -> None:
    card_ts = await emcee.publish_event(capacity=10)

    ack = await emcee.command("/rsvp", f"{SLUG} going +1")
    await emcee.settle()

    assert ack.status == 200
    assert ack.body["response_type"] == "ephemeral"
    assert "You're going to PyData June with 1 guest" in ack.body["text"]
    assert emcee.fake.responses == []  # nothing needed the response_url
    # The publisher edited the posted card in place with the new count.
    updates = emcee.fake.calls_to("chat.update")
    assert updates and updates[-1].params["ts"] == card_ts and updates[-1].params["channel"] == CHANNEL
    assert "2/10 going" in texts(emcee.fake.messages[card_ts])
    assert emcee.adapter.connected
    assert [call.token for call in emcee.fake.calls_to("auth.test")][0] == "xoxb-emcee-test"


async def test_every_member_command_acks_with_blocks(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    await emcee.organizer(f'/emcee agenda add 18:30 "Welcome" --event {SLUG}')

    events = await emcee.command("/events")
    agenda = await emcee.command("/agenda", SLUG)
    remind = await emcee.command("/emcee", f"remind on {SLUG}")
    help_ = await emcee.command("/emcee", "help")

    assert {a.status for a in (events, agenda, remind, help_)} == {200}
    buttons = [b for b in events.body["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in buttons[0]["elements"]] == ["rsvp:going", "rsvp:maybe", "rsvp:no"]
    assert {e["value"] for e in buttons[0]["elements"]} == {SLUG}
    assert agenda.body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🗓 Agenda — PyData June", "emoji": True},
    }
    assert "<!date^" in texts(agenda.body) and "Welcome" in texts(agenda.body)
    # Remind needs an RSVP first: refused, to the sender only, with the usage line.
    assert remind.body["response_type"] == "ephemeral" and "RSVP going" in remind.body["text"]
    assert "/rsvp [event]" in texts(help_.body) and help_.body["response_type"] == "ephemeral"


async def test_bad_input_is_refused_to_the_sender_with_usage_and_writes_nothing(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    before = await snapshot(emcee.app.db)

    ack = await emcee.command("/rsvp", f"{SLUG} sideways")
    unknown = await emcee.command("/emcee", "dance")

    assert ack.status == 200 and ack.body["response_type"] == "ephemeral"
    assert "unexpected 'sideways'" in ack.body["text"]
    assert "Usage: `/rsvp [event] [going|maybe|no] [+N]`" in texts(ack.body)
    assert unknown.body["response_type"] == "ephemeral" and "'dance'" in unknown.body["text"]
    assert await snapshot(emcee.app.db) == before
    assert len(emcee.fake.calls_to("chat.postMessage")) == 2  # the card and the agenda, nothing since


async def test_organizer_commands_refuse_members_and_serve_organizers(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    before = await snapshot(emcee.app.db)

    refused = await emcee.command("/emcee", f"event cancel {SLUG}", user=BOB)
    assert refused.body["response_type"] == "ephemeral" and "Only organizers" in refused.body["text"]
    assert await snapshot(emcee.app.db) == before

    # Slack turns typed quotes into curly ones; the parser takes both.
    line = f"agenda add 18:30 \u201cLightning talks\u201d --event {SLUG}"
    added = await emcee.command("/emcee", line, user=(ORGANIZER.user_id, "olga"))
    assert added.status == 200 and "Lightning talks" in texts(added.body)


async def test_organizer_text_is_unescaped_on_the_way_in_and_escaped_on_the_way_out(emcee: SlackEmcee) -> None:
    await emcee.publish_event()

    # Slack sends &, < and > in command text as entities.
    ack = await emcee.command("/emcee", f"announce {SLUG} Pizza &amp; talks &lt;3", user=(ORGANIZER.user_id, "olga"))
    await emcee.settle()

    assert ack.status == 200
    notices = [m for m in emcee.fake.messages.values() if "Pizza" in m["text"]]
    assert len(notices) == 1
    assert notices[0]["blocks"][0]["text"]["text"] == "Pizza &amp; talks &lt;3"


async def test_a_slow_engine_gets_working_on_it_then_the_reply_by_response_url(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    emcee.app.engine.acks.wait = 0  # the engine cannot answer within the wait: the ack goes first

    ack = await emcee.command("/rsvp", f"{SLUG} maybe")
    await emcee.settle()
    await emcee.fake.wait_until(lambda: emcee.fake.responses)  # the reply follows the ack

    assert ack.status == 200
    assert ack.body == {"text": WORKING, "response_type": "ephemeral"}
    [response] = emcee.fake.responses
    assert response.name == "cmd"
    assert response.body["response_type"] == "ephemeral"
    assert response.body["text"] == "Noted: maybe for PyData June."


async def test_attendee_csv_goes_to_the_organizers_dm(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    await emcee.command("/rsvp", SLUG)

    ack = await emcee.command("/emcee", f"attendees {SLUG}", user=(ORGANIZER.user_id, "olga"))
    await emcee.fake.wait_until(lambda: emcee.fake.calls_to("files.completeUploadExternal"))

    assert ack.status == 200 and ack.body["response_type"] == "ephemeral"
    assert "alice" in texts(ack.body) and "pydata-june-attendees.csv comes to you in a direct message" in texts(
        ack.body
    )
    [opened] = emcee.fake.calls_to("conversations.open")
    assert opened.params["users"] == ORGANIZER.user_id
    [upload] = emcee.fake.uploads.values()
    assert upload.filename == "pydata-june-attendees.csv" and upload.channel and upload.channel.startswith("D")
    assert upload.content.decode().splitlines()[0].startswith("name,platform,user_id")
    assert "alice,slack,U0ALICE001,going" in upload.content.decode()


async def test_a_bad_signature_gets_401_and_changes_nothing(emcee: SlackEmcee) -> None:
    await emcee.publish_event()
    before = await snapshot(emcee.app.db)
    calls = len(emcee.fake.calls)
    body = slash_command_body(emcee.command_fields("/rsvp", SLUG))

    forged = await emcee.post(body, secret="not-the-signing-secret")
    unsigned_click = await emcee.post(body + "&text=no", secret="another")
    await emcee.settle()

    assert (forged.status, unsigned_click.status) == (401, 401)
    assert await snapshot(emcee.app.db) == before
    assert len(emcee.fake.calls) == calls and emcee.fake.responses == []


async def test_a_burst_is_acked_before_the_queued_work_and_everyone_gets_one_answer(emcee: SlackEmcee) -> None:
    await emcee.publish_event(capacity=5)
    members = [(f"U0BURST{n:03d}", f"member{n}") for n in range(20)]

    acks = await asyncio.gather(*(emcee.command("/rsvp", SLUG, user=member) for member in members))
    deferred = [ack for ack in acks if ack.body["text"] == WORKING]
    await emcee.fake.wait_until(lambda: len(emcee.fake.responses) == len(deferred))
    await emcee.settle()

    assert {ack.status for ack in acks} == {200}
    assert deferred  # with others in flight, the ack did not wait for the engine
    answers = [ack.body["text"] for ack in acks if ack not in deferred] + [r.body["text"] for r in emcee.fake.responses]
    assert len(answers) == 20
    assert sum("You're going" in text for text in answers) == 5
    assert sum("waitlist" in text for text in answers) == 15
    samples = emcee.app.metrics.registry.get_sample_value("emcee_ack_latency_seconds_count", {"platform": "slack"})
    assert samples == 20
