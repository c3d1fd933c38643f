"""Settings: the TOML file, validated, plus secrets from the environment.

Every problem is reported as a ConfigError naming the file, the key and what is allowed,
so `emcee check` and `emcee run` can print it without a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

from bot.timeparse import TimeParseError, check_reminder, parse_duration, zone_named


class ConfigError(Exception):
    """The configuration cannot be used; str() is a message fit for the operator."""


def _check_zone(name: str) -> str:
    try:
        zone_named(name)
    except TimeParseError as exc:
        raise ValueError(str(exc)) from None
    return name


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a duration string such as "10m", "1h30m" or "1d"')
    try:
        return parse_duration(value)
    except TimeParseError as exc:
        raise ValueError(str(exc)) from None


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
MAX_GRACE_MINUTES = 24 * 60
MAX_SHARDS = 1000  # Discord's recommendation is one shard per 1,000 guilds


def _check_host(host: str) -> str:
    """An IP address or an RFC 1123 host name, as the HTTP server can bind it."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if 0 < len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in host.removesuffix(".").split(".")):
        return host
    raise ValueError("must be an IP address or a host name, such as 127.0.0.1, 0.0.0.0 or localhost")


def _check_database_url(url: str) -> str:
    """SQLAlchemy parses the URL (bot.db's check), but it takes a fifth of a second to import, which `emcee run`
    spends before /healthz answers; a sqlite:/// URL always parses (after the third slash comes the file), so
    SQLAlchemy is asked about the others only."""
    if url.startswith("sqlite:///"):
        return url
    from bot.db import check_database_url

    return check_database_url(url)


