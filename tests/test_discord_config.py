"""Discord config: base URLs from [discord] set before login, start/stop and health, and `emcee discord-invite`."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import discord
import pytest
import yarl
from conftest import NOW
from discord.backoff import ExponentialBackoff
from discord_harness import SECRETS, discord_settings, quick, running_emcee
from fakes.discord import APPLICATION_ID, FakeDiscord

from adapters.discord import DiscordAdapter
from adapters.discord.invite import PERMISSIONS, application_id, invite_url, print_invite
from bot.app import build_adapters, build_app
from bot.cli import main
from bot.clock import FakeClock
from bot.config import ConfigError, Secrets

DEFAULT_BASE = discord.http.Route.BASE
DEFAULT_GATEWAY = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY


async def test_base_urls_come_from_the_config_and_are_restored(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with running_emcee(tmp_path, fake) as emcee:
            assert discord.http.Route.BASE == fake.api_base_url
            assert discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY == yarl.URL(fake.gateway_url)
            assert emcee.adapter.connected
            assert await emcee.app.health() == {"database": "ok", "discord": "ok"}
            adapter = emcee.adapter
        assert not adapter.connected
    assert [call.path for call in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]  # login, at the fake
    assert fake.gateway_queries  # the gateway too
    assert (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == (
        DEFAULT_BASE,
        DEFAULT_GATEWAY,
    )


async def test_connected_follows_the_gateway(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        resumed = emcee.adapter.client.wait_for("resumed", timeout=2)
        await fake.request_reconnect()
        await resumed
        assert emcee.adapter.connected


def test_build_adapters_makes_the_discord_adapter(tmp_path: Path) -> None:
    settings = discord_settings(tmp_path, FakeDiscord())

    adapters = build_adapters(settings, SECRETS)

    assert isinstance(adapters["discord"], DiscordAdapter) and list(adapters) == ["discord"]
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        build_adapters(settings, Secrets())


async def test_a_revoked_token_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        app = quick(build_app(discord_settings(tmp_path, fake), Secrets(discord_token="revoked"), FakeClock(NOW)))
        with pytest.raises(RuntimeError, match="Discord rejected DISCORD_TOKEN"):
            await app.start()
        await app.stop()
    assert discord.http.Route.BASE == DEFAULT_BASE


async def test_an_unreachable_gateway_is_named_and_the_app_runs_on_without_discord(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable gateway no longer stops the start (hardening item 23): the log names it, /healthz says
    Discord is down, and the app keeps trying."""
    monkeypatch.setattr(ExponentialBackoff, "delay", lambda self: 0.0)  # no random wait to retry
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"ws://127.0.0.1:{closed.getsockname()[1]}/"
    async with FakeDiscord() as fake:
        app = quick(build_app(discord_settings(tmp_path, fake, gateway_url=nowhere), SECRETS, FakeClock(NOW)))
        await app.start()
        try:
            assert (await app.health())["discord"] == "disconnected"
        finally:
            await app.stop()
    assert f"cannot reach the Discord gateway at {nowhere}: Cannot connect" in caplog.text


def test_the_invite_asks_for_exactly_what_the_bot_needs() -> None:
    query = parse_qs(urlsplit(invite_url(APPLICATION_ID)).query)

    assert query["client_id"] == [str(APPLICATION_ID)]
    assert query["scope"] == ["bot applications.commands"]
    granted = int(query["permissions"][0])
    view_channel, send_messages, embed_links, read_message_history, use_application_commands = (
        1 << 10,
        1 << 11,
        1 << 14,
        1 << 16,
        1 << 31,
    )
    assert granted == view_channel | send_messages | embed_links | read_message_history | use_application_commands
    assert PERMISSIONS.value == granted == 2147568640


def test_emcee_discord_invite(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main(["discord-invite", "--client-id", str(APPLICATION_ID)]) == 0
    assert capsys.readouterr().out == invite_url(APPLICATION_ID) + "\n"

    assert main(["discord-invite"]) == 1
    assert "give --client-id" in capsys.readouterr().err


async def test_the_application_id_is_asked_of_discord(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with FakeDiscord() as fake:
        settings = discord_settings(tmp_path, fake).discord
        assert await application_id(settings, fake.token) == APPLICATION_ID
        assert await print_invite(settings, SECRETS, None) == 0
        assert capsys.readouterr().out == invite_url(APPLICATION_ID) + "\n"
        assert await print_invite(settings, Secrets(discord_token="revoked"), None) == 1
        assert "cannot ask Discord for the application id" in capsys.readouterr().err
    assert discord.http.Route.BASE == DEFAULT_BASE
