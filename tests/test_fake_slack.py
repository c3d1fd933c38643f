"""Self-tests: the Slack fake works with the real slack_sdk clients and a real slack_bolt AsyncApp."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from fakes.slack import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    Call,
    FakeSlack,
    ResponseUrlPost,
    block_actions_body,
    load_payload,
    signed_headers,
    slash_command_body,
)
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


def web_client(fake: FakeSlack, **kwargs: Any) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.api_base_url, **kwargs)


async def test_web_client_posts_updates_and_opens_dm(fake: FakeSlack) -> None:
    client = web_client(fake)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*PyData June*"}}]

    auth = await client.auth_test()
    posted = await client.chat_postMessage(channel="C0MEETUPS1", text="PyData June", blocks=blocks)
    second = await client.chat_postMessage(channel="C0MEETUPS1", text="again")
    updated = await client.chat_update(channel="C0MEETUPS1", ts=posted["ts"], text="PyData June (full)")
    dm = await client.conversations_open(users="U0ALICE001")
    dm_again = await client.conversations_open(users=["U0ALICE001"])
    ephemeral = await client.chat_postEphemeral(channel="C0MEETUPS1", user="U0ALICE001", text="only you")

    assert auth["user_id"] == BOT_USER_ID
    assert posted["ts"] == "1700000000.000100"
    assert float(second["ts"]) > float(posted["ts"])
    assert posted["message"]["blocks"] == blocks
    assert updated["ts"] == posted["ts"] and updated["text"] == "PyData June (full)"
    assert fake.messages[posted["ts"]]["text"] == "PyData June (full)"
    assert fake.messages[posted["ts"]]["blocks"] == blocks
    assert dm["channel"]["id"].startswith("D") and dm_again["channel"]["id"] == dm["channel"]["id"]
    assert ephemeral["message_ts"]
    assert [call.method for call in fake.calls] == [
        "auth.test",
        "chat.postMessage",
        "chat.postMessage",
        "chat.update",
        "conversations.open",
        "conversations.open",
        "chat.postEphemeral",
    ]
    assert {call.token for call in fake.calls} == {"xoxb-test"}
    # chat.* goes as a JSON body (blocks stay a list); conversations.open as query parameters.
    assert fake.calls_to("chat.postMessage")[0].params["blocks"] == blocks
    assert fake.calls_to("conversations.open")[1].params == {"users": "U0ALICE001"}


async def test_form_bodies_unknown_methods_and_missing_tokens(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        form = {"token": "xoxb-form", "channel": "C1", "text": "hi", "blocks": '[{"type": "divider"}]'}
        async with session.post(fake.api_base_url + "chat.postMessage", data=form) as response:
            assert response.content_type == "application/json"
            posted = await response.json()
        async with session.post(fake.api_base_url + "chat.postMessage", data={"channel": "C1"}) as response:
            unauthenticated = await response.json()

    with pytest.raises(SlackApiError) as unknown:
        await web_client(fake).api_call("meetups.teleport")

    assert posted["ok"] and posted["message"]["blocks"] == [{"type": "divider"}]
    assert fake.calls[0] == Call("chat.postMessage", {k: v for k, v in form.items() if k != "token"}, "xoxb-form")
    assert unauthenticated == {"ok": False, "error": "not_authed"}
    assert unknown.value.response["error"] == "unknown_method"


async def test_fail_next_answers_the_given_error_then_recovers(fake: FakeSlack) -> None:
    client = web_client(fake)
    fake.fail_next("chat.postMessage", "is_archived", times=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as failed:
            await client.chat_postMessage(channel="C1", text="hi")
        assert failed.value.response.status_code == 200
        assert failed.value.response["error"] == "is_archived"
    assert (await client.chat_postMessage(channel="C1", text="hi"))["ok"]
    assert len(fake.calls_to("chat.postMessage")) == 3 and len(fake.messages) == 1


async def test_rate_limit_without_retry_handler_exposes_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit_next("chat.postMessage", retry_after=30)

    with pytest.raises(SlackApiError) as limited:
        await web_client(fake).chat_postMessage(channel="C1", text="hi")

    assert limited.value.response.status_code == 429
    assert limited.value.response["error"] == "ratelimited"
    assert limited.value.response.headers["Retry-After"] == "30"


async def test_rate_limit_is_retried_once_by_the_sdk_handler(fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    # Record the handler's wait instead of sleeping it, and drop its random jitter.
    monkeypatch.setattr(builtin_async_handlers, "asyncio", SimpleNamespace(sleep=no_wait))
    monkeypatch.setattr(builtin_async_handlers, "random", SimpleNamespace(random=lambda: 0.0))
    client = web_client(fake, retry_handlers=[AsyncRateLimitErrorRetryHandler()])
    fake.rate_limit_next("chat.postMessage", retry_after=30)

    posted = await client.chat_postMessage(channel="C1", text="hi")

    assert posted["ok"]
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert list(fake.messages) == [posted["ts"]]
    # slack_sdk 3.48 wraps each header value in a list before the handler reads `[0]`, so the whole
    # Retry-After is honoured.
    assert waits == [30.0]

    # By default the handler retries only once.
    fake.rate_limit_next("chat.postMessage", retry_after=30, times=2)
    with pytest.raises(SlackApiError) as limited:
        await client.chat_postMessage(channel="C1", text="hi")
    assert limited.value.response["error"] == "ratelimited"
    assert len(fake.calls_to("chat.postMessage")) == 4 and len(fake.messages) == 1


async def test_response_url_records_posted_json(fake: FakeSlack) -> None:
    webhook = AsyncWebhookClient(fake.response_url("rsvp"))

    sent = await webhook.send(text="You're going", response_type="ephemeral")

    assert (sent.status_code, sent.body) == (200, "ok")
    assert fake.responses == [ResponseUrlPost("rsvp", {"text": "You're going", "response_type": "ephemeral"})]


def bolt_request(body: str, signing_secret: str) -> AsyncBoltRequest:
    """An HTTP-mode request as Bolt receives it, signed with `signing_secret`."""
    headers: dict[str, str | Sequence[str]] = dict(signed_headers(body, signing_secret))
    return AsyncBoltRequest(body=body, headers=headers)


def test_signed_headers_match_slack_sdk_verifier() -> None:
    body = slash_command_body(load_payload("slash_command_rsvp"), text="pydata-june maybe")
    headers = signed_headers(body, SIGNING_SECRET)
    verifier = SignatureVerifier(SIGNING_SECRET)

    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + "&x=1", headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body, signed_headers(body, SIGNING_SECRET, timestamp=1_600_000_000))
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


async def test_bolt_http_mode_handles_signed_slash_command_and_button(fake: FakeSlack) -> None:
    app = AsyncApp(signing_secret=SIGNING_SECRET, client=web_client(fake), process_before_response=True)
    seen: list[str] = []

    @app.command("/rsvp")
    async def rsvp_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.append(command["text"])
        await respond(f"RSVP noted: {command['text']}")

    @app.action("rsvp:going")
    async def rsvp_button(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.append(body["actions"][0]["value"])
        await client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text="13 going")

    announced = await web_client(fake).chat_postMessage(channel="C0MEETUPS1", text="12 going")
    command = slash_command_body(load_payload("slash_command_rsvp"), response_url=fake.response_url("cmd"))
    click = block_actions_body(load_payload("block_actions_rsvp"))

    command_result = await app.async_dispatch(bolt_request(command, SIGNING_SECRET))
    click_result = await app.async_dispatch(bolt_request(click, SIGNING_SECRET))
    forged_result = await app.async_dispatch(bolt_request(click, "wrong"))

    assert (command_result.status, click_result.status, forged_result.status) == (200, 200, 401)
    assert seen == ["pydata-june going +1", "pydata-june"]
    assert fake.responses == [ResponseUrlPost("cmd", {"text": "RSVP noted: pydata-june going +1"})]
    # The recorded button sits on the first message the fake posts, so the update finds it.
    assert fake.messages[announced["ts"]]["text"] == "13 going"
    assert fake.calls_to("auth.test")


def test_recorded_payloads_use_the_fake_workspace() -> None:
    command = load_payload("slash_command_rsvp")
    click = load_payload("block_actions_rsvp")

    assert (command["team_id"], command["api_app_id"], command["command"]) == (TEAM_ID, APP_ID, "/rsvp")
    assert (click["team"]["id"], click["api_app_id"], click["message"]["bot_id"]) == (TEAM_ID, APP_ID, BOT_ID)
    # The button sits on the first message that a fresh fake posts.
    assert click["container"]["message_ts"] == click["message"]["ts"] == "1700000000.000100"
    assert load_payload("socket_hello")["connection_info"]["app_id"] == APP_ID


async def test_raw_socket_client_gets_hello_and_documented_envelopes(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.socket_url) as ws:
        hello = await ws.receive_json(timeout=1)
        await fake.wait_socket_connected(timeout=1)
        for envelope_type, name, recorded in [
            ("slash_commands", "slash_command_rsvp", "socket_slash_commands_envelope"),
            ("interactive", "block_actions_rsvp", "socket_interactive_envelope"),
        ]:
            push = asyncio.create_task(fake.push(envelope_type, load_payload(name), timeout=1))
            envelope = await ws.receive_json(timeout=1)
            await ws.send_str(json.dumps({"envelope_id": envelope["envelope_id"], "payload": {"text": "ok"}}))

            assert await push == {"envelope_id": envelope["envelope_id"], "payload": {"text": "ok"}}
            assert envelope == {**load_payload(recorded), "envelope_id": envelope["envelope_id"]}

    assert hello == load_payload("socket_hello")


async def test_bolt_socket_mode_handler_connects_and_acks(fake: FakeSlack) -> None:
    app = AsyncApp(client=web_client(fake))

    @app.command("/rsvp")
    async def rsvp_command(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"RSVP noted: {command['text']}")

    @app.action("rsvp:going")
    async def rsvp_button(ack: Any) -> None:
        await ack()

    handler = AsyncSocketModeHandler(app, app_token="xapp-test")
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
        await fake.wait_socket_connected(timeout=1)
        command_ack = await fake.push("slash_commands", load_payload("slash_command_rsvp"), timeout=1)
        click_ack = await fake.push("interactive", load_payload("block_actions_rsvp"), timeout=1)
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated

    assert command_ack["payload"] == {"text": "RSVP noted: pydata-june going +1"}
    assert set(click_ack) == {"envelope_id"}
    assert command_ack["envelope_id"] != click_ack["envelope_id"]
    assert [call.token for call in fake.calls_to("apps.connections.open")] == ["xapp-test"]
