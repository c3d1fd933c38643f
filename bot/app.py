"""The composition root: builds the database, engine, publisher, adapters and HTTP server from Settings.

This module and bot/cli.py are the only core modules that import adapters, and only those the
config enables.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.config import Secrets, Settings
from bot.db import Database, DatabaseReadOnly
from bot.effects import EffectBus
from bot.engine import Engine
from bot.feeds import CalendarFeeds
from bot.http import HttpServer
from bot.invocation import ChannelRef
from bot.metrics import Metrics
from bot.ports import Adapter, PlatformUnreachable
from bot.publisher import Publisher
from bot.shards import ShardClaims, shard_claims
from schedules.planner import Rules
from schedules.runner import Runner

log = logging.getLogger(__name__)

FIRST_RETRY = 1.0  # seconds before reaching an unreachable platform again; doubles up to LAST_RETRY
LAST_RETRY = 300.0


@dataclass
class App:
    settings: Settings
    db: Database
    engine: Engine
    bus: EffectBus
    publisher: Publisher
    adapters: dict[str, Adapter]
    metrics: Metrics
    http: HttpServer | None = None
    runner: Runner | None = None  # timed posts: reminders, "up next", speaker intros
    shards: ShardClaims | None = None  # Discord's shards this replica runs, when sharded
    _started: list[Adapter] = field(default_factory=list)
    _prepared: bool = False  # the database is ready (migrated, or checked on PostgreSQL)
    _starting: set[str] = field(default_factory=set)  # platforms whose first start has not ended
    _retrying: list[asyncio.Task[None]] = field(default_factory=list)
    _adopting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Answer /healthz at once (it says what is still starting), serve every route once the database is
        ready, start the adapters side by side, so that one platform's answers never wait for another's
        connection, then replay what a stopped process left and start the timed posts."""
        self._starting = set(self.adapters)
        if self.http is not None:
            await self.http.listen()  # `emcee run` has it listening already, while it loaded the bot
        await self.db.prepare(migrate=self.settings.bot.migrate_on_start)
        self._prepared = True
        # What a stopped process committed but had not dispatched, read before any new command can commit;
        # the ledger keeps a replay from posting twice.
        left = await self.engine.outbox.left()
        if self.http is not None:
            await self.http.open()
            log.info("HTTP server listening on %s", self.http.url)
        await self._start_adapters()
        self.bus.publish(left, self.engine.outbox)
        self._adopting = asyncio.create_task(self._adopt_left())
        self.bus.spawn(self.publisher.catch_up())  # card edits a stopped process (or a command meanwhile) missed
        if self.runner is not None:
            await self.runner.start()

    async def _start_adapters(self) -> None:
        """Start every adapter at once; one whose platform cannot be reached is retried in the background."""
        starts = [asyncio.create_task(self._first_start(adapter)) for adapter in self.adapters.values()]
        try:
            await asyncio.gather(*starts)
        except BaseException:  # one failed for good (a rejected token): the others stop too
            for task in starts:
                task.cancel()
            await asyncio.gather(*starts, return_exceptions=True)
            raise

    async def _first_start(self, adapter: Adapter) -> None:
        try:
            started = await self._start_adapter(adapter)
        finally:
            self._starting.discard(adapter.platform)
        if not started:
            self._retrying.append(asyncio.create_task(self._keep_trying(adapter)))

    async def _start_adapter(self, adapter: Adapter) -> bool:
        """Start one adapter; False when its platform cannot be reached (the others carry on)."""
        try:
            await adapter.start(self.engine)
        except PlatformUnreachable as exc:
            log.warning("%s", exc)
            return False
        except asyncio.CancelledError:  # stopping: release whatever the start cut short holds
            await adapter.stop()
            raise
        self._started.append(adapter)
        return True

    async def _keep_trying(self, adapter: Adapter) -> None:
        """Start an adapter whose platform was unreachable, waiting longer after each failure."""
        delay = FIRST_RETRY
        while True:
            log.info("trying %s again in %.0fs", adapter.platform, delay)
            await asyncio.sleep(delay)
            if await self._start_adapter(adapter):
                return
            delay = min(delay * 2, LAST_RETRY)

    async def _adopt_left(self) -> None:
        """Dispatch what another process committed and left undispatched (it died; with replicas, no restart may
        ever come), once it is older than two delivery leases, looking every lease. The ledger keeps each post
        to each target once, whoever dispatches it."""
        lease = timedelta(seconds=self.settings.bot.delivery_lease_seconds)
        while True:
            await asyncio.sleep(lease.total_seconds())
            try:
                left = await self.engine.outbox.left(before=self.engine.clock.now() - 2 * lease)
            except Exception as exc:  # the database is away: the next look tries again
                log.warning("looking for effects other processes left failed: %s", exc)
                continue
            self.bus.publish(left, self.engine.outbox)

    async def stop(self) -> None:
        if self._adopting is not None:
            self._adopting.cancel()
            await asyncio.gather(self._adopting, return_exceptions=True)
        for task in self._retrying:
            task.cancel()
        await asyncio.gather(*self._retrying, return_exceptions=True)
        self._retrying.clear()
        if self.runner is not None:
            await self.runner.stop()
        await self.bus.drain()
        if self.http is not None:
            await self.http.stop()
        for adapter in reversed(self._started):
            await adapter.stop()
        self._started.clear()
        await self.db.close()

    async def health(self) -> dict[str, str]:
        """Each part's state; the database is not touched while it is being prepared (waiting, migrating)."""
        checks = {"database": await self._database_health() if self._prepared else self.db.state}
        for platform, adapter in self.adapters.items():
            if platform in self._starting:
                checks[platform] = "starting"
            else:
                checks[platform] = "ok" if adapter.connected else "disconnected"
        if self.shards is not None and checks.get("discord", "starting") != "starting":
            checks["discord"] += f": {await self.shards.describe()}"  # "ok: holds 1 of 2; every shard held"
        return checks

    async def _database_health(self) -> str:
        try:
            await self.db.ping()
        except DatabaseReadOnly:
            return "read-only"
        except Exception as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ok"

    async def metrics_page(self, accept: str | None) -> tuple[bytes, str]:
        await self.metrics.refresh(self.db, self.engine.clock.now())
        return self.metrics.exposition(accept)


