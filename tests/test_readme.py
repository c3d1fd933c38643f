"""README stays true: its commands match the registry, and CI runs README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from bot.commands.catalog import COMMANDS

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_documents_every_command() -> None:
    for command in COMMANDS:
        assert command.brief_usage.replace("|", "\\|") in README, command.name


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(block for block in blocks if "pytest" in block)
    assert test_command in (ROOT / ".ci" / "run").read_text()
