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
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import and_, col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bot import compose as cards
from bot.agenda import AgendaEditor
from bot.clock import Clock
from bot.commands import Command, Registry, UsageError, time_errors
from bot.config import Settings
from bot.db import Database, DatabaseReadOnly
from bot.effects import (
    AgendaChanged,
    CardPosted,
    Effect,
    EffectBus,
    EventCancelled,
    EventChanged,
    MemberPromoted,
    RemindersChanged,
    SeatsChanged,
)
from bot.formatting import format_moment, plural
from bot.invocation import Actor, ChannelRef, Invocation
from bot.messages import INTERNAL_ERROR, READ_ONLY, EventList, Reply, refusal
from bot.metrics import CommandOutcome, Metrics
from bot.models import Event, EventStatus, Rsvp, RsvpStatus, Speaker
from bot.rsvps import Promotion, promote_waitlist, promotion_of, set_rsvp
from bot.timeparse import WallTime, format_duration, moved, parse_durations, zone_named

log = logging.getLogger(__name__)

_RSVP_STATUS = {"going": RsvpStatus.GOING, "maybe": RsvpStatus.MAYBE, "no": RsvpStatus.DECLINED}
DEFAULT_EVENT_LENGTH = timedelta(hours=3)
_EDITABLE = frozenset({"title", "venue", "url", "description", "capacity", "timezone", "starts", "ends", "reminders"})


@dataclass
class Outcome:
    reply: Reply
    effects: list[Effect] = field(default_factory=list)


Handler = Callable[[AsyncSession, Invocation], Awaitable[Outcome]]


class UnknownEvent(UsageError):
    """No event matches `ref` (None: there is no upcoming event). The message points chat users to /events;
    the command line names its own way with `listing`."""

    def __init__(self, ref: str | None, listing: str = "/events") -> None:
        self.ref = ref
        super().__init__(self.saying(listing))

    def saying(self, listing: str) -> str:
        if self.ref is None:
            return f"there is no upcoming event; name one, or see {listing}"
        return f"no event called '{self.ref}'; see {listing}"


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
        """Parse a typed command line (Slack text, console) and handle it. Access comes first: a member's
        organizer command is refused before its arguments are read."""
        command = self.registry.command_of(line)
        if command is not None and (denied := self._denied(command, actor)):
            self.metrics.command_handled(command.name, CommandOutcome.DENIED)
            return denied
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
        if denied := self._denied(command, invocation.actor):
            return denied, CommandOutcome.DENIED, []
        try:
            async with transaction as session:
                outcome = await self._handlers[command.path](session, invocation)
        except UsageError as exc:
            return self._refusal(exc, command), CommandOutcome.REFUSED, []
        except DatabaseReadOnly:  # the database logged it once; each sender hears why
            return READ_ONLY, CommandOutcome.ERROR, []
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

    def _denied(self, command: Command, actor: Actor) -> Reply | None:
        """The refusal of an organizer command to anyone else; None when `actor` may run `command`."""
        if command.organizer and not self.is_organizer(actor):
            return Reply(f"Only organizers can use /{command.name}.", ok=False)
        return None

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

    async def resolve_event(
        self, session: AsyncSession, ref: str | None, organizer: bool = False, member: Actor | None = None
    ) -> Event:
        """A slug, a unique prefix of one, or None for the next event that has not ended.

        Organizers reach every event. Others reach published events, and cancelled ones that `member`
        RSVPed to; any other event answers as if it did not exist."""
        if ref is None:
            event = (await session.exec(self.upcoming(organizer))).first()
            if event is None:
                raise UnknownEvent(None)
            return event
        exact = (await session.exec(_visible(select(Event).where(Event.slug == ref), organizer, member))).first()
        if exact:
            return exact
        prefixed = select(Event).where(col(Event.slug).startswith(ref, autoescape=True))
        matches = (await session.exec(_visible(prefixed, organizer, member))).all()
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"'{ref}' matches {', '.join(e.slug for e in matches)}; say which")
        raise UnknownEvent(ref)

    async def _sender_event(self, session: AsyncSession, inv: Invocation) -> Event:
        """The event a member's command names, among those its sender may see."""
        return await self.resolve_event(session, inv.args.get("event"), self.is_organizer(inv.actor), inv.actor)

    # -- member commands ----------------------------------------------------------------------

    async def _rsvp(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self._sender_event(session, inv)
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
        event = await self._sender_event(session, inv)
        return Outcome(Reply("", message=await cards.agenda_card(session, event)))

    async def _remind(self, session: AsyncSession, inv: Invocation) -> Outcome:
        event = await self._sender_event(session, inv)
        if event.status == EventStatus.CANCELLED:
            raise UsageError(f"{event.title} was cancelled, so there is nothing to remind you of")
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
        return Outcome(Reply(f"DM reminders for {event.title} are {state}."), [RemindersChanged(event.id or 0)])

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
        if "ends" in args:
            ends_at = _dated(args["ends"], zone, starts_at, "--ends")
        else:
            with time_errors("the default end (3 hours after the start): "):
                ends_at = moved(starts_at, DEFAULT_EVENT_LENGTH, "the end")
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
            f"{_wall_notes(args, zone, starts_at)}"
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
        notes = _wall_notes(args, zone, event.starts_at)
        effects: list[Effect] = [EventChanged(event.id or 0)]
        if "starts" in args:
            new_start = _dated(args["starts"], zone, event.starts_at, "--starts")
            delta = new_start - event.starts_at
            with time_errors():
                event.starts_at, event.ends_at = new_start, moved(event.ends_at, delta, "the end")
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
        return Outcome(Reply(f"Updated {event.title}: {', '.join(sorted(fields))}. {notes}".rstrip()), effects)

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


def _visible(query: SelectOfScalar[Event], organizer: bool, member: Actor | None) -> SelectOfScalar[Event]:
    """Limit an event query to what the sender may see (see Engine.resolve_event)."""
    if organizer:
        return query
    seen = col(Event.status) == EventStatus.PUBLISHED
    if member is not None:
        rsvped = (
            select(Rsvp.id)
            .where(Rsvp.event_id == Event.id, Rsvp.platform == member.platform, Rsvp.user_id == member.user_id)
            .exists()
        )
        seen = or_(seen, and_(col(Event.status) == EventStatus.CANCELLED, rsvped))
    return query.where(seen)


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
    with time_errors("--reminders: "):
        return ",".join(format_duration(offset) for offset in parse_durations(text))


def _zone(name: str) -> ZoneInfo:
    with time_errors():
        return zone_named(name)


def _day(wall: WallTime, zone: ZoneInfo, default: datetime | None, option: str) -> date:
    """The date a wall time falls on: its own, else that of `default` in `zone`."""
    if wall.day is not None:
        return wall.day
    if default is None:
        raise UsageError(f"{option} needs a date: YYYY-MM-DD HH:MM")
    return default.astimezone(zone).date()


def _dated(wall: WallTime, zone: ZoneInfo, default: datetime | None, option: str) -> datetime:
    day = _day(wall, zone, default, option)
    with time_errors(f"{option}: "):
        return wall.resolve(zone, day)


def _wall_notes(args: dict[str, Any], zone: ZoneInfo, default: datetime) -> str:
    """What the reply says about --starts/--ends wall times that happen twice (which one was taken)."""
    walls = [(name, args[name]) for name in ("starts", "ends") if name in args]
    notes = [wall.note(zone, _day(wall, zone, default, f"--{name}")) for name, wall in walls]
    return "".join(f"{note} " for note in notes if note)


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
