"""iCalendar export and import, through the icalendar library.

Export: each event is a VEVENT whose UID never changes and whose SEQUENCE is the event's own
(bumped by the engine on every change), with DTSTART/DTEND in the event's zone and the matching
VTIMEZONE; each agenda item is a VEVENT of its own, RELATED-TO its event. DTSTAMP is the event's
last change, so the same state always gives the same bytes (the feeds' ETag depends on it).

Import: one VEVENT, as meetup sites export it, matched to an event by UID, and the VEVENTs RELATED-TO
it as its agenda (as our export writes them, speakers included), so our own export imports back. The
whole file is checked first (each content line, the BEGIN/END nesting, every property the event
needs); only then is the event created or edited through the engine's own commands, in one
transaction, so their checks and effects apply and a rejected file writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component, InvalidCalendar
from icalendar import Event as VEvent
from icalendar.enums import STATUS
from icalendar.parser import Contentline, Parameters
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import compose
from bot.commands import agenda as agenda_commands
from bot.commands.events import DEFAULT_EVENT_LENGTH
from bot.engine import Batch, Engine, Refused
from bot.formatting import entry_line, plural, speaker_label
from bot.invocation import Actor, Invocation
from bot.messages import AgendaEntry, SpeakerLine, When
from bot.models import AgendaItem, Event, EventStatus, ItemKind, SpeakerRole, table_of
from bot.timeparse import WallTime, stored_usable

log = logging.getLogger(__name__)

PRODID = "-//Emcee//Emcee meetup bot//EN"
REFRESH_INTERVAL = timedelta(hours=1)  # a hint to subscribed calendar apps
IMPORTER = Actor("system", "ics-import", "iCalendar import")
# The column's type is sqlmodel's AutoString, which passes `length` through to its String at run time only.
ITEM_TITLE_LIMIT: int = table_of(AgendaItem).c.title.type.length  # type: ignore[attr-defined]
AFFILIATION = "X-EMCEE-AFFILIATION"  # a speaker's company: iCalendar has no property for it

_STATUS = {
    EventStatus.PUBLISHED: STATUS.CONFIRMED,
    EventStatus.CANCELLED: STATUS.CANCELLED,
    EventStatus.DRAFT: STATUS.TENTATIVE,
}


# -- export ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    """A serialised calendar with what HTTP caching needs."""

    filename: str
    body: bytes
    last_modified: datetime | None
    events: int = 1  # how many events it holds

    @property
    def etag(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:32]


def exportable(event: Event) -> bool:
    """Whether the row can be exported; one that a newer version would refuse is logged and left out."""
    return stored_usable(event.slug, event.starts_at, event.ends_at, event.timezone, "calendars")


def item_uid(event: Event, item: AgendaItem) -> str:
    return f"item-{item.id}.{event.uid}"


async def build_calendar(session: AsyncSession, events: Sequence[Event], name: str, uid: str) -> Calendar:
    calendar = Calendar.new(name=name, prodid=PRODID, uid=uid, refresh_interval=REFRESH_INTERVAL)
    for event in events:
        rows = await compose.agenda_rows(session, event)
        calendar.add_component(_event_component(event, [entry for _, entry in rows]))
        for item, entry in rows:
            calendar.add_component(_item_component(event, item, entry))
    if events:
        # VTIMEZONEs covering the years in use only: small, and the same for the same events.
        first = min(event.starts_at for event in events).year
        last = max(event.ends_at for event in events).year
        calendar.add_missing_timezones(first_date=date(first, 1, 1), last_date=date(last + 1, 1, 1))
    return calendar


async def event_feed(session: AsyncSession, event: Event) -> Feed:
    """One event and its agenda."""
    calendar = await build_calendar(session, [event], event.title, f"calendar.{event.uid}")
    return Feed(f"{event.slug}.ics", calendar.to_ical(), event.updated_at)


async def upcoming_feed(session: AsyncSession, now: datetime, name: str) -> Feed:
    """Every published event that has not ended; cancelled ones stay, marked, so subscribers see it."""
    events = (
        await session.exec(
            select(Event)
            .where(col(Event.status).in_([EventStatus.PUBLISHED, EventStatus.CANCELLED]), col(Event.ends_at) > now)
            .order_by(col(Event.starts_at), col(Event.id))
        )
    ).all()
    events = [event for event in events if exportable(event)]
    calendar = await build_calendar(session, events, f"{name} events", f"calendar.{_slugify(name)}@emcee")
    return Feed("calendar.ics", calendar.to_ical(), max((e.updated_at for e in events), default=None), len(events))


def _event_description(description: str, entries: Sequence[AgendaEntry], zone: str) -> str:
    """The event's description with its agenda below it, for calendar apps that show no related events."""
    parts = [description] if description else []
    if entries:
        parts.append("\n".join([f"Agenda (times in {zone}):", *(entry_line(entry, zone) for entry in entries)]))
    return "\n\n".join(parts)


