"""The Slack app manifest, generated from the command registry and the config (`emcee slack-manifest`).

Every root of the registry becomes a slash command with its usage hint; the scopes are the ones the
adapter calls need; Socket Mode or request URLs follow `[slack] mode`.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.slack.adapter import EVENTS_PATH
from bot.commands import Registry
from bot.config import Settings
from bot.formatting import shorten

# commands: the slash commands. chat:write: cards, edits and ephemeral answers (chat.postMessage,
# chat.update, chat.postEphemeral). im:write: conversations.open for DMs (reminders, promotions).
# files:write: the attendee CSV, uploaded to the organizer's DM.
BOT_SCOPES = ("commands", "chat:write", "im:write", "files:write", "channels:history", "groups:history", "im:history")
PLACEHOLDER_URL = "https://emcee.example.org"
DESCRIPTION = "Meetup announcements, RSVPs, agenda, reminders and speaker intros."


def slash_commands(registry: Registry) -> list[dict[str, Any]]:
    """One entry per registry root: /rsvp, /events, /agenda and /emcee with its subcommands."""
    entries = []
    for root in registry.roots:
        commands = [command for command in registry.commands if command.path[0] == root]
        if [command.path for command in commands] == [(root,)]:
            description = commands[0].summary
            hint = commands[0].usage.removeprefix(f"/{root}").strip()
        else:
            members = dict.fromkeys(c.path[1] for c in commands if len(c.path) > 1 and not c.organizer)
            organizers = dict.fromkeys(c.path[1] for c in commands if len(c.path) > 1 and c.organizer)
            description = f"{', '.join(members)}; for organizers: {', '.join(organizers)}"
            hint = " | ".join([*members, *organizers]) + " …"
        entry: dict[str, Any] = {
            "command": f"/{root}",
            "description": shorten(description, 100),
            "should_escape": False,
        }
        if hint:
            entry["usage_hint"] = shorten(hint, 1000)
        entries.append(entry)
    return entries


def request_base(settings: Settings, public_url: str | None = None) -> str:
    """Where Slack reaches this server: --url, else [http] public_url; Slack needs https, so else a placeholder."""
    url = (public_url or settings.http.public_url).rstrip("/")
    return url if url.startswith("https://") else PLACEHOLDER_URL


def build_manifest(
    settings: Settings, registry: Registry | None = None, public_url: str | None = None
) -> dict[str, Any]:
    """The manifest as a dict. `public_url` (https) is where Slack reaches Emcee in HTTP mode."""
    name = shorten(settings.bot.name, 35)
    http = settings.slack.mode == "http"
    request_url = request_base(settings, public_url) + EVENTS_PATH
    commands = slash_commands(registry or Registry.default())
    interactivity: dict[str, Any] = {"is_enabled": True}
    if http:
        commands = [{**command, "url": request_url} for command in commands]
        interactivity["request_url"] = request_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {"name": name, "description": DESCRIPTION, "background_color": "#3b2e5a"},
        "features": {
            "app_home": {
                "home_tab_enabled": False,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": name, "always_online": True},
            "slash_commands": commands,
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": not http,
            "token_rotation_enabled": False,
        },
    }


def manifest_json(settings: Settings, public_url: str | None = None) -> str:
    return json.dumps(build_manifest(settings, public_url=public_url), indent=2, ensure_ascii=False)
