"""Every command, collected from the feature modules; their order here is the order of help."""

from __future__ import annotations

from bot.commands import agenda, announce, attendees, events, help, listings, remind, rsvp, speakers
from bot.commands.registry import Command, declared

FEATURES = (rsvp, listings, remind, help, events, agenda, speakers, announce, attendees)
COMMANDS: tuple[Command, ...] = tuple(command for module in FEATURES for command in declared(module))
