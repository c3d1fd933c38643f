"""Broken configs and unusable databases: `emcee check` and `emcee run` say what is wrong and never
print a traceback.

`emcee check` runs in-process through bot/cli.py main() on a few hundred generated configs; `emcee
run` runs in real processes on a handful of broken configs and database states.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot.cli import main
from bot.config import Settings

SECRETS = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN")
KEYS = {name: list(field.annotation.model_fields) for name, field in Settings.model_fields.items()}  # type: ignore[union-attr]


def toml_value(value: Any) -> str:
    """`value` written as TOML: strings, numbers, booleans, arrays and inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{json.dumps(key)} = {toml_value(item)}" for key, item in value.items()) + "}"


def toml_document(sections: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"[{json.dumps(name)}]\n" + "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in keys.items())
        for name, keys in sections.items()
    )


# -- what goes into a broken config ----------------------------------------------------------------

HUGE = st.sampled_from([10**6, 2**31, 2**63 - 1, 10**18, -(2**63), -1, 99_999_999_999])
ZONE = st.sampled_from(["America", "Europe/", "Mars/Base", "", "../../etc/passwd", "UTC\u0000", "x" * 5000, "Etc"])
URL = st.sampled_from(
    [
        "not a url",
        "ftp://example.com",
        "http://",
        "https://[::1",
        "sqlite://",
        "sqlite:////no/such/folder/emcee.db",
        "nosuch://user@host/db",
        "postgresql://",
        "postgresql://user:pw@[::1/db",
        "mysql://localhost/db",
        ":::",
        "",
        "sqlite:///" + "x" * 5000,
    ]
)
DURATION = st.sampled_from(["", "5x", "-5m", "99999999999d", "1000000000d", "999999999d", "0m", "1h1h", "m", "1e9m"])
SCALAR = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
    HUGE,
    ZONE,
    URL,
    DURATION,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6,
)
SECTION = st.one_of(st.sampled_from(sorted(KEYS)), st.text(min_size=1, max_size=10))


