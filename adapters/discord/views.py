"""The EventCard's buttons: persistent RSVP buttons, plus calendar links.

Each RSVP button is a DynamicItem whose custom_id holds the event and the choice
(`emcee:rsvp:bk-june:going`). discord.py matches a click on any message against the template, so
clicks on cards posted before a restart keep working without any stored view.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, Self

import discord

from bot.messages import RSVP_CHOICES, EventCard
from bot.statuses import EventStatus, RsvpAnswer

PREFIX = "emcee:rsvp"
TEMPLATE = re.compile(
    rf"{PREFIX}:(?P<event>[a-z0-9][a-z0-9-]{{0,63}}):(?P<choice>{'|'.join(c.value for c in RSVP_CHOICES)})"
)
LINK_LIMIT = 512  # characters in a link button's URL
_STYLES: dict[str, discord.ButtonStyle] = {
    RsvpAnswer.GOING: discord.ButtonStyle.success,
    RsvpAnswer.MAYBE: discord.ButtonStyle.primary,
}

ClickHandler = Callable[[discord.Interaction, str, str], Awaitable[None]]


def custom_id(slug: str, choice: str) -> str:
    return f"{PREFIX}:{slug}:{choice}"


class RsvpButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=TEMPLATE):
    """One RSVP choice on one event's card; rsvp_button_type binds an adapter's click handler to it."""

    def __init__(self, slug: str, choice: str, label: str = "") -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=label or choice,
            style=_STYLES.get(choice, discord.ButtonStyle.secondary),
            custom_id=custom_id(slug, choice),
        )
        super().__init__(button)
        self.slug, self.choice = slug, choice

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["event"], match["choice"])


RsvpButtonType = type[RsvpButton]


def rsvp_button_type(on_click: ClickHandler) -> RsvpButtonType:
    """The RSVP button class for one adapter: a click calls `on_click(interaction, slug, choice)`."""

    class BoundRsvpButton(RsvpButton, template=TEMPLATE):
        async def callback(self, interaction: discord.Interaction) -> None:
            await on_click(interaction, self.slug, self.choice)

    return BoundRsvpButton


def card_view(card: EventCard, button_type: RsvpButtonType) -> discord.ui.View | None:
    """Going / Maybe / Can't go on the first row, calendar links on the second; no RSVPs once cancelled."""
    view = discord.ui.View(timeout=None)
    if card.status is not EventStatus.CANCELLED:
        for choice in card.choices:
            view.add_item(button_type(card.slug, choice.value, choice.label))
    links = (("Add to Google Calendar", card.google_calendar_url), ("Calendar file (.ics)", card.calendar_url))
    for label, url in links:
        if url.startswith(("http://", "https://")) and len(url) <= LINK_LIMIT:
            view.add_item(discord.ui.Button(label=label, url=url, row=1))
    return view if view.children else None
