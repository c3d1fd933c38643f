"""`emcee run` answers /healthz before it loads the bot: 503 "starting" while its modules load and while its
database is prepared, and no other route until the database is ready."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from conftest import database_url

from bot.db import Database

# `emcee run`, with `import bot.app` held until a line comes on stdin: the bot taking its time to load.
HELD_RUN = """
import sys
from bot.cli import main


class HeldImport:
    def find_spec(self, name, path=None, target=None):
        if name == "bot.app":
            sys.meta_path.remove(self)
            sys.stdin.readline()
        return None


sys.meta_path.insert(0, HeldImport())
sys.exit(main(["run", "--config", sys.argv[1]]))
"""
Answer = tuple[int, dict[str, str]]  # /healthz's status and checks


def free_port() -> int:
    """A 127.0.0.1 port free now (bound, then released): the child must be reached before it serves its routes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def health(client: aiohttp.ClientSession, url: str, until: Callable[[Answer], bool] = lambda _: True) -> Answer:
    """/healthz's first answer for which `until` holds; a refused connection is tried again."""
    async with asyncio.timeout(30):
        while True:
            try:
                async with client.get(f"{url}/healthz") as response:
                    body: dict[str, Any] = await response.json()
                answer = (response.status, body["checks"])
                if until(answer):
                    return answer
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.005)


async def status(client: aiohttp.ClientSession, url: str) -> int:
    async with client.get(url) as response:
        return response.status


@contextmanager
def locked(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's write under way on the SQLite file (its lock held) until the block ends or rolls back."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    finally:
        connection.close()


async def test_run_answers_healthz_before_the_bot_loads_and_serves_routes_once_the_database_is_ready(
    tmp_path: Path,
) -> None:
    url = database_url(tmp_path)
    db = Database(url)
    await db.upgrade()
    await db.close()
    port = free_port()
    config = tmp_path / "emcee.toml"
    config.write_text(f'[bot]\ndatabase_url = "{url}"\n[http]\nport = {port}\n[console]\nenabled = false\n')
    server = f"http://127.0.0.1:{port}"
    with locked(tmp_path / "emcee.db") as lock:
        async with aiohttp.ClientSession() as client:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", HELD_RUN, str(config),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            assert process.stdin is not None and process.stdout is not None
            try:
                loading = await health(client, server)
                loading_calendar = await status(client, f"{server}/calendar.ics")
                process.stdin.write(b"loaded\n")  # the bot's modules load; its database stays locked
                preparing = await health(client, server, until=lambda answer: answer != loading)
                preparing_calendar = await status(client, f"{server}/calendar.ics")
                lock.rollback()
                ready = await health(client, server, until=lambda answer: answer[0] == 200)
                ready_calendar = await status(client, f"{server}/calendar.ics")
            finally:
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    output = (await process.stdout.read()).decode()
                    code = await process.wait()

    assert loading == (503, {"emcee": "starting"})
    assert preparing == (503, {"database": "starting"})
    assert ready == (200, {"database": "ok"})
    assert (loading_calendar, preparing_calendar, ready_calendar) == (503, 503, 200)
    assert code == 0 and "Traceback" not in output


def test_run_loads_no_database_or_chat_library_before_it_listens(tmp_path: Path) -> None:
    """What `emcee run` imports before its server answers: the CLI, the config (a sqlite:/// URL needs no
    SQLAlchemy to check) and the server; SQLAlchemy and the chat libraries take most of a second more."""
    config = tmp_path / "emcee.toml"
    config.write_text(f'[bot]\ndatabase_url = "{database_url(tmp_path)}"\n')
    heavy = ("sqlalchemy", "sqlmodel", "alembic", "slack_bolt", "slack_sdk", "discord", "apscheduler")
    script = (
        "import sys\nfrom pathlib import Path\nimport bot.cli, bot.http\nfrom bot.config import load_settings\n"
        f"load_settings(Path(sys.argv[1]))\nprint(sorted(set({heavy!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=60)
    assert (result.stdout.strip(), result.stderr) == ("[]", "")
