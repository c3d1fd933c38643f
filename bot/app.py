"""The composition root: builds the database, engine, publisher, adapters and HTTP server from Settings.

This module and bot/cli.py are the only core modules that import adapters, and only those the
config enables.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TextIO

from bot.clock import Clock, SystemClock
from bot.config import Secrets, Settings
from bot.db import Database
from bot.effects import EffectBus
from bot.engine import Engine
from bot.http import HttpServer
from bot.invocation import ChannelRef
from bot.ports import Adapter
from bot.publisher import Publisher

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    db: Database
    engine: Engine
    bus: EffectBus
    publisher: Publisher
    adapters: dict[str, Adapter]
    http: HttpServer | None = None
    _started: list[Adapter] = field(default_factory=list)

    async def start(self) -> None:
        await self.db.upgrade()
        for adapter in self.adapters.values():
            await adapter.start(self.engine)
            self._started.append(adapter)
        if self.http is not None:
            await self.http.start()
            log.info("HTTP server listening on %s", self.http.url)

    async def stop(self) -> None:
        await self.bus.drain()
        if self.http is not None:
            await self.http.stop()
        for adapter in reversed(self._started):
            await adapter.stop()
        self._started.clear()
        await self.db.close()

    async def health(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await self.db.ping()
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        for platform, adapter in self.adapters.items():
            checks[platform] = "ok" if adapter.connected else "disconnected"
        return checks


def announce_channels(settings: Settings, adapters: dict[str, Adapter]) -> dict[str, list[ChannelRef]]:
    channels = {
        "slack": [ChannelRef("slack", c) for c in settings.slack.announce_channels],
        "discord": [ChannelRef("discord", str(c)) for c in settings.discord.announce_channels],
        "console": [ChannelRef("console", "announcements")],
    }
    return {platform: refs for platform, refs in channels.items() if platform in adapters}


def build_adapters(settings: Settings, secrets: Secrets, console_out: TextIO | None = None) -> dict[str, Adapter]:
    adapters: dict[str, Adapter] = {}
    if settings.console.enabled:
        from adapters.console import ConsoleAdapter

        adapters["console"] = ConsoleAdapter(console_out)
    return adapters


def build_app(
    settings: Settings,
    secrets: Secrets,
    clock: Clock | None = None,
    adapters: dict[str, Adapter] | None = None,
    with_http: bool | None = None,
) -> App:
    clock = clock or SystemClock()
    db = Database(settings.bot.database_url)
    bus = EffectBus()
    engine = Engine(db, settings, clock, bus)
    adapters = build_adapters(settings, secrets) if adapters is None else adapters
    publisher = Publisher(db, clock, adapters, announce_channels(settings, adapters))
    bus.subscribe(publisher)
    app = App(settings, db, engine, bus, publisher, adapters)
    if settings.http.enabled if with_http is None else with_http:
        app.http = HttpServer(settings.http, app.health)
    return app


async def serve_forever(app: App) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM)."""
    await app.start()
    try:
        await asyncio.Event().wait()
    finally:
        await app.stop()
