"""`emcee demo` tells the sample evening end to end on the console."""

from __future__ import annotations

import io

from bot.demo import run_demo


async def test_demo_names_the_talks_and_the_promoted_members() -> None:
    out = io.StringIO()
    await run_demo(out)
    text = out.getvalue()
    for talk in (
        "Bookie Storage: current implementation and new experiments",
        "Running BookKeeper at Twitter",
        "Runway: a new tool for distributed systems",
        "Panel: BookKeeper 4.5.0 and scaling metadata",
    ):
        assert talk in text
    assert "Matteo Merli (Yahoo)" in text and "Sameer Tiwari (Salesforce), moderator" in text
    assert "You're on the waitlist" in text
    # eli (a party of one) passes dara's party of two when one seat frees; then dara's party moves up.
    assert text.index("[DM → eli] 🎉 A seat opened up") < text.index("[DM → dara] 🎉 A seat opened up")
    assert "running 10m later" in text
    assert "Traceback" not in text


async def test_interactive_demo_reads_commands_from_input() -> None:
    out = io.StringIO()
    await run_demo(out, interactive=io.StringIO("/rsvp going +1\n/emcee help\n/rsvp nonsense-event\n"))
    text = out.getvalue()
    assert "You're going to BookKeeper June 2016 meetup" in text
    assert "Organizer commands:" in text
    assert "no event called 'nonsense-event'" in text and "Usage: /rsvp [event]" in text
