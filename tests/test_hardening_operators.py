"""Hardening for operators: `emcee check` and `emcee run` as an operator tries them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from conftest import ORGANIZER, database_url, make_settings, snapshot
from fakes.discord import BOT_TOKEN, CHANNEL_ID, GUILD_ID, FakeDiscord
from fakes.slack import FakeSlack
from slack_harness import SECRETS as SLACK_SECRETS

import bot.app
from adapters.console import ConsoleAdapter
from bot.app import build_app
from bot.config import ConfigError, Secrets, load_settings
from bot.db import Database
from bot.invocation import CommandLine


def emcee(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `emcee` command as a subprocess, the way an operator does."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emcee.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[bot]\ndatabase_url = "mysql://u:p@localhost/emcee"', "[bot] database_url: unsupported database 'mysql'"),
        ('[bot]\ndatabase_url = ""', "[bot] database_url: not a database URL"),
        ('[bot]\ndatabase_url = "not a url"', "[bot] database_url: not a database URL"),
        ('[http]\nhost = "my host!"', "[http] host: must be an IP address or a host name"),
        ('[http]\nhost = ""', "[http] host: must be an IP address or a host name"),
        ("[bot]\ngrace_minutes = 9223372036854775807", "[bot] grace_minutes: Input should be less than or equal to"),
    ],
)
def test_check_refuses_settings_that_run_cannot_use(tmp_path: Path, text: str, expected: str) -> None:
    """Hardening item 19: `emcee check` refuses what `emcee run` would die on, naming the key and what is allowed."""
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert f"{path}: {expected}" in str(info.value)
    result = emcee("check", "--config", str(path))
    assert result.returncode != 0
    assert expected in result.stderr
    assert "config OK" not in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        '[bot]\ndatabase_url = "sqlite:///emcee.db"',
        '[bot]\ndatabase_url = "postgresql://emcee@db.internal:5432/emcee"',
        '[http]\nhost = "0.0.0.0"',
        '[http]\nhost = "::1"',
        '[http]\nhost = "bot-1.internal.example.org"',
        "[bot]\ngrace_minutes = 1440",
    ],
)
def test_usable_settings_still_pass(tmp_path: Path, text: str) -> None:
    """Hardening item 19: the new checks accept every supported database, host form and grace up to a day."""
    load_settings(write_config(tmp_path, text))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
        ('[bot]\nname = "Caf\xe9"\n'.encode("latin-1"), "not UTF-8 text"),
        (b'[reminders]\nitem_offset = "99999999999d"\n', "[reminders] item_offset"),
        (b"[bot]\nname = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
    ],
)
def test_check_turns_any_unreadable_config_into_one_error_line(tmp_path: Path, content: bytes, expected: str) -> None:
    """Hardening item 20: a binary, non-UTF-8, overflowing or absurdly nested config is one clear error naming the
    file, never a traceback."""
    path = tmp_path / "emcee.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
    result = emcee("check", "--config", str(path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line] == [f"error: {info.value}"]


EXAMPLE_EVENT = Path(__file__).parent.parent / "examples" / "bookkeeper-2016-06.toml"


def unusable_database(tmp_path: Path, kind: str) -> tuple[str, str]:
    """A database_url that cannot be used, and the words of the fix that the operator must be told."""
    if kind == "missing folder":
        return f"sqlite:///{tmp_path / 'nowhere' / 'emcee.db'}", f"the folder {tmp_path / 'nowhere'} does not exist"
    if kind == "not sqlite":
        (tmp_path / "notes.db").write_text("these are notes, not a database " * 10)
        return f"sqlite:///{tmp_path / 'notes.db'}", f"{tmp_path / 'notes.db'} is not a SQLite database"
    if kind == "a folder":
        (tmp_path / "data").mkdir()
        return f"sqlite:///{tmp_path / 'data'}", f"{tmp_path / 'data'} is a folder, not a database file"
    return "postgresql://emcee@127.0.0.1:1/emcee", "cannot connect to PostgreSQL at 127.0.0.1:1"


@pytest.mark.parametrize("kind", ["missing folder", "not sqlite", "a folder", "postgresql unreachable"])
def test_db_upgrade_explains_an_unusable_database(tmp_path: Path, kind: str) -> None:
    """Hardening item 21: `emcee db upgrade` says what is wrong with the database and how to fix it."""
    url, expected = unusable_database(tmp_path, kind)
    result = emcee("db", "upgrade", "--config", str(write_config(tmp_path, f'[bot]\ndatabase_url = "{url}"\n')))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr and "[bot] database_url" in result.stderr


@pytest.mark.parametrize(
    "command",
    [("run",), ("import", str(EXAMPLE_EVENT)), ("export", "ics"), ("db", "upgrade")],
    ids=["run", "import", "export", "db upgrade"],
)
def test_every_command_explains_a_missing_database_folder(tmp_path: Path, command: tuple[str, ...]) -> None:
    """Hardening item 21: run, import and export also answer an unusable database with the fix, not a traceback."""
    url, expected = unusable_database(tmp_path, "missing folder")
    config = write_config(tmp_path, f'[bot]\ndatabase_url = "{url}"\n[http]\nport = 0\n')
    result = emcee(*command, "--config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


async def read_only_url(tmp_path: Path) -> str:
    """A migrated SQLite file, then opened read-only (as a read-only mount or file would be)."""
    db = Database(database_url(tmp_path))
    await db.upgrade()
    await db.close()
    return f"sqlite:///file:{tmp_path / 'emcee.db'}?mode=ro&uri=true"


async def test_healthz_reports_a_read_only_database(tmp_path: Path) -> None:
    """Hardening item 22: /healthz tries a write (rolled back), so a read-only database is unhealthy, not ok."""
    settings = make_settings(bot={"database_url": await read_only_url(tmp_path)}, http={"port": 0})
    app = build_app(settings, Secrets(), adapters={"console": ConsoleAdapter()})
    await app.start()
    try:
        assert app.http is not None
        async with aiohttp.ClientSession() as client, client.get(f"{app.http.url}/healthz") as response:
            body = await response.json()
        assert response.status == 503
        assert body["checks"]["database"] == "read-only"
    finally:
        await app.stop()


async def test_healthz_write_check_leaves_a_writable_database_unchanged(tmp_path: Path) -> None:
    """Hardening item 22: the health check's write is rolled back, so a healthy database is ok and unchanged."""
    settings = make_settings(bot={"database_url": database_url(tmp_path)}, http={"port": 0})
    app = build_app(settings, Secrets(), adapters={"console": ConsoleAdapter()})
    await app.start()
    try:
        before = await snapshot(app.db)
        assert (await app.health())["database"] == "ok"
        assert await snapshot(app.db) == before
    finally:
        await app.stop()


