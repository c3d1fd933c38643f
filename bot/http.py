"""The one aiohttp server: /healthz here; Slack HTTP mode, calendars and metrics add their routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.config import HttpSettings

HealthCheck = Callable[[], Awaitable[dict[str, str]]]


class HttpServer:
    def __init__(self, settings: HttpSettings, health: HealthCheck) -> None:
        self.settings = settings
        self.app = web.Application()
        self._health = health
        self.app.router.add_get("/healthz", self._healthz)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        checks = await self._health()
        healthy = all(state == "ok" for state in checks.values())
        return web.json_response(
            {"status": "ok" if healthy else "unhealthy", "checks": checks}, status=200 if healthy else 503
        )

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the bound port, also when configured as 0

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"
