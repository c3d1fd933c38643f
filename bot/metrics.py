"""Prometheus metrics, one CollectorRegistry per App (no global default registry).

Counts of what this process did are recorded as it happens: commands (by the engine), ack latency
(by the adapters, through `observe_ack`) and pending scheduler jobs (by the scheduler, through
`set_jobs_pending`). State shared by every process (the delivery ledger, RSVPs) is read from the
database at scrape time, so each replica reports the same totals.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from sqlmodel import col, select

from bot.db import Database
from bot.delivery import FINAL
from bot.models import Delivery, DeliveryStatus, Event, EventStatus, Rsvp

log = logging.getLogger(__name__)

# Slack and Discord drop an interaction that is not acknowledged within 3 s.
ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class CommandOutcome(StrEnum):
    """The `outcome` label of emcee_commands_total."""

    OK = "ok"
    REFUSED = "refused"  # bad input or a request the rules decline; nothing was written
    DENIED = "denied"  # an organizer command from someone who is not one
    ERROR = "error"  # a bug or an outage; the member was told to try again


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "emcee_commands",
            "Commands handled, by command and outcome (ok, refused, denied, error).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "emcee_ack_latency_seconds",
            "Time from receiving an interaction to acknowledging it, by platform.",
            ["platform"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.jobs_pending = Gauge(
            "emcee_scheduler_jobs_pending", "Scheduled posts waiting to fire in this process.", registry=self.registry
        )
        self.posts = Gauge(
            "emcee_posts",
            "Posts in the delivery ledger by status (claimed, sent, failed, skipped), across all processes.",
            ["status"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "emcee_outbox_pending",
            "Posts claimed or waiting to be sent (not yet sent, failed or skipped), across all processes.",
            registry=self.registry,
        )
        self.outbox_oldest = Gauge(
            "emcee_outbox_oldest_seconds",
            "Age of the oldest post claimed or waiting to be sent, from when it was claimed; 0 when none.",
            registry=self.registry,
        )
        self.rsvps = Gauge(
            "emcee_rsvps",
            "RSVPs to published events that have not ended, by event and status.",
            ["event", "status"],
            registry=self.registry,
        )
        self.seats = Gauge(
            "emcee_seats_taken",
            "Going seats (members and their guests) of published events that have not ended.",
            ["event"],
            registry=self.registry,
        )
        for status in DeliveryStatus:
            self.posts.labels(status.value).set(0)

    def command_handled(self, command: str, outcome: CommandOutcome) -> None:
        """Called by the engine once per command; `command` is the registry name, e.g. "emcee agenda shift"."""
        self.commands.labels(command, outcome).inc()

    def observe_ack(self, platform: str, seconds: float) -> None:
        """Called by an adapter once it has acknowledged (or deferred) an interaction."""
        self.ack_latency.labels(platform).observe(seconds)

    def set_jobs_pending(self, count: int) -> None:
        """Called by the scheduler after each reconcile and each fired job."""
        self.jobs_pending.set(count)

    async def refresh(self, db: Database, now: datetime) -> None:
        """Read the shared state; on a database error keep the last values (/healthz reports the outage)."""
        try:
            async with db.reading() as session:
                posts = (
                    await session.exec(select(Delivery.status, sa.func.count()).group_by(col(Delivery.status)))
                ).all()
                pending, oldest = (
                    await session.exec(
                        select(sa.func.count(), sa.func.min(Delivery.updated_at)).where(
                            col(Delivery.status).not_in(FINAL)
                        )
                    )
                ).one()
                current = (col(Event.ends_at) > now, Event.status == EventStatus.PUBLISHED)
                rsvps = (
                    await session.exec(
                        select(Event.slug, Rsvp.status, sa.func.count())
                        .join(Rsvp, col(Rsvp.event_id) == col(Event.id))
                        .where(*current)
                        .group_by(col(Event.slug), col(Rsvp.status))
                    )
                ).all()
                seats = (await session.exec(select(Event.slug, Event.seats_taken).where(*current))).all()
        except Exception as exc:
            log.warning("metrics: cannot read the database: %s", exc)
            return
        # No awaits below: a concurrent scrape never sees half-cleared gauges.
        counts = dict(posts)
        for status in DeliveryStatus:
            self.posts.labels(status.value).set(counts.get(status.value, 0))
        self.outbox_pending.set(pending)
        self.outbox_oldest.set(max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
        self.rsvps.clear()
        for slug, rsvp_status, count in rsvps:
            self.rsvps.labels(slug, rsvp_status).set(count)
        self.seats.clear()
        for slug, taken in seats:
            self.seats.labels(slug).set(taken)

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format the scraper asked for (Prometheus text by default), and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
