"""The Slack adapter: slack-bolt's AsyncApp in Socket Mode or HTTP mode, and the Adapter methods on the Web API.

Inbound, every slash command is acknowledged well within Slack's 3 seconds, by the engine's ack budget
(bot/answering.py): when the answer comes in time it travels in the ack itself; otherwise the ack
says "Working on it…" and the answer follows through the command's response_url (bench/bench_ack.py).
Bolt runs with process_before_response, so the ack leaves as soon as the listener returns (without it,
Bolt polls for the ack every 10 ms); whatever comes after the ack (a follow-up answer, a file, a
button click's handling) therefore runs in the background, through the engine's bus, whose `drain`
waits for it. Button clicks are acknowledged first, then handled and answered with an ephemeral
message; the card's counts follow through the publisher's edits. Answers to a response_url go out
through the adapter's one aiohttp session, as the Web API calls do.

Outbound, one AsyncWebClient (base URL from `slack.api_base_url`, one shared aiohttp session)
posts, edits and opens DMs. A 429 is retried by slack_sdk's AsyncRateLimitErrorRetryHandler, which
sleeps the Retry-After that Slack sent; it retries `RATE_LIMIT_RETRIES` times instead of its default
once. A send that still fails raises SlackSendError, a SendError (with `retry_after` when still rate limited),
so the outbox can wait and retry, and the ledger records what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import blocks, payloads
from bot.answering import FollowUp
from bot.config import ConfigError, Secrets, SlackSettings
from bot.http import HttpServer
from bot.invocation import Actor, ChannelRef, CommandOptions, MessageRef
from bot.messages import Attachment, Message, Reply
from bot.ports import PlatformUnreachable, SendError

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
RATE_LIMIT_RETRIES = 3  # each waits Slack's Retry-After, while the ledger keeps renewing the post's claim
WORKING = "Working on it…"
POST_EVENT_TYPE = "emcee_post"  # the message metadata's event_type on every post; its payload carries the post key
CLOCK_SKEW = timedelta(minutes=1)  # a lookup reaches this far before the first attempt, for Slack's clock and ours
HISTORY_PAGE = 200

HINTS = {
    "not_in_channel": "invite the bot to #channel: type /invite @{bot} in channel {channel}",
    "channel_not_found": (
        "check that [slack] announce_channels holds channel IDs (e.g. C0123ABCD), not names, "
        "and invite the bot to #channel: /invite @{bot}"
    ),
}


# Errors that no retry can fix (Slack's documented error codes for chat.postMessage and friends).
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "user_not_found",
        "cannot_dm_bot",
        "msg_too_long",
        "invalid_blocks",
    }
)


class SlackSendError(SendError):
    """A Web API call failed for good. `error` is Slack's code; `retry_after` is set when still rate limited."""

    def __init__(self, method: str, channel: str, error: str, retry_after: int | None = None) -> None:
        super().__init__(
            f"slack {method} to {channel} failed: {error}", permanent=error in PERMANENT_ERRORS, retry_after=retry_after
        )
        self.error = error


