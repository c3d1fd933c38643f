"""Discord slash commands: typed options in, engine, answer out; refusals ephemeral with the usage; nothing written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import snapshot
from discord_harness import ADA, EPHEMERAL, GRACE, LIN, SLUG, DiscordEmcee, discord_settings, running_emcee
from fakes.discord import FakeDiscord, interaction_payload
from sqlmodel import col, select

from bot.models import AgendaItem, Event, Rsvp, Speaker


@pytest.fixture
async def emcee(tmp_path: Path) -> AsyncIterator[DiscordEmcee]:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as running:
        yield running


async def rsvps(emcee: DiscordEmcee) -> list[tuple[str, str, str, int]]:
    async with emcee.app.db.session() as session:
        rows = (await session.exec(select(Rsvp).order_by(col(Rsvp.id)))).all()
    return [(r.platform, r.user_id, r.status, r.guests) for r in rows]


async def test_recorded_rsvp_payload_is_answered_ephemerally_and_recorded(emcee: DiscordEmcee) -> None:
    await emcee.publish(capacity=10)

    answer = await emcee.dispatch(interaction_payload("command_rsvp"))  # event bk-june, going, 2 guests

    assert answer.callback is not None
    assert answer.callback["type"] == 4
    assert answer.callback["data"]["flags"] == EPHEMERAL
    assert "You're going to BookKeeper June with 2 guests" in answer.callback["data"]["content"]
    assert await rsvps(emcee) == [("discord", str(GRACE.id), "going", 2)]


async def test_member_commands_render_embeds(emcee: DiscordEmcee) -> None:
    await emcee.publish(capacity=10)
    await emcee.organizer(f'/emcee agenda add 18:30 "Welcome" --event {SLUG}')

    events = await emcee.command("events")
    agenda = await emcee.command("agenda", event="bk")  # a unique prefix
    help_ = await emcee.command("emcee help", command="agenda shift")

    [listed] = events.response["data"]["embeds"]
    assert listed["title"] == "BookKeeper June"
    assert "<t:1781571600:F> (<t:1781571600:R>)" in listed["description"]
    assert "0/10 going, 10 seats left" in listed["description"]
    [card] = agenda.response["data"]["embeds"]
    assert card["title"] == "🗓 Agenda — BookKeeper June"
    assert "**Welcome**" in card["description"] and "<t:1781573400:t>" in card["description"]
    assert help_.response["data"]["content"].startswith("/emcee agenda shift <by>")
    assert {a.response["data"]["flags"] for a in (events, agenda, help_)} == {EPHEMERAL}


async def test_nested_organizer_commands_change_the_event(emcee: DiscordEmcee) -> None:
    created = await emcee.command(
        "emcee event create",
        user=ADA,
        slug="bk-july",
        title="BookKeeper July",
        starts="2026-07-20 18:00",
        capacity=30,
        venue="Yahoo",
    )
    assert created.response["data"]["content"].startswith("Created draft BookKeeper July")
    await emcee.command("emcee agenda add", user=ADA, starts="18:30", title="Welcome", event="bk-july")
    for name in ("Sijie", "Matteo"):
        await emcee.command("emcee speaker add", user=ADA, name=name, discord="1301000000000000555")
    panel = await emcee.command(
        "emcee agenda add",
        user=ADA,
        starts="19:00",
        title="Panel",
        kind="panel",
        panelist="Sijie, Matteo",
        event="bk-july",
    )
    assert "Sijie, panelist" in panel.response["data"]["embeds"][0]["description"]
    shifted = await emcee.command("emcee agenda shift", user=ADA, by="+10m", event="bk-july", **{"from": "1"})

    assert shifted.response["data"]["flags"] == EPHEMERAL
    async with emcee.app.db.session() as session:
        event = (await session.exec(select(Event).where(Event.slug == "bk-july"))).one()
        items = (await session.exec(select(AgendaItem).order_by(col(AgendaItem.position)))).all()
        speakers = (await session.exec(select(Speaker))).all()
    assert (event.capacity, event.venue, event.status) == (30, "Yahoo", "draft")
    assert [(i.title, i.kind) for i in items] == [("Welcome", "talk"), ("Panel", "panel")]
    assert items[0].starts_at == event.starts_at + timedelta(minutes=40)  # 18:30 shifted by 10 minutes
    assert [s.discord_id for s in speakers] == ["1301000000000000555"] * 2


async def test_recorded_nested_payload_reaches_agenda_shift(emcee: DiscordEmcee) -> None:
    await emcee.publish()
    await emcee.organizer(f'/emcee agenda add 18:30 "Welcome" --event {SLUG}')

    answer = await emcee.dispatch(interaction_payload("command_emcee_agenda_shift"))  # ada, by +10m

    assert "Welcome" in answer.response["data"]["content"]
    [agenda] = answer.response["data"]["embeds"]
    assert "<t:1781574000:t>" in agenda["description"]  # 18:40 PDT


async def test_organizer_by_user_id(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        settings = discord_settings(tmp_path, fake)
        settings = settings.model_copy(
            update={"organizers": settings.organizers.model_copy(update={"discord": [str(LIN.id)]})}
        )
        async with running_emcee(tmp_path, fake, settings) as emcee:
            answer = await emcee.command(
                "emcee event create", user=LIN, slug="lin", title="Lin's", starts="2026-07-01 18:00"
            )
    assert answer.response["data"]["content"].startswith("Created draft")


async def test_non_organizers_are_refused_ephemerally_and_nothing_is_written(emcee: DiscordEmcee) -> None:
    await emcee.publish()
    before = await snapshot(emcee.app.db)

    publish = await emcee.command("emcee event cancel", user=GRACE, event=SLUG)
    bad_input = await emcee.command("emcee agenda shift", user=GRACE, by="soon")  # refused for access, not input
    attendees = await emcee.command("emcee attendees", user=LIN)

    for answer in (publish, bad_input, attendees):
        assert answer.response["type"] == 4
        assert answer.response["data"]["flags"] == EPHEMERAL
        assert answer.response["data"]["content"].startswith("Only organizers can use /emcee")
    assert await snapshot(emcee.app.db) == before


async def test_bad_input_is_refused_with_the_usage_and_writes_nothing(emcee: DiscordEmcee) -> None:
    await emcee.publish()
    before = await snapshot(emcee.app.db)

    bad_duration = await emcee.command("emcee agenda shift", user=ADA, by="5x")
    too_many_guests = await emcee.command("rsvp", event=SLUG, guests=5)
    unknown_event = await emcee.command("rsvp", event="nope")

    content = bad_duration.response["data"]["content"]
    assert content.startswith("⚠️ ") and "5x" in content
    assert content.endswith("Usage: `/emcee agenda shift <by> [--from <from>] [--event <event>]`")
    assert "at most 2 guests" in too_many_guests.response["data"]["content"]
    assert "Usage: `/rsvp [event] [going|maybe|no] [+N]`" in too_many_guests.response["data"]["content"]
    assert "no event called 'nope'" in unknown_event.response["data"]["content"]
    for answer in (bad_duration, too_many_guests, unknown_event):
        assert answer.response["data"]["flags"] == EPHEMERAL
    assert await snapshot(emcee.app.db) == before


async def test_attendee_csv_is_attached_to_the_answer(emcee: DiscordEmcee) -> None:
    await emcee.publish()
    await emcee.command("rsvp", user=GRACE, event=SLUG, guests=1)

    answer = await emcee.command("emcee attendees", user=ADA)

    [embed] = answer.response["data"]["embeds"]
    assert "• Grace +1 · discord" in embed["description"]
    assert answer.response["data"]["flags"] == EPHEMERAL
    [upload] = emcee.fake.calls_to("POST", r"/interactions/\d+/.+/callback")[-1].files
    assert upload.filename == "bk-june-attendees.csv"
    assert upload.data.decode().splitlines()[1].startswith("Grace,discord,1301000000000000401,going,1,")


async def test_a_slow_engine_is_deferred_then_followed_up(emcee: DiscordEmcee) -> None:
    await emcee.publish(capacity=10)
    gate = asyncio.Event()
    handle = emcee.app.engine.handle

    async def slow(invocation):  # type: ignore[no-untyped-def]
        await gate.wait()
        return await handle(invocation)

    emcee.app.engine.handle = slow  # type: ignore[method-assign]
    emcee.app.engine.acks.wait = 0.05
    payload = interaction_payload("command_rsvp")
    answer = await emcee.dispatch(payload)
    assert answer.callback == {"type": 5, "data": {"flags": EPHEMERAL}}
    gate.set()
    await emcee.fake.wait_for_call("POST", rf"/webhooks/\d+/{payload['token']}")

    [followup] = answer.followups.values()
    assert "You're going to BookKeeper June with 2 guests" in followup["content"]
    assert followup["flags"] & EPHEMERAL
    registry = emcee.app.metrics.registry
    assert registry.get_sample_value("emcee_ack_latency_seconds_count", {"platform": "discord"}) == 1
    assert 0.05 <= registry.get_sample_value("emcee_ack_latency_seconds_sum", {"platform": "discord"}) < 3  # type: ignore[operator]


async def test_a_busy_engine_is_deferred_before_it_runs(emcee: DiscordEmcee) -> None:
    await emcee.publish(capacity=50)
    emcee.app.engine.acks.engine_time = 0.2  # one engine call takes 200 ms: a direct answer is not worth waiting for
    payload = interaction_payload("command_rsvp")
    acked_before_engine: list[bool] = []
    handle = emcee.app.engine.handle

    async def spy(invocation):  # type: ignore[no-untyped-def]
        acked_before_engine.append(emcee.fake.interactions[int(payload["id"])].callback is not None)
        return await handle(invocation)

    emcee.app.engine.handle = spy  # type: ignore[method-assign]
    answer = await emcee.dispatch(payload)
    await emcee.fake.wait_for_call("POST", rf"/webhooks/\d+/{payload['token']}")

    assert answer.callback == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert acked_before_engine == [True]
    assert "You're going" in next(iter(answer.followups.values()))["content"]
