"""A local fake of Slack's Web API and Socket Mode, for tests that drive the real slack_sdk and slack_bolt.

Point a client at it with ``AsyncWebClient(token=..., base_url=fake.api_base_url)``. A Socket Mode
client using such a web client gets the fake's websocket from ``apps.connections.open``. The payload
helpers build HTTP-mode requests (form bodies and signatures) the way Slack sends them to an app.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSCloseCode, WSMsgType, web

from fakes.trips import Trips

PAYLOADS_DIR = Path(__file__).resolve().parent.parent / "payloads" / "slack"

# The fake workspace; the recorded payloads under PAYLOADS_DIR use the same ids.
TEAM_ID = "T0EMCEE01"
TEAM_DOMAIN = "emcee-test"
APP_ID = "A0EMCEEAPP"
BOT_USER_ID = "U0EMCEEBOT"
BOT_ID = "B0EMCEEBOT"

_FIRST_TS_MICROS = 1_700_000_000_000_100  # the first ts handed out: "1700000000.000100"

Answer = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One Web API call as received: query, form and JSON fields merged; the token from any of them."""

    method: str
    params: dict[str, Any]
    token: str | None


@dataclass(frozen=True)
class ResponseUrlPost:
    """One JSON body that the app POSTed to a response_url made by `FakeSlack.response_url`."""

    name: str
    body: dict[str, Any]


@dataclass
class Upload:
    """One file uploaded through files.getUploadURLExternal, its upload URL and files.completeUploadExternal."""

    file_id: str
    filename: str
    content: bytes = b""
    title: str = ""
    channel: str | None = None  # set once completed and shared
    initial_comment: str = ""


@dataclass(frozen=True)
class _Fault:
    error: str
    status: int
    retry_after: int | None = None


