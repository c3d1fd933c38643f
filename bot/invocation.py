"""The transport-neutral request: who asked, where, and which command with which arguments.

Adapters turn platform payloads into a Request (a CommandLine or CommandOptions); the engine binds it
to an Invocation, whose arguments are typed. The engine never sees a payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Actor:
    """A member on one platform.

    On Discord the organizer check also needs where the member asked from: the guild, the ids of the
    member's roles there, and whether they hold Manage Events there. A role name proves nothing, since
    anyone can name a role in a server of their own."""

    platform: str
    user_id: str
    display_name: str = ""
    guild_id: int | None = None
    role_ids: frozenset[int] = frozenset()
    manages_events: bool = False

    @property
    def label(self) -> str:
        return self.display_name or self.user_id


@dataclass(frozen=True)
class ChannelRef:
    platform: str
    channel_id: str


@dataclass(frozen=True)
class MessageRef:
    """Where a posted message lives, so it can be edited later. Serialised as platform:channel:message."""

    platform: str
    channel_id: str
    message_id: str

    def encode(self) -> str:
        return f"{self.platform}:{self.channel_id}:{self.message_id}"

    @classmethod
    def decode(cls, text: str) -> MessageRef:
        platform, channel_id, message_id = text.split(":", 2)
        return cls(platform, channel_id, message_id)


@dataclass(frozen=True)
class Invocation:
    """A command with typed arguments. `interaction_id` is the platform's id of the member action it answers
    (None from the console and the core): the engine acts on one id once (bot/interactions.py)."""

    actor: Actor
    channel: ChannelRef | None
    command: tuple[str, ...]
    args: dict[str, Any] = field(default_factory=dict)
    interaction_id: str | None = None


@dataclass(frozen=True)
class CommandLine:
    """A command as typed (Slack text, the console): '/rsvp maybe +1'."""

    actor: Actor
    channel: ChannelRef | None
    line: str
    interaction_id: str | None = None  # Slack's trigger_id; None from the console


@dataclass(frozen=True)
class CommandOptions:
    """A command with a platform's typed options (Discord, a button), converted as typed text would be."""

    actor: Actor
    channel: ChannelRef | None
    command_path: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    interaction_id: str | None = None  # Discord's interaction id, Slack's trigger_id


Request = CommandLine | CommandOptions
