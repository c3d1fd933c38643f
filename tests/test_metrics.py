"""Operations: /metrics in Prometheus text format and /healthz, on the App's own server (port 0)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from itertools import count
from pathlib import Path

import aiohttp
import pytest
from conftest import ORGANIZER, create_event, database_url, deliver, make_settings, member
from ledger_rows import count_deliveries
from prometheus_client.parser import text_string_to_metric_families
from test_delivery import const
from test_lease import StalledAdapter

from bot.app import App, build_app
from bot.clock import FakeClock
from bot.config import Secrets
from bot.db import Database
from bot.delivery import Ledger, Outbox, Target
from bot.engine import Engine
from bot.invocation import Actor, ChannelRef, CommandLine, MessageRef
from bot.messages import Message
from bot.metrics import Metrics
from bot.models import DeliveryStatus


class FakeAdapter:
    """An adapter whose connection the test switches off."""

    platform = "fake"

    def __init__(self) -> None:
        self.connected = False
        self._ids = count(1)

    async def start(self, engine: Engine) -> None:
        self.connected = True

    async def stop(self) -> None:
        self.connected = False

    async def find_sent(self, target: ChannelRef | Actor, key: str, since: datetime) -> MessageRef | None:
        return None

    async def send(self, target: ChannelRef, message: Message, key: str = "") -> MessageRef:
        return MessageRef(self.platform, target.channel_id, str(next(self._ids)))

    async def edit(self, ref: MessageRef, message: Message) -> None:
        pass

    async def send_dm(self, user: Actor, message: Message, key: str = "") -> MessageRef:
        return MessageRef(self.platform, user.user_id, str(next(self._ids)))


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_commands_are_counted_by_name_and_outcome(engine: Engine) -> None:
    metrics = engine.metrics
    assert sample(metrics, "emcee_commands_total", command="events", outcome="ok") is None
    await engine.handle(CommandLine(member("ada"), None, "/events"))
    assert sample(metrics, "emcee_commands_total", command="events", outcome="ok") == 1
    await engine.handle(CommandLine(member("ada"), None, "/emcee event publish nope"))
    await engine.handle(CommandLine(ORGANIZER, None, "/emcee event publish nope"))
    await engine.handle(CommandLine(member("ada"), None, "/dance"))
    assert sample(metrics, "emcee_commands_total", command="emcee event publish", outcome="denied") == 1
    assert sample(metrics, "emcee_commands_total", command="emcee event publish", outcome="refused") == 1
    assert sample(metrics, "emcee_commands_total", command="unparsed", outcome="refused") == 1


async def test_state_gauges_read_the_ledger_and_rsvps(engine: Engine, db: Database, clock: FakeClock) -> None:
    await create_event(engine, "bk-june", capacity=2)
    for name, line in (("ada", "/rsvp going +1"), ("bo", "/rsvp going"), ("cy", "/rsvp maybe")):
        await engine.handle(CommandLine(member(name), None, line))
    ledger = Ledger(db, clock)
    for key in ("a", "b"):
        assert await ledger.claim_many(key, [Target("fake", "C1")]) == [Target("fake", "C1")]
    await ledger.finish("a", Target("fake", "C1"), DeliveryStatus.SENT, MessageRef("fake", "C1", "1"))
    await ledger.finish("b", Target("fake", "C1"), DeliveryStatus.FAILED, error="boom")
    await ledger.skip_many([("c", Target("fake", "C1"))], "missed")

    metrics = engine.metrics
    await metrics.refresh(db, clock.now())
    posts = {status: sample(metrics, "emcee_posts", status=status) for status in DeliveryStatus}
    assert posts == {"claimed": 0, "sent": 1, "failed": 1, "skipped": 1}
    assert sample(metrics, "emcee_rsvps", event="bk-june", status="going") == 1
    assert sample(metrics, "emcee_rsvps", event="bk-june", status="waitlisted") == 1
    assert sample(metrics, "emcee_rsvps", event="bk-june", status="maybe") == 1
    assert sample(metrics, "emcee_seats_taken", event="bk-june") == 2


def test_adapters_and_the_scheduler_report_through_metrics() -> None:
    metrics = Metrics()
    metrics.observe_ack("slack", 0.12)
    metrics.observe_ack("slack", 2.5)
    metrics.set_jobs_pending(7)
    assert sample(metrics, "emcee_ack_latency_seconds_count", platform="slack") == 2
    assert sample(metrics, "emcee_ack_latency_seconds_bucket", platform="slack", le="3.0") == 2
    assert sample(metrics, "emcee_ack_latency_seconds_bucket", platform="slack", le="1.0") == 1
    assert sample(metrics, "emcee_scheduler_jobs_pending") == 7
    assert Metrics().registry is not metrics.registry  # one registry per App, no global state


@pytest.fixture
async def app(db: Database, tmp_path: Path, clock: FakeClock) -> AsyncIterator[App]:
    settings = make_settings(bot={"database_url": database_url(tmp_path)}, http={"port": 0})
    app = build_app(settings, Secrets(), clock, adapters={"fake": FakeAdapter()})
    await app.start()
    yield app
    await app.stop()


async def test_metrics_endpoint_serves_prometheus_text(app: App) -> None:
    assert app.http is not None
    await app.engine.handle(CommandLine(member("ada"), None, "/events"))
    async with aiohttp.ClientSession() as client, client.get(f"{app.http.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {"emcee_commands", "emcee_posts", "emcee_rsvps", "emcee_ack_latency_seconds"} <= set(families)
    assert "emcee_scheduler_jobs_pending" in families
    assert 'emcee_commands_total{command="events",outcome="ok"} 1.0' in text


async def test_healthz_turns_503_when_an_adapter_disconnects(app: App) -> None:
    assert app.http is not None
    url = f"{app.http.url}/healthz"
    async with aiohttp.ClientSession() as client:
        async with client.get(url) as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok", "checks": {"database": "ok", "fake": "ok"}}
        app.adapters["fake"].connected = False  # type: ignore[misc]
        async with client.get(url) as response:
            assert response.status == 503
            body = await response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"] == {"database": "ok", "fake": "disconnected"}
    assert body["reason"] == "fake: disconnected"


async def scrape(app: App) -> dict[str, float]:
    """Every sample /metrics serves, by its name and labels as Prometheus writes them."""
    assert app.http is not None
    async with aiohttp.ClientSession() as client, client.get(f"{app.http.url}/metrics") as response:
        text = await response.text()
    return {
        sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_outbox_gauges_show_unsent_claims_and_return_to_zero_once_sent(app: App, clock: FakeClock) -> None:
    stalled = StalledAdapter()
    outbox = Outbox(Ledger(app.db, clock), {"rec": stalled})
    before = await scrape(app)
    assert (before["emcee_outbox_pending"], before["emcee_outbox_oldest_seconds"]) == (0, 0)
    first = asyncio.create_task(deliver(outbox, "k1", Target("rec", "general"), lambda: const("first")))
    await stalled.called.wait()
    clock.advance(timedelta(seconds=7))
    second = asyncio.create_task(deliver(outbox, "k2", Target("rec", "random"), lambda: const("second")))
    while await count_deliveries(app.db, DeliveryStatus.CLAIMED) < 2:
        await asyncio.sleep(0.01)
    during = await scrape(app)
    assert during["emcee_outbox_pending"] == 2
    assert during["emcee_outbox_oldest_seconds"] == 7
    assert during["emcee_posts{status=claimed}"] == 2
    stalled.release.set()
    await asyncio.gather(first, second)
    after = await scrape(app)
    assert (after["emcee_outbox_pending"], after["emcee_outbox_oldest_seconds"]) == (0, 0)
    assert (after["emcee_posts{status=claimed}"], after["emcee_posts{status=sent}"]) == (0, 2)
