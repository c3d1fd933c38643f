"""A local fake of Discord's REST API v10 and gateway, for tests that run a real ``discord.Client``.

Pointing discord.py at it (``patch_discord_py(fake)`` does both and restores them afterwards):

- REST and webhooks: ``discord.http.Route.BASE = fake.api_base_url``. Every route, including
  interaction callbacks and followup webhooks, is built from ``Route.BASE`` when it is created.
- Gateway: ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)``.
  ``Client.connect`` never asks ``GET /gateway/bot``; it dials ``DEFAULT_GATEWAY`` and, after READY,
  ``resume_gateway_url``. ``AutoShardedClient`` takes its URL from ``GET /gateway/bot`` instead,
  which the fake answers with ``gateway_url`` (and ``recommended_shards``) when no ``shard_count`` is given.

Sessions are routed as Discord's gateway docs say under "Sharding"
(https://discord.com/developers/docs/events/gateway#sharding): a session that sends ``shard: [shard_id,
num_shards]`` in IDENTIFY gets the events of the guilds with ``(guild_id >> 22) % num_shards == shard_id`` only
(READY lists only those guilds), and events without a ``guild_id`` (DMs) go to shard 0 alone; every session
without ``shard`` gets every event, as every session of a token does unsharded.

Give the client a small ``guild_ready_timeout`` (e.g. 0.05): discord.py fires ``on_ready`` only after
that long (2 s by default) without a further GUILD_CREATE. ``FakeDiscord.run_client`` starts a client,
waits for ``on_ready`` and closes it cleanly.

The fake's guild, users and application come from the payloads in ``PAYLOADS_DIR``; the module
constants (``GUILD_ID``, ``CHANNEL_ID``, ...) are read from them, so recorded interaction payloads and the
fake agree on every id.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import itertools
import json
import math
import re
import secrets
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import discord
import yarl
from aiohttp import BodyPartReader, WSCloseCode, WSMsgType, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict, CIMultiDictProxy

from fakes.trips import Trips

PAYLOADS_DIR = Path(__file__).resolve().parent.parent / "payloads" / "discord"
API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
HEARTBEAT_INTERVAL_MS = 41_250
EPHEMERAL = 1 << 6
LOADING = 1 << 7
IS_COMPONENTS_V2 = 1 << 15
_SESSION_START_LIMIT = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}

Json = dict[str, Any]


def load_payload(name: str) -> Json:
    """A fresh copy of ``PAYLOADS_DIR/<name>.json``."""
    payload: Json = json.loads((PAYLOADS_DIR / f"{name}.json").read_text())
    return payload


_READY = load_payload("ready")
_GUILD = load_payload("guild_create")

APPLICATION_ID = int(_READY["application"]["id"])
BOT_USER_ID = int(_READY["user"]["id"])
GUILD_ID = int(_GUILD["id"])
CHANNEL_ID = int(_GUILD["channels"][0]["id"])
ORGANIZER_ROLE_ID = next(int(role["id"]) for role in _GUILD["roles"] if role["name"] == "Organizers")
ORGANIZER_USER_ID = int(_GUILD["owner_id"])
MEMBER_USER_ID = int(load_payload("command_rsvp")["member"]["user"]["id"])
BOT_TOKEN = "MTMwMTAwMDAwMDAwMDAwMDAwMg.fake.emcee-test-token"

_increment = itertools.count()


def new_snowflake() -> int:
    """A new id in Discord's snowflake layout (milliseconds since the Discord epoch, shifted by 22)."""
    return ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_increment) & 0x3FFFFF)


def interaction_payload(name: str, **overrides: Any) -> Json:
    """Load ``<name>.json`` with a new interaction id and token, then deep-merge ``overrides`` into it.

    Dicts merge key by key; any other value (lists included) replaces the recorded one, so
    ``interaction_payload("command_rsvp", data={"name": "ping", "options": []})`` keeps the rest of ``data``.
    """
    payload = load_payload(name)
    interaction_id = new_snowflake()
    payload["id"] = str(interaction_id)
    payload["token"] = f"aW50ZXJhY3Rpb246{interaction_id}{secrets.token_urlsafe(48)}"
    return _merge(payload, overrides)


