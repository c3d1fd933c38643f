"""The one aiohttp server: /healthz and /metrics here; Slack HTTP mode and calendars add their routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from bot.config import HttpSettings

HealthCheck = Callable[[], Awaitable[dict[str, str]]]
MetricsPage = Callable[[str | None], Awaitable[tuple[bytes, str]]]  # Accept header -> body, content type


class HttpServer:
    def __init__(self, settings: HttpSettings, health: HealthCheck, metrics: MetricsPage | None = None) -> None:
        self.settings = settings
        self.app = web.Application()
        self._health = health
        self.app.router.add_get("/healthz", self._healthz)
        if metrics is not None:
            self.app.router.add_get("/metrics", _metrics_handler(metrics))
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def _healthz(self, request: web.Request) -> web.Response:
        checks = await self._health()
        problems = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
        body: dict[str, object] = {"status": "unhealthy" if problems else "ok", "checks": checks}
        if problems:
            body["reason"] = "; ".join(problems)
        return web.json_response(body, status=503 if problems else 200)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, logger=_ServerLog(server_logger))
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


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, where a request that cannot be parsed (anyone can send a garbage request
    line or bad headers) is one short INFO line instead of an ERROR with a traceback. A failure inside a
    handler keeps its traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = (exc_info.message or type(exc_info).__name__).splitlines()[0]
            self.info("%s: %s %s", str(msg) % args, exc_info.code, reason)
        else:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _metrics_handler(page: MetricsPage) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(request: web.Request) -> web.Response:
        body, content_type = await page(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return metrics