Zone = Annotated[str, AfterValidator(_check_zone)]
DatabaseUrl = Annotated[str, AfterValidator(_check_database_url)]
Host = Annotated[str, AfterValidator(_check_host)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSettings(_Section):
    name: str = "Emcee"
    timezone: Zone = "UTC"
    database_url: DatabaseUrl = "sqlite:///emcee.db"
    grace_minutes: int = Field(15, ge=0, le=MAX_GRACE_MINUTES)
    max_guests: int = Field(2, ge=0)
    # A process that stops mid-send (a crash) leaves claims on its posts; another takes them over this many
    # seconds after the last renewal. Shorter recovers sooner; a sending process renews 3 times per lease.
    delivery_lease_seconds: float = Field(15.0, ge=1.0, le=300.0)
    # PostgreSQL: `emcee run` migrates a schema that is behind, one replica at a time (an advisory lock). When
    # false, it waits for `emcee db upgrade` instead. SQLite is always migrated at start-up.
    migrate_on_start: bool = False


class ReminderSettings(_Section):
    event_offsets: list[timedelta] = Field(default_factory=lambda: [timedelta(days=1), timedelta(hours=1)])
    item_offset: timedelta = timedelta(minutes=5)
    speaker_intros: bool = True
    dm_offset: timedelta = timedelta(hours=1)

    @field_validator("event_offsets", mode="before")
    @classmethod
    def _offsets(cls, value: Any) -> list[timedelta]:
        if not isinstance(value, list):
            raise ValueError('must be a list of durations such as ["1d", "1h"]')
        offsets = [_duration(item) for item in value]
        try:
            return [check_reminder(offset) for offset in offsets]
        except TimeParseError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("item_offset", "dm_offset", mode="before")
    @classmethod
    def _offset(cls, value: Any) -> timedelta:
        return _duration(value)


class OrganizerSettings(_Section):
    slack: list[str] = Field(default_factory=list)
    discord: list[str] = Field(default_factory=list)
    # Guild id -> the ids of that guild's organizer roles.
    discord_roles: dict[int, list[int]] = Field(default_factory=dict)
    console: list[str] = Field(default_factory=lambda: ["organizer"])

    @field_validator("discord_roles", mode="before")
    @classmethod
    def _guild_roles(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError(
                "role names are not accepted (anyone can name a role in a server of their own); give role ids "
                "per guild: [organizers.discord_roles] with lines such as 234567890123456789 = [456789012345678901]"
            )
        return value

    def discord_role_ids(self, guild_id: int) -> frozenset[int]:
        """The organizer role ids of one guild."""
        return frozenset(self.discord_roles.get(guild_id, ()))


class HttpSettings(_Section):
    enabled: bool = True
    host: Host = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # Where members reach this server (behind a proxy, say); calendar links in cards start with it.
    public_url: str = Field("", validate_default=True)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return f"http://{info.data.get('host', '127.0.0.1')}:{info.data.get('port', 8080)}"
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def link_base(self) -> str:
        """The base of links to this server in cards; empty when the server is off."""
        return self.public_url if self.enabled else ""


class SlackSettings(_Section):
    enabled: bool = False
    mode: Literal["socket", "http"] = "socket"
    api_base_url: str = "https://slack.com/api/"
    announce_channels: list[str] = Field(default_factory=list)


class DiscordSettings(_Section):
    enabled: bool = False
    guild_ids: list[int] = Field(default_factory=list)
    announce_channels: list[int] = Field(default_factory=list)
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    # 1: one unsharded session per process. More (or "auto": Discord's count from GET /gateway/bot): the shards are
    # shared among the processes on one PostgreSQL database, each shard run by one of them (bot/shards.py).
    shard_count: int | Literal["auto"] = 1

    @field_validator("shard_count", mode="before")
    @classmethod
    def _shard_count(cls, value: Any) -> int | str:
        if value == "auto" or (type(value) is int and 1 <= value <= MAX_SHARDS):
            return value  # type: ignore[no-any-return]
        raise ValueError(f'must be a whole number from 1 to {MAX_SHARDS}, or "auto" (the count Discord recommends)')


class ConsoleSettings(_Section):
    enabled: bool = True


class Settings(_Section):
    bot: BotSettings = Field(default_factory=BotSettings)
    reminders: ReminderSettings = Field(default_factory=ReminderSettings)
    organizers: OrganizerSettings = Field(default_factory=OrganizerSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)


@dataclass(frozen=True, repr=False)
class Secrets:
    """Tokens, read from the environment only. repr() never shows them."""

    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_signing_secret: str | None = None
    discord_token: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ
        return cls(
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            discord_token=env.get("DISCORD_TOKEN") or None,
        )

    def __repr__(self) -> str:
        present = [name for name, value in vars(self).items() if value]
        return f"Secrets(set={present})"

    def missing_for(self, settings: Settings) -> list[str]:
        """The environment variables that the enabled adapters need and do not have."""
        needed: list[tuple[str, str | None]] = []
        if settings.slack.enabled:
            needed.append(("SLACK_BOT_TOKEN", self.slack_bot_token))
            if settings.slack.mode == "socket":
                needed.append(("SLACK_APP_TOKEN", self.slack_app_token))
            else:
                needed.append(("SLACK_SIGNING_SECRET", self.slack_signing_secret))
        if settings.discord.enabled:
            needed.append(("DISCORD_TOKEN", self.discord_token))
        return [name for name, value in needed if not value]


def _describe(error: ErrorDetails) -> str:
    loc = [str(part) for part in error["loc"]]
    section, key = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("", loc[0] if loc else "")
    where = f"[{section}] {key}" if section else key
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "literal_error":
        return f"{where}: {error['msg'].lower()}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message} (got {error.get('input')!r})"


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    return ", ".join(model.model_fields)


def parse_settings(data: dict[str, Any], source: str) -> Settings:
    """Validate a parsed TOML document; errors name `source`, the key and what is allowed."""
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            line = _describe(error)
            if error["type"] == "extra_forbidden":
                line += f"; allowed keys: {_allowed_keys(error['loc'])}"
            lines.append(f"{source}: {line}")
        raise ConfigError("\n".join(lines)) from None


def load_settings(path: Path | None) -> Settings:
    """Read the config file; None means the embedded defaults (SQLite and the console)."""
    if path is None:
        return Settings()
    try:
        return parse_settings(tomllib.loads(_read(path)), str(path))
    except ConfigError:
        raise
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not a usable config: values are nested too deeply") from None
    except Exception as exc:  # whatever else a strange file sets off, the operator sees one line, not a traceback
        raise ConfigError(f"{path}: not a usable config: {type(exc).__name__}: {exc}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (copy config.example.toml to start one)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8 TOML") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
