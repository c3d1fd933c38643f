"""Domain operations behind every command: handle(invocation) -> Reply.

Each command runs in one transaction. Input that is rejected raises UsageError before anything
commits, so it writes nothing; the reply then names the problem and the usage line. Effects
(posting cards, DMs, rescheduling) are published only after the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bot import cards
from bot.agenda import AgendaEditor
from bot.clock import Clock
from bot.commands import Command, Registry, UsageError
from bot.config import Settings
from bot.db import Database
from bot.effects import (
    AgendaChanged,
    CardPosted,
    Effect,
    EffectBus,
    EventCancelled,
    EventChanged,
    MemberPromoted,
    SeatsChanged,
)
from bot.invocation import Actor, ChannelRef, Invocation
from bot.messages import INTERNAL_ERROR, EventList, Reply, refusal
from bot.metrics import CommandOutcome, Metrics
from bot.models import Event, EventStatus, Rsvp, RsvpStatus, Speaker
from bot.plaintext import format_moment, plural
from bot.rsvps import Promotion, promote_waitlist, promotion_of, set_rsvp
from bot.timeparse import TimeParseError, WallTime, format_duration, parse_durations

log = logging.getLogger(__name__)

_RSVP_STATUS = {"going": RsvpStatus.GOING, "maybe": RsvpStatus.MAYBE, "no": RsvpStatus.DECLINED}
DEFAULT_EVENT_LENGTH = timedelta(hours=3)
_EDITABLE = frozenset({"title", "venue", "url", "description", "capacity", "timezone", "starts", "ends", "reminders"})


@dataclass
class Outcome:
    reply: Reply
    effects: list[Effect] = field(default_factory=list)


Handler = Callable[[AsyncSession, Invocation], Awaitable[Outcome]]


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
        self.registry = registry or Registry()
        self.metrics = metrics or Metrics()  # adapters record their ack latency here too
        self._handlers: dict[tuple[str, ...], Handler] = {
            ("rsvp",): self._rsvp,
            ("events",): self._events,
            ("agenda",): self._agenda,
            ("emcee", "remind"): self._remind,
            ("emcee", "help"): self._help,
            ("emcee", "event", "create"): self._event_create,
            ("emcee", "event", "edit"): self._event_edit,
            ("emcee", "event", "publish"): self._event_publish,
            ("emcee", "event", "cancel"): self._event_cancel,
            ("emcee", "agenda", "add"): self._agenda_edit,
            ("emcee", "agenda", "move"): self._agenda_edit,
            ("emcee", "agenda", "shift"): self._agenda_edit,
            ("emcee", "agenda", "remove"): self._agenda_edit,
            ("emcee", "speaker", "add"): self._speaker_add,
            ("emcee", "speaker", "edit"): self._speaker_edit,
            ("emcee", "announce"): self._announce,
            ("emcee", "attendees"): self._attendees,
        }
        missing = {c.path for c in self.registry.commands} - set(self._handlers)
        if missing:
            raise RuntimeError(f"commands without a handler: {sorted(missing)}")

    # -- entry points -------------------------------------------------------------------------

    async def handle_text(self, actor: Actor, channel: ChannelRef | None, line: str) -> Reply:
        """Parse a typed command line (Slack text, console) and handle it."""
        try:
            events = await self.event_slugs() if self.registry.needs_event_names(line) else ()
            parsed = self.registry.parse(line, events)
        except UsageError as exc:
            self.metrics.command_handled("unparsed", CommandOutcome.REFUSED)
            return self._refusal(exc)
        return await self.handle(Invocation(actor, channel, parsed.command.path, parsed.args))

    async def handle(self, invocation: Invocation) -> Reply:
        command = self.registry.get(invocation.command)
        reply, outcome = await self._dispatch(command, invocation)
        self.metrics.command_handled(command.name if command else "unknown", outcome)
        return reply

    async def _dispatch(self, command: Command | None, invocation: Invocation) -> tuple[Reply, CommandOutcome]:
        reply, outcome, effects = await self._run(self.db.session(), command, invocation)
        self.bus.publish(effects)
        return reply, outcome

    async def _run(
        self, transaction: AbstractAsyncContextManager[AsyncSession], command: Command | None, invocation: Invocation
    ) -> tuple[Reply, CommandOutcome, list[Effect]]:
        """Check and run one command in `transaction`, which a refusal rolls back, so it writes nothing."""
        if command is None:
            unknown = UsageError(f"unknown command '{' '.join(invocation.command)}'. Try /emcee help")
            return self._refusal(unknown), CommandOutcome.REFUSED, []
        if command.organizer and not self.is_organizer(invocation.actor):
            return Reply(f"Only organizers can use /{command.name}.", ok=False), CommandOutcome.DENIED, []
        try:
            async with transaction as session:
                outcome = await self._handlers[command.path](session, invocation)
        except UsageError as exc:
            return self._refusal(exc, command), CommandOutcome.REFUSED, []
        except Exception:
            log.exception("command /%s failed", command.name)
            return INTERNAL_ERROR, CommandOutcome.ERROR, []
        return outcome.reply, CommandOutcome.OK if outcome.reply.ok else CommandOutcome.REFUSED, outcome.effects

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[Batch]:
        """Commands that take effect together or not at all (an import): leaving with an exception
        rolls every one of them back; effects are published only after the commit. Inside it, use only
        the batch: on SQLite another session would wait for this one to end."""
        async with self.db.session() as session:
            batch = Batch(self, session)
            yield batch
        self.bus.publish(batch.effects)

    def is_organizer(self, actor: Actor) -> bool:
        organizers = self.settings.organizers
        ids: list[str] = getattr(organizers, actor.platform, [])
        if actor.platform == "system" or actor.user_id in ids:
            return True
        return actor.platform == "discord" and bool(set(actor.roles) & set(organizers.discord_roles))

    async def event_slugs(self) -> list[str]:
        async with self.db.session() as session:
            return list((await session.exec(select(Event.slug))).all())

    @staticmethod
    def _refusal(exc: UsageError, command: Command | None = None) -> Reply:
        return refusal(exc.message, exc.usage or (command.usage if command else None))

    # -- lookups ------------------------------------------------------------------------------

    def upcoming(self, organizer: bool = False) -> SelectOfScalar[Event]:
        """Events that have not ended, soonest first: published ones, and drafts too for organizers."""
        query = select(Event).where(col(Event.ends_at) > self.clock.now(), Event.status != EventStatus.CANCELLED)
        if not organizer:
            query = query.where(Event.status == EventStatus.PUBLISHED)
        return query.order_by(col(Event.starts_at))

    async def resolve_event(self, session: AsyncSession, ref: str | None, organizer: bool = False) -> Event:
        """A slug, a unique prefix of one, or None for the next event that has not ended."""
        if ref is None:
            event = (await session.exec(self.upcoming(organizer))).first()
            if event is None:
                raise UsageError("there is no upcoming event; name one, or see /events")
            return event
        exact = (await session.exec(select(Event).where(Event.slug == ref))).first()
        if exact:
            return exact
        matches = (await session.exec(select(Event).where(col(Event.slug).startswith(ref)))).all()
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"'{ref}' matches {', '.join(e.slug for e in matches)}; say which")
        raise UsageError(f"no event called '{ref}'; see /events")

    # -- member commands ----------------------------------------------------------------------

    async def _rsvp(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"))
        guests = inv.args.get("guests", 0)
        if guests > self.settings.bot.max_guests:
            raise UsageError(f"you can bring at most {plural(self.settings.bot.max_guests, 'guest')}")
        if event.status != EventStatus.PUBLISHED:
            raise UsageError(f"{event.title} is {event.status}; RSVPs are closed")
        if event.ends_at <= self.clock.now():
            raise UsageError(f"{event.title} is over; RSVPs are closed")
        wanted = _RSVP_STATUS[inv.args.get("status", "going")]
        result = await set_rsvp(session, event, inv.actor, wanted, guests, self.clock.now())
        if result.kept_previous:  # a refusal: raising rolls back everything set_rsvp touched
            left = 0 if event.capacity is None else event.capacity - event.seats_taken
            raise UsageError(f"Only {plural(left, 'seat')} left at {event.title}, so your RSVP is unchanged.")
        party = f" with {plural(result.guests, 'guest')}" if result.guests else ""
        if result.status is RsvpStatus.GOING:
            text = f"✅ You're going to {event.title}{party}. {format_moment(event.starts_at, event.timezone)}."
        elif result.status is RsvpStatus.WAITLISTED:
            text = (
                f"{event.title} is full. You're on the waitlist{party}, position {result.waitlist_position}. "
                "We'll DM you if a seat frees up."
            )
        elif result.status is RsvpStatus.MAYBE:
            text = f"Noted: maybe for {event.title}."
        else:
            text = f"Noted: you can't make {event.title}."
        effects: list[Effect] = [SeatsChanged(event.id or 0, result.reminders_moved)]
        effects += _promoted(event.id or 0, result.promoted)
        return Outcome(Reply(text), effects)

    async def _events(self, session: AsyncSession, inv: Invocation) -> Outcome:
        events = (
            await session.exec(
                select(Event)
                .where(Event.status == EventStatus.PUBLISHED, col(Event.ends_at) > self.clock.now())
                .order_by(col(Event.starts_at))
            )
        ).all()
        base_url = self.settings.http.link_base
        listing = EventList(tuple([await cards.event_card(session, event, base_url) for event in events]))
        return Outcome(Reply("", message=listing))

    async def _agenda(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"), self.is_organizer(inv.actor))
        return Outcome(Reply("", message=await cards.agenda_card(session, event)))

    async def _remind(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"))
        rsvp = (
            await session.exec(
                select(Rsvp).where(
                    Rsvp.event_id == event.id, Rsvp.platform == inv.actor.platform, Rsvp.user_id == inv.actor.user_id
                )
            )
        ).first()
        if rsvp is None or rsvp.status not in (RsvpStatus.GOING, RsvpStatus.WAITLISTED):
            raise UsageError(f"RSVP going to {event.title} first, then turn reminders on")
        rsvp.dm_reminders = inv.args["state"] == "on"
        session.add(rsvp)
        state = "on: I'll DM you before it starts" if rsvp.dm_reminders else "off"
        return Outcome(Reply(f"DM reminders for {event.title} are {state}."), [EventChanged(event.id or 0)])

    async def _help(self, session: AsyncSession, inv: Invocation) -> Outcome:
        return Outcome(Reply(self.registry.help(inv.args.get("command", ""))))

    # -- organizer commands -------------------------------------------------------------------

    async def _event_create(self, session: AsyncSession, inv: Invocation) -> Outcome:
        args = inv.args
        slug = args["slug"]
        if (await session.exec(select(Event).where(Event.slug == slug))).first():
            raise UsageError(f"an event called '{slug}' already exists")
        zone_name = args.get("timezone", self.settings.bot.timezone)
        zone = _zone(zone_name)
        starts_at = _dated(args["starts"], zone, None, "--starts")
        ends_at = args["ends"].resolve(zone, starts_at.astimezone(zone).date()) if "ends" in args else None
        ends_at = ends_at or starts_at + DEFAULT_EVENT_LENGTH
        if ends_at <= starts_at:
            raise UsageError("--ends must be after --starts")
        event = Event(
            slug=slug,
            uid=args.get("uid") or f"{uuid.uuid4()}@emcee",  # an importer keeps the calendar's own UID
            title=args["title"],
            description=args.get("description", ""),
            reminder_offsets=_reminders(args.get("reminders", "default")),
            venue=args.get("venue", ""),
            url=args.get("url", ""),
            starts_at=starts_at,
            ends_at=ends_at,
            timezone=zone_name,
            capacity=args.get("capacity") or None,
            updated_at=self.clock.now(),
        )
        session.add(event)
        await session.flush()
        text = (
            f"Created draft {event.title} ({slug}), {format_moment(starts_at, zone_name)}. "
            f"Add the agenda with /emcee agenda add, then /emcee event publish {slug}."
        )
        return Outcome(Reply(text), [EventChanged(event.id or 0)])

    async def _event_edit(self, session: AsyncSession, inv: Invocation) -> Outcome:
        args = inv.args
        event = await self.resolve_event(session, args.get("event"), organizer=True)
        fields = _EDITABLE & set(args)
        if not fields:
            raise UsageError("nothing to change; give at least one --option")
        for name in ("title", "venue", "url", "description"):
            if name in args:
                setattr(event, name, args[name])
        if "reminders" in args:
            event.reminder_offsets = _reminders(args["reminders"])
        if "timezone" in args:
            _zone(args["timezone"])
            event.timezone = args["timezone"]
        zone = ZoneInfo(event.timezone)
        effects: list[Effect] = [EventChanged(event.id or 0)]
        if "starts" in args:
            new_start = _dated(args["starts"], zone, event.starts_at, "--starts")
            delta = new_start - event.starts_at
            event.starts_at, event.ends_at = new_start, event.ends_at + delta
            editor = AgendaEditor(session, event, self.clock.now())
            effects += _notice(event, await editor.shift_all(delta))
        if "ends" in args:
            event.ends_at = _dated(args["ends"], zone, event.starts_at, "--ends")
        if event.ends_at <= event.starts_at:
            raise UsageError("the event must end after it starts")
        if "capacity" in args:
            capacity = args["capacity"] or None
            if capacity is not None and capacity < event.seats_taken:
                taken = plural(event.seats_taken, "seat")
                raise UsageError(f"{taken} already taken; capacity can't go below that")
            event.capacity = capacity
        self._touch(session, event)
        await session.flush()
        promoted = await promote_waitlist(session, event.id or 0)
        effects += _promoted(event.id or 0, [promotion_of(rsvp) for rsvp in promoted])
        return Outcome(Reply(f"Updated {event.title}: {', '.join(sorted(fields))}."), effects)

    async def _event_publish(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"), organizer=True)
        if event.status == EventStatus.PUBLISHED:
            raise UsageError(f"{event.title} is already published; use /emcee announce to post it again")
        if event.status == EventStatus.CANCELLED:
            raise UsageError(f"{event.title} was cancelled; create a new event instead")
        self._touch(session, event, status=EventStatus.PUBLISHED)
        return Outcome(
            Reply(f"Published {event.title}; its card is on its way to the announce channels."),
            [CardPosted(event.id or 0), EventChanged(event.id or 0)],
        )

    async def _event_cancel(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"), organizer=True)
        if event.status == EventStatus.CANCELLED:
            raise UsageError(f"{event.title} is already cancelled")
        self._touch(session, event, status=EventStatus.CANCELLED)
        return Outcome(
            Reply(f"Cancelled {event.title}. Everyone who RSVPed will see it on the card."),
            [EventCancelled(event.id or 0), EventChanged(event.id or 0)],
        )

    async def _agenda_edit(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"), organizer=True)
        editor = AgendaEditor(session, event, self.clock.now())
        change = await editor.apply(inv.command[-1], inv.args)
        self._touch(session, event)
        card = await cards.agenda_card(session, event)
        return Outcome(
            Reply(change.update.summary, message=card), [*_notice(event, change), EventChanged(event.id or 0)]
        )

    async def _speaker_add(self, session: AsyncSession, inv: Invocation) -> Outcome:
        name = inv.args["name"].strip()
        if not name:
            raise UsageError("the speaker needs a name")
        if await _speaker(session, name):
            raise UsageError(f"'{name}' is already a speaker; use /emcee speaker edit")
        speaker = Speaker(name=name)
        _speaker_fields(speaker, inv.args)
        session.add(speaker)
        return Outcome(Reply(f"Added speaker {name}."))

    async def _speaker_edit(self, session: AsyncSession, inv: Invocation) -> Outcome:
        speaker = await _speaker(session, inv.args["name"])
        if speaker is None:
            raise UsageError(f"no speaker called '{inv.args['name']}'; add them with /emcee speaker add")
        changed = _speaker_fields(speaker, inv.args)
        if not changed:
            raise UsageError("nothing to change; give at least one --option")
        session.add(speaker)
        return Outcome(Reply(f"Updated {speaker.name}: {', '.join(changed)}."))

    async def _announce(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"), organizer=True)
        if event.status != EventStatus.PUBLISHED:
            raise UsageError(f"{event.title} is {event.status}; publish it first with /emcee event publish")
        return Outcome(
            Reply(f"Announcing {event.title} in the announce channels."),
            [CardPosted(event.id or 0, inv.args.get("text", ""))],
        )

    async def _attendees(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self.resolve_event(session, inv.args.get("event"), organizer=True)
        listing, csv_file = await cards.attendee_list(session, event)
        return Outcome(Reply("", message=listing, attachment=csv_file))

    def _touch(self, session: AsyncSession, event: Event, **changes: Any) -> None:
        """Record a change to the event: bump its calendar sequence and timestamp."""
        for name, value in changes.items():
            setattr(event, name, value)
        event.sequence += 1
        event.updated_at = self.clock.now()
        session.add(event)


@dataclass
class Batch:
    """Runs commands one after another in one transaction; see Engine.batch."""

    engine: Engine
    session: AsyncSession
    effects: list[Effect] = field(default_factory=list)

    async def handle(self, invocation: Invocation) -> Reply:
        command = self.engine.registry.get(invocation.command)
        reply, outcome, effects = await self.engine._run(_savepoint(self.session), command, invocation)
        self.engine.metrics.command_handled(command.name if command else "unknown", outcome)
        self.effects += effects
        return reply


@asynccontextmanager
async def _savepoint(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    async with session.begin_nested():
        yield session


def _promoted(event_id: int, promotions: Iterable[Promotion]) -> list[Effect]:
    return [MemberPromoted(event_id, p.member, p.number) for p in promotions]


def _notice(event: Event, change: AgendaChanged | None) -> list[Effect]:
    """Agenda update notices go out only for published events; drafts change quietly."""
    return [change] if change is not None and event.status == EventStatus.PUBLISHED else []


def _reminders(text: str) -> str | None:
    """An event's own reminder offsets, normalised ("1d,2h"); None (the configured ones) for "default"."""
    if text.strip().lower() == "default":
        return None
    try:
        return ",".join(format_duration(offset) for offset in parse_durations(text))
    except TimeParseError as exc:
        raise UsageError(f"--reminders: {exc}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone '{name}'; use an IANA name such as America/Los_Angeles") from None


def _dated(wall: WallTime, zone: ZoneInfo, default: datetime | None, option: str) -> datetime:
    if wall.day is None and default is None:
        raise UsageError(f"{option} needs a date: YYYY-MM-DD HH:MM")
    day = default.astimezone(zone).date() if default else None
    return wall.resolve(zone, day or wall.day)  # type: ignore[arg-type]


async def _speaker(session: AsyncSession, name: str) -> Speaker | None:
    return (await session.exec(select(Speaker).where(Speaker.name == name.strip()))).first()


def _speaker_fields(speaker: Speaker, args: dict[str, Any]) -> list[str]:
    mapping = {
        "affiliation": "affiliation",
        "bio": "bio",
        "links": "links",
        "slack": "slack_id",
        "discord": "discord_id",
    }
    changed = [name for name in mapping if name in args]
    for name in changed:
        setattr(speaker, mapping[name], args[name])
    return changed
