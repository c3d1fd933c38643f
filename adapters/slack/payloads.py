"""Slack payloads to the core's terms: who asked (Actor), where (ChannelRef), and what (a command line or options).

RSVP buttons carry their whole meaning: action_id ``rsvp:<choice>`` and value ``<event slug>``, so a
click works after a restart and on any replica.

A slash command and a click each carry Slack's ``trigger_id``, made for one member action. It is in the
body, so it is the same however the request comes (HTTP, or a Socket Mode envelope, whose ``envelope_id``
names the envelope, not the action) and in a delivery of it again (a retry is marked ``X-Slack-Retry-Num``
over HTTP, ``retry_attempt`` in Socket Mode): it is the id the engine acts on a request once by.
"""

from __future__ import annotations

import re
from typing import Any

from bot.invocation import Actor, ChannelRef, CommandLine, CommandOptions
from bot.messages import RSVP_CHOICES

PLATFORM = "slack"
RSVP_ACTION_PREFIX = "rsvp:"
RSVP_ACTION = re.compile(
    "^" + re.escape(RSVP_ACTION_PREFIX) + "(" + "|".join(choice.value for choice in RSVP_CHOICES) + ")$"
)


def rsvp_action_id(choice: str) -> str:
    return f"{RSVP_ACTION_PREFIX}{choice}"


def unescape(text: str) -> str:
    """Slack sends &, < and > in command text as HTML entities; the core wants what the member typed."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def malformed(body: Any) -> str | None:
    """What a request body lacks that Slack always sends with it; None when nothing is missing.

    Only signed requests get this far, but a body must still never make a handler fail."""
    if not isinstance(body, dict):
        return "the body is not an object"
    if "command" in body:
        return None if _texts(body, "command", "user_id") else "a slash command without its command or user_id"
    if body.get("type") == "block_actions":
        user, actions = body.get("user"), body.get("actions")
        if isinstance(user, dict) and _texts(user, "id") and isinstance(actions, list):
            return None if all(isinstance(action, dict) for action in actions) else "an action that is not an object"
        return "a button click without its user or actions"
    return None


def _texts(fields: dict[str, Any], *names: str) -> bool:
    return all(isinstance(fields.get(name), str) and fields[name] for name in names)


def command_request(command: dict[str, Any]) -> CommandLine:
    """'/rsvp' with text 'maybe +1' becomes the line '/rsvp maybe +1', which the engine reads through the registry."""
    channel_id = command.get("channel_id")
    return CommandLine(
        Actor(PLATFORM, command["user_id"], command.get("user_name", "")),
        ChannelRef(PLATFORM, channel_id) if channel_id else None,
        f"{command['command']} {unescape(command.get('text', ''))}".strip(),
        trigger_id(command),
    )


def trigger_id(fields: dict[str, Any]) -> str | None:
    """The member action's trigger_id, the id a request is acted on once by; None when it has none."""
    found = fields.get("trigger_id")
    return found if isinstance(found, str) and found else None


def action_actor(body: dict[str, Any]) -> Actor:
    user = body["user"]
    return Actor(PLATFORM, user["id"], user.get("name") or user.get("username") or "")


def action_channel_id(body: dict[str, Any]) -> str | None:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")


def rsvp_click(body: dict[str, Any], action: dict[str, Any]) -> CommandOptions | None:
    """The RSVP a button click asks for, or None when the action is not one of ours."""
    match = RSVP_ACTION.match(action.get("action_id", ""))
    slug = action.get("value", "")
    if match is None or not slug:
        return None
    channel_id = action_channel_id(body)
    channel = ChannelRef(PLATFORM, channel_id) if channel_id else None
    options = {"event": slug, "status": match.group(1)}
    return CommandOptions(action_actor(body), channel, ("rsvp",), options, trigger_id(body))