class FakeSlack:
    """Slack's Web API, response_urls, file uploads and Socket Mode, served on 127.0.0.1 on a free port.

    Use as ``async with FakeSlack() as fake:``. Bolt's ``AsyncSocketModeHandler`` calls
    ``apps.connections.open`` through ``app.client``, so an ``AsyncApp(client=AsyncWebClient(...,
    base_url=fake.api_base_url))`` reaches the fake's websocket with no other setting. Close Socket
    Mode clients before leaving the block, or they will try to reconnect to a server that is gone.
    """

    def __init__(self, port: int = 0, *, real_ts: bool = False) -> None:
        """`real_ts`: hand out each ts from the system clock, as Slack does (so that conversations.history's
        `oldest` means a moment); by default a fixed sequence from "1700000000.000100", as recorded payloads use."""
        self.calls: list[Call] = []
        self.responses: list[ResponseUrlPost] = []
        # Channel messages by ts, as last posted or updated; each also carries its "channel".
        self.messages: dict[str, dict[str, Any]] = {}
        # Files by id, from files.getUploadURLExternal; `content` arrives at the upload URL.
        self.uploads: dict[str, Upload] = {}
        # Channels that conversations.info knows, by id: whether the bot is a member.
        self.channels: dict[str, bool] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self.trips: Trips[Call] = Trips()  # hooks on the Web API calls carried out, e.g. to crash the app mid-send
        self._slow_channels: dict[str, tuple[float, int]] = {}  # channel: (rate limited until, Retry-After)
        self._dm_channels: dict[str, str] = {}
        self._ts = itertools.count(_FIRST_TS_MICROS, 100)
        self._real_ts = real_ts
        self._last_micros = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()
        self._activity = asyncio.Event()  # set on every request, for wait_until
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._methods: dict[str, Callable[[dict[str, Any], str], Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "apps.connections.open": self._apps_connections_open,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }
        app = web.Application()
        app.router.add_get("/api/{method}", self._web_api)
        app.router.add_post("/api/{method}", self._web_api)
        app.router.add_post("/respond/{name}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        self._listen = port  # 0: a free port; a given one stands for Slack coming back where it was expected
        self._port: int | None = None

    async def __aenter__(self) -> FakeSlack:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._listen).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.trips.clear()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        """The fake's root, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._port is None:
            raise RuntimeError("FakeSlack is not started; use `async with FakeSlack() as fake`")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base_url(self) -> str:
        """What slack_sdk takes as ``base_url``: ``http://127.0.0.1:PORT/api/``."""
        return f"{self.url}/api/"

    @property
    def socket_url(self) -> str:
        """The Socket Mode websocket URL that ``apps.connections.open`` hands out."""
        return f"ws://{self.url.removeprefix('http://')}/socket"

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls to one Web API method, in order (failed ones included)."""
        return [call for call in self.calls if call.method == method]

    def dm_channel(self, user_id: str) -> str | None:
        """The DM channel that conversations.open gave for a member, None before it was opened."""
        return self._dm_channels.get(user_id)

    def fail_next(self, method: str, error: str = "channel_not_found", times: int = 1) -> None:
        """Answer the next `times` calls to `method` with HTTP 200 and ``{"ok": false, "error": error}``."""
        self._faults.setdefault(method, deque()).extend([_Fault(error, 200)] * times)

    def rate_limit_next(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """Answer the next `times` calls to `method` with HTTP 429, ``Retry-After`` and ``ratelimited``."""
        self._faults.setdefault(method, deque()).extend([_Fault("ratelimited", 429, retry_after)] * times)

    def rate_limit_channel(self, channel: str, seconds: float, retry_after: int) -> None:
        """Answer every chat.postMessage to `channel` for the next `seconds` with HTTP 429 and ``ratelimited``.

        Slack limits posting per channel, so the other channels go on posting meanwhile.
        """
        self._slow_channels[channel] = (time.monotonic() + seconds, retry_after)

    def response_url(self, name: str) -> str:
        """A response_url on the fake; what is POSTed to it lands in `responses` under `name`."""
        return f"{self.url}/respond/{name}"

    async def wait_socket_connected(self, timeout: float = 5) -> None:
        """Wait until a Socket Mode client is connected (and has been sent ``hello``)."""
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def wait_until(self, condition: Callable[[], object], timeout: float = 5) -> None:
        """Wait until `condition()` holds, checking after each request the fake receives (no polling)."""
        async with asyncio.timeout(timeout):
            while True:
                self._activity.clear()
                if condition():
                    return
                await self._activity.wait()

    async def push(self, envelope_type: str, payload: dict[str, Any], timeout: float = 5) -> dict[str, Any]:
        """Send a Socket Mode envelope to one open connection, chosen at random, and return its ack.

        Slack sends each envelope to one of an app's connections, any of them: "the Slack API server will send
        each event to only 1 random connection" (a maintainer, https://github.com/slackapi/bolt-python/issues/448)
        and "Slack's API server delivers to any of the active connections"
        (https://github.com/slackapi/bolt-python/issues/1071). `envelope_type` is Slack's: ``slash_commands``,
        ``interactive`` or ``events_api``. The ack is the client's JSON message with the same ``envelope_id``; it
        may carry a ``payload``.
        """
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
        }
        if envelope_type == "events_api":
            envelope |= {"retry_attempt": 0, "retry_reason": ""}
        ack: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = ack
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
                await random.choice(self._sockets).send_json(envelope)
                return await ack
        finally:
            del self._acks[envelope_id]

    # --- HTTP handlers -------------------------------------------------------------------------

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            params.update(await request.post())
        token = params.pop("token", None) or _bearer_token(request.headers.get("Authorization", ""))
        call = Call(method, params, token)
        self.calls.append(call)
        self._activity.set()

        faults = self._faults.get(method)
        fault = self._channel_rate_limit(method, params) or (faults.popleft() if faults else None)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return _json({"ok": False, "error": fault.error}, status=fault.status, headers=headers)
        answer = self._methods.get(method)
        if answer is None:
            return _json({"ok": False, "error": "unknown_method"})
        if token is None:
            return _json({"ok": False, "error": "not_authed"})
        if not await self.trips.admit(call):
            return _json({"ok": False, "error": "fatal_error"}, status=500)
        body = answer(params, token)
        await self.trips.passed(call)
        return _json(body)

    def _channel_rate_limit(self, method: str, params: dict[str, Any]) -> _Fault | None:
        until, retry_after = self._slow_channels.get(params.get("channel", ""), (0.0, 0))
        if method != "chat.postMessage" or time.monotonic() >= until:
            return None
        return _Fault("ratelimited", 429, retry_after)

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(ResponseUrlPost(request.match_info["name"], await request.json()))
        self._activity.set()
        return web.Response(text="ok")

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="unknown upload")
        upload.content = await request.read()
        self._activity.set()
        return web.Response(text=f"OK - {len(upload.content)}")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        hello = load_payload("socket_hello")
        hello["num_connections"] = len(self._sockets)
        await ws.send_json(hello)
        self._connected.set()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(message.data)
                waiter = self._acks.get(ack.get("envelope_id"))
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._connected.clear()
        return ws

    # --- Web API methods -----------------------------------------------------------------------

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_micros + 1) if self._real_ts else next(self._ts)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _auth_test(self, params: dict[str, Any], token: str) -> Answer:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Emcee Test",
            "user": "emcee",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any], token: str) -> Answer:
        channel = params.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        content = _message_content(params)
        if not content:
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "team": TEAM_ID, "ts": ts, "text": ""}
        message |= content
        if metadata := params.get("metadata"):
            message["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata
        self.messages[ts] = {"channel": channel, **message}
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, params: dict[str, Any], token: str) -> Answer:
        channel, ts = params.get("channel"), params.get("ts")
        stored = self.messages.get(ts or "")
        if stored is None or stored["channel"] != channel:
            return {"ok": False, "error": "message_not_found"}
        stored |= _message_content(params)
        message = {k: v for k, v in stored.items() if k != "channel"}
        return {"ok": True, "channel": channel, "ts": ts, "text": stored["text"], "message": message}

    def _chat_post_ephemeral(self, params: dict[str, Any], token: str) -> Answer:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        if not _message_content(params):
            return {"ok": False, "error": "no_text"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _conversations_open(self, params: dict[str, Any], token: str) -> Answer:
        users = params.get("users")
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        already_open = users in self._dm_channels
        if not already_open:
            self._dm_channels[users] = f"D{len(self._dm_channels) + 1:08d}"
        return {
            "ok": True,
            "no_op": already_open,
            "already_open": already_open,
            "channel": {"id": self._dm_channels[users]},
        }

    def _conversations_info(self, params: dict[str, Any], token: str) -> Answer:
        """The documented shape, trimmed to what Emcee reads: the channel's id and is_member."""
        channel = params.get("channel", "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": channel, "is_channel": True, "is_member": self.channels[channel]}}

    def _conversations_history(self, params: dict[str, Any], token: str) -> Answer:
        """The channel's messages after `oldest` (a ts string), newest first, `limit` a page, paged by cursor.
        Messages carry their `metadata` only with `include_all_metadata`, as Slack's do."""
        channel = params.get("channel", "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        oldest, limit = float(params.get("oldest") or 0), int(params.get("limit") or 100)
        start = int(params.get("cursor") or 0)
        with_metadata = str(params.get("include_all_metadata")).lower() in ("true", "1")
        found = sorted(
            (m for m in self.messages.values() if m["channel"] == channel and float(m["ts"]) > oldest),
            key=lambda m: float(m["ts"]),
            reverse=True,
        )
        page = [
            {k: v for k, v in m.items() if k != "channel" and (with_metadata or k != "metadata")}
            for m in found[start : start + limit]
        ]
        more = start + limit < len(found)
        answer: Answer = {"ok": True, "messages": page, "has_more": more, "pin_count": 0}
        answer["response_metadata"] = {"next_cursor": str(start + limit) if more else ""}
        return answer

    def _files_get_upload_url_external(self, params: dict[str, Any], token: str) -> Answer:
        if not params.get("filename") or not params.get("length"):
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self.uploads) + 1:08d}"
        self.uploads[file_id] = Upload(file_id, params["filename"])
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: dict[str, Any], token: str) -> Answer:
        files = params.get("files")
        files = json.loads(files) if isinstance(files, str) else files or []
        uploads = [self.uploads.get(item.get("id", "")) for item in files]
        if not files or None in uploads:
            return {"ok": False, "error": "file_not_found"}
        shared = []
        for item, upload in zip(files, uploads, strict=True):
            assert upload is not None
            upload.title = item.get("title") or upload.filename
            upload.channel = params.get("channel_id") or params.get("channels")
            upload.initial_comment = params.get("initial_comment") or ""
            shared.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
        return {"ok": True, "files": shared}

    def _apps_connections_open(self, params: dict[str, Any], token: str) -> Answer:
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_url}