def click_payload(message: Json, custom_id: str, **overrides: Any) -> Json:
    """A MESSAGE_COMPONENT interaction for a click on ``custom_id`` in ``message`` (e.g. one the bot posted).

    discord.py ignores a click on a DynamicItem unless the interaction's message holds a component with
    that custom_id, so this refuses custom_ids that the message does not have.
    """
    component = next(
        (c for c in _walk_components(message.get("components", [])) if c.get("custom_id") == custom_id), None
    )
    if component is None:
        raise ValueError(f"message {message['id']} has no component with custom_id {custom_id!r}")
    payload = interaction_payload("button_rsvp")
    payload["data"] = {"custom_id": custom_id, "component_type": component["type"]}
    if "id" in component:
        payload["data"]["id"] = component["id"]
    payload["message"] = copy.deepcopy(message)
    payload["channel_id"] = message["channel_id"]
    payload["channel"]["id"] = message["channel_id"]
    return _merge(payload, overrides)


def _merge(base: Json, overrides: Mapping[str, Any]) -> Json:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _walk_components(components: list[Json]) -> Iterator[Json]:
    for component in components:
        yield component
        yield from _walk_components(component.get("components", []))
        if "accessory" in component:
            yield component["accessory"]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer whose Content-Type is exactly ``application/json``, the only value discord.py parses.

    ``web.json_response`` and ``web.Response(text=...)`` both append ``; charset=utf-8``.
    """
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


@dataclass(frozen=True)
class FakeFile:
    """One file part of a multipart request (``files[n]``)."""

    field: str
    filename: str
    content_type: str
    data: bytes


_BODY: web.RequestKey[Any] = web.RequestKey("body")  # the request's JSON (or payload_json) body
_FILES: web.RequestKey[tuple[FakeFile, ...]] = web.RequestKey("files")


@dataclass(frozen=True)
class Call:
    """One REST request as the fake received it, and the status it answered with."""

    method: str
    path: str  # below api_base_url, e.g. "/channels/1301000000000000200/messages"
    json: Any  # the JSON body, or payload_json of a multipart body; None without a body
    headers: CIMultiDictProxy[str]
    query: dict[str, str] = field(default_factory=dict)
    files: tuple[FakeFile, ...] = ()
    status: int = 0


@dataclass
class FakeInteraction:
    """An interaction sent through ``dispatch``, and what the bot answered to it."""

    payload: Json
    dispatched_at: float
    callback: Json | None = None  # the JSON body of the initial response
    answered_at: float | None = None  # loop time the initial response arrived (dispatched_at's clock)
    original: Json | None = None  # the message that "@original" refers to
    followups: dict[int, Json] = field(default_factory=dict)

    @property
    def response(self) -> Json:
        """The JSON body of the initial response, for a test that expects one."""
        assert self.callback is not None, "the bot has not answered this interaction"
        return self.callback

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return str(self.payload["token"])

    @property
    def user(self) -> Json:
        user: Json = self.payload["member"]["user"] if "member" in self.payload else self.payload["user"]
        return user


class DiscordApiError(Exception):
    """An error answer in Discord's shape: ``{"message", "code"}`` plus ``errors`` for form errors."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def response(self) -> web.Response:
        body: Json = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return json_response(body, status=self.status)


def _unknown(what: str, code: int) -> DiscordApiError:
    return DiscordApiError(404, code, f"Unknown {what}")


def _form_error(found: list[tuple[tuple[str | int, ...], str, str]]) -> DiscordApiError:
    errors: Json = {}
    for path, code, message in found:
        node = errors
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})
    return DiscordApiError(400, 50035, "Invalid Form Body", errors)


def _too_long(path: tuple[str | int, ...], limit: int) -> tuple[tuple[str | int, ...], str, str]:
    return path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."


_EMBED_TEXT_LIMITS = {("title",): 256, ("description",): 4096, ("footer", "text"): 2048, ("author", "name"): 256}


