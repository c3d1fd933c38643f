"""What every adapter implements and exchanges with the core (re-exported from bot/)."""

from bot.invocation import Actor, ChannelRef, Invocation, MessageRef
from bot.ports import Adapter, PlatformUnreachable

__all__ = ["Actor", "Adapter", "ChannelRef", "Invocation", "MessageRef", "PlatformUnreachable"]
