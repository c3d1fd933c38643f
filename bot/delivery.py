"""The delivery ledger: each post reaches each target at most once per key.

Sending is claim, send, mark sent. The claim is a row insert guarded by the unique (key, target)
constraint, so two processes cannot both claim; a claim whose lease expired (the sender crashed
mid-send) may be claimed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update

from bot.clock import Clock
from bot.db import Database
from bot.invocation import MessageRef
from bot.models import Delivery, DeliveryStatus

DEFAULT_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Target:
    """Where a post goes: a channel, or a member's DMs (user=True). Encoded as platform:id or platform:@id."""

    platform: str
    id: str
    user: bool = False

    def encode(self) -> str:
        return f"{self.platform}:{'@' if self.user else ''}{self.id}"

    @classmethod
    def decode(cls, text: str) -> Target:
        platform, _, rest = text.partition(":")
        return cls(platform, rest.removeprefix("@"), rest.startswith("@"))


class Ledger:
    def __init__(self, db: Database, clock: Clock, lease: timedelta = DEFAULT_LEASE) -> None:
        self.db = db
        self.clock = clock
        self.lease = lease

    async def claim(self, key: str, target: Target) -> bool:
        """True if this caller now owns sending `key` to `target`."""
        now = self.clock.now()
        try:
            async with self.db.session() as session:
                session.add(
                    Delivery(
                        key=key,
                        target=target.encode(),
                        status=DeliveryStatus.CLAIMED,
                        attempts=1,
                        lease_until=now + self.lease,
                        updated_at=now,
                    )
                )
            return True
        except IntegrityError:
            pass
        async with self.db.session() as session:
            result = await session.exec(
                update(Delivery)
                .where(col(Delivery.key) == key, col(Delivery.target) == target.encode())
                .where(col(Delivery.status) == DeliveryStatus.CLAIMED, col(Delivery.lease_until) < now)
                .values(attempts=col(Delivery.attempts) + 1, lease_until=now + self.lease, updated_at=now)
            )
            return result.rowcount == 1

    async def finish(
        self, key: str, target: Target, status: DeliveryStatus, ref: MessageRef | None = None, error: str | None = None
    ) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(Delivery)
                .where(col(Delivery.key) == key, col(Delivery.target) == target.encode())
                .values(
                    status=status,
                    message_ref=ref.encode() if ref else None,
                    error=error,
                    lease_until=None,
                    updated_at=self.clock.now(),
                )
            )

    async def skip(self, key: str, target: Target, reason: str) -> None:
        """Record a post that will never be sent (missed beyond grace), so no later run sends it."""
        async with self.db.session() as session:
            exists = (
                await session.exec(select(Delivery.id).where(Delivery.key == key, Delivery.target == target.encode()))
            ).first()
            if exists is None:
                session.add(
                    Delivery(
                        key=key,
                        target=target.encode(),
                        status=DeliveryStatus.SKIPPED,
                        error=reason,
                        updated_at=self.clock.now(),
                    )
                )

    async def sent_refs(self, key_prefix: str) -> list[MessageRef]:
        """Message refs of every post sent under keys starting with `key_prefix` (for later edits)."""
        async with self.db.session() as session:
            refs = (
                await session.exec(
                    select(Delivery.message_ref)
                    .where(col(Delivery.key).startswith(key_prefix), Delivery.status == DeliveryStatus.SENT)
                    .where(col(Delivery.message_ref).is_not(None))
                    .order_by(col(Delivery.id))
                )
            ).all()
        return [MessageRef.decode(ref) for ref in refs if ref]

    async def status(self, key: str, target: Target) -> Delivery | None:
        async with self.db.session() as session:
            return (
                await session.exec(select(Delivery).where(Delivery.key == key, Delivery.target == target.encode()))
            ).first()

    async def count(self, status: DeliveryStatus) -> int:
        async with self.db.session() as session:
            return (
                await session.exec(select(sa.func.count()).select_from(Delivery).where(Delivery.status == status))
            ).one()