def _item_description(speakers: Sequence[SpeakerLine], abstract: str) -> str:
    lines = [speaker_label(s) + (f": {s.bio}" if s.bio else "") for s in speakers]
    if abstract:
        lines += ["", abstract] if lines else [abstract]
    return "\n".join(lines)


def _event_component(event: Event, entries: Sequence[AgendaEntry]) -> VEvent:
    zone = ZoneInfo(event.timezone)
    return VEvent.new(
        uid=event.uid,
        sequence=event.sequence,
        stamp=event.updated_at,
        last_modified=event.updated_at,
        start=event.starts_at.astimezone(zone),
        end=event.ends_at.astimezone(zone),
        summary=event.title,
        description=_event_description(event.description, entries, event.timezone) or None,
        location=event.venue or None,
        url=event.url or None,
        status=_STATUS[EventStatus(event.status)],
    )


def _item_component(event: Event, item: AgendaItem, entry: AgendaEntry) -> VEvent:
    zone = ZoneInfo(event.timezone)
    component = VEvent.new(
        uid=item_uid(event, item),
        sequence=event.sequence,
        stamp=event.updated_at,
        last_modified=event.updated_at,
        start=entry.when.starts_at.astimezone(zone),
        end=entry.when.ends_at.astimezone(zone),
        summary=f"{entry.title} ({event.title})",
        description=_item_description(entry.speakers, entry.abstract) or None,
        location=event.venue or None,
        url=event.url or None,
        status=_STATUS[EventStatus(event.status)],
        categories=[entry.kind],
    )
    component.add("RELATED-TO", event.uid, parameters={"RELTYPE": "PARENT"})
    for number, speaker in enumerate(entry.speakers, start=1):
        component.add_component(_participant(f"speaker-{number}.{item_uid(event, item)}", speaker))
    return component


def _participant(uid: str, speaker: SpeakerLine) -> Component:
    """A speaker as an RFC 9073 PARTICIPANT; its type is the role (SPEAKER, MODERATOR, PANELIST)."""
    participant = Component.get_component_class("PARTICIPANT")()
    participant.add("UID", uid)
    participant.add("PARTICIPANT-TYPE", speaker.role.upper())
    participant.add("SUMMARY", speaker.name)
    if speaker.affiliation:
        participant.add(AFFILIATION, speaker.affiliation)
    if speaker.bio:
        participant.add("DESCRIPTION", speaker.bio)
    return participant


# -- import ---------------------------------------------------------------------------------------


class IcsError(Exception):
    """The file cannot be imported; the message names the file and the line or component."""


@dataclass(frozen=True)
class IcsEvent:
    """The file's event (a VEVENT), checked and in the terms of an Emcee event, with its agenda."""

    uid: str
    title: str
    description: str
    venue: str
    url: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    agenda: tuple[AgendaEntry, ...] = ()


@dataclass(frozen=True)
class ImportResult:
    slug: str
    action: str  # created, updated or unchanged
    changed: tuple[str, ...] = ()


@dataclass
class _Outline:
    """A component as written in the file: its name, its BEGIN line and the line of each property."""

    name: str
    line: int
    properties: dict[str, int]


class _ValueType(Protocol):
    """An icalendar value type (vText, vDDDTypes, ...): its TypesFactory.for_property is annotated as returning
    a bare `type`, though every type it returns parses with from_ical."""

    def from_ical(self, ical: str, /) -> object: ...


@dataclass(frozen=True)
class _Line:
    number: int
    name: str
    params: Parameters
    value: str