def _json(body: Answer, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, headers=headers, content_type="application/json")


def _bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _message_content(params: dict[str, Any]) -> dict[str, Any]:
    """The content fields of a chat.* call; form bodies carry blocks and attachments as JSON text."""
    content = {key: params[key] for key in ("text", "blocks", "attachments", "thread_ts") if params.get(key)}
    for key in ("blocks", "attachments"):
        if isinstance(content.get(key), str):
            content[key] = json.loads(content[key])
    return content


# --- Building HTTP-mode requests the way Slack does ------------------------------------------


def load_payload(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/payloads/slack/<name>.json``."""
    payload: dict[str, Any] = json.loads((PAYLOADS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return payload


def new_trigger_id() -> str:
    """A trigger_id in Slack's shape, new for each member action as Slack makes one."""
    return f"{int(time.time() * 1000)}.1700000000.{uuid.uuid4().hex}"


def signed_headers(body: str, signing_secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request-signing headers for `body`: HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def slash_command_body(fields: dict[str, str], **overrides: str) -> str:
    """The form body of a slash command request, e.g. from ``load_payload("slash_command_rsvp")``."""
    return urlencode({**fields, **overrides})


def block_actions_body(payload: dict[str, Any]) -> str:
    """The form body of an interactive request: ``payload=<JSON>``."""
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
