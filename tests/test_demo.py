"""`emcee demo` tells the sample evening end to end on the console, through the real scheduler."""

from __future__ import annotations

import io

from bot.demo import run_demo

TALKS = (
    "Bookie Storage: current implementation and new experiments",
    "Running BookKeeper at Twitter",
    "Runway: a new tool for distributed systems",
    "Panel: BookKeeper 4.5.0 and scaling metadata",
)


async def test_demo_names_the_talks_and_the_promoted_members() -> None:
    out = io.StringIO()
    await run_demo(out, speed=20)  # the CLI's speed 1 takes about 80 s
    text = out.getvalue()
    for talk in TALKS:
        assert talk in text
        assert f"Now on stage at BookKeeper June 2016 meetup (San Francisco): {talk}" in text
        assert any(line.startswith("[#announcements] ⏭ Up next") and talk in line for line in text.splitlines())
    assert text.count("🎤 Now on stage") == len(TALKS)  # the shift mid-talk does not introduce anyone twice
    assert "Matteo Merli (Yahoo)" in text and "Sameer Tiwari (Salesforce), moderator" in text
    assert "You're on the waitlist" in text
    # eli (a party of one) passes dara's party of two when one seat frees; then dara's party moves up.
    assert text.index("[DM → eli] 🎉 A seat opened up") < text.index("[DM → dara] 🎉 A seat opened up")
    # The evening: the 1-hour reminder (to the channel and to ada, who opted in), then "starting now".
    assert "[#announcements] ⏰ BookKeeper June 2016 meetup (San Francisco) starts in" in text
    assert "[DM → ada] ⏰ BookKeeper June 2016 meetup (San Francisco) starts in" in text
    assert text.index("starts in") < text.index("is starting now")
    assert "we're running 10 minutes late" in text and "🔁 Agenda update for" in text
    assert "Traceback" not in text


async def test_interactive_demo_reads_commands_from_input() -> None:
    out = io.StringIO()
    await run_demo(out, interactive=io.StringIO("/rsvp going +1\n/emcee help\n/rsvp nonsense-event\n"))
    text = out.getvalue()
    assert "You're going to BookKeeper June 2016 meetup" in text
    assert "Organizer commands:" in text
    assert "no event called 'nonsense-event'" in text and "Usage: /rsvp [event]" in text
