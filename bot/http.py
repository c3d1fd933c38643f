"""The one aiohttp server: /healthz and /metrics here; Slack HTTP mode and calendars add their routes.

`emcee run` starts it before it loads the rest of the bot (most of a second of imports), so that /healthz
answers at once: until `open`, requests are answered by `_answer` alone (/healthz from the health check, which
says what is still starting, and 503 for every other path); after it, by the app's routes, on the same port.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

from bot.config import HttpSettings

if TYPE_CHECKING:
    from aiohttp import StreamReader
    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.http_parser import RawRequestMessage

    RequestFactory = Callable[
        [RawRequestMessage, StreamReader, web.RequestHandler, AbstractStreamWriter, asyncio.Task[None]], web.BaseRequest
    ]

HealthCheck = Callable[[], Awaitable[dict[str, str]]]
MetricsPage = Callable[[str | None], Awaitable[tuple[bytes, str]]]  # Accept header -> body, content type


async def loading() -> dict[str, str]:
    """The health of a process that is still loading the bot: nothing else can be checked yet."""
    return {"emcee": "starting"}


class HttpServer:
    def __init__(
        self, settings: HttpSettings, health: HealthCheck = loading, metrics: MetricsPage | None = None
    ) -> None:
        self.settings = settings
        self.app = web.Application()
        self._health = health
        self.app.router.add_get("/healthz", self._healthz)
        if metrics is not None:
            self.app.router.add_get("/metrics", _metrics_handler(metrics))
        self._listening: web.ServerRunner | None = None  # the port, from `listen`
        self._routes: web.AppRunner | None = None  # the app, from `open`; it has no port of its own
        self.port: int | None = None

    def report(self, health: HealthCheck, metrics: MetricsPage) -> None:
        """Answer /healthz and /metrics from these (the bot's, once it is built); before `open`."""
        self._health = health
        self.app.router.add_get("/metrics", _metrics_handler(metrics))

    async def _healthz(self, request: web.BaseRequest) -> web.Response:
        checks = await self._health()
        problems = [f"{name}: {state}" for name, state in checks.items() if not _healthy(state)]
        body: dict[str, object] = {"status": "unhealthy" if problems else "ok", "checks": checks}
        if problems:
            body["reason"] = "; ".join(problems)
        return web.json_response(body, status=503 if problems else 200)

    async def start(self) -> None:
        """Listen and serve every route."""
        await self.listen()
        await self.open()

    async def listen(self) -> None:
        """Bind the port; until `open`, answer /healthz and refuse the rest with 503. Once only."""
        if self._listening is not None:
            return
        server = web.Server(self._answer, access_log=None, logger=_ServerLog(server_logger))
        server.request_factory = functools.partial(self._request, server.request_factory)
        self._listening = web.ServerRunner(server)
        await self._listening.setup()
        site = web.TCPSite(self._listening, self.settings.host, self.settings.port)
        await site.start()
        self.port = self._listening.addresses[0][1]  # the bound port, also when configured as 0

    async def open(self) -> None:
        """Serve every route: call it once they are all added and what they need is ready."""
        self._routes = web.AppRunner(self.app)
        await self._routes.setup()  # freezes the app and makes its request handler

    def _request(
        self,
        plain: RequestFactory,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """A request for the app's routes once it is open, else a plain one (the port's own) for `_answer`."""
        routed = self._routed
        make = routed.request_factory if routed is not None else plain
        return make(message, payload, protocol, writer, task)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        routed = self._routed
        # By its kind, not by the time: a plain request made before `open` is answered here even after it.
        if routed is not None and isinstance(request, web.Request):
            return await routed.request_handler(request)
        if request.path == "/healthz":
            return await self._healthz(request)
        return web.Response(status=503, text="starting", headers={hdrs.RETRY_AFTER: "1"})

    @property
    def _routed(self) -> web.Server | None:
        """The app's request handling, once it is open."""
        return self._routes.server if self._routes is not None else None

    async def stop(self) -> None:
        if self._listening is not None:
            await self._listening.cleanup()
            self._listening = None
        if self._routes is not None:
            await self._routes.cleanup()
            self._routes = None

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


def _healthy(state: str) -> bool:
    """A check is healthy when it says "ok", alone or followed by what it holds ("ok: holds shards 0, 1 of 2")."""
    return state == "ok" or state.startswith("ok: ")


def _metrics_handler(page: MetricsPage) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics(request: web.Request) -> web.Response:
        body, content_type = await page(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return metrics