def _validate_message(body: Json, *, creating: bool, has_files: bool = False) -> None:
    """Raise the error Discord gives for a message body beyond its documented limits."""
    found: list[tuple[tuple[str | int, ...], str, str]] = []
    content = body.get("content") or ""
    if len(content) > 2000:
        found.append(_too_long(("content",), 2000))
    nonce = body.get("nonce")
    if isinstance(nonce, str) and len(nonce) > 25:
        found.append(_too_long(("nonce",), 25))
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        found.append(_too_long(("embeds",), 10))
    total = 0
    for index, embed in enumerate(embeds):
        for path, limit in _EMBED_TEXT_LIMITS.items():
            text = embed
            for key in path:
                text = text.get(key) or {}
            size = len(text) if isinstance(text, str) else 0
            total += size
            if size > limit:
                found.append(_too_long(("embeds", index, *path), limit))
        fields = embed.get("fields") or []
        if len(fields) > 25:
            found.append(_too_long(("embeds", index, "fields"), 25))
        for number, embed_field in enumerate(fields):
            total += len(embed_field.get("name", "")) + len(embed_field.get("value", ""))
            if len(embed_field.get("name", "")) > 256:
                found.append(_too_long(("embeds", index, "fields", number, "name"), 256))
            if len(embed_field.get("value", "")) > 1024:
                found.append(_too_long(("embeds", index, "fields", number, "value"), 1024))
    if total > 6000:
        found.append((("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"))
    components = body.get("components") or []
    top_level_limit = 40 if (body.get("flags") or 0) & IS_COMPONENTS_V2 else 5
    if len(components) > top_level_limit:
        found.append(_too_long(("components",), top_level_limit))
    for index, row in enumerate(components):
        if row.get("type") == 1 and len(row.get("components", [])) > 5:
            found.append(_too_long(("components", index, "components"), 5))
    for component in _walk_components(components):
        if len(component.get("custom_id", "")) > 100:
            found.append(_too_long(("components", "custom_id"), 100))
        if component.get("type") == 2 and len(component.get("label") or "") > 80:
            found.append(_too_long(("components", "label"), 80))
    if found:
        raise _form_error(found)
    if creating and not (content or embeds or components or has_files or body.get("sticker_ids") or body.get("poll")):
        raise DiscordApiError(400, 50006, "Cannot send an empty message")


@dataclass
class _RateLimit:
    method: str
    pattern: re.Pattern[str]
    retry_after: float
    remaining: int

    def response(self) -> web.Response:
        bucket = hashlib.sha1(f"{self.method} {self.pattern.pattern}".encode()).hexdigest()[:32]
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(self.retry_after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
            "X-RateLimit-Bucket": bucket,
            "X-RateLimit-Scope": "user",
        }
        body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False}
        return json_response(body, status=429, headers=headers)


@dataclass
class _Session:
    """One gateway connection."""

    ws: web.WebSocketResponse
    compressor: Any  # a zlib compress object for compress=zlib-stream, else None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session_id: str | None = None
    seq: int = 0
    live: bool = False  # READY or RESUMED was sent and no RECONNECT since
    shard: tuple[int, int] | None = None  # [shard_id, num_shards] from IDENTIFY; None: unsharded

    def receives(self, data: Json) -> bool:
        """Whether a dispatch about ``data`` goes to this session: a guild's to its shard, the rest to shard 0."""
        if self.shard is None:
            return True
        guild_id = data.get("guild_id")
        shard_id, count = self.shard
        return shard_id == (int(guild_id) >> 22) % count if guild_id is not None else shard_id == 0