def _outline(path: Path, text: str) -> tuple[list[_Outline], list[_Line]]:
    """Check every content line with icalendar's line parser and the BEGIN/END nesting; return the
    components in the order icalendar's walk() yields them, so later errors can name a line."""
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(re.split(r"\r?\n", text), start=1):
        if raw[:1] in (" ", "\t") and logical:  # a folded continuation
            logical[-1] = (logical[-1][0], logical[-1][1] + raw[1:])
        elif raw:
            logical.append((number, raw))
    stack: list[_Outline] = []
    order: list[_Outline] = []
    lines: list[_Line] = []
    for number, line in logical:
        try:
            # icalendar leaves Contentline.__new__ unannotated; parts() is typed.
            name, params, value = Contentline(line).parts()  # type: ignore[no-untyped-call]
        except ValueError:
            raise IcsError(f"{path}: line {number}: not an iCalendar line: {line[:60]!r}") from None
        name = name.upper()
        lines.append(_Line(number, name, params, value))
        if name == "BEGIN":
            if not stack and order:
                raise IcsError(f"{path}: line {number}: a second calendar in one file; export one event")
            stack.append(_Outline(value.upper(), number, {}))
            order.append(stack[-1])
        elif name == "END":
            if not stack:
                raise IcsError(f"{path}: line {number}: END:{value} without a BEGIN")
            if stack[-1].name != value.upper():
                open_ = stack[-1]
                raise IcsError(f"{path}: line {number}: END:{value} where END:{open_.name} (line {open_.line}) belongs")
            stack.pop()
        elif not stack:
            raise IcsError(f"{path}: line {number}: {name} outside BEGIN:VCALENDAR")
        else:
            stack[-1].properties.setdefault(name, number)
    if stack:
        raise IcsError(f"{path}: line {stack[-1].line}: BEGIN:{stack[-1].name} is never closed with END")
    if not order or order[0].name != "VCALENDAR":
        raise IcsError(f"{path}: not an iCalendar file; it must start with BEGIN:VCALENDAR")
    return order, lines


def _blame(lines: list[_Line]) -> str:
    """After icalendar refused a value (it names no line), find the line whose value its types reject."""
    for line in lines:
        if line.name in ("BEGIN", "END") or line.name.startswith("X-"):
            continue
        try:
            value_type = cast(_ValueType, Calendar.types_factory.for_property(line.name, line.params.value))
            value_type.from_ical(line.value)
        except (ValueError, TypeError):
            return f"line {line.number}: {line.name}: "
    return ""


def read_ics(path: Path, default_zone: str) -> IcsEvent:
    """Parse and check the file. Floating times, and zones that are not IANA names, use `default_zone`."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise IcsError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise IcsError(f"{path}: line {line}: not UTF-8 text") from None
    except OSError as exc:
        raise IcsError(f"{path}: cannot read: {exc.strerror}") from None
    outline, lines = _outline(path, text)
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:  # a bad value in a component that icalendar parses strictly (VALARM, ...)
        raise IcsError(f"{path}: {_blame(lines)}{exc}") from None
    components: list[Component] = calendar.walk()
    for component, part in zip(components, outline, strict=True):
        for prop, message in component.errors:
            if prop and not prop.startswith("X-"):
                raise IcsError(f"{path}: line {part.properties.get(prop, part.line)}: {prop}: {message}")
    vevents = [(c, part) for c, part in zip(components, outline, strict=True) if isinstance(c, VEvent)]
    if not vevents:
        raise IcsError(f"{path}: no VEVENT; there is no event to import")
    (vevent, part), related = _event_and_items(path, vevents)
    event = _event_of(path, vevent, part, default_zone)
    items = [_item_of(path, item, item_part, event, default_zone) for item, item_part in related]
    agenda = tuple(replace(entry, position=number) for number, entry in enumerate(items, start=1))
    description = _without_suffix(event.description, _event_description("", agenda, event.timezone))
    return replace(event, description=description, agenda=agenda)


def _event_and_items(
    path: Path, vevents: list[tuple[VEvent, _Outline]]
) -> tuple[tuple[VEvent, _Outline], list[tuple[VEvent, _Outline]]]:
    """The one event of the file, and the VEVENTs RELATED-TO it (its agenda, as our export writes it)."""
    uids = {str(vevent.get("UID", "")) for vevent, _ in vevents} - {""}
    roots = [(vevent, part) for vevent, part in vevents if _parent(vevent) not in uids]
    related = [(vevent, part) for vevent, part in vevents if (vevent, part) not in roots]
    if len(roots) != 1 or any(_parent(vevent) != str(roots[0][0].get("UID")) for vevent, _ in related):
        lines = ", ".join(str(part.line) for _, part in vevents)
        raise IcsError(
            f"{path}: {plural(len(vevents), 'VEVENT')} (lines {lines}) not RELATED-TO one event; "
            "import takes one event, with its agenda items RELATED-TO it"
        )
    return roots[0], related


def _parent(vevent: VEvent) -> str:
    related = vevent.get("RELATED-TO")
    return str(related) if related is not None and not isinstance(related, list) else ""


def _item_of(path: Path, vevent: VEvent, part: _Outline, event: IcsEvent, default_zone: str) -> AgendaEntry:
    """An agenda item from a VEVENT RELATED-TO the event: our export's summary, category and speakers."""
    item = _event_of(path, vevent, part, default_zone, ITEM_TITLE_LIMIT + len(f" ({event.title})"))
    kinds = [kind for kind in _categories(vevent) if kind in ItemKind.__members__.values()]
    speakers = tuple(_speaker_of(c) for c in vevent.subcomponents if c.name == "PARTICIPANT")
    return AgendaEntry(
        position=0,
        title=item.title.removesuffix(f" ({event.title})"),
        kind=kinds[0] if kinds else ItemKind.TALK,
        when=When(item.starts_at, item.ends_at, event.timezone),
        speakers=speakers,
        abstract=_without_prefix(item.description, _item_description(speakers, "")),
    )