def announce_channels(settings: Settings, adapters: dict[str, Adapter]) -> dict[str, list[ChannelRef]]:
    channels = {
        "slack": [ChannelRef("slack", c) for c in settings.slack.announce_channels],
        "discord": [ChannelRef("discord", str(c)) for c in settings.discord.announce_channels],
        "console": [ChannelRef("console", "announcements")],
    }
    return {platform: refs for platform, refs in channels.items() if platform in adapters}


def discord_shards(settings: Settings) -> ShardClaims | None:
    """The claims on Discord's shards when it runs sharded ([discord] shard_count other than 1)."""
    if not settings.discord.enabled or settings.discord.shard_count == 1:
        return None
    return shard_claims(settings.bot.database_url)


def build_adapters(
    settings: Settings,
    secrets: Secrets,
    console_out: TextIO | None = None,
    http: HttpServer | None = None,
    shards: ShardClaims | None = None,
) -> dict[str, Adapter]:
    adapters: dict[str, Adapter] = {}
    if settings.console.enabled:
        from adapters.console import ConsoleAdapter

        adapters["console"] = ConsoleAdapter(console_out)
    if settings.slack.enabled:
        from adapters.slack import SlackAdapter

        adapters["slack"] = SlackAdapter(settings.slack, secrets, http, bot_name=settings.bot.name)
    if settings.discord.enabled:
        from adapters.discord import DiscordAdapter

        adapters["discord"] = DiscordAdapter(settings.discord, secrets, shards=shards)
    return adapters


def build_app(
    settings: Settings,
    secrets: Secrets,
    clock: Clock | None = None,
    adapters: dict[str, Adapter] | None = None,
    with_http: bool | None = None,
    console_out: TextIO | None = None,
    http: HttpServer | None = None,
) -> App:
    """The bot, on `http` when given (`emcee run` listens before it loads this module), else on a new server
    when `with_http` (default: [http] enabled)."""
    clock = clock or SystemClock()
    db = Database(settings.bot.database_url)
    bus = EffectBus()
    metrics = Metrics()
    engine = Engine(db, settings, clock, bus, metrics=metrics)
    # The server exists before the adapters so that Slack's HTTP mode can add its route.
    if http is None and (settings.http.enabled if with_http is None else with_http):
        http = HttpServer(settings.http)
    shards = discord_shards(settings) if adapters is None else None
    adapters = build_adapters(settings, secrets, console_out, http, shards) if adapters is None else adapters
    channels = announce_channels(settings, adapters)
    lease = timedelta(seconds=settings.bot.delivery_lease_seconds)
    publisher = Publisher(db, clock, adapters, channels, base_url=settings.http.link_base, lease=lease)
    bus.subscribe(publisher)
    runner = Runner(db, clock, publisher.outbox, publisher.targets(), Rules.from_settings(settings), metrics)
    bus.subscribe(runner)
    app = App(settings, db, engine, bus, publisher, adapters, metrics, http, runner, shards)
    if http is not None:
        http.report(app.health, app.metrics_page)
        CalendarFeeds(db, clock, settings.bot.name).register(http.app)
    return app


async def serve_forever(app: App) -> None:
    """Run until Ctrl-C or SIGTERM, then stop cleanly: sends under way finish, the rest wait for the next start."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await app.start()
    try:
        await stopping.wait()
        log.info("stopping")
    finally:
        await app.stop()
