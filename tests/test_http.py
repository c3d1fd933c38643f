"""The one HTTP server starts with the app, on the configured host and port."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from conftest import database_url, make_settings

from adapters.console import ConsoleAdapter
from bot.app import build_app
from bot.config import Secrets


async def test_app_serves_healthz_on_its_port(tmp_path: Path) -> None:
    settings = make_settings(bot={"database_url": database_url(tmp_path)}, http={"host": "127.0.0.1", "port": 0})
    app = build_app(settings, Secrets(), adapters={"console": ConsoleAdapter()})
    await app.start()
    try:
        assert app.http is not None and app.http.port
        async with aiohttp.ClientSession() as client, client.get(f"{app.http.url}/healthz") as response:
            body = await response.json()
        assert response.status == 200
        assert body["checks"] == {"database": "ok", "console": "ok"}
    finally:
        await app.stop()
