"""One event's seats and waitlist, as the transaction holding the event's lock sees them, and the rules that
move members between going and waiting.

Pure Python: bot/rsvps.py loads a Seating inside the transaction that holds the event (SQLite: the one
writer; PostgreSQL: the event row locked FOR UPDATE), applies every answer of a group commit to it in
arrival order, and writes back what changed; the write checks the seats in SQL once more. Deciding in
memory lets one transaction settle many RSVPs with a handful of statements instead of several each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.invocation import Actor
from bot.statuses import RsvpStatus


@dataclass(eq=False)
class Party:
    """A member's RSVP row (`id` None until written) and the guests it brings."""

    id: int | None
    platform: str
    user_id: str
    display_name: str
    status: RsvpStatus
    guests: int
    queued_at: datetime
    dm_reminders: bool = False
    promotions: int = 0  # times promoted from the waitlist; numbers each promotion's DM

    @property
    def size(self) -> int:
        return 1 + self.guests

    @property
    def member(self) -> Actor:
        return Actor(self.platform, self.user_id, self.display_name)


@dataclass(frozen=True)
class Promotion:
    """A member moved up from the waitlist; `number` counts their promotions, so each one is told."""

    member: Actor
    number: int


@dataclass(frozen=True)
class RsvpOutcome:
    status: RsvpStatus
    guests: int
    waitlist_position: int | None = None
    promoted: tuple[Promotion, ...] = ()
    reminders_moved: bool = False  # someone who asked for DM reminders started or stopped going


class SeatsTooFew(Exception):
    """A member going already asked for more seats than are free; their RSVP stands as it was."""

    def __init__(self, left: int) -> None:
        super().__init__(f"{left} seats left")
        self.left = left


@dataclass
class Seating:
    """Seats taken, the waitlist in queue order, and the RSVPs loaded by member; `changed` lists the parties to
    write back, in the order they changed (new ones are inserted in that order, which is their queue order).

    The waitlist may be loaded whole, or only as its length (`ahead`, the parties not loaded) and its last
    place (`last_queued_at`): enough for parties joining it, and for nothing that promotes."""

    event_id: int
    capacity: int | None
    taken: int
    waitlist: list[Party]
    members: dict[tuple[str, str], Party]
    ahead: int = 0
    last_queued_at: datetime | None = None
    taken_at_load: int = 0
    changed: dict[int, Party] = field(default_factory=dict)  # by id(party), in the order they changed

    def __post_init__(self) -> None:
        self.taken_at_load = self.taken

    def fits(self, seats: int) -> bool:
        return self.capacity is None or self.taken + seats <= self.capacity

    def answer(self, member: Actor, wanted: RsvpStatus, guests: int, now: datetime) -> RsvpOutcome:
        """Record `member`'s answer: `wanted` is GOING, MAYBE or DECLINED; GOING may end up WAITLISTED.
        Raises SeatsTooFew, changing nothing, when a member going asks for more seats than are free."""
        party = self.members.get((member.platform, member.user_id))
        if party is None:
            party = Party(None, member.platform, member.user_id, "", RsvpStatus.DECLINED, 0, now)
        before = party.status
        held = party.size if before is RsvpStatus.GOING else 0
        self._apply(party, before, held, wanted, guests, now)
        self.members[(member.platform, member.user_id)] = party
        if member.display_name:
            party.display_name = member.display_name
        self._touch(party)
        promoted: list[Party] = []
        seats_freed = held > (party.size if party.status is RsvpStatus.GOING else 0)
        if seats_freed or before is RsvpStatus.WAITLISTED:  # only then can a waiting party newly fit
            promoted = [p for p in self.promote() if p is not party]
        went = (before is RsvpStatus.GOING) != (party.status is RsvpStatus.GOING)
        reminders_moved = (went and party.dm_reminders) or any(p.dm_reminders for p in promoted)
        position = self.ahead + self.waitlist.index(party) + 1 if party.status is RsvpStatus.WAITLISTED else None
        promotions = tuple(Promotion(p.member, p.promotions) for p in promoted)
        return RsvpOutcome(party.status, party.guests, position, promotions, reminders_moved)

    def promote(self) -> list[Party]:
        """Promote waiting parties in queue order; a party moves up only if all of it fits."""
        if self.ahead:
            raise RuntimeError(f"event {self.event_id}: promoting needs the whole waitlist, which was not loaded")
        promoted = []
        for party in list(self.waitlist):
            if not self.fits(1):
                break
            if not self.fits(party.size):
                continue
            self.taken += party.size
            self.waitlist.remove(party)
            party.status = RsvpStatus.GOING
            party.promotions += 1
            self._touch(party)
            promoted.append(party)
        return promoted

    def _apply(
        self, party: Party, before: RsvpStatus, held: int, wanted: RsvpStatus, guests: int, now: datetime
    ) -> None:
        if wanted is not RsvpStatus.GOING:
            self.taken -= held
            if before is RsvpStatus.WAITLISTED:
                self.waitlist.remove(party)
            party.status, party.guests = wanted, guests
            return
        if before is RsvpStatus.GOING:
            extra = 1 + guests - held
            if extra > 0 and not self.fits(extra):
                raise SeatsTooFew(0 if self.capacity is None else self.capacity - self.taken)
            self.taken += extra
            party.guests = guests
            return
        party.guests = guests
        if before is RsvpStatus.WAITLISTED:
            return  # keeps its place in the queue
        if self.fits(party.size):
            self.taken += party.size
            party.status = RsvpStatus.GOING
        else:
            party.status, party.queued_at = RsvpStatus.WAITLISTED, self._queue_time(now)
            self.waitlist.append(party)

    def _queue_time(self, now: datetime) -> datetime:
        """When a party joins the end of the waitlist: `now`, or just after the last waiting party when
        that one's clock ran ahead (another process, another host), so the queue keeps the joining order."""
        last = self.waitlist[-1].queued_at if self.waitlist else self.last_queued_at
        return now if last is None or last < now else last + timedelta(microseconds=1)

    def _touch(self, party: Party) -> None:
        self.changed.setdefault(id(party), party)
