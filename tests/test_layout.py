"""Dependencies point inward: the core never imports a chat library, and only the composition
root (bot/app.py, bot/cli.py) imports adapters or schedules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CHAT_LIBRARIES = {"slack_bolt", "slack_sdk", "discord"}
COMPOSITION_ROOT = {"app.py", "cli.py"}


def imported_modules(path: Path, type_checking: bool = True) -> set[str]:
    """Top-level package names a module imports, also inside functions; with `type_checking` False,
    without the imports under `if TYPE_CHECKING:` that only type checkers see."""
    tree = ast.parse(path.read_text(), str(path))
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


CORE = sorted((ROOT / "bot").rglob("*.py"))


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_imports_a_chat_library(path: Path) -> None:
    assert not imported_modules(path) & CHAT_LIBRARIES


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_composition_root_imports_adapters_and_schedules(path: Path) -> None:
    if path.name in COMPOSITION_ROOT and path.parent.name == "bot":
        return
    assert not imported_modules(path, type_checking=False) & {"adapters", "schedules"}


@pytest.mark.parametrize("path", sorted((ROOT / "schedules").rglob("*.py")), ids=lambda p: p.name)
def test_schedules_depend_on_the_core_only(path: Path) -> None:
    assert not imported_modules(path) & (CHAT_LIBRARIES | {"adapters"})
