"""The states of an event and of an RSVP: stored in rows, carried in messages, shown by every renderer."""

from __future__ import annotations

from enum import StrEnum


class EventStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


class RsvpStatus(StrEnum):
    GOING = "going"
    WAITLISTED = "waitlisted"
    MAYBE = "maybe"
    DECLINED = "declined"


class RsvpAnswer(StrEnum):
    """What a member answers to an event; going may end up on the waitlist."""

    GOING = "going"
    MAYBE = "maybe"
    NO = "no"

    @property
    def status(self) -> RsvpStatus:
        return RsvpStatus.DECLINED if self is RsvpAnswer.NO else RsvpStatus(self.value)
