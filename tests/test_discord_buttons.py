"""RSVP buttons on the Discord card: persistent DynamicItems; ephemeral answers; counts edited in place."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from discord_harness import EPHEMERAL, GRACE, LIN, SLUG, DiscordEmcee, running_emcee
from fakes.discord import CHANNEL_ID, FakeDiscord
from sqlmodel import col, select

from adapters.discord.views import custom_id
from bot.models import Rsvp


def counts(card: dict[str, Any]) -> dict[str, str]:
    return {field["name"]: field["value"] for field in card["embeds"][0]["fields"]}


async def statuses(emcee: DiscordEmcee) -> dict[str, str]:
    async with emcee.app.db.session() as session:
        rows = (await session.exec(select(Rsvp).order_by(col(Rsvp.id)))).all()
    return {row.display_name: row.status for row in rows}


async def test_clicks_answer_the_clicker_and_edit_the_card_in_place(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        await emcee.publish(capacity=1)
        card = emcee.card()
        assert [c["custom_id"] for c in card["components"][0]["components"]] == [
            custom_id(SLUG, choice) for choice in ("going", "maybe", "no")
        ]
        assert [c["label"] for c in card["components"][0]["components"]] == ["Going", "Maybe", "Can't go"]

        going = await emcee.click("going", GRACE)
        waitlisted = await emcee.click("going", LIN)
        await emcee.settle()

        for answer in (going, waitlisted):
            assert answer.response["type"] == 4
            assert answer.response["data"]["flags"] == EPHEMERAL
        assert going.response["data"]["content"].startswith("✅ You're going to BookKeeper June")
        assert "You're on the waitlist, position 1" in waitlisted.response["data"]["content"]
        edits = fake.calls_to("PATCH", rf"/channels/{CHANNEL_ID}/messages/{card['id']}")
        assert edits and counts(emcee.card()) == {"Going": "1 / 1", "Seats left": "0", "Waitlist": "1", "Maybe": "0"}
        assert emcee.card()["id"] == card["id"]  # the same message, edited
        assert await statuses(emcee) == {"Grace": "going", "Lin": "waitlisted"}

        cant_go = await emcee.click("no", GRACE)
        await emcee.settle()

        assert cant_go.response["data"]["content"] == "Noted: you can't make BookKeeper June."
        assert await statuses(emcee) == {"Grace": "declined", "Lin": "going"}
        [dm] = fake.messages(fake.dm_channel_id(LIN.id))
        assert dm["content"].startswith("🎉 A seat opened up: you're going to BookKeeper June")
        assert counts(emcee.card())["Going"] == "1 / 1" and counts(emcee.card())["Waitlist"] == "0"


async def test_clicks_keep_working_after_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with running_emcee(tmp_path, fake) as first:
            await first.publish(capacity=5)
            card = first.card()
        async with running_emcee(tmp_path, fake) as second:  # a new process: same database, a new client
            answer = await second.click("maybe", GRACE)
            await second.settle()

            assert answer.response["data"]["content"] == "Noted: maybe for BookKeeper June."
            assert second.card()["id"] == card["id"] and counts(second.card())["Maybe"] == "1"
            assert await statuses(second) == {"Grace": "maybe"}


async def test_a_cancelled_card_loses_its_buttons_and_old_clicks_are_refused(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, running_emcee(tmp_path, fake) as emcee:
        await emcee.publish()
        card = copy.deepcopy(emcee.card())
        await emcee.organizer(f"/emcee event cancel {SLUG}")

        edited = next(m for m in fake.messages(CHANNEL_ID) if m["id"] == card["id"])
        labels = [c["label"] for row in edited["components"] for c in row["components"]]
        assert "Going" not in labels and edited["embeds"][0]["title"] == "BookKeeper June — CANCELLED"

        answer = await emcee.click("going", GRACE, card=card)  # a member's client still shows the old buttons

        assert answer.response["data"]["flags"] == EPHEMERAL
        # GRACE never RSVPed, so to her a cancelled event is one that does not exist (hardening item 2).
        assert f"no event called '{SLUG}'" in answer.response["data"]["content"]
        assert await statuses(emcee) == {}
