"""The Discord adapter: a discord.py Client with the generated command tree, the RSVP buttons and the Adapter methods.

Inbound, every interaction gets its initial response within Discord's 3 seconds, by the engine's ack
budget (bot/answering.py): when the answer comes in time it is the response; otherwise the
interaction is deferred (ephemeral "thinking") and followed up (bench/bench_ack.py).
Answers are ephemeral unless the engine says otherwise; a refusal always is, with the usage line.

Outbound, `send`, `edit` and `send_dm` post embeds through discord.py, whose buckets handle rate
limits. A message too long for one Discord message is split into several; its MessageRef then lists
every message id ("id1,id2"), so that an edit can update them all. Each message carries a nonce
derived from its target and the ledger's post key, sent with `enforce_nonce`: when the delivery
ledger retries a send whose first attempt did reach Discord, Discord answers with that message
instead of posting it twice, while two different posts with the same text stay two messages.
A missing channel or a missing permission is logged with the channel id and what is missing, and
raised as DiscordSendError, so the ledger records the failure and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord import embeds, views
from adapters.discord.embeds import Page
from adapters.discord.endpoints import endpoints
from adapters.discord.tree import build_tree
from bot.answering import FollowUp
from bot.commands import Command
from bot.config import ConfigError, DiscordSettings, Secrets
from bot.formatting import shorten
from bot.invocation import Actor, ChannelRef, CommandOptions, MessageRef, Request
from bot.messages import INTERNAL_ERROR, Attachment, EventCard, Message, Reply
from bot.ports import PlatformUnreachable, SendError
from bot.shards import ShardClaims

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

# Emcee never joins voice: discord.py need not warn on every start that PyNaCl and davey are missing.
discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False

PLATFORM = "discord"
GUILD_READY_TIMEOUT = 2.0  # discord.py's on_ready delay after the last GUILD_CREATE: ready if a guild never comes
READY_TIMEOUT = 60.0  # how long start() waits to be ready before carrying on (healthz says disconnected)
MAX_PAGES = 10  # messages per post: every id must fit the ledger's 255-character message_ref
AUTOCOMPLETE_LIMIT = 25
NONCE_LENGTH = 25
# What the bot needs in an announce channel (use_application_commands concerns members, not the bot).
CHANNEL_PERMISSIONS = ("view_channel", "send_messages", "embed_links", "read_message_history")
INTENTS = discord.Intents(guilds=True)  # roles and channels; interactions need no intent
SHORTER = Page("⤴ (see above)")  # a message that an edit no longer needs, when the list got shorter


class DiscordSendError(SendError):
    """A send, edit or DM failed for good (after discord.py's own retries); `permanent` for a missing
    channel or permission."""

    def __init__(self, channel_id: int | str, detail: str, permanent: bool = False) -> None:
        super().__init__(f"discord channel {channel_id}: {detail}", permanent=permanent)
        self.channel_id = str(channel_id)
        self.detail = detail


class DiscordAdapter:
    platform = PLATFORM

    def __init__(
        self,
        settings: DiscordSettings,
        secrets: Secrets,
        *,
        guild_ready_timeout: float = GUILD_READY_TIMEOUT,
        ready_timeout: float = READY_TIMEOUT,
        shards: ShardClaims | None = None,
    ) -> None:
        if not secrets.discord_token:
            raise ConfigError("the Discord adapter needs DISCORD_TOKEN")
        self.settings = settings
        self._token = secrets.discord_token
        self.guild_ready_timeout = guild_ready_timeout
        self.ready_timeout = ready_timeout
        self.button_type = views.rsvp_button_type(self._on_click)
        self.tree: app_commands.CommandTree[discord.Client] | None = None
        self._engine: Engine | None = None
        self._client: discord.Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._endpoints = contextlib.ExitStack()
        self._connected = False
        self._ready = asyncio.Event()  # set once connected: the first READY and its guilds are in
        self._awaited: set[int] = set()  # guilds READY listed whose GUILD_CREATE has not come yet
        self._shards = shards  # None: one unsharded session, as every process with shard_count 1 runs
        self._switching = asyncio.Lock()  # one change of client at a time (a new claim set, or stopping)

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected and self._client is not None and not self._client.is_closed()

    @property
    def client(self) -> discord.Client:
        if self._client is None:
            raise RuntimeError("the Discord adapter is not started")
        return self._client

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the Discord adapter is not started")
        return self._engine

    async def start(self, engine: Engine) -> None:
        """Log in, sync the slash commands to the configured guilds, connect, and wait until ready; sharded, claim
        shards and run a session for each shard held (none held: REST only)."""
        self._engine = engine
        self._ready.clear()
        self._endpoints.enter_context(endpoints(self.settings))  # before login: discord.py reads them then
        client = self._new_client()
        try:
            await self._login(client)
            self._client = client
            await self._sync()
            if self._shards is None:
                await self._connect(client)
            else:
                await self._shards.start(await self._shard_count(client), self._run_shards)
                self._connected = self._connected or not self._shards.held  # none held: this client, REST only
        except BaseException:
            await self.stop()
            raise
        log.info("Discord adapter started as %s", client.user)

    def _new_client(self, shard_ids: frozenset[int] | None = None) -> discord.Client:
        """A client with the adapter's handlers and command tree: sharded when given the shards to run."""
        count = self._shards.count if self._shards is not None and shard_ids is not None else None
        client = new_client(self.guild_ready_timeout, shard_ids, count)
        # Sharded, ready is discord.py's on_ready, once every shard is: on_connect comes with each shard's READY.
        early = (self.on_connect, self.on_guild_available, self.on_guild_join) if shard_ids is None else ()
        for handler in (*early, self.on_ready, self.on_resumed, self.on_disconnect):
            client.event(handler)
        client.add_dynamic_items(self.button_type)
        self.tree = build_tree(
            client, self.engine.registry, self._on_command, self._complete_event, self.settings.guild_ids
        )
        self.tree.error(self._on_tree_error)
        return client

    async def _login(self, client: discord.Client) -> None:
        try:
            await client.login(self._token)
        except discord.LoginFailure:
            await client.close()
            raise RuntimeError("Discord rejected DISCORD_TOKEN (reset it on the Developer Portal's Bot page)") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await client.close()
            reason = str(exc) or type(exc).__name__
            raise PlatformUnreachable(f"cannot reach Discord at {self.settings.api_base_url}: {reason}") from None

    async def _connect(self, client: discord.Client) -> None:
        """Open the gateway session(s) and wait until ready, or READY_TIMEOUT."""
        self._runner = asyncio.create_task(client.connect(reconnect=True))
        ready = asyncio.create_task(self._ready.wait())
        await asyncio.wait({ready, self._runner}, timeout=self.ready_timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._runner.done():
            error = self._runner.exception()
            if isinstance(error, AttributeError) and error.__context__ is not None:
                error = error.__context__  # discord.py trips over its own retry when the first connect fails
            raise PlatformUnreachable(f"cannot reach the Discord gateway at {self.settings.gateway_url}: {error}")
        if not ready.done():
            ready.cancel()
            log.warning(
                "Discord is not ready after %.0fs; carrying on while discord.py keeps trying", self.ready_timeout
            )

    async def _shard_count(self, client: discord.Client) -> int:
        if self.settings.shard_count != "auto":
            return self.settings.shard_count
        count, _, _ = await client.http.get_bot_gateway()
        log.info("Discord recommends %d shards", count)
        return count

    async def _run_shards(self, held: frozenset[int]) -> None:
        """Run the shards held: a new client for the new set, logged in before the old one closes (sends never
        find no client), connected after it closed (no shard has two sessions here). discord.py's
        AutoShardedClient reads `shard_ids` once, when it connects, and has no public way to add a shard."""
        async with self._switching:
            if self._engine is None:  # stopped meanwhile
                return
            try:
                client = self._new_client(held)
                await self._login(client)
                old, runner = self._client, self._runner
                self._client, self._runner, self._connected = client, None, False
                self._ready.clear()
                await _close(old, runner)
                if held:
                    await self._connect(client)
                else:
                    self._connected = True  # REST only: sends, edits and DMs need no gateway session
            except BaseException:
                await self._close_client()  # no session left running on shards that may be released now
                raise

    async def stop(self) -> None:
        """Close the sessions before the shards are released, so that no other replica runs one meanwhile."""
        async with self._switching:
            await self._close_client()
            self._engine = None
        if self._shards is not None:
            await self._shards.stop()
        self._endpoints.close()

    async def _close_client(self) -> None:
        self._connected = False
        await _close(self._client, self._runner)
        self._client, self._runner = None, None

    async def _sync(self) -> None:
        """Overwrite the commands of each configured guild (or the global ones) with the generated tree."""
        tree = self.tree
        assert tree is not None
        for guild_id in self.settings.guild_ids or (None,):
            try:
                await tree.sync(guild=discord.Object(guild_id) if guild_id else None)
            except discord.HTTPException as exc:
                log.error(
                    "syncing the slash commands to %s failed (%s %s); invite the bot with the "
                    "applications.commands scope (emcee discord-invite) and check [discord] guild_ids",
                    f"guild {guild_id}" if guild_id else "all guilds",
                    exc.status,
                    exc.text,
                )

    async def on_connect(self) -> None:
        """READY came: the adapter is ready once each guild it lists has come in by GUILD_CREATE (the announce
        channels' permissions are read from them), without discord.py's wait for guilds it does not list."""
        self._awaited = {guild.id for guild in self.client.guilds if guild.unavailable}
        if not self._awaited:
            self._became_ready()

    async def on_guild_available(self, guild: discord.Guild) -> None:
        self._awaited.discard(guild.id)
        if not self._awaited:
            self._became_ready()

    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self.on_guild_available(guild)  # discord.py's name for a guild that came in still unavailable

    async def on_ready(self) -> None:
        """discord.py's own readiness, `guild_ready_timeout` after the last GUILD_CREATE: a guild that READY
        listed but never came (a Discord outage) holds the adapter back no longer."""
        self._became_ready()

    def _became_ready(self) -> None:
        if self._connected:
            return
        self._connected = True
        self._ready.set()
        for channel_id in self.settings.announce_channels:
            if problem := announce_problem(self.client, channel_id):
                log.warning("Discord announce channel %s: %s", channel_id, problem)

    async def on_resumed(self) -> None:
        self._connected = True

    async def on_disconnect(self) -> None:
        self._connected = False

    # --- inbound -------------------------------------------------------------------------------

    async def _on_command(self, interaction: discord.Interaction, command: Command, raw: dict[str, Any]) -> None:
        started = time.monotonic()
        request = CommandOptions(_actor(interaction), _channel(interaction), command.path, raw, str(interaction.id))
        await self._run(interaction, request, started)

    async def _on_click(self, interaction: discord.Interaction, slug: str, choice: str) -> None:
        """An RSVP button: the clicker hears back ephemerally; the publisher edits the card's counts."""
        started = time.monotonic()
        options = {"event": slug, "status": choice}
        request = CommandOptions(_actor(interaction), _channel(interaction), ("rsvp",), options, str(interaction.id))
        await self._run(interaction, request, started)

    async def _run(self, interaction: discord.Interaction, request: Request, started: float) -> None:
        """Answer directly when the engine answers in time; otherwise defer first, then follow up."""
        try:
            answer = await self.engine.acks.answer(lambda: self.engine.handle(request))
            if isinstance(answer, FollowUp):
                await interaction.response.defer(ephemeral=True, thinking=True)
                self._acked(started)
                await self._answer(interaction, await answer.reply(), started, deferred=True)
            else:
                await self._answer(interaction, answer, started)
        except discord.HTTPException as exc:
            log.warning("answering a Discord interaction failed: %s %s", exc.status, exc.text)

    async def _answer(
        self, interaction: discord.Interaction, reply: Reply, started: float, deferred: bool = False
    ) -> None:
        pages = embeds.render_reply(reply)
        ephemeral = reply.private
        extra: dict[str, Any] = {"file": _file(reply.attachment)} if reply.attachment is not None else {}
        if deferred:
            await interaction.followup.send(**pages[0].fields(), **extra, ephemeral=ephemeral)
        else:
            await interaction.response.send_message(**pages[0].fields(), **extra, ephemeral=ephemeral)
            self._acked(started)
        for page in pages[1:]:
            await interaction.followup.send(**page.fields(), ephemeral=ephemeral)

    def _acked(self, started: float) -> None:
        self.engine.metrics.observe_ack(self.platform, time.monotonic() - started)

    async def _complete_event(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """Upcoming events matching what was typed: published ones, and drafts too for organizers."""
        found = await self.engine.suggest_events(_actor(interaction), current, AUTOCOMPLETE_LIMIT)
        return [app_commands.Choice(name=shorten(label, 100), value=slug) for slug, label in found]

    async def _on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        log.error("Discord command %s failed", interaction.data and interaction.data.get("name"), exc_info=error)
        if not interaction.response.is_done():
            with contextlib.suppress(discord.HTTPException):
                await interaction.response.send_message(INTERNAL_ERROR.text, ephemeral=True)

    # --- outbound ------------------------------------------------------------------------------

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        channel = self.client.get_partial_messageable(int(target.channel_id))
        return MessageRef(self.platform, target.channel_id, await self._post(channel, message, key))

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef:
        with self._failures(f"@{user.user_id}", "opening a DM"):
            channel = await self.client.create_dm(discord.Object(int(user.user_id)))
        return MessageRef(self.platform, str(channel.id), await self._post(channel, message, key))

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        """Not looked up: a post taken over within a lease or two is re-sent with the same nonce, which
        Discord answers with the message already sent for a few minutes. Beyond that window the channel's
        history cannot tell: a fetched message carries no nonce, and a late post is worded anew."""
        return None

    async def edit(self, ref: MessageRef, message: Message) -> None:
        channel = self.client.get_partial_messageable(int(ref.channel_id))
        ids = ref.message_id.split(",")
        pages = embeds.truncate(embeds.render(message), len(ids))
        view = self._view(message)
        for index, message_id in enumerate(ids):
            page = pages[index] if index < len(pages) else SHORTER
            with self._failures(ref.channel_id, "editing a message"):
                await channel.get_partial_message(int(message_id)).edit(
                    content=page.content or None, embeds=page.embeds, view=view if index == 0 else None
                )

    async def _post(self, channel: discord.abc.Messageable, message: Message, key: str) -> str:
        """Send each page of `message`; returns the message ids, comma-separated. With a post key, each page
        carries a nonce made from it, so a retry of the same post is answered with the message already sent;
        without one, discord.py's own random nonce."""
        channel_id = getattr(channel, "id", "?")
        view = self._view(message)
        ids = []
        for index, page in enumerate(embeds.truncate(embeds.render(message), MAX_PAGES)):
            extra: dict[str, Any] = {"view": view} if view is not None and index == 0 else {}
            if key:
                extra["nonce"] = nonce(channel_id, index, key)
            with self._failures(channel_id, "sending a message"):
                sent = await channel.send(**page.fields(), **extra)
            ids.append(str(sent.id))
        return ",".join(ids)

    def _view(self, message: Message) -> discord.ui.View | None:
        return views.card_view(message, self.button_type) if isinstance(message, EventCard) else None

    @contextlib.contextmanager
    def _failures(self, channel_id: int | str, action: str) -> Iterator[None]:
        """Log a refusal with the channel and what is missing, and raise it as DiscordSendError."""
        try:
            yield
        except discord.Forbidden as exc:
            detail = f"403 {exc.text or 'Forbidden'}"
            channel = self.client.get_channel(int(channel_id)) if str(channel_id).isdigit() else None
            missing = missing_permissions(channel) if channel is not None else []
            if missing:
                detail += f"; the bot lacks {', '.join(missing)}"
            log.warning("Discord refused %s in channel %s: %s", action, channel_id, detail)
            raise DiscordSendError(channel_id, detail, permanent=True) from None
        except discord.NotFound as exc:
            log.warning(
                "Discord %s in channel %s failed: 404 %s; check [discord] announce_channels and that the bot "
                "can see the channel",
                action,
                channel_id,
                exc.text,
            )
            raise DiscordSendError(channel_id, f"404 {exc.text}", permanent=True) from None
        except discord.HTTPException as exc:
            raise DiscordSendError(channel_id, f"{exc.status} {exc.text}") from None


def new_client(
    guild_ready_timeout: float, shard_ids: frozenset[int] | None = None, shard_count: int | None = None
) -> discord.Client:
    """The discord.py client as Emcee runs it: guild state only, no message cache, no pings; with `shard_ids`,
    an AutoShardedClient that runs those shards of `shard_count`."""
    options: dict[str, Any] = {
        "intents": INTENTS,
        "guild_ready_timeout": guild_ready_timeout,
        "max_messages": None,
        "chunk_guilds_at_startup": False,
        "allowed_mentions": discord.AllowedMentions.none(),  # organizer text never pings anyone
    }
    if shard_ids is None:
        return discord.Client(**options)
    return discord.AutoShardedClient(shard_ids=sorted(shard_ids), shard_count=shard_count, **options)


async def _close(client: discord.Client | None, runner: asyncio.Task[None] | None) -> None:
    """Close a client and end the task that ran its sessions."""
    if client is not None:
        _cancel_ready_timer(client)
        await client.close()
    if runner is not None:
        runner.cancel()  # a shard still launching retries even after the close
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await runner


def _cancel_ready_timer(client: discord.Client) -> None:
    """Stop discord.py's wait for on_ready, which its close() leaves running: the adapter is ready without it
    (on_connect), and once it fires after the close it leaves a coroutine that is never awaited."""
    task = client._connection._ready_task
    if task is not None:
        task.cancel()


def announce_problem(client: discord.Client, channel_id: int) -> str | None:
    """Why the bot cannot post cards in an announce channel (from the gateway cache); None when it can."""
    channel = client.get_channel(channel_id)
    if channel is None:
        return "not visible to the bot (wrong id, or no access)"
    if missing := missing_permissions(channel):
        return f"the bot lacks {', '.join(missing)}; grant them to its role in that channel"
    return None


def missing_permissions(channel: Any) -> list[str]:
    """The announce-channel permissions the bot lacks there, by discord.py's name (from the gateway cache)."""
    if not isinstance(channel, discord.abc.GuildChannel):
        return []
    granted = channel.permissions_for(channel.guild.me)
    return [name for name in CHANNEL_PERMISSIONS if not getattr(granted, name)]


def nonce(channel_id: int | str, index: int, key: str) -> str:
    """One post (its ledger key) to one channel gets the same nonce on every retry; Discord dedupes
    nonces per author for a few minutes, so the channel and the page go into it too."""
    return hashlib.sha256(f"{channel_id}:{index}:{key}".encode()).hexdigest()[:NONCE_LENGTH]


def _actor(interaction: discord.Interaction) -> Actor:
    """Who clicked or typed, with the guild, role ids and Manage Events (from the permissions Discord
    computed for the member in that channel) that the organizer check needs."""
    user = interaction.user
    return Actor(
        PLATFORM,
        str(user.id),
        user.display_name,
        guild_id=interaction.guild_id,
        role_ids=frozenset(role.id for role in getattr(user, "roles", []) if not role.is_default()),
        manages_events=interaction.guild_id is not None and interaction.permissions.manage_events,
    )


def _channel(interaction: discord.Interaction) -> ChannelRef | None:
    return ChannelRef(PLATFORM, str(interaction.channel_id)) if interaction.channel_id else None


def _file(attachment: Attachment) -> discord.File:
    return discord.File(io.BytesIO(attachment.content.encode()), filename=attachment.filename)