@st.composite
def sections(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Known and unknown sections, holding known and unknown keys with values of any type."""
    document: dict[str, dict[str, Any]] = {}
    for name in draw(st.lists(SECTION, min_size=1, max_size=4, unique=True)):
        known = KEYS.get(name, [])
        key = st.one_of(st.sampled_from(known), st.text(min_size=1, max_size=12)) if known else st.text(min_size=1)
        document[name] = draw(st.dictionaries(key, VALUE, min_size=1, max_size=4))
    return document


def deep_array(depth: int) -> str:
    return "[bot]\nname = " + "[" * depth + "]" * depth + "\n"


@dataclass(frozen=True)
class BrokenConfig:
    """A config file's content (text or bytes), or a folder where the file should be."""

    content: str | bytes | None  # None: a directory

    def write(self, folder: Path) -> Path:
        path = folder / "emcee.toml"
        if self.content is None:
            path.mkdir()
        elif isinstance(self.content, bytes):
            path.write_bytes(self.content)
        else:
            path.write_text(self.content, encoding="utf-8")
        return path


CONFIGS = st.one_of(
    sections().map(lambda document: BrokenConfig(toml_document(document))),
    sections().map(lambda document: BrokenConfig(toml_document(document)[:-3])),  # cut short
    st.integers(500, 20_000).map(lambda depth: BrokenConfig(deep_array(depth))),
    st.binary(min_size=1, max_size=200).map(BrokenConfig),
    st.sampled_from(
        [
            BrokenConfig(""),
            BrokenConfig(None),
            BrokenConfig(b"\xff\xfe[\x00b\x00o\x00t\x00]\x00"),
            BrokenConfig(b'[bot]\nname = "\xc3\x28"\n'),
            BrokenConfig("[bot]\ngrace_minutes = 99999999999999\n"),
            BrokenConfig("[bot]\ngrace_minutes = 1000000000\n"),
            BrokenConfig('[bot]\ntimezone = "America"\n'),
            BrokenConfig('[reminders]\nevent_offsets = ["99999999999d"]\n'),
            BrokenConfig("[http]\nport = 99999999999999999999\n"),
        ]
    ),
)


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output[-2000:]


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No tokens in the environment, and a scratch folder as the working directory."""
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    phases=tuple(phase for phase in Phase if phase is not Phase.explain),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(config=CONFIGS)
def test_emcee_check_answers_any_broken_config_without_a_traceback(
    no_secrets: Path, capsys: pytest.CaptureFixture[str], config: BrokenConfig
) -> None:
    """Hardening item B: `emcee check` on any generated broken config (wrong types, unknown keys, bad zones,
    huge numbers, bad urls and durations, deep arrays, binary bytes, an empty file, a directory) exits
    non-zero with a message, or zero with "config OK", and never prints a traceback."""
    folder = no_secrets / f"case-{len(list(no_secrets.iterdir()))}"
    folder.mkdir()
    code = main(["check", "--config", str(config.write(folder))])
    out, err = capsys.readouterr()
    no_traceback(out + err)
    if code == 0:
        assert "config OK" in out
    else:
        assert err.strip(), "a refused config must say what is wrong"


# -- emcee run, in real processes ------------------------------------------------------------------

RUN_CONFIGS = {
    "wrong type": '[bot]\ngrace_minutes = "lots"\n',
    "unknown key": "[bot]\ncolour = 1\n",
    "folder zone": '[bot]\ntimezone = "America"\n',
    "huge grace": "[bot]\ngrace_minutes = 99999999999999\n",
    "bad database url": '[bot]\ndatabase_url = "nosuch://user@host/db"\n',
    "bad duration": '[reminders]\nitem_offset = "99999999999d"\n',
    "deep arrays": deep_array(5000),
    "binary": b"\x00\xff\xfe\x80 binary \xc3\x28",
    "bad url": '[http]\npublic_url = "ftp://example.com"\n',
    "a directory": None,
}
QUIET = "[http]\nenabled = false\n[console]\nenabled = false\n"


def database_states(folder: Path) -> dict[str, str]:
    """database_url values that name something unusable: a directory, a file that is not SQLite, a missing folder."""
    (folder / "a-directory.db").mkdir()
    (folder / "not-sqlite.db").write_bytes(b"this is not a database\n" * 200)
    return {
        "directory as database": f"sqlite:///{folder / 'a-directory.db'}",
        "not a SQLite file": f"sqlite:///{folder / 'not-sqlite.db'}",
        "missing folder": f"sqlite:///{folder / 'no' / 'such' / 'folder' / 'emcee.db'}",
    }


async def emcee(folder: Path, *args: str) -> tuple[int | None, str]:
    """Run `emcee ARGS` in `folder` with no tokens; its exit code (None if it was still running) and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        *args,
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        return None, output.decode(errors="replace")
    return process.returncode, output.decode(errors="replace")


async def test_emcee_run_refuses_broken_configs_and_unusable_databases_cleanly(tmp_path: Path) -> None:
    """Hardening item B: `emcee run` on broken configs, and on a database that is a directory, not SQLite,
    or in a missing folder, exits non-zero with a message and no traceback."""
    configs: dict[str, Path] = {}
    for name, content in RUN_CONFIGS.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        configs[name] = BrokenConfig(content).write(folder)
    for name, url in database_states(tmp_path).items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        configs[name] = BrokenConfig(f'[bot]\ndatabase_url = "{url}"\n{QUIET}').write(folder)
    results = await asyncio.gather(*(emcee(path.parent, "run", "--config", str(path)) for path in configs.values()))
    failures = []
    for name, (code, output) in zip(configs, results, strict=True):
        if code is None or code == 0 or "Traceback" in output or not output.strip():
            failures.append(f"{name}: exit {code}\n{output[-1500:]}")
    assert not failures, "\n\n".join(failures)
