"""The terminal adapter: plain-text posts, and a REPL that reads slash commands from a stream."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from datetime import datetime
from itertools import chain, count
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from adapters.plaintext import render, render_reply
from bot.formatting import seats_line
from bot.invocation import Actor, ChannelRef, CommandLine, MessageRef
from bot.messages import Attachment, EventCard, Message, Reply

if TYPE_CHECKING:
    from bot.engine import Engine

PROMPT_HELP = (
    "Type slash commands such as /rsvp, /agenda or /emcee help.\n"
    "/as NAME acts as another member (try filling the room and the waitlist), /as organizer acts as the organizer.\n"
    "/quit or /exit (or Ctrl-D) leaves."
)
QUIT = frozenset({"/quit", "/exit"})
AS_USAGE = "/as NAME  (letters, digits, - or _, up to 32)"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


class ConsoleAdapter:
    platform = "console"

    def __init__(self, out: TextIO | None = None, channel: str = "announcements", files: Path | None = None) -> None:
        self.out = out or sys.stdout
        self.channel = ChannelRef(self.platform, channel)
        self.files = files  # where attachments (the attendee CSV) are written; None: the current folder
        self.last_said = time.monotonic()  # when the console last printed anything
        self._ids = count(1)
        self._engine: Engine | None = None

    @property
    def connected(self) -> bool:
        return self._engine is not None

    async def start(self, engine: Engine) -> None:
        self._engine = engine

    async def stop(self) -> None:
        self._engine = None

    def say(self, text: str, end: str = "\n") -> None:
        print(text, file=self.out, end=end, flush=True)
        self.last_said = time.monotonic()

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

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        """A console keeps nothing of what it printed: a post taken over after a crash is printed again."""
        return None

    async def command(self, actor: Actor, line: str, echo: bool = True) -> Reply:
        """Run one command as `actor`, echoing it and the reply as a member would see them."""
        if self._engine is None:
            raise RuntimeError("the console adapter is not started")
        if echo:
            self.say(f"\n{actor.label}> {line}")
        reply = await self._engine.handle(CommandLine(actor, self.channel, line))
        visibility = "only you see this" if reply.private else "everyone sees this"
        self.say(f"  ({visibility}) {_indent(render_reply(reply), '  ')}")
        if reply.attachment is not None:
            self.say(f"  📎 {self._write(reply.attachment)}")
        return reply

    async def repl(self, actor: Actor, source: TextIO) -> None:
        """Read commands line by line until /quit, /exit or end of input, as `actor` until /as names another.

        Each command's effects (card counts, DMs) are printed before the next prompt.
        """
        if self._engine is None:
            raise RuntimeError("the console adapter is not started")
        self.say(PROMPT_HELP)
        typed = source.isatty()  # a terminal shows what was typed; piped input is echoed after the prompt
        while True:
            self.say(f"\n{actor.label}>", end=" ")
            line = await asyncio.to_thread(source.readline)
            if not typed or not line:  # Ctrl-D at a terminal ends the prompt's line too
                self.say(line.rstrip("\n"))
            words = line.split()
            if not line or (words and words[0].lower() in QUIT):
                return
            if words and words[0].lower() == "/as":
                actor = self._switch(actor, words[1:])
            elif words:
                await self.command(actor, line.strip(), echo=False)
                await self._engine.bus.drain()

    def _switch(self, actor: Actor, words: list[str]) -> Actor:
        """`/as NAME`: the member the next commands come from (refused, and unchanged, for a bad name)."""
        if len(words) != 1 or not _NAME.fullmatch(words[0]):
            self.say(f"  (only you see this) ⚠️ /as takes one name.\n  Usage: {AS_USAGE}")
            return actor
        self.say(f"  Acting as {words[0]}.")
        return Actor(self.platform, words[0], words[0])

    def _write(self, attachment: Attachment) -> str:
        """Save an attachment in `files` under its own name, or a numbered one beside an existing file.

        Returns what to print: the file's path, or why it could not be written.
        """
        folder, name = self.files or Path.cwd(), Path(attachment.filename)
        names = chain([name.name], (f"{name.stem}-{number}{name.suffix}" for number in count(2)))
        path = folder / next(n for n in names if not (folder / n).exists())
        try:
            path.write_text(attachment.content, encoding="utf-8", newline="")
        except OSError as exc:
            return f"⚠️ could not write {path}: {exc.strerror}"
        return str(path.resolve())


def _indent(text: str, prefix: str = "") -> str:
    return text.replace("\n", "\n" + prefix + "  ")
