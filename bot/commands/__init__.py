"""The commands, as feature modules that declare each command beside its handler.

`catalog` collects them; `Registry.default()` holds them all. This package's own namespace is kept
light (no feature module is imported here), so the core can import UsageError without a cycle.
"""

from bot.commands.args import Arg, ArgKind, UsageError, time_errors
from bot.commands.parsing import tokenize
from bot.commands.registry import Command, Registry, command

__all__ = ["Arg", "ArgKind", "Command", "Registry", "UsageError", "command", "time_errors", "tokenize"]
