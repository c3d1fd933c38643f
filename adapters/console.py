"""The terminal adapter: plain-text posts, and a REPL that reads slash commands from a stream."""

from __future__ import annotations

import asyncio
import sys
from itertools import count
from typing import TYPE_CHECKING, TextIO

from bot.invocation import Actor, ChannelRef, MessageRef
from bot.messages import EventCard, Message, Reply
from bot.plaintext import render, render_reply, seats_line

if TYPE_CHECKING:
    from bot.engine import Engine

PROMPT_HELP = "Type slash commands such as /rsvp, /agenda or /emcee help. Ctrl-D quits."


class ConsoleAdapter:
    platform = "console"

    def __init__(self, out: TextIO | None = None, channel: str = "announcements") -> None:
        self.out = out or sys.stdout
        self.channel = ChannelRef(self.platform, channel)
        self._ids = count(1)
        self._engine: Engine | None = None

    @property
    def connected(self) -> bool:
        return self._engine is not None

    async def start(self, engine: Engine) -> None:
        self._engine = engine

    async def stop(self) -> None:
        self._engine = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        ref = MessageRef(self.platform, target.channel_id, str(next(self._ids)))
        self.say(f"\n[#{target.channel_id}] {_indent(render(message))}")
        return ref

    async def edit(self, ref: MessageRef, message: Message) -> None:
        """Edits print only what a reader would notice: the headline and, on cards, the counts."""
        summary = seats_line(message) if isinstance(message, EventCard) else render(message).splitlines()[0]
        self.say(f"[#{ref.channel_id} · message {ref.message_id} updated] {summary}")

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef:
        self.say(f"\n[DM → {user.label}] {_indent(render(message))}")
        return MessageRef(self.platform, f"dm-{user.user_id}", str(next(self._ids)))

    async def command(self, actor: Actor, line: str) -> Reply:
        """Run one command as `actor`, echoing it and the reply as a member would see them."""
        if self._engine is None:
            raise RuntimeError("the console adapter is not started")
        self.say(f"\n{actor.label}> {line}")
        reply = await self._engine.handle_text(actor, self.channel, line)
        visibility = "only you see this" if reply.ephemeral else "everyone sees this"
        self.say(f"  ({visibility}) {_indent(render_reply(reply), '  ')}")
        return reply

    async def repl(self, actor: Actor, source: TextIO) -> None:
        """Read commands line by line until end of input."""
        self.say(PROMPT_HELP)
        while line := await asyncio.to_thread(source.readline):
            if line.strip():
                await self.command(actor, line.strip())


def _indent(text: str, prefix: str = "") -> str:
    return text.replace("\n", "\n" + prefix + "  ")
