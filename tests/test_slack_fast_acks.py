"""Slack HTTP mode at speed: an answer in the ack leaves as soon as the engine has it, and answers after the ack
go out through the adapter's one session."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from fakes.slack import FakeSlack
from slack_harness import SlackEmcee, running_emcee

from adapters.slack.adapter import WORKING
from bot.invocation import Request
from bot.messages import Reply

BOLT_POLL = 0.01  # without process_before_response, Bolt looks for the ack every 10 ms, after a first sleep


class ConnectionsSlack(FakeSlack):
    """Notes the client's port of every POST to a response_url: one port per connection."""

    def __init__(self) -> None:
        super().__init__()
        self.response_ports: list[int] = []

    async def _response_url(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.response_ports.append(peer[1] if peer else -1)
        return await super()._response_url(request)


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[SlackEmcee]:
    async with ConnectionsSlack() as fake, running_emcee(tmp_path, fake) as running:
        yield running


async def test_a_quick_answer_rides_in_the_ack_without_waiting_for_bolts_poll(emcee: SlackEmcee) -> None:
    async def instant(request: Request) -> Reply:
        return Reply("Here you are.")

    emcee.app.engine.handle = instant  # type: ignore[method-assign]
    timings = []
    for _ in range(5):
        started = time.monotonic()
        ack = await emcee.command("/events")
        timings.append(time.monotonic() - started)
        assert ack.status == 200
        assert ack.body["text"] == "Here you are." and ack.body["response_type"] == "ephemeral"

    assert min(timings) < BOLT_POLL, timings
    assert emcee.fake.responses == []


async def test_answers_after_the_ack_reuse_one_connection(emcee: SlackEmcee) -> None:
    fake = emcee.fake
    assert isinstance(fake, ConnectionsSlack)
    emcee.app.engine.acks.wait = 0  # every answer follows its ack, on the response_url

    for count in range(1, 4):
        ack = await emcee.command("/emcee", "help")
        assert ack.body["text"] == WORKING
        await fake.wait_until(lambda count=count: len(fake.responses) == count)  # type: ignore[misc]

    assert all("/rsvp" in response.body["text"] for response in fake.responses)
    assert len(set(fake.response_ports)) == 1, fake.response_ports
