"""The delivery table as tests read it: straight from the database, beside the ledger rather than through it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import select

from bot.db import Database
from bot.delivery import Target
from bot.models import Delivery, DeliveryStatus


async def delivery_row(db: Database, key: str, target: Target) -> Delivery | None:
    """The ledger's row for one post to one target, if it has one."""
    async with db.session() as session:
        return (
            await session.exec(select(Delivery).where(Delivery.key == key, Delivery.target == target.encode()))
        ).first()


async def count_deliveries(db: Database, status: DeliveryStatus) -> int:
    async with db.session() as session:
        return (
            await session.exec(select(sa.func.count()).select_from(Delivery).where(Delivery.status == status))
        ).one()
