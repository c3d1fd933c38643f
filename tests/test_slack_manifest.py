"""`emcee slack-manifest`: the Slack app manifest generated from the command registry and the config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from adapters.slack.manifest import BOT_SCOPES, PLACEHOLDER_URL, build_manifest
from bot.cli import main
from bot.commands import Command, Registry
from bot.commands.catalog import COMMANDS
from bot.config import Settings


def settings(mode: str, public_url: str = "") -> Settings:
    http = {"public_url": public_url} if public_url else {}
    return Settings.model_validate({"slack": {"enabled": True, "mode": mode}, "http": http})


def test_every_registry_root_is_a_slash_command_with_its_usage_hint() -> None:
    manifest = build_manifest(settings("socket"))

    commands = {c["command"]: c for c in manifest["features"]["slash_commands"]}
    assert list(commands) == ["/rsvp", "/events", "/agenda", "/emcee"]
    assert commands["/rsvp"]["usage_hint"] == "[event] [going|maybe|no] [+N]"
    assert commands["/agenda"]["usage_hint"] == "[event]"
    assert "usage_hint" not in commands["/events"]
    emcee_subcommands = {c.path[1] for c in COMMANDS if c.path[0] == "emcee"}
    assert set(re.findall(r"\w+", commands["/emcee"]["usage_hint"])) == emcee_subcommands
    for command in commands.values():
        assert re.fullmatch(r"/[a-z0-9_-]{1,31}", command["command"])
        assert 0 < len(command["description"]) <= 100 and command["should_escape"] is False


def test_a_new_command_in_the_registry_reaches_the_manifest() -> None:
    registry = Registry((*COMMANDS, Command(("checkin",), "Check in at the door")))

    commands = build_manifest(settings("socket"), registry)["features"]["slash_commands"]

    assert commands[-1] == {"command": "/checkin", "description": "Check in at the door", "should_escape": False}


def test_socket_mode_manifest() -> None:
    manifest = build_manifest(settings("socket"))

    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert all("url" not in c for c in manifest["features"]["slash_commands"])
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert {"commands", "chat:write", "im:write"} <= set(BOT_SCOPES)
    assert {"channels:history", "groups:history", "im:history"} <= set(BOT_SCOPES)  # finding a post after a crash


def test_http_mode_manifest_points_commands_and_buttons_at_slack_events() -> None:
    manifest = build_manifest(settings("http", "https://meetups.example.org/"))

    url = "https://meetups.example.org/slack/events"
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert {c["url"] for c in manifest["features"]["slash_commands"]} == {url}


def test_without_an_https_url_the_manifest_has_a_placeholder() -> None:
    manifest = build_manifest(settings("http"))  # public_url defaults to http://127.0.0.1:8080

    assert manifest["settings"]["interactivity"]["request_url"] == f"{PLACEHOLDER_URL}/slack/events"


def test_cli_prints_the_manifest_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "emcee.toml"
    config.write_text('[bot]\nname = "PyData Bot"\n[slack]\nenabled = true\nmode = "http"\n')

    status = main(["slack-manifest", "--config", str(config), "--url", "https://bot.example.org"])

    manifest = json.loads(capsys.readouterr().out)
    assert status == 0
    assert manifest["display_information"]["name"] == manifest["features"]["bot_user"]["display_name"] == "PyData Bot"
    assert manifest["settings"]["interactivity"]["request_url"] == "https://bot.example.org/slack/events"
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}