def _categories(vevent: VEvent) -> list[str]:
    try:
        return [str(category).lower() for category in vevent.categories]
    except (InvalidCalendar, ValueError):
        return []


def _speaker_of(participant: Component) -> SpeakerLine:
    role = str(participant.get("PARTICIPANT-TYPE", "")).lower()
    return SpeakerLine(
        name=str(participant.get("SUMMARY", "")).strip(),
        role=role if role in SpeakerRole.__members__.values() else SpeakerRole.SPEAKER,
        affiliation=str(participant.get(AFFILIATION, "")).strip(),
        bio=str(participant.get("DESCRIPTION", "")).strip(),
    )


def _without_suffix(text: str, suffix: str) -> str:
    """`text` without the `suffix` our export appended to it (after a blank line, or as all of it)."""
    if suffix and text == suffix:
        return ""
    return text.removesuffix(f"\n\n{suffix}") if suffix else text


def _without_prefix(text: str, prefix: str) -> str:
    if prefix and text == prefix:
        return ""
    return text.removeprefix(f"{prefix}\n\n") if prefix else text


def _event_of(path: Path, vevent: VEvent, part: _Outline, default_zone: str, title_limit: int = 200) -> IcsEvent:
    def where(prop: str) -> str:
        return f"{path}: line {part.properties[prop]}: {prop}"

    for prop in ("UID", "SUMMARY", "DTSTART"):
        if prop not in part.properties:
            raise IcsError(f"{path}: VEVENT: missing {prop}")

    def text(prop: str, limit: int | None = None) -> str:
        raw: Any = vevent.get(prop, "")
        if isinstance(raw, list):
            raise IcsError(f"{where(prop)}: given more than once")
        value = str(raw).replace("\r\n", "\n").strip()
        if limit is not None and len(value) > limit:
            raise IcsError(f"{where(prop)}: longer than {limit} characters")
        return value

    uid, title = text("UID", 255), text("SUMMARY", title_limit)
    for prop, value in (("UID", uid), ("SUMMARY", title)):
        if not value:
            raise IcsError(f"{where(prop)}: empty")

    def moment(prop: str, read: Any) -> tuple[datetime, str]:
        written = vevent.get(prop)
        if isinstance(written, list):
            raise IcsError(f"{where(prop)}: given more than once")
        if prop != "DURATION" and not isinstance(written.dt, datetime):
            raise IcsError(f"{where(prop)}: a date without a time (an all-day event); Emcee needs times")
        try:
            value = read()
        except (InvalidCalendar, ValueError) as exc:
            raise IcsError(f"{where(prop)}: {exc}") from None
        if value.tzinfo is None:
            tzid = vevent[prop].params.get("TZID")
            if tzid:
                raise IcsError(f"{where(prop)}: unknown time zone '{tzid}' and no VTIMEZONE for it")
            return value.replace(tzinfo=ZoneInfo(default_zone)), default_zone
        zone = value.tzinfo.key if isinstance(value.tzinfo, ZoneInfo) else default_zone
        return value, zone

    starts_at, zone = moment("DTSTART", lambda: vevent.start)
    if "DTEND" in part.properties or "DURATION" in part.properties:
        end_prop = "DTEND" if "DTEND" in part.properties else "DURATION"
        ends_at, _ = moment(end_prop, lambda: vevent.end)
        if ends_at <= starts_at:
            raise IcsError(f"{where(end_prop)}: the event must end after it starts")
    else:
        ends_at = starts_at + DEFAULT_EVENT_LENGTH
    return IcsEvent(
        uid=uid,
        title=title,
        description=text("DESCRIPTION"),
        venue=text("LOCATION"),
        url=text("URL"),
        starts_at=starts_at,
        ends_at=ends_at,
        timezone=zone,
    )


