"""Config validation: every error names the file, the key and what is allowed; secrets only from env."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, Secrets, Settings, load_settings

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emcee.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid_and_complete() -> None:
    settings = load_settings(EXAMPLE)
    text = EXAMPLE.read_text()
    for section in Settings.model_fields:
        assert f"[{section}]" in text
    assert settings.reminders.event_offsets == [timedelta(days=1), timedelta(hours=1)]


def test_defaults_need_no_file() -> None:
    settings = load_settings(None)
    assert settings.bot.database_url == "sqlite:///emcee.db"
    assert settings.console.enabled and not settings.slack.enabled and not settings.discord.enabled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[bot]\ntimezone = "Mars/Base"', "[bot] timezone: unknown time zone 'Mars/Base'"),
        ("[bot]\ncolour = 1", "[bot] colour: unknown key; allowed keys: name, timezone"),
        ('[reminders]\nitem_offset = "5x"', "[reminders] item_offset: '5x' is not a duration"),
        ('[reminders]\nevent_offsets = ["1d", "soon"]', "'soon' is not a duration"),
        ('[bot]\ngrace_minutes = "lots"', "[bot] grace_minutes: Input should be a valid integer"),
        ('[slack]\nmode = "carrier-pigeon"', "[slack] mode: input should be 'socket' or 'http'"),
        ("[nope]\na = 1", "nope: unknown key; allowed keys: bot, reminders"),
        ("[bot\nname = 1", "not valid TOML"),
    ],
)
def test_errors_name_file_key_and_allowed(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml")


def test_secrets_come_from_the_environment_and_never_show_in_repr() -> None:
    secrets = Secrets.from_env({"SLACK_BOT_TOKEN": "xoxb-secret", "DISCORD_TOKEN": "dsecret"})
    assert secrets.slack_bot_token == "xoxb-secret"
    assert "secret" not in repr(secrets)
    settings = Settings.model_validate({"slack": {"enabled": True, "mode": "http"}, "discord": {"enabled": True}})
    assert secrets.missing_for(settings) == ["SLACK_SIGNING_SECRET"]


def test_tokens_in_the_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[slack\] bot_token: unknown key"):
        load_settings(write(tmp_path, '[slack]\nbot_token = "xoxb-1"'))


@pytest.mark.parametrize("command", ["check", "run"])
def test_cli_exits_non_zero_without_traceback(tmp_path: Path, command: str) -> None:
    path = write(tmp_path, '[bot]\ntimezone = "Mars/Base"')
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", command, "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"{path}: [bot] timezone: unknown time zone" in result.stderr


def test_check_reports_missing_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, "[discord]\nenabled = true\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert "DISCORD_TOKEN" in result.stderr
