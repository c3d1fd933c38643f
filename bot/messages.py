"""Platform-neutral messages. Adapters render these; the core never formats for a platform.

Times travel as UTC-aware datetimes together with the event's IANA zone, so each renderer can
show viewers their own local time and fall back to the event's zone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.statuses import EventStatus, RsvpAnswer, RsvpStatus


@dataclass(frozen=True)
class When:
    starts_at: datetime
    ends_at: datetime
    timezone: str


@dataclass(frozen=True)
class RsvpChoice:
    value: RsvpAnswer
    label: str


RSVP_CHOICES: tuple[RsvpChoice, ...] = (
    RsvpChoice(RsvpAnswer.GOING, "Going"),
    RsvpChoice(RsvpAnswer.MAYBE, "Maybe"),
    RsvpChoice(RsvpAnswer.NO, "Can't go"),
)


@dataclass(frozen=True)
class SpeakerLine:
    name: str
    role: str = "speaker"
    affiliation: str = ""
    bio: str = ""
    slack_id: str | None = None
    discord_id: str | None = None


@dataclass(frozen=True)
class AgendaEntry:
    position: int
    title: str
    kind: str
    when: When
    speakers: tuple[SpeakerLine, ...] = ()
    abstract: str = ""


@dataclass(frozen=True)
class EventCard:
    slug: str
    title: str
    when: When
    venue: str
    url: str
    description: str
    status: EventStatus
    capacity: int | None
    going: int
    waitlist: int
    maybe: int
    calendar_url: str = ""  # the event's live .ics feed, for "Add to calendar"; empty when no server runs
    google_calendar_url: str = ""  # a Google Calendar "create event" template link
    choices: tuple[RsvpChoice, ...] = RSVP_CHOICES

    @property
    def seats_left(self) -> int | None:
        return None if self.capacity is None else max(self.capacity - self.going, 0)


@dataclass(frozen=True)
class AgendaCard:
    slug: str
    title: str
    timezone: str
    entries: tuple[AgendaEntry, ...]


@dataclass(frozen=True)
class SpeakerIntro:
    slug: str
    event_title: str
    entry: AgendaEntry


@dataclass(frozen=True)
class Reminder:
    """ "Starts in 1 hour", "starting now", "started 2 minutes ago", or "up next" for an agenda item."""

    slug: str
    title: str
    when: When
    venue: str
    lead: timedelta  # from the send to the start of the event (or item); negative once it began
    item: AgendaEntry | None = None


@dataclass(frozen=True)
class AgendaChange:
    title: str
    old_start: datetime | None
    new_start: datetime | None


@dataclass(frozen=True)
class AgendaUpdate:
    slug: str
    title: str
    timezone: str
    summary: str
    changes: tuple[AgendaChange, ...] = ()


@dataclass(frozen=True)
class Notice:
    """Free text from the bot or an organizer, optionally about one event."""

    text: str
    slug: str | None = None


@dataclass(frozen=True)
class AttendeeRow:
    name: str
    platform: str
    status: RsvpStatus
    guests: int


@dataclass(frozen=True)
class AttendeeList:
    slug: str
    title: str
    capacity: int | None
    going: int
    maybe: int
    waitlisted: int
    rows: tuple[AttendeeRow, ...]


@dataclass(frozen=True)
class EventList:
    events: tuple[EventCard, ...]


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str


Message = EventCard | AgendaCard | SpeakerIntro | Reminder | AgendaUpdate | Notice | AttendeeList | EventList


@dataclass(frozen=True)
class Reply:
    """The engine's answer to one invocation. Ephemeral unless it is meant for the channel."""

    text: str
    ok: bool = True
    ephemeral: bool = True
    message: Message | None = None
    attachment: Attachment | None = None
    usage: str | None = None

    @property
    def private(self) -> bool:
        """Whether only the sender sees it: meant for them alone, or a refusal, which always is."""
        return self.ephemeral or not self.ok


INTERNAL_ERROR = Reply("Something went wrong on our side and nothing was changed. Please try again.", ok=False)
READ_ONLY = Reply(
    "The bot's database is read-only right now, so nothing was changed. Please tell whoever runs the bot.", ok=False
)


def refusal(message: str, usage: str | None) -> Reply:
    """The answer to rejected input: what was wrong, and the usage line, to the sender only."""
    return Reply(f"⚠️ {message}", ok=False, usage=usage)


def digest(message: Message) -> str:
    """A short fingerprint of what `message` shows: two messages have the same one when they read the same.
    (Messages are frozen dataclasses of plain values, so their repr is a faithful rendering of them.)"""
    return hashlib.sha256(repr(message).encode()).hexdigest()[:32]
