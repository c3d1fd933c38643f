"""`emcee run` serves until SIGTERM, then stops cleanly with exit code 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp


async def test_run_serves_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "emcee.toml"
    config.write_text(
        f'[bot]\ndatabase_url = "sqlite:///{tmp_path / "run.db"}"\n[http]\nport = 0\n[console]\nenabled = true\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    url = ""
    async with asyncio.timeout(30):
        while not url:
            line = (await process.stdout.readline()).decode()
            assert line, "emcee run ended before it served"
            if "HTTP server listening on " in line:
                url = line.split("HTTP server listening on ")[1].strip()
    async with aiohttp.ClientSession() as client, client.get(f"{url}/healthz") as response:
        assert response.status == 200
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        rest = (await process.stdout.read()).decode()
        assert await process.wait() == 0
    assert "stopping" in rest and "Traceback" not in rest
