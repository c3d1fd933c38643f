"""The distribution is `emcee-bot` (`emcee` on the package index is an unrelated MCMC library); the
command it installs is still `emcee`."""

from __future__ import annotations

from importlib import metadata


def test_distribution_is_emcee_bot_and_installs_the_emcee_command() -> None:
    distribution = metadata.distribution("emcee-bot")
    scripts = {entry.name: entry.value for entry in distribution.entry_points if entry.group == "console_scripts"}
    assert scripts == {"emcee": "bot.cli:main"}