class SlackAdapter:
    platform = payloads.PLATFORM

    def __init__(
        self,
        settings: SlackSettings,
        secrets: Secrets,
        http: HttpServer | None = None,
        *,
        bot_name: str = "Emcee",
    ) -> None:
        if not secrets.slack_bot_token:
            raise ConfigError("the Slack adapter needs SLACK_BOT_TOKEN")
        if settings.mode == "socket" and not secrets.slack_app_token:
            raise ConfigError('[slack] mode = "socket" needs SLACK_APP_TOKEN')
        if settings.mode == "http" and not secrets.slack_signing_secret:
            raise ConfigError('[slack] mode = "http" needs SLACK_SIGNING_SECRET')
        if settings.mode == "http" and http is None:
            raise ConfigError('[slack] mode = "http" needs the HTTP server: set [http] enabled = true')
        self.settings = settings
        self._secrets = secrets
        self.bot_name = bot_name
        self._engine: Engine | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._bolt: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._authenticated = False
        self._dm_channels: dict[str, str] = {}
        if http is not None and settings.mode == "http":
            # Routes must exist before the shared server starts; requests before start() get 503.
            http.app.router.add_post(EVENTS_PATH, self._http_endpoint)

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        if not self._authenticated:
            return False
        if self._socket is None:
            return True
        client = self._socket.client
        return not client.closed and client.current_session is not None and not client.current_session.closed

    @property
    def client(self) -> AsyncWebClient:
        if self._client is None:
            raise RuntimeError("the Slack adapter is not started")
        return self._client

    async def start(self, engine: Engine) -> None:
        """Check the token with auth.test and, in Socket Mode, connect; PlatformUnreachable when Slack cannot
        be reached, so that the app carries on and tries again."""
        self._engine = engine
        self._session = aiohttp.ClientSession()
        self._bolt = self._build_bolt(self._session)
        self._client = self._bolt.client
        try:
            await self._connect(self._bolt)
        except SlackApiError as exc:
            await self.stop()
            raise RuntimeError(f"Slack rejected SLACK_BOT_TOKEN: {exc.response.get('error')}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self.stop()
            reason = str(exc) or type(exc).__name__
            raise PlatformUnreachable(f"cannot reach Slack at {self.settings.api_base_url}: {reason}") from None
        log.info("Slack adapter started in %s mode", self.settings.mode)

    async def _connect(self, bolt: AsyncApp) -> None:
        await self.client.auth_test()
        self._authenticated = True
        if self.settings.mode == "socket":
            self._socket = AsyncSocketModeHandler(bolt, app_token=self._secrets.slack_app_token)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # slack_bolt leaves it unannotated
            self._socket = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._bolt = None  # HTTP mode answers 503 until a start succeeds
        self._authenticated = False
        self._engine = None

    def _build_bolt(self, session: aiohttp.ClientSession) -> AsyncApp:
        """The AsyncApp, given the token once: Bolt builds its client from it (passing a client as well makes
        Bolt warn on every start that the token, which it reads from SLACK_BOT_TOKEN too, goes unused).
        That client then gets the base URL, the shared session and the retry handlers."""
        app = AsyncApp(
            name="emcee",
            token=self._secrets.slack_bot_token,
            signing_secret=self._secrets.slack_signing_secret or "",
            logger=logging.getLogger(f"{__name__}.bolt"),
            process_before_response=True,  # the ack leaves when the listener returns, not at Bolt's next 10 ms poll
        )
        client = app.client
        client.base_url = self.settings.api_base_url
        client.session = session
        client.retry_handlers = _retry_handlers()
        for root in self.engine.registry.roots:
            app.command(f"/{root}")(self._on_command)
        app.use(WellFormed())  # runs after Bolt's signature check
        app.action(payloads.RSVP_ACTION)(self._on_rsvp_click)
        return app

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the Slack adapter is not started")
        return self._engine

    async def _http_endpoint(self, request: web.Request) -> web.Response:
        """POST /slack/events on the shared server; Bolt verifies the signature and dispatches.

        A request Bolt cannot read (a timestamp that is not a number, a payload that is not JSON, or not an object,
        or one whose team or user is not text) is refused here with a 4xx and one log line, since Bolt would
        answer it with a 500 and a traceback. Bolt parses the body once, as it builds its request."""
        if self._bolt is None:
            return web.Response(status=503, text="Emcee is starting")
        if not request.headers.get(TIMESTAMP_HEADER, "").isdigit():
            return _refused(401, f"a {TIMESTAMP_HEADER} that is not a number")
        try:
            bolt_request = await to_bolt_request(request)  # the one place the body is parsed
        except ValueError:
            return _refused(400, "a body that is not UTF-8 or not valid JSON")
        except (AttributeError, TypeError):  # Bolt reads ids out of the parsed body: a list, or a number for a team
            return _refused(400, "a body that is not an object of Slack's fields")
        return await to_aiohttp_response(await self._bolt.async_dispatch(bolt_request))

    # --- inbound -------------------------------------------------------------------------------

    async def _on_command(self, ack: Any, command: dict[str, Any]) -> None:
        started = time.monotonic()
        request = payloads.command_request(command)
        response_url = command.get("response_url")
        answer = await self.engine.acks.answer(lambda: self.engine.handle(request))
        if isinstance(answer, FollowUp):
            await ack(text=WORKING, response_type="ephemeral")
            self._acked(started)
            self._after_ack(self._follow_up(answer, request.actor, response_url))
        else:
            await ack(**self._reply_fields(answer))
            self._acked(started)
            if answer.attachment is not None:
                self._after_ack(self._send_attachment(request.actor, answer.attachment, response_url))

    async def _follow_up(self, answer: FollowUp, actor: Actor, response_url: str | None) -> None:
        """The answer of a command acked with "Working on it…", on its response_url once the engine has it."""
        reply = await answer.reply()
        await self._respond(response_url, **self._reply_fields(reply))
        if reply.attachment is not None:
            await self._send_attachment(actor, reply.attachment, response_url)

    async def _on_rsvp_click(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        started = time.monotonic()
        await ack()
        self._acked(started)
        click = payloads.rsvp_click(body, action)
        if click is not None:
            self._after_ack(self._answer_click(click, body.get("response_url")))

    async def _answer_click(self, click: CommandOptions, response_url: str | None) -> None:
        rendered = blocks.render_reply(await self.engine.acks.run(lambda: self.engine.handle(click)))
        if click.channel is not None:
            try:
                await self.client.chat_postEphemeral(
                    channel=click.channel.channel_id, user=click.actor.user_id, **rendered.fields()
                )
                return
            except SlackApiError as exc:
                log.info("ephemeral answer in %s failed (%s); using the response_url", click.channel, exc)
        # A click where the bot cannot post (a DM, a shared channel): the response_url still reaches the member.
        await self._respond(response_url, response_type="ephemeral", replace_original=False, **rendered.fields())

    def _after_ack(self, work: Coroutine[Any, Any, None]) -> None:
        """Run what follows an ack in the background, once the listener has returned and Bolt has sent the
        ack; the engine's bus runs it, so `drain` (and a clean stop) waits for it too."""
        self.engine.bus.spawn(_logged(work))

    async def _respond(self, response_url: str | None, **fields: Any) -> None:
        """Post a message to a command's or a click's response_url through the adapter's session (Bolt's
        `respond` opens a session, and a connection, for every call)."""
        if not response_url:
            log.warning("a Slack request came without a response_url; its answer is dropped")
            return
        client = AsyncWebhookClient(response_url, session=self._session, retry_handlers=_retry_handlers(), logger=log)
        response = await client.send_dict(fields)
        if response.status_code != 200:
            log.warning("answering on a response_url failed: %s %s", response.status_code, response.body)

    def _acked(self, started: float) -> None:
        self.engine.metrics.observe_ack(self.platform, time.monotonic() - started)

    def _reply_fields(self, reply: Reply) -> dict[str, Any]:
        note = f"📎 {reply.attachment.filename} comes to you in a direct message." if reply.attachment else ""
        return {
            **blocks.render_reply(reply, note).fields(),
            "response_type": "ephemeral" if reply.private else "in_channel",
        }

    async def _send_attachment(self, actor: Actor, attachment: Attachment, response_url: str | None) -> None:
        """A file (the attendee CSV) goes to the member's DM with the bot, never to the channel."""
        try:
            channel = await self._dm_channel(actor.user_id)
            await self._call(
                "files.upload",
                channel,
                lambda: self.client.files_upload_v2(
                    channel=channel, filename=attachment.filename, content=attachment.content, title=attachment.filename
                ),
            )
        except (SlackSendError, SlackClientError) as exc:
            error = exc.error if isinstance(exc, SlackSendError) else "upload failed"
            log.warning("sending %s to %s failed: %s", attachment.filename, actor.user_id, exc)
            await self._respond(
                response_url, text=f"⚠️ I couldn't send {attachment.filename}: {error}", response_type="ephemeral"
            )

    # --- outbound ------------------------------------------------------------------------------

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        """Post `message`; with a post key, the message's metadata carries it, so find_sent can recognise it."""
        rendered = blocks.render(message)
        metadata = {"event_type": POST_EVENT_TYPE, "event_payload": {"key": key}} if key else None
        response = await self._call(
            "chat.postMessage",
            target.channel_id,
            lambda: self.client.chat_postMessage(channel=target.channel_id, metadata=metadata, **rendered.fields()),
        )
        return MessageRef(self.platform, response["channel"], response["ts"])

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        """The message posted under `key` since `since`: the channel's (or the member's DM channel's) history
        is read newest first, with each message's metadata."""
        channel = target.channel_id if isinstance(target, ChannelRef) else await self._dm_channel(target.user_id)
        oldest = f"{(since - CLOCK_SKEW).timestamp():.6f}"
        pages = await self._call(
            "conversations.history",
            channel,
            lambda: self.client.conversations_history(
                channel=channel, oldest=oldest, include_all_metadata=True, limit=HISTORY_PAGE
            ),
        )
        async for page in pages:
            for found in page.get("messages", []):
                if _post_key(found) == key:
                    return MessageRef(self.platform, channel, found["ts"])
        return None

    async def edit(self, ref: MessageRef, message: Message) -> None:
        rendered = blocks.render(message)
        await self._call(
            "chat.update",
            ref.channel_id,
            lambda: self.client.chat_update(channel=ref.channel_id, ts=ref.message_id, **rendered.fields()),
        )

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef:
        return await self.send(ChannelRef(self.platform, await self._dm_channel(user.user_id)), message, key)

    async def _dm_channel(self, user_id: str) -> str:
        if user_id not in self._dm_channels:
            response = await self._call(
                "conversations.open", user_id, lambda: self.client.conversations_open(users=user_id)
            )
            self._dm_channels[user_id] = response["channel"]["id"]
        return self._dm_channels[user_id]

    async def _call(
        self, method: str, channel: str, call: Callable[[], Awaitable[AsyncSlackResponse]]
    ) -> AsyncSlackResponse:
        try:
            return await call()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            hint = HINTS.get(error)
            if hint:
                hint = hint.format(bot=self.bot_name, channel=channel)
                log.warning("Slack %s to channel %s failed: %s; %s", method, channel, error, hint)
            retry_after = exc.response.headers.get("Retry-After") if error == "ratelimited" else None
            raise SlackSendError(method, channel, error, _seconds(retry_after)) from None


def _retry_handlers() -> list[AsyncRetryHandler]:
    """Retries for every call to Slack: a dropped connection, and a 429 after its Retry-After."""
    return [AsyncConnectionErrorRetryHandler(), AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES)]


async def _logged(work: Awaitable[None]) -> None:
    """Await `work`, logging a failure (the member already has the ack; nothing else can be told)."""
    try:
        await work
    except Exception:
        log.exception("answering a Slack request after its ack failed")


def _post_key(message: dict[str, Any]) -> str | None:
    """The post key a message's metadata carries, if Emcee posted it with one."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != POST_EVENT_TYPE:
        return None
    key = (metadata.get("event_payload") or {}).get("key")
    return key if isinstance(key, str) else None


def _seconds(value: Any) -> int | None:
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _refusal(problem: str) -> str:
    """One short log line for a refused request, and the answer's text."""
    log.info("refused a request to %s: %s", EVENTS_PATH, problem)
    return f"Refused: {problem}"


def _refused(status: int, problem: str) -> web.Response:
    return web.Response(status=status, text=_refusal(problem))


class WellFormed(AsyncMiddleware):
    """Bolt middleware: a signed body that lacks what Slack always sends gets a 400, not a failing handler.
    A class, as Bolt calls it directly; a function would have its arguments found by name on every request."""

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        problem = payloads.malformed(req.body)
        if problem is None:
            return await next()
        return BoltResponse(status=400, body=_refusal(problem))