async def import_ics(engine: Engine, path: Path) -> ImportResult:
    """Create the event (a draft) with its agenda, or bring the event up to date; an identical file changes
    nothing. Everything runs in one transaction, so a file refused part-way writes nothing."""
    spec = read_ics(path, engine.settings.bot.timezone)
    async with engine.db.session() as session:
        event = (await session.exec(select(Event).where(Event.uid == spec.uid))).first()
    slug = _unique_slug(spec.title, set(await engine.event_slugs())) if event is None else ""
    async with engine.batch() as batch:
        if event is None:
            return await _create(batch, path, spec, slug)
        return await _update(batch, path, spec, event)


async def _create(batch: Batch, path: Path, spec: IcsEvent, slug: str) -> ImportResult:
    zone = ZoneInfo(spec.timezone)
    args: dict[str, Any] = {
        "slug": slug,
        "uid": spec.uid,
        "title": spec.title,
        "starts": _wall(spec.starts_at, zone),
        "ends": _wall(spec.ends_at, zone),
        "timezone": spec.timezone,
        "venue": spec.venue,
        "url": spec.url,
        "description": spec.description,
    }
    await _run(batch, path, ("emcee", "event", "create"), args)
    for speaker in {s.name: s for entry in spec.agenda for s in entry.speakers}.values():
        fields = {"name": speaker.name, "affiliation": speaker.affiliation, "bio": speaker.bio}
        await _run(batch, path, ("emcee", "speaker", "add"), fields, tolerate="already a speaker")
    for entry in spec.agenda:
        await _run(batch, path, ("emcee", "agenda", "add"), _item_args(slug, entry, zone))
    return ImportResult(slug, "created")


def _item_args(slug: str, entry: AgendaEntry, zone: ZoneInfo) -> dict[str, Any]:
    """`agenda add` arguments for one item, its speakers by role."""
    names = {role: [s.name for s in entry.speakers if s.role == role] for role in SpeakerRole}
    args: dict[str, Any] = {
        "event": slug,
        "starts": _wall(entry.when.starts_at, zone),
        "ends": _wall(entry.when.ends_at, zone),
        "title": entry.title,
        "kind": entry.kind,
        "abstract": entry.abstract,
        "speaker": names[SpeakerRole.SPEAKER],
        "panelist": names[SpeakerRole.PANELIST],
    }
    if names[SpeakerRole.MODERATOR]:
        args["moderator"] = names[SpeakerRole.MODERATOR][0]
    return args


async def _update(batch: Batch, path: Path, spec: IcsEvent, event: Event) -> ImportResult:
    changes: dict[str, Any] = {
        name: getattr(spec, name)
        for name in ("title", "description", "venue", "url")
        if getattr(spec, name) != getattr(event, name)
    }
    if spec.starts_at != event.starts_at or spec.ends_at != event.ends_at:
        zone = ZoneInfo(event.timezone)
        if spec.starts_at != event.starts_at:
            changes["starts"] = _wall(spec.starts_at, zone)
        changes["ends"] = _wall(spec.ends_at, zone)  # always: moving the start alone would move the end too
    if changes:
        await _run(batch, path, ("emcee", "event", "edit"), {"event": event.slug, **changes})
    if spec.agenda:
        stored = tuple(entry for _, entry in await compose.agenda_rows(batch.session, event))
        if stored != spec.agenda:  # compared after the edit, which moves the agenda with the event
            raise IcsError(
                f"{path}: the agenda differs from {event.slug}'s; change it there with "
                f"{agenda_commands.add.group_ref} (an import updates the event, not its agenda)"
            )
    if not changes:
        return ImportResult(event.slug, "unchanged")
    return ImportResult(event.slug, "updated", tuple(sorted(changes)))


async def _run(batch: Batch, path: Path, command: tuple[str, ...], args: dict[str, Any], tolerate: str = "") -> None:
    try:
        await batch.run(Invocation(IMPORTER, None, command, args))
    except Refused as exc:
        if not (tolerate and tolerate in exc.message):
            raise IcsError(f"{path}: {exc.message}") from None


def _wall(moment: datetime, zone: ZoneInfo) -> WallTime:
    """The wall time the engine's commands take; time() keeps `fold`, so a repeated hour stays exact."""
    local = moment.astimezone(zone)
    return WallTime(local.time(), local.date())


def _slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:40].rstrip("-")


def _unique_slug(title: str, taken: set[str]) -> str:
    base = _slugify(title) or "event"
    slug, number = base, 2
    while slug in taken:
        slug, number = f"{base}-{number}", number + 1
    return slug
