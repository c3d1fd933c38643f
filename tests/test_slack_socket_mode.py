"""Slack Socket Mode: the adapter connects through apps.connections.open and acks envelopes on the socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes.slack import FakeSlack, load_payload
from slack_harness import ALICE, CHANNEL, SLUG, SlackEmcee, running_emcee


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[SlackEmcee]:
    async with FakeSlack() as fake, running_emcee(tmp_path, fake, mode="socket") as running:
        await fake.wait_socket_connected(timeout=2)
        yield running


async def test_connects_with_the_app_token(emcee: SlackEmcee) -> None:
    assert [call.token for call in emcee.fake.calls_to("apps.connections.open")] == ["xapp-emcee-test"]
    assert emcee.adapter.connected
    assert (await emcee.app.health())["slack"] == "ok"
    assert emcee.app.http is not None and "/slack/events" not in {
        resource.canonical for resource in emcee.app.http.app.router.resources()
    }


async def test_slash_command_envelope_is_acked_with_the_reply(emcee: SlackEmcee) -> None:
    card_ts = await emcee.publish_event()
    command = load_payload("socket_slash_commands_envelope")["payload"]

    ack = await emcee.fake.push("slash_commands", command, timeout=3)
    await emcee.settle()

    assert ack["payload"]["response_type"] == "ephemeral"
    assert ack["payload"]["text"].startswith("✅ You're going to PyData June with 1 guest.")
    assert ack["payload"]["blocks"][0]["type"] == "section"
    assert emcee.fake.responses == []
    assert emcee.fake.calls_to("chat.update")[-1].params["ts"] == card_ts


async def test_block_actions_envelope_is_acked_then_rsvps_and_updates_the_card(emcee: SlackEmcee) -> None:
    card_ts = await emcee.publish_event()
    click = load_payload("socket_interactive_envelope")["payload"]
    click["container"]["message_ts"] = click["message"]["ts"] = card_ts
    assert click["actions"][0]["action_id"] == "rsvp:going" and click["actions"][0]["value"] == SLUG

    ack = await emcee.fake.push("interactive", click, timeout=3)
    await emcee.fake.wait_until(lambda: emcee.fake.calls_to("chat.postEphemeral"))
    await emcee.settle()

    assert set(ack) == {"envelope_id"}  # an empty ack
    [ephemeral] = emcee.fake.calls_to("chat.postEphemeral")
    assert ephemeral.params["user"] == ALICE[0] and ephemeral.params["channel"] == CHANNEL
    assert ephemeral.params["text"].startswith("✅ You're going to PyData June.")
    card = emcee.fake.messages[card_ts]
    assert any(
        "1/2 going" in element["text"] for b in card["blocks"] if b["type"] == "context" for element in b["elements"]
    )


async def test_stop_closes_the_socket(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        async with running_emcee(tmp_path, fake, mode="socket") as emcee:
            await fake.wait_socket_connected(timeout=2)
            adapter = emcee.adapter
        assert not adapter.connected
