"""SQLModel tables: events, agenda, speakers, RSVPs, the delivery ledger, the pending effects and the handled
interactions.

Every datetime column is UTC-aware (UTCDateTime) so that no naive value ever leaves the database,
whichever backend stores it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# Re-exported: the tables store these, and much of the code knows them from here.
from bot.statuses import EventStatus as EventStatus
from bot.statuses import RsvpStatus as RsvpStatus


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back aware."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a time zone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a table model, typed: SQLModel sets `__table__` at run time but declares none."""
    table = sa.inspect(model).local_table
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def _utc_column(nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(UTCDateTime(), nullable=nullable)


class ItemKind(StrEnum):
    WELCOME = "welcome"
    TALK = "talk"
    PANEL = "panel"
    BREAK = "break"
    NETWORKING = "networking"
    OTHER = "other"


class SpeakerRole(StrEnum):
    SPEAKER = "speaker"
    MODERATOR = "moderator"
    PANELIST = "panelist"


class DeliveryStatus(StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Event(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    uid: str = Field(unique=True, max_length=255)
    title: str = Field(max_length=200)
    description: str = ""
    venue: str = ""
    url: str = ""
    starts_at: datetime = Field(sa_column=_utc_column())
    ends_at: datetime = Field(sa_column=_utc_column())
    timezone: str = Field(max_length=64)
    capacity: int | None = None
    seats_taken: int = 0
    status: str = Field(default=EventStatus.DRAFT, max_length=16)
    reminder_offsets: str | None = Field(default=None, max_length=200)
    sequence: int = 0
    updated_at: datetime = Field(sa_column=_utc_column())


class AgendaItem(SQLModel, table=True):
    __tablename__ = "agenda_item"

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="event.id", index=True, ondelete="CASCADE")
    position: int
    starts_at: datetime = Field(sa_column=_utc_column())
    ends_at: datetime = Field(sa_column=_utc_column())
    title: str = Field(max_length=300)
    kind: str = Field(default=ItemKind.TALK, max_length=16)
    abstract: str = ""


class Speaker(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    affiliation: str = ""
    bio: str = ""
    links: str = ""
    slack_id: str | None = Field(default=None, max_length=64)
    discord_id: str | None = Field(default=None, max_length=64)


class ItemSpeaker(SQLModel, table=True):
    """Who appears in an agenda item, and as what."""

    __tablename__ = "item_speaker"

    item_id: int = Field(foreign_key="agenda_item.id", primary_key=True, ondelete="CASCADE")
    speaker_id: int = Field(foreign_key="speaker.id", primary_key=True, ondelete="CASCADE")
    role: str = Field(default=SpeakerRole.SPEAKER, max_length=16)


class Rsvp(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("event_id", "platform", "user_id", name="uq_rsvp_member"),
        sa.Index("ix_rsvp_queue", "event_id", "status", "queued_at", "id"),  # the waitlist: bot/rsvps.py
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="event.id", index=True, ondelete="CASCADE")
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=200)
    status: str = Field(max_length=16)
    guests: int = 0
    queued_at: datetime = Field(sa_column=_utc_column())
    dm_reminders: bool = False
    promotions: int = 0  # times promoted from the waitlist; numbers each promotion's DM


class Delivery(SQLModel, table=True):
    """The ledger: one row per (post key, target); claimed, then sent, failed or skipped."""

    __table_args__ = (sa.UniqueConstraint("key", "target", name="uq_delivery_key_target"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, index=True)
    target: str = Field(max_length=255)
    status: str = Field(max_length=16)
    message_ref: str | None = Field(default=None, max_length=255)
    shown: str | None = Field(default=None, max_length=64)  # messages.digest of what the message shows now
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    error: str | None = None
    updated_at: datetime = Field(sa_column=_utc_column())


class PendingEffect(SQLModel, table=True):
    """The outbox: what a command set off, written in its transaction and done once every subscriber handled it."""

    __tablename__ = "pending_effect"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    created_at: datetime = Field(sa_column=_utc_column())
    done_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class HandledInteraction(SQLModel, table=True):
    """A member's action on a platform (a Discord interaction, a Slack trigger) that a command acted on, recorded
    in that command's transaction: its key refuses a second run of the same action (bot/interactions.py)."""

    __tablename__ = "handled_interaction"

    platform: str = Field(primary_key=True, max_length=16)
    interaction_id: str = Field(primary_key=True, max_length=100)
    handled_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