async def test_commands_say_the_database_is_read_only_and_log_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hardening item 22: on a read-only database a command answers that nothing can change for that reason,
    and the operator's log says so once, not with a traceback per command."""
    settings = make_settings(bot={"database_url": await read_only_url(tmp_path)})
    app = build_app(settings, Secrets(), adapters={}, with_http=False)
    await app.start()
    try:
        line = '/emcee event create bk "BookKeeper" --starts 2026-06-15 18:00'
        with caplog.at_level(logging.INFO):
            replies = [await app.engine.handle(CommandLine(ORGANIZER, None, line)) for _ in range(3)]
    finally:
        await app.stop()
    for reply in replies:
        assert not reply.ok
        assert "read-only" in reply.text and "nothing was changed" in reply.text
    read_only_logs = [record for record in caplog.records if "read-only" in record.getMessage()]
    assert len(read_only_logs) == 1
    assert not any(record.exc_info for record in caplog.records)


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening on it (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> str:
    """Read lines into `seen` until one holds `marker`; return the text after it."""
    async with asyncio.timeout(30):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"emcee run ended before {marker!r}: {''.join(seen)}"
            seen.append(line)
            if marker in line:
                return line.split(marker)[1].strip()


async def health_once_tried(url: str) -> tuple[int, dict[str, Any]]:
    """/healthz once no platform says "starting" (the server answers while the first attempts are under way)."""
    async with aiohttp.ClientSession() as client, asyncio.timeout(30):
        while True:
            async with client.get(f"{url}/healthz") as response:
                body: dict[str, Any] = await response.json()
            if "starting" not in body["checks"].values():
                return response.status, body
            await asyncio.sleep(0.05)


async def test_run_keeps_serving_when_slack_and_discord_are_unreachable(tmp_path: Path) -> None:
    """Hardening item 23: with Slack and Discord unreachable at start, `emcee run` names each platform, keeps the
    console and the HTTP server up, reports both platforms down on /healthz, keeps retrying, and stops cleanly,
    with no traceback, no unclosed session and no warning about the token."""
    port = closed_port()
    config = write_config(
        tmp_path,
        f'[bot]\ndatabase_url = "{database_url(tmp_path)}"\n[http]\nport = 0\n'
        f'[slack]\nenabled = true\napi_base_url = "http://127.0.0.1:{port}/api/"\n'
        f'[discord]\nenabled = true\napi_base_url = "http://127.0.0.1:{port}/api/v10"\n'
        f'gateway_url = "ws://127.0.0.1:{port}/"\n',
    )
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "DISCORD_TOKEN": "d.t.x"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[str] = []
    try:
        url = await read_until(process.stdout, "HTTP server listening on ", seen)
        status, body = await health_once_tried(url)
        assert status == 503
        assert body["checks"] == {"database": "ok", "console": "ok", "slack": "disconnected", "discord": "disconnected"}
        await read_until(process.stdout, "cannot reach Slack", seen)  # the first attempt's line
        await read_until(process.stdout, "cannot reach Slack", seen)  # a retry
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            seen.append((await process.stdout.read()).decode())
            code = await process.wait()
    output = "".join(seen)
    assert code == 0
    assert f"cannot reach Slack at http://127.0.0.1:{port}/api/" in output
    assert f"cannot reach Discord at http://127.0.0.1:{port}/api/v10" in output
    for noise in ("Traceback", "Unclosed client session", "token will be unused", "ERROR"):
        assert noise not in output


async def test_a_platform_unreachable_at_start_connects_once_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Hardening item 23: the app keeps trying a platform it could not reach, and /healthz says ok once it
    connects; Bolt is given the token once, so it never warns that the token goes unused."""
    monkeypatch.setattr(bot.app, "FIRST_RETRY", 0.05)
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_SECRETS.slack_bot_token or "")
    port = closed_port()
    settings = make_settings(
        bot={"database_url": database_url(tmp_path)},
        http={"port": 0},
        slack={"enabled": True, "mode": "http", "api_base_url": f"http://127.0.0.1:{port}/api/"},
        console={"enabled": False},
    )
    app = build_app(settings, SLACK_SECRETS)
    await app.start()
    try:
        assert (await app.health())["slack"] == "disconnected"
        async with FakeSlack(port=port) as fake:
            async with asyncio.timeout(10):
                while not app.adapters["slack"].connected:
                    await asyncio.sleep(0.02)
            assert (await app.health())["slack"] == "ok"
            assert fake.calls_to("auth.test")
    finally:
        await app.stop()
    assert "cannot reach Slack" in caplog.text
    assert "token will be unused" not in caplog.text


def cli_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, f'[bot]\ndatabase_url = "{database_url(tmp_path)}"\n')


def test_export_of_an_unknown_event_names_the_cli_way_to_list_events(tmp_path: Path) -> None:
    """Hardening item 25: on the command line, an unknown slug points to `emcee events`, not to a chat command."""
    config = cli_config(tmp_path)
    result = emcee("export", "ics", "nope", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "no event called 'nope'" in result.stderr
    assert "emcee events" in result.stderr and "/events" not in result.stderr.replace("emcee events", "")
    assert not list(tmp_path.glob("*.ics"))


def test_events_lists_every_event_with_its_slug_and_state(tmp_path: Path) -> None:
    """Hardening item 25: `emcee events` lists the events with slugs and states; an empty database says so."""
    config = cli_config(tmp_path)
    empty = emcee("events", "--config", str(config), cwd=tmp_path)
    assert empty.returncode == 0 and "no events yet" in empty.stdout
    assert emcee("import", str(EXAMPLE_EVENT), "--config", str(config), cwd=tmp_path).returncode == 0
    result = emcee("events", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0
    row = next(line for line in result.stdout.splitlines() if line.startswith("bk-june-2016"))
    assert "draft" in row and "past" in row and "Wed 15 Jun 2016" in row


def test_importing_a_past_event_says_it_is_in_the_past(tmp_path: Path) -> None:
    """Hardening item 25: an event file whose event is over is imported (kept for the record) and the answer says
    plainly that it is a past event, instead of suggesting to publish it."""
    result = emcee("import", str(EXAMPLE_EVENT), "--config", str(cli_config(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0
    assert "imported bk-june-2016 as a past event" in result.stdout
    assert "publish" not in result.stdout


def test_event_publish_from_the_command_line_says_truthfully_what_happens(tmp_path: Path) -> None:
    """Hardening item 25: `emcee event publish SLUG` publishes through the engine; with no platform connected it
    says that no card was posted and how to post one, and a second publish is refused."""
    config = cli_config(tmp_path)
    assert emcee("import", str(EXAMPLE_EVENT), "--config", str(config), cwd=tmp_path).returncode == 0
    result = emcee("event", "publish", "bk-june-2016", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "published bk-june-2016" in result.stdout
    assert "no card was posted" in result.stdout and "/emcee announce bk-june-2016" in result.stdout
    listed = emcee("events", "--config", str(config), cwd=tmp_path).stdout
    assert "published" in next(line for line in listed.splitlines() if line.startswith("bk-june-2016"))
    again = emcee("event", "publish", "bk-june-2016", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 1 and "already published" in again.stderr
    unknown = emcee("event", "publish", "nope", "--config", str(config), cwd=tmp_path)
    assert unknown.returncode == 1 and "emcee events" in unknown.stderr


def test_export_with_nothing_to_export_says_so_and_writes_no_file(tmp_path: Path) -> None:
    """Hardening item 25: `emcee export ics` with no upcoming published event says so instead of writing an empty
    calendar."""
    result = emcee("export", "ics", "--config", str(cli_config(tmp_path)), cwd=tmp_path)
    assert result.returncode == 1
    assert "nothing to export" in result.stderr
    assert not (tmp_path / "calendar.ics").exists()


def test_check_warns_when_an_enabled_platform_has_no_announce_channels(tmp_path: Path) -> None:
    """Hardening item 24: an enabled adapter with no announce channels is worth a warning naming the key to set."""
    config = write_config(tmp_path, "[slack]\nenabled = true\n[discord]\nenabled = true\n")
    env = {"PATH": "/usr/bin:/bin", "SLACK_BOT_TOKEN": "x", "SLACK_APP_TOKEN": "y", "DISCORD_TOKEN": "z"}
    result = emcee("check", "--config", str(config), env=env)
    assert result.returncode == 0
    assert "warning: [slack] announce_channels is empty" in result.stderr
    assert "warning: [discord] announce_channels is empty" in result.stderr


def test_check_without_a_config_file_says_it_uses_the_defaults(tmp_path: Path) -> None:
    """Hardening item 24: with no --config and no emcee.toml, `emcee check` says it is using the built-in defaults."""
    result = emcee("check", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    assert "config: no emcee.toml here and no --config given; using the built-in defaults" in result.stdout
    with_file = emcee("check", "--config", str(cli_config(tmp_path)))
    assert f"config: {tmp_path / 'emcee.toml'}" in with_file.stdout


async def emcee_async(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `emcee` as a subprocess while this test's fakes keep serving; exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_check_online_checks_slack_token_and_each_announce_channel(tmp_path: Path) -> None:
    """Hardening item 24: `emcee check --online` calls auth.test and conversations.info, and names each announce
    channel the bot cannot post in, with the fix."""
    async with FakeSlack() as fake:
        fake.channels |= {"C0MEETUPS1": True, "C0OUTSIDE1": False}
        config = write_config(
            tmp_path,
            f'[bot]\ndatabase_url = "{database_url(tmp_path)}"\n[slack]\nenabled = true\n'
            f'api_base_url = "{fake.api_base_url}"\nannounce_channels = ["C0MEETUPS1", "C0OUTSIDE1", "C0GONE0001"]\n',
        )
        env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
        code, out, err = await emcee_async("check", "--online", "--config", str(config), env=env)
        assert [call.params.get("channel") for call in fake.calls_to("conversations.info")] == [
            "C0MEETUPS1", "C0OUTSIDE1", "C0GONE0001"
        ]  # fmt: skip
    assert code == 1, out + err
    assert "slack: signed in as emcee in Emcee Test" in out
    assert "slack: can post in C0MEETUPS1" in out
    assert (
        "error: slack channel C0OUTSIDE1: the bot is not a member; "
        "invite the bot to #channel: type /invite @emcee in channel C0OUTSIDE1"
    ) in err
    assert "error: slack channel C0GONE0001: channel_not_found" in err
    assert "config OK" not in out and "Traceback" not in err


async def test_check_online_reports_a_rejected_slack_token(tmp_path: Path) -> None:
    """Hardening item 24: a token Slack refuses is named as such by `emcee check --online`."""
    async with FakeSlack() as fake:
        fake.fail_next("auth.test", "invalid_auth")
        config = write_config(
            tmp_path, f'[slack]\nenabled = true\napi_base_url = "{fake.api_base_url}"\nannounce_channels = ["C1"]\n'
        )
        env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
        code, out, err = await emcee_async("check", "--online", "--config", str(config), env=env)
    assert code == 1
    assert "error: slack: Slack rejected SLACK_BOT_TOKEN: invalid_auth" in err


async def test_check_online_checks_discord_login_and_channel_permissions(tmp_path: Path) -> None:
    """Hardening item 24: `emcee check --online` logs in to Discord (GET /users/@me), and names each announce
    channel that does not exist or where the bot may not send messages and embed links."""
    async with FakeDiscord() as fake:
        no_embeds = fake.add_channel("no-embeds")
        fake.channel(no_embeds)["permission_overwrites"] = [
            {"id": str(GUILD_ID), "type": 0, "allow": "0", "deny": str(discord.Permissions(embed_links=True).value)}
        ]
        config = write_config(
            tmp_path,
            f"[discord]\nenabled = true\nguild_ids = [{GUILD_ID}]\n"
            f"announce_channels = [{CHANNEL_ID}, {no_embeds}, 42]\n"
            f'api_base_url = "{fake.api_base_url}"\ngateway_url = "{fake.gateway_url}"\n',
        )
        env = {"DISCORD_TOKEN": BOT_TOKEN}
        code, out, err = await emcee_async("check", "--online", "--config", str(config), env=env)
        assert fake.calls_to("GET", r"/users/@me$")
    assert code == 1, out + err
    assert "discord: signed in as" in out
    assert f"discord: can post in {CHANNEL_ID}" in out
    assert f"error: discord channel {no_embeds}: the bot lacks embed_links" in err
    assert "error: discord channel 42: not visible to the bot" in err
    assert "Traceback" not in err