class FakeDiscord:
    """Discord's REST API v10 and gateway on 127.0.0.1 (port 0), recording every request.

    ``calls`` holds each REST request; ``gateway_frames`` each frame the client sent on the gateway and
    ``gateway_queries`` the query string of each gateway connection;
    ``interactions`` each dispatched interaction with its callback, original response and followups;
    ``commands`` the application commands per guild id (``None`` for global ones).
    """

    def __init__(self, *, token: str = BOT_TOKEN) -> None:
        self.token = token
        self.application_id = APPLICATION_ID
        self.bot_user_id = BOT_USER_ID
        self.guild_id = GUILD_ID
        self.channel_id = CHANNEL_ID
        self.interaction_deadline = 3.0  # seconds to the initial response, as Discord enforces
        self.recommended_shards = 1  # GET /gateway/bot's "shards"
        self.nonce_window = 180.0  # seconds an enforce_nonce is remembered ("the past few minutes")
        self.calls: list[Call] = []
        self.gateway_frames: list[Json] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self.trips: Trips[Call] = Trips()  # hooks on the REST requests answered, e.g. to crash the app mid-send
        self.commands: dict[int | None, list[Json]] = {}
        self._guild = load_payload("guild_create")
        self._application = load_payload("application")
        self._bot_user: Json = load_payload("ready")["user"]
        self._users: dict[int, Json] = {int(m["user"]["id"]): m["user"] for m in self._guild["members"]}
        self._channels: dict[int, Json] = {int(c["id"]): c for c in self._guild["channels"]}
        self._messages: dict[int, dict[int, Json]] = {channel_id: {} for channel_id in self._channels}
        self._nonces: dict[str, tuple[float, Json]] = {}
        self._dm_channels: dict[int, int] = {}
        self._rate_limits: list[_RateLimit] = []
        self._channel_faults: dict[int, DiscordApiError] = {}
        self._sessions: list[_Session] = []
        self._resumable: dict[str, tuple[int, tuple[int, int] | None]] = {}
        self._changed = asyncio.Condition()
        self.identified = asyncio.Event()  # a client sent IDENTIFY
        self.ready_at: float | None = None  # time.monotonic() when READY was last sent
        self._ready_gate = asyncio.Event()  # READY waits for it (hold_ready)
        self._ready_gate.set()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/", self._gateway)
        routes: list[tuple[str, str, Callable[[web.Request], Any]]] = [
            ("GET", "/users/@me", self._get_me),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("PUT", r"/applications/{application_id:\d+}/commands", self._put_commands),
            ("PUT", r"/applications/{application_id:\d+}/guilds/{guild_id:\d+}/commands", self._put_commands),
            ("GET", r"/channels/{channel_id:\d+}", self._get_channel),
            ("POST", r"/channels/{channel_id:\d+}/messages", self._post_message),
            ("PATCH", r"/channels/{channel_id:\d+}/messages/{message_id:\d+}", self._patch_message),
            ("POST", "/users/@me/channels", self._post_dm_channel),
            ("POST", r"/interactions/{interaction_id:\d+}/{token}/callback", self._post_callback),
            ("POST", r"/webhooks/{application_id:\d+}/{token}", self._post_followup),
            (
                "GET",
                r"/webhooks/{application_id:\d+}/{token}/messages/{message_id:@original|\d+}",
                self._get_webhook_message,
            ),
            (
                "PATCH",
                r"/webhooks/{application_id:\d+}/{token}/messages/{message_id:@original|\d+}",
                self._patch_webhook_message,
            ),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        # A burst of interactions opens a connection each; past the default backlog of 128 the kernel drops SYNs.
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.trips.clear()
        for session in list(self._sessions):
            await session.ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base_url(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """The value for ``DiscordWebSocket.DEFAULT_GATEWAY``; also answered by GET /gateway(/bot)."""
        return f"ws://127.0.0.1:{self._port}/"

    # -- state -----------------------------------------------------------------------------------

    def add_channel(self, name: str, *, topic: str | None = None) -> int:
        """Add a text channel to the guild; GUILD_CREATE sent after this includes it. Returns its id."""
        channel_id = new_snowflake()
        channel = copy.deepcopy(self._guild["channels"][0])
        channel.update(id=str(channel_id), name=name, topic=topic, position=len(self._guild["channels"]))
        self._guild["channels"].append(channel)
        self._channels[channel_id] = channel
        self._messages[channel_id] = {}
        return channel_id

    def channel(self, channel_id: int) -> Json:
        """The channel object, as GET /channels/{id} answers it."""
        return self._channels[channel_id]

    def guild_create_payload(self) -> Json:
        """The GUILD_CREATE dispatch data for the fake's guild, with its current channels."""
        return copy.deepcopy(self._guild)

    def messages(self, channel_id: int) -> list[Json]:
        """The messages in a channel, oldest first, with every edit applied (ephemeral ones are not here)."""
        return list(self._messages.get(channel_id, {}).values())

    def dm_channel_id(self, user_id: int) -> int:
        """The DM channel with a user, created on first use and the same afterwards."""
        if user_id not in self._dm_channels:
            channel_id = new_snowflake()
            self._dm_channels[user_id] = channel_id
            self._channels[channel_id] = {
                "id": str(channel_id),
                "type": 1,
                "last_message_id": None,
                "flags": 0,
                "recipients": [self._user(user_id)],
            }
            self._messages[channel_id] = {}
        return self._dm_channels[user_id]

    # -- fault injection -------------------------------------------------------------------------

    def rate_limit_next(self, method: str, path_pattern: str, retry_after: float = 0.2, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path fully matches ``path_pattern`` with a 429."""
        self._rate_limits.append(_RateLimit(method.upper(), re.compile(path_pattern), retry_after, times))

    def fail_channel(
        self, channel_id: int, status: int = 403, code: int = 50013, message: str = "Missing Permissions"
    ) -> None:
        """Fail every request on a channel until ``restore_channel``.

        For a deleted channel: ``fail_channel(id, status=404, code=10003, message="Unknown Channel")``;
        for a user who blocks DMs: ``fail_channel(fake.dm_channel_id(user), 403, 50007,
        "Cannot send messages to this user")``.
        """
        self._channel_faults[channel_id] = DiscordApiError(status, code, message)

    def restore_channel(self, channel_id: int) -> None:
        """Undo ``fail_channel``."""
        self._channel_faults.pop(channel_id, None)

    # -- recorded calls --------------------------------------------------------------------------

    def calls_to(self, method: str, path_regex: str) -> list[Call]:
        """The recorded calls with this method whose path fully matches ``path_regex``."""
        pattern = re.compile(path_regex)
        return [call for call in self.calls if call.method == method.upper() and pattern.fullmatch(call.path)]

    async def wait_for_call(self, method: str, path_regex: str, timeout: float = 3.0) -> Call:
        """The first matching call, recorded already or within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: bool(self.calls_to(method, path_regex)))
        except TimeoutError:
            seen = "\n".join(f"  {c.method} {c.path} -> {c.status}" for c in self.calls)
            raise AssertionError(f"no {method} {path_regex} within {timeout}s; calls:\n{seen}") from None
        return self.calls_to(method, path_regex)[0]

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- gateway ---------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float = 3.0) -> None:
        """Wait until a client has identified (or resumed) and been sent READY and GUILD_CREATE.

        This is the fake's side; the client's own ``on_ready`` follows ``guild_ready_timeout`` later.
        """
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: any(session.live for session in self._sessions))

    def hold_ready(self) -> None:
        """Send READY only once ``release_ready()`` is called, as a gateway slow to answer IDENTIFY does."""
        self._ready_gate.clear()

    def release_ready(self) -> None:
        self._ready_gate.set()

    def shards_live(self) -> list[tuple[int, int]]:
        """The [shard_id, num_shards] of each live sharded session."""
        return [session.shard for session in self._sessions if session.live and session.shard is not None]

    async def dispatch(self, event: str, data: Json) -> None:
        """Send a dispatch (op 0) to every connected session that Discord would send it to (see ``_Session.receives``:
        every unsharded session of the token, and of sharded ones the guild's shard); an INTERACTION_CREATE becomes
        answerable."""
        sessions = [session for session in self._sessions if session.live and session.receives(data)]
        if not sessions:
            raise RuntimeError("no client connected to the fake gateway receives this event")
        if event == "INTERACTION_CREATE":
            interaction = FakeInteraction(copy.deepcopy(data), asyncio.get_running_loop().time())
            self.interactions[interaction.id] = interaction
            self._users[int(interaction.user["id"])] = interaction.user
        for session in sessions:
            await self._send(session, {"op": 0, "t": event, "d": data})

    async def request_reconnect(self) -> None:
        """Send RECONNECT (op 7): the client closes the connection and RESUMEs on resume_gateway_url."""
        for session in [s for s in self._sessions if s.live]:
            session.live = False
            await self._send(session, {"op": 7, "d": None})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=0)
        await ws.prepare(request)
        compressor = zlib.compressobj() if request.query.get("compress") == "zlib-stream" else None
        self.gateway_queries.append(dict(request.query))
        session = _Session(ws, compressor)
        self._sessions.append(session)
        try:
            await self._send(session, {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_frame(session, json.loads(message.data))
        finally:
            self._sessions.remove(session)
            if session.session_id is not None:
                self._resumable[session.session_id] = (session.seq, session.shard)
        return ws

    async def _on_frame(self, session: _Session, frame: Json) -> None:
        self.gateway_frames.append(frame)
        op = frame.get("op")
        if op == 1:
            await self._send(session, {"op": 11, "d": None})
        elif op == 2:
            await self._identify(session, frame["d"])
        elif op == 6:
            await self._resume(session, frame["d"])
        await self._notify()

    async def _identify(self, session: _Session, data: Json) -> None:
        if data.get("token") != self.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        session.session_id = uuid.uuid4().hex
        self.identified.set()
        await self._ready_gate.wait()
        ready = load_payload("ready")
        ready.update(session_id=session.session_id, resume_gateway_url=self.gateway_url, user=self._bot_user)
        shard = data.get("shard")
        guilds = [self.guild_create_payload()]
        if shard is not None:
            ready["shard"] = shard
            session.shard = (int(shard[0]), int(shard[1]))
            guilds = [g for g in guilds if (int(g["id"]) >> 22) % shard[1] == shard[0]]
        ready["guilds"] = [{"id": g["id"], "unavailable": True} for g in guilds]
        self.ready_at = time.monotonic()
        await self._send(session, {"op": 0, "t": "READY", "d": ready})
        for guild in guilds:
            await self._send(session, {"op": 0, "t": "GUILD_CREATE", "d": guild})
        session.live = True

    async def _resume(self, session: _Session, data: Json) -> None:
        session_id = data.get("session_id")
        if data.get("token") != self.token or session_id not in self._resumable:
            await self._send(session, {"op": 9, "d": False})
            return
        session.session_id = session_id
        session.seq, session.shard = self._resumable.pop(session_id)
        await self._send(session, {"op": 0, "t": "RESUMED", "d": {}})
        session.live = True

    async def _send(self, session: _Session, frame: Json) -> None:
        async with session.lock:
            if frame["op"] == 0:
                session.seq += 1
            frame = {
                "op": frame["op"],
                "d": frame["d"],
                "s": session.seq if frame["op"] == 0 else None,
                "t": frame.get("t"),
            }
            text = json.dumps(frame)
            if session.compressor is None:
                await session.ws.send_str(text)
            else:
                await session.ws.send_bytes(
                    session.compressor.compress(text.encode()) + session.compressor.flush(zlib.Z_SYNC_FLUSH)
                )

    # -- REST plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        path = request.path[len(API_PREFIX) :]
        body, files = await _read_body(request)
        request[_BODY], request[_FILES] = body, files
        headers = CIMultiDictProxy(CIMultiDict(request.headers))
        received = Call(request.method, path, body, headers, dict(request.query), files)
        try:
            if not await self.trips.admit(received):
                raise DiscordApiError(500, 0, "500: Internal Server Error")
            response = self._fault(request.method, path, request.headers) or await handler(request)
        except DiscordApiError as error:
            response = error.response()
        except web.HTTPNotFound:
            response = DiscordApiError(404, 0, "404: Not Found").response()
        except web.HTTPMethodNotAllowed:
            response = DiscordApiError(405, 0, "405: Method Not Allowed").response()
        call = replace(received, status=response.status)
        self.calls.append(call)
        await self._notify()
        await self.trips.passed(call)
        return response

    def _fault(self, method: str, path: str, headers: Mapping[str, str]) -> web.Response | None:
        unauthenticated = path == "/gateway" or path.startswith(("/interactions/", "/webhooks/"))
        if not unauthenticated and headers.get("Authorization") != f"Bot {self.token}":
            return DiscordApiError(401, 0, "401: Unauthorized").response()
        for limit in self._rate_limits:
            if limit.method == method and limit.pattern.fullmatch(path):
                limit.remaining -= 1
                if not limit.remaining:
                    self._rate_limits.remove(limit)
                return limit.response()
        channel = re.match(r"/channels/(\d+)(?:/|$)", path)
        if channel and int(channel[1]) in self._channel_faults:
            return self._channel_faults[int(channel[1])].response()
        return None

    def _user(self, user_id: int) -> Json:
        return self._users.setdefault(
            user_id,
            {
                "id": str(user_id),
                "username": f"user{user_id}",
                "discriminator": "0",
                "global_name": None,
                "avatar": None,
                "public_flags": 0,
            },
        )

    def _author(self) -> Json:
        keys = ("id", "username", "discriminator", "global_name", "avatar", "bot", "public_flags")
        return {key: self._bot_user.get(key) for key in keys}

    def _new_message(
        self, channel_id: int, body: Json, files: tuple[FakeFile, ...] = (), interaction: FakeInteraction | None = None
    ) -> Json:
        message_id = new_snowflake()
        message: Json = {
            "id": str(message_id),
            "type": 0,
            "channel_id": str(channel_id),
            "author": self._author(),
            "content": body.get("content") or "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [self._attachment(channel_id, file) for file in files],
            "embeds": body.get("embeds") or [],
            "pinned": False,
            "flags": body.get("flags") or 0,
            "components": body.get("components") or [],
        }
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if interaction is not None:
            message.update(webhook_id=str(APPLICATION_ID), application_id=str(APPLICATION_ID))
            message["type"] = 20 if interaction.payload["type"] == 2 else 0
            message["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.payload["type"],
                "user": interaction.user,
                "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
            }
        if not message["flags"] & EPHEMERAL and channel_id in self._messages:
            self._messages[channel_id][message_id] = message
            self._channels[channel_id]["last_message_id"] = str(message_id)
        return message

    def _attachment(self, channel_id: int, file: FakeFile) -> Json:
        attachment_id = new_snowflake()
        url = f"{self.url}/attachments/{channel_id}/{attachment_id}/{file.filename}"
        return {
            "id": str(attachment_id),
            "filename": file.filename,
            "size": len(file.data),
            "url": url,
            "proxy_url": url,
            "content_type": file.content_type,
        }

    def _edit(self, message: Json, body: Json, files: tuple[FakeFile, ...]) -> Json:
        _validate_message(body, creating=False)
        for key in ("content", "embeds", "components"):
            if key in body:
                message[key] = body[key] or ([] if key != "content" else "")
        if "flags" in body:
            message["flags"] = (body["flags"] or 0) | (message["flags"] & EPHEMERAL)
        message["flags"] &= ~LOADING
        if "attachments" in body:
            kept = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
        message["attachments"] += [self._attachment(int(message["channel_id"]), file) for file in files]
        message["edited_timestamp"] = _now_iso()
        return message

    def _stored_message(self, channel_id: int, message_id: int) -> Json:
        try:
            return self._messages[channel_id][message_id]
        except KeyError:
            raise _unknown("Message", 10008) from None

    # -- REST routes -----------------------------------------------------------------------------

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response(self._bot_user)

    async def _get_application(self, request: web.Request) -> web.Response:
        return json_response(self._application)

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": _SESSION_START_LIMIT}
        )

    async def _put_commands(self, request: web.Request) -> web.Response:
        if int(request.match_info["application_id"]) != APPLICATION_ID:
            raise _unknown("Application", 10002)
        guild_id = int(request.match_info["guild_id"]) if "guild_id" in request.match_info else None
        if guild_id not in (None, self.guild_id):
            raise _unknown("Guild", 10004)
        known = {(c["name"], c["type"]): c["id"] for c in self.commands.get(guild_id, [])}
        stored = []
        for command in request[_BODY]:
            entry = {
                "type": 1,
                "description": "",
                "default_member_permissions": None,
                "nsfw": False,
                "contexts": None,
                "integration_types": [0],
                **command,
            }
            entry["id"] = known.get((entry["name"], entry["type"])) or str(new_snowflake())
            entry.update(application_id=str(APPLICATION_ID), version=str(new_snowflake()))
            if guild_id is not None:
                entry["guild_id"] = str(guild_id)
            stored.append(entry)
        self.commands[guild_id] = stored
        return json_response(stored)

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self._channels:
            raise _unknown("Channel", 10003)
        return json_response(self._channels[channel_id])

    async def _post_message(self, request: web.Request) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self._channels:
            raise _unknown("Channel", 10003)
        body: Json = request[_BODY] or {}
        _validate_message(body, creating=True, has_files=bool(request[_FILES]))
        nonce = body.get("nonce")
        now = time.monotonic()
        if body.get("enforce_nonce") and nonce is not None:
            seen = self._nonces.get(str(nonce))
            if seen is not None and now - seen[0] < self.nonce_window:
                return json_response(seen[1])
        message = self._new_message(channel_id, body, request[_FILES])
        if nonce is not None:
            self._nonces[str(nonce)] = (now, message)
        return json_response(message)

    async def _patch_message(self, request: web.Request) -> web.Response:
        message = self._stored_message(int(request.match_info["channel_id"]), int(request.match_info["message_id"]))
        return json_response(self._edit(message, request[_BODY] or {}, request[_FILES]))

    async def _post_dm_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channels[self.dm_channel_id(int(request[_BODY]["recipient_id"]))])

    async def _post_callback(self, request: web.Request) -> web.Response:
        interaction = self.interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise _unknown("interaction", 10062)
        if asyncio.get_running_loop().time() - interaction.dispatched_at > self.interaction_deadline:
            raise _unknown("interaction", 10062)
        if interaction.callback is not None:
            raise DiscordApiError(400, 40060, "Interaction has already been acknowledged.")
        body: Json = request[_BODY]
        kind, data = body["type"], body.get("data") or {}
        if kind in (6, 7) and "message" not in interaction.payload:
            raise _form_error([(("type",), "BASE_TYPE_CHOICES", "Value must be one of {4, 5, 8, 9}.")])
        if kind == 4:
            _validate_message(data, creating=True, has_files=bool(request[_FILES]))
        interaction.callback = body
        interaction.answered_at = asyncio.get_running_loop().time()
        channel_id = int(interaction.payload["channel_id"])
        if kind == 4:
            interaction.original = self._new_message(channel_id, data, request[_FILES], interaction)
        elif kind == 5:
            flags = (data.get("flags") or 0) & EPHEMERAL | LOADING
            interaction.original = self._new_message(channel_id, {"flags": flags}, interaction=interaction)
        elif kind in (6, 7):
            interaction.original = self._component_message(interaction)
            if kind == 7:
                self._edit(interaction.original, data, request[_FILES])
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        original = interaction.original
        answer: Json = {
            "interaction": {"id": str(interaction.id), "type": interaction.payload["type"]},
            "resource": {"type": kind},
        }
        if original is not None:
            answer["interaction"].update(
                response_message_id=original["id"],
                response_message_loading=kind == 5,
                response_message_ephemeral=bool(original["flags"] & EPHEMERAL),
            )
            if kind in (4, 7):
                answer["resource"]["message"] = original
        return json_response(answer)

    def _component_message(self, interaction: FakeInteraction) -> Json:
        """The stored message a component was clicked on; a recorded payload's message is stored on first use."""
        message = interaction.payload["message"]
        channel_id = int(message["channel_id"])
        return self._messages.setdefault(channel_id, {}).setdefault(int(message["id"]), copy.deepcopy(message))

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        if int(request.match_info["application_id"]) == APPLICATION_ID:
            for interaction in self.interactions.values():
                if interaction.token == request.match_info["token"]:
                    return interaction
        raise _unknown("Webhook", 10015)

    def _webhook_message(self, request: web.Request) -> Json:
        interaction = self._webhook_interaction(request)
        message_id = request.match_info["message_id"]
        message = interaction.original if message_id == "@original" else interaction.followups.get(int(message_id))
        if message is None:
            raise _unknown("Message", 10008)
        return message

    async def _post_followup(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        body: Json = request[_BODY] or {}
        _validate_message(body, creating=True, has_files=bool(request[_FILES]))
        message = self._new_message(int(interaction.payload["channel_id"]), body, request[_FILES], interaction)
        interaction.followups[int(message["id"])] = message
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(message)
        return web.Response(status=204)

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        return json_response(self._webhook_message(request))

    async def _patch_webhook_message(self, request: web.Request) -> web.Response:
        message = self._webhook_message(request)
        return json_response(self._edit(message, request[_BODY] or {}, request[_FILES]))

    # -- running a client ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def run_client(
        self, client: discord.Client, *, token: str | None = None, timeout: float = 3.0
    ) -> AsyncIterator[discord.Client]:
        """Start ``client`` (with the fake's token by default), yield once its ``on_ready`` fired, then close it.

        discord.py must already point at the fake (``patch_discord_py``). A login or gateway failure is
        raised here instead of hanging.
        """
        async with client:
            runner = asyncio.create_task(client.start(token or self.token))
            ready = asyncio.create_task(client.wait_until_ready())
            done, _ = await asyncio.wait({runner, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if ready not in done:
                for task in (ready, runner):
                    task.cancel()
                await asyncio.wait({ready, runner})
                error = None if runner.cancelled() else runner.exception()
                if error is not None:
                    raise error
                raise TimeoutError(f"client not ready within {timeout}s")
            try:
                yield client
            finally:
                await client.close()
                await runner


async def _read_body(request: web.Request) -> tuple[Any, tuple[FakeFile, ...]]:
    """The JSON body (``payload_json`` of a multipart body) and the uploaded files."""
    if request.content_type == "application/json":
        return await request.json(), ()
    if request.content_type != "multipart/form-data":
        return None, ()
    payload, files = None, []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        data = bytes(await part.read())
        if part.name == "payload_json":
            payload = json.loads(data)
        elif part.filename:
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            files.append(FakeFile(part.name or "", part.filename, content_type, data))
    return payload, tuple(files)


@contextlib.contextmanager
def patch_discord_py(fake: FakeDiscord) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at ``fake``; restore both afterwards."""
    route_base = discord.http.Route.BASE
    default_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = route_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = default_gateway
