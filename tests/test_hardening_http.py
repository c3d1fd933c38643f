"""Hardening: what strangers can send to the one HTTP server: bad Slack requests and malformed HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from fakes.slack import FakeSlack, block_actions_body, signed_headers, slash_command_body
from slack_harness import SIGNING_SECRET, SlackEmcee, running_emcee

from bot.config import HttpSettings
from bot.http import HttpServer


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[SlackEmcee]:
    async with FakeSlack() as fake, running_emcee(tmp_path, fake) as running:
        yield running


async def post(emcee: SlackEmcee, body: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as session, session.post(emcee.events_url, data=body, headers=headers) as answer:
        text = await answer.text()
        assert "Traceback" not in text
        return answer.status


def assert_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    records = [r for r in caplog.records if r.name.startswith(("adapters", "bot", "aiohttp", "slack"))]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()


# -- item 5: every bad Slack request gets a 4xx and one log line --------------------------------------


@pytest.mark.parametrize("stamp", ["abc", "", "1e9", "99999999999999999999999"])
async def test_a_bad_slack_timestamp_is_a_4xx_without_a_traceback(
    emcee: SlackEmcee, caplog: pytest.LogCaptureFixture, stamp: str
) -> None:
    """Hardening item 5: an unsigned request with a timestamp that is not a number answers 4xx, logged once."""
    caplog.set_level(logging.INFO)
    body = slash_command_body(emcee.command_fields("/rsvp"))
    headers = signed_headers(body, SIGNING_SECRET) | {"X-Slack-Request-Timestamp": stamp}
    caplog.clear()

    status = await post(emcee, body, headers)

    assert 400 <= status < 500
    assert_one_short_line(caplog)


def _no_user(emcee: SlackEmcee) -> str:
    fields = emcee.command_fields("/rsvp")
    del fields["user_id"]
    return slash_command_body(fields)


def _no_command(emcee: SlackEmcee) -> str:
    fields = emcee.command_fields("/rsvp")
    del fields["command"]
    return slash_command_body(fields)


def _bad_json(emcee: SlackEmcee) -> str:
    return "payload=%7Bnot-json"


def _json_list(emcee: SlackEmcee) -> str:
    return "payload=%5B1%5D"


def _click_without_user(emcee: SlackEmcee) -> str:
    payload = json.loads(json.dumps(emcee.click_payload("going")))
    del payload["user"]
    return block_actions_body(payload)


@pytest.mark.parametrize("build", [_no_user, _no_command, _bad_json, _json_list, _click_without_user])
async def test_a_malformed_but_signed_slack_body_is_a_4xx_without_a_traceback(
    emcee: SlackEmcee, caplog: pytest.LogCaptureFixture, build: object
) -> None:
    """Hardening item 5: a correctly signed body that lacks what Slack always sends answers 4xx, logged once."""
    await emcee.publish_event()
    await emcee.settle()
    body = build(emcee)  # type: ignore[operator]
    caplog.set_level(logging.INFO)
    caplog.clear()

    status = await post(emcee, body, signed_headers(body, SIGNING_SECRET))
    await emcee.settle()

    assert 400 <= status < 500
    assert_one_short_line(caplog)


@pytest.mark.parametrize(
    "body",
    [b'{"team": 5}', b'{"user": 5}', b'{"enterprise": 5}', b'{"authorizations": [5]}', b'{"token": "\xff\xfe"}'],
)
async def test_a_body_whose_fields_bolt_cannot_read_is_a_4xx_without_a_traceback(
    emcee: SlackEmcee, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    """Hardening item 5: JSON whose team, user or enterprise is not what Slack sends, or a body that is not
    UTF-8, answers 4xx, logged once: Bolt fails on it as it reads the request, before the signature."""
    headers = signed_headers("", SIGNING_SECRET) | {"Content-Type": "application/json"}
    caplog.set_level(logging.INFO)
    caplog.clear()

    async with aiohttp.ClientSession() as session, session.post(emcee.events_url, data=body, headers=headers) as answer:
        assert 400 <= answer.status < 500
        assert "Traceback" not in await answer.text()
    assert_one_short_line(caplog)


async def test_signature_verification_stays_on(emcee: SlackEmcee) -> None:
    """Hardening item 5: a well-formed request signed with the wrong secret is refused; the right one works."""
    body = slash_command_body(emcee.command_fields("/events"))

    assert await post(emcee, body, signed_headers(body, "not-the-secret")) == 401
    assert await post(emcee, body, signed_headers(body, SIGNING_SECRET)) == 200


# -- item 6: a malformed HTTP request is one short line, not a traceback -----------------------------


async def _healthy() -> dict[str, str]:
    return {}


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    http = HttpServer(HttpSettings(host="127.0.0.1", port=0), _healthy)
    await http.start()
    yield http
    await http.stop()


BAD_REQUESTS = [
    b"GARBAGE\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /healthz HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \x00\x01\r\n\r\n",
]


async def send_raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=3)
    writer.close()
    await writer.wait_closed()
    return answer


@pytest.mark.parametrize("request_bytes", BAD_REQUESTS)
async def test_a_malformed_http_request_logs_one_short_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    """Hardening item 6: a garbage request line or bad headers over a raw socket: a 400, and at most one
    short line (INFO or below), never an ERROR traceback."""
    caplog.set_level(logging.DEBUG)
    assert server.port is not None

    answer = await send_raw(server.port, request_bytes)

    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    assert b"Traceback" not in answer
    logged = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(logged) <= 1, [r.getMessage() for r in logged]
    assert all(r.levelno <= logging.INFO and r.exc_info is None and "\n" not in r.getMessage() for r in logged)


async def test_many_malformed_requests_log_one_line_each_at_most(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Hardening item 6: a flood of bad requests cannot flood the log with tracebacks."""
    caplog.set_level(logging.INFO)
    assert server.port is not None

    for request_bytes in BAD_REQUESTS * 4:
        await send_raw(server.port, request_bytes)

    assert len(caplog.records) <= len(BAD_REQUESTS) * 4
    assert not any(r.exc_info or r.levelno > logging.INFO for r in caplog.records)
