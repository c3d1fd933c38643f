"""Dispatch: every command comes in here, from an adapter (handle) or the core (run).

Each command runs in one transaction. The engine checks who may run it, binds its arguments through
the registry, and hands the handler a Context. Input that is rejected raises UsageError before
anything commits, so it writes nothing; the reply then names the problem and the usage line. Effects
(posting cards, DMs, rescheduling) are written to the outbox in the command's transaction and
published only after the commit. Metrics are recorded here,
once per command, whatever door it came through. A command that answers a member's action on a platform
records the action's id in its transaction, so that a second delivery of it is not acted on again
(bot/interactions.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, or_
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.answering import AckBudget
from bot.clock import Clock
from bot.commands.args import UsageError
from bot.commands.context import Context
from bot.commands.registry import Command, Handler, Registry
from bot.config import Settings
from bot.db import Database, DatabaseReadOnly
from bot.effects import EffectBus, EffectLog, Pending
from bot.formatting import format_moment
from bot.interactions import PRUNE_EVERY, AlreadyHandled, Key, prune, record_one
from bot.invocation import Actor, CommandLine, CommandOptions, Invocation, Request
from bot.lookup import event_slugs, upcoming
from bot.messages import INTERNAL_ERROR, READ_ONLY, Reply, refusal
from bot.metrics import CommandOutcome, Metrics
from bot.models import Event
from bot.rsvp_desk import RsvpDesk

log = logging.getLogger(__name__)

# Engine calls from the chat platforms that run at once; the rest queue in the ack budget (bot/answering.py),
# which learns how fast the engine gets through them however they overlap. Several on SQLite too, so that the
# database layer has calls in hand together to overlap or batch what it can; few enough that a burst queues in
# the budget, where a command can still be acked first, rather than on the database.
SLOTS_SQLITE = 8
SLOTS_POSTGRES = 8
# Metric labels of a command whose name is not known: a line that names none, a path that is none.
UNPARSED = "unparsed"
UNKNOWN = "unknown"
# The answer to a second delivery of an action already acted on (another replica's copy, a platform's retry).
ALREADY_DONE = Reply("That was already done; nothing more was changed.")


class Refused(Exception):
    """A command that `Engine.run` could not carry out. `reason` is the input's fault, when it was;
    otherwise `reply` says why (a read-only database, an internal error)."""

    def __init__(self, reply: Reply, reason: UsageError | None = None) -> None:
        super().__init__(reason.message if reason is not None else reply.text)
        self.reply = reply
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class _Result:
    reply: Reply
    effects: list[Pending] = field(default_factory=list)
    reason: UsageError | None = None


class Engine:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        bus: EffectBus | None = None,
        registry: Registry | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.bus = bus or EffectBus()
        self.outbox = EffectLog(db, clock)
        self.rsvps = RsvpDesk(db, self.outbox, clock)
        self._pruned_at: datetime | None = None  # when handled interactions were last pruned
        self.registry = registry or Registry.default()
        self.metrics = metrics or Metrics()  # adapters record their ack latency here too
        # Both platforms' acks share one budget, as their commands share this engine and its database.
        self.acks = AckBudget(SLOTS_SQLITE if db.is_sqlite else SLOTS_POSTGRES)
        self._handlers: dict[tuple[str, ...], Handler] = {
            command.path: command.handler for command in self.registry.commands if command.handler is not None
        }
        missing = {c.path for c in self.registry.commands} - set(self._handlers)
        if missing:
            raise RuntimeError(f"commands without a handler: {sorted(missing)}")

    # -- entry points -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Reply:
        """A command from an adapter, typed (CommandLine) or with a platform's options (CommandOptions).
        The command is found once; access comes next: a member's organizer command is refused before its
        arguments are read."""
        if isinstance(request, CommandLine):
            return await self._handle_line(request)
        return await self._handle_options(request)

    async def run(self, invocation: Invocation) -> Reply:
        """A command from the core, its arguments already typed. Raises Refused when it did not run."""
        command = self.registry.get(invocation.command)
        result = await self._execute(self._transaction(command), invocation, command)
        self.bus.publish(result.effects, self.outbox)
        return _carried_out(result)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[Batch]:
        """Commands that take effect together or not at all (an import): leaving with an exception
        rolls every one of them back; effects are published only after the commit. Inside it, use only
        the batch: on SQLite another session would wait for this one to end."""
        async with self.db.session() as session:
            batch = Batch(self, session)
            yield batch
        self.bus.publish(batch.effects, self.outbox)

    async def suggest_events(self, actor: Actor, typed: str, limit: int) -> list[tuple[str, str]]:
        """Upcoming events matching what was typed, as (slug, label): published ones, and drafts too for
        organizers. The typed text matches as plain text (no wildcards)."""
        query = upcoming(self.clock.now(), self.is_organizer(actor))
        if text := typed.strip().lower():
            query = query.where(
                or_(col(Event.slug).contains(text, autoescape=True), col(Event.title).icontains(text, autoescape=True))
            )
        async with self.db.reading() as session:
            found = (await session.exec(query.limit(limit))).all()
        return [(e.slug, f"{e.title} · {format_moment(e.starts_at, e.timezone)} · {e.slug}") for e in found]

    async def event_slugs(self) -> list[str]:
        async with self.db.reading() as session:
            return await event_slugs(session)

    def is_organizer(self, actor: Actor) -> bool:
        ids: list[str] = getattr(self.settings.organizers, actor.platform, [])
        if actor.platform == "system" or actor.user_id in ids:
            return True
        return actor.platform == "discord" and self._discord_organizer(actor)

    def _discord_organizer(self, actor: Actor) -> bool:
        """An organizer role id of the guild asked from, or Manage Events in a guild Emcee serves
        (a stranger holds Manage Events in a server of their own)."""
        if actor.guild_id is None:
            return False
        if actor.manages_events and actor.guild_id in self.settings.discord.guild_ids:
            return True
        return bool(actor.role_ids & self.settings.organizers.discord_role_ids(actor.guild_id))

    # -- dispatch -----------------------------------------------------------------------------

    async def _handle_line(self, request: CommandLine) -> Reply:
        """The line is tokenized once and its command found once; events are looked up only when the
        command's parsing depends on them."""
        try:
            text = self.registry.read(request.line)
        except UsageError as exc:
            return self._unparsed(exc, UNPARSED)
        if denied := self._denied_here(text.command, request.actor):
            return denied
        try:
            args = text.bind(await self.event_slugs() if text.command.needs_event_names else ())
        except UsageError as exc:
            return self._unparsed(exc, UNPARSED)
        return await self._carry_out(text.command, request, args)

    async def _handle_options(self, request: CommandOptions) -> Reply:
        try:
            command = self.registry.command(request.command_path)
        except UsageError as exc:
            return self._unparsed(exc, UNKNOWN)
        if denied := self._denied_here(command, request.actor):
            return denied
        try:
            args = self.registry.convert(command, request.options)
        except UsageError as exc:
            return self._unparsed(exc, command.name)
        return await self._carry_out(command, request, args)

    def _denied_here(self, command: Command, actor: Actor) -> Reply | None:
        """The refusal of an organizer command to anyone else, counted; None when `actor` may run it."""
        denied = self._denied(command, actor)
        if denied is not None:
            self.metrics.command_handled(command.name, CommandOutcome.DENIED)
        return denied

    def _unparsed(self, exc: UsageError, label: str) -> Reply:
        self.metrics.command_handled(label, CommandOutcome.REFUSED)
        return self._refusal(exc)

    async def _carry_out(self, command: Command, request: Request, args: dict[str, Any]) -> Reply:
        invocation = Invocation(request.actor, request.channel, command.path, args, request.interaction_id)
        if request.interaction_id is not None:
            self._prune_now_and_then()
        result = await self._execute(self._transaction(command), invocation, command)
        self.bus.publish(result.effects, self.outbox)
        return result.reply

    def _prune_now_and_then(self) -> None:
        """Forget long-handled interactions in the background: at the first one, then every PRUNE_EVERY."""
        now = self.clock.now()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self.bus.spawn(self._prune(now))

    async def _prune(self, now: datetime) -> None:
        try:
            await prune(self.db, now)
        except Exception as exc:  # the next prune tries again; old rows cost only space meanwhile
            log.warning("pruning handled interactions failed: %s", exc)

    def _transaction(self, command: Command | None) -> AbstractAsyncContextManager[AsyncSession | None]:
        """The session a command runs in: its own transaction, or none when a desk writes for it."""
        return contextlib.nullcontext() if command is not None and command.desk_writes else self.db.session()

    async def _execute(
        self,
        transaction: AbstractAsyncContextManager[AsyncSession | None],
        invocation: Invocation,
        command: Command | None = None,
    ) -> _Result:
        """Check and run one command in `transaction`, which a refusal rolls back, so it writes nothing.
        `command` is the one the invocation names, when the caller has found it already."""
        command = command or self.registry.get(invocation.command)
        result, outcome = await self._attempt(transaction, command, invocation)
        self.metrics.command_handled(command.name if command else UNKNOWN, outcome)
        return result

    async def _attempt(
        self,
        transaction: AbstractAsyncContextManager[AsyncSession | None],
        command: Command | None,
        invocation: Invocation,
    ) -> tuple[_Result, CommandOutcome]:
        if command is None:
            unknown = self.registry.unknown(invocation.command)
            return _Result(self._refusal(unknown), reason=unknown), CommandOutcome.REFUSED
        if denied := self._denied(command, invocation.actor):
            return _Result(denied), CommandOutcome.DENIED
        try:
            async with transaction as session:
                if session is not None:  # a desk records the interaction in its own transaction
                    await record_one(session, _interaction(invocation), self.clock.now())
                context = Context(
                    session,
                    invocation.actor,
                    invocation.channel,
                    self.is_organizer(invocation.actor),
                    self.clock,
                    self.settings,
                    self.registry,
                    self.rsvps,
                    invocation.interaction_id,
                )
                outcome = await self._handlers[command.path](context, invocation.args)
                pending = await self.outbox.write(session, outcome.effects) + outcome.written
        except UsageError as exc:
            return _Result(self._refusal(exc, command), reason=exc), CommandOutcome.REFUSED
        except AlreadyHandled:
            log.info("%s: interaction %s was acted on already", command.ref, invocation.interaction_id)
            return _Result(ALREADY_DONE), CommandOutcome.REFUSED
        except DatabaseReadOnly:  # the database logged it once; each sender hears why
            return _Result(READ_ONLY), CommandOutcome.ERROR
        except Exception:
            log.exception("command %s failed", command.ref)
            return _Result(INTERNAL_ERROR), CommandOutcome.ERROR
        reply = outcome.reply
        return _Result(reply, pending), CommandOutcome.OK if reply.ok else CommandOutcome.REFUSED

    def _denied(self, command: Command, actor: Actor) -> Reply | None:
        """The refusal of an organizer command to anyone else; None when `actor` may run `command`."""
        if command.organizer and not self.is_organizer(actor):
            return Reply(f"Only organizers can use {command.ref}.", ok=False)
        return None

    @staticmethod
    def _refusal(exc: UsageError, command: Command | None = None) -> Reply:
        return refusal(exc.message, exc.usage or (command.usage if command else None))


@dataclass
class Batch:
    """Runs commands one after another in one transaction; see Engine.batch."""

    engine: Engine
    session: AsyncSession
    effects: list[Pending] = field(default_factory=list)

    async def run(self, invocation: Invocation) -> Reply:
        """Like Engine.run; a refused command rolls back to where it started, and the caller decides."""
        command = self.engine.registry.get(invocation.command)
        if command is not None and command.desk_writes:  # the desk's own transaction would wait for this one
            raise ValueError(f"{command.ref} cannot run in a batch")
        result = await self.engine._execute(_savepoint(self.session), invocation, command)
        self.effects += result.effects
        return _carried_out(result)


def _carried_out(result: _Result) -> Reply:
    if not result.reply.ok:
        raise Refused(result.reply, result.reason)
    return result.reply


@asynccontextmanager
async def _savepoint(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    async with session.begin_nested():
        yield session


def _interaction(invocation: Invocation) -> Key | None:
    """The key the invocation's interaction is recorded under; None without one."""
    if invocation.interaction_id is None:
        return None
    return (invocation.actor.platform, invocation.interaction_id)
