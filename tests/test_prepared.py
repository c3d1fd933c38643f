"""Prepared statements (bot/prepared.py) read and write what SQLAlchemy's own execution would: aware
datetimes, booleans, literals held in the statement, rows matched, executemany."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from bot.db import Database
from bot.models import Rsvp, table_of
from bot.prepared import Prepared

RSVPS = table_of(Rsvp)
PARIS_SUMMER = timezone(timedelta(hours=2))


async def test_prepared_statements_match_sqlalchemy_on_the_way_in_and_out(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM rsvp"))
        await connection.execute(sa.text("DELETE FROM event"))
        event = await connection.execute(
            sa.text(
                "INSERT INTO event (slug, uid, title, description, venue, url, starts_at, ends_at, timezone,"
                " seats_taken, status, sequence, updated_at) VALUES ('e', 'u', 'E', '', '', '', :t, :t, 'UTC',"
                " 0, 'published', 0, :t) RETURNING id"
            ),
            {"t": datetime(2026, 6, 1, tzinfo=UTC)},
        )
        event_id = event.scalar_one()
        insert = Prepared(
            sa.insert(RSVPS).values(
                event_id=sa.bindparam("e"),
                platform="slack",  # a literal the statement holds
                user_id=sa.bindparam("u"),
                display_name="",
                status=sa.bindparam("s"),
                guests=0,
                queued_at=sa.bindparam("q"),
                dm_reminders=sa.bindparam("d"),
                promotions=0,
            )
        )
        queued = datetime(2026, 5, 1, 20, 30, tzinfo=PARIS_SUMMER)
        rows = [
            {"e": event_id, "u": f"U{i}", "s": "going", "q": queued + timedelta(seconds=i), "d": i == 1}
            for i in range(3)
        ]
        await connection.run_sync(insert.run_many, rows)
        select = (
            sa.select(RSVPS.c.user_id, RSVPS.c.queued_at, RSVPS.c.dm_reminders)
            .where(RSVPS.c.event_id == sa.bindparam("e"), RSVPS.c.platform == "slack")
            .order_by(RSVPS.c.id)
        )
        prepared = await connection.run_sync(lambda sync: Prepared(select).rows(sync, {"e": event_id}))
        expected = [tuple(row) for row in await connection.execute(select, {"e": event_id})]
        assert prepared == expected
        assert prepared[1] == ("U1", queued.astimezone(UTC) + timedelta(seconds=1), True)
        assert prepared[0][1].tzinfo is not None
        update = Prepared(sa.update(RSVPS).where(RSVPS.c.user_id == sa.bindparam("u")).values(guests=2))
        assert await connection.run_sync(lambda sync: update.run(sync, {"u": "U2"})) == 1
        assert await connection.run_sync(lambda sync: update.run(sync, {"u": "nobody"})) == 0
