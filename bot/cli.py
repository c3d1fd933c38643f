"""The `emcee` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import ConfigError, Secrets, Settings, load_settings
from bot.invocation import Actor

if TYPE_CHECKING:
    from datetime import datetime

    from bot.app import App
    from bot.commands import UsageError
    from bot.engine import Engine
    from bot.http import HttpServer
    from bot.models import Event

DEFAULT_CONFIG = Path("emcee.toml")
LISTING = "`emcee events`"  # where the command line lists events (chat says /events)
COMMAND_LINE = Actor("system", "cli", "command line")  # who acts for `emcee event publish`


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help=f"TOML config file (default: {DEFAULT_CONFIG} if present, else the built-in defaults)",
    )


def _config_path(args: argparse.Namespace) -> Path | None:
    """--config, else emcee.toml when present, else None: the built-in defaults."""
    config: Path | None = args.config
    if config is None and DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emcee", description="Emcee runs your community's meetups in Slack and Discord."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="replay the sample BookKeeper meetup on the console (no tokens needed)")
    demo.add_argument("--interactive", action="store_true", help="type the slash commands yourself")

    _config_arg(sub.add_parser("run", help="run the bot"))
    check = sub.add_parser("check", help="validate the config and secrets; say what would run")
    check.add_argument(
        "--online", action="store_true", help="also sign in to Slack and Discord and check each announce channel"
    )
    _config_arg(check)

    _config_arg(sub.add_parser("events", help="list every event with its slug, state and start"))

    event = sub.add_parser("event", help="change an event from the command line")
    event_sub = event.add_subparsers(dest="event_command", required=True, metavar="ACTION")
    publish = event_sub.add_parser("publish", help="publish a draft: members see it and its reminders are planned")
    publish.add_argument("event", help="the event's slug (see `emcee events`)")
    _config_arg(publish)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    _config_arg(db_sub.add_parser("upgrade", help="apply the database migrations"))

    manifest = sub.add_parser("slack-manifest", help="print the Slack app manifest (JSON), built from the commands")
    manifest.add_argument("--url", help="public https:// base URL of this server, for HTTP mode")
    _config_arg(manifest)

    invite = sub.add_parser("discord-invite", help="print the OAuth2 URL that adds the bot to a Discord server")
    invite.add_argument("--client-id", type=int, help="Application ID (default: asked of Discord with DISCORD_TOKEN)")
    _config_arg(invite)

    imp = sub.add_parser(
        "import",
        help="import an event file (.toml) or an iCalendar file (.ics)",
        description="emcee import FILE.toml | emcee import [ics] FILE.ics  (an .ics is matched to its event by UID)",
    )
    imp.add_argument("format", nargs="?", choices=["ics"], help="read FILE as iCalendar whatever its suffix")
    imp.add_argument("file", type=Path)
    _config_arg(imp)

    exp = sub.add_parser("export", help="export events")
    exp_sub = exp.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    ics = exp_sub.add_parser("ics", help="write an iCalendar file: one event, or every upcoming one")
    ics.add_argument("event", nargs="?", help="an event slug (default: every upcoming published event)")
    ics.add_argument(
        "--output", "-o", type=Path, help="file to write, - for stdout (default: SLUG.ics or calendar.ics)"
    )
    _config_arg(ics)
    return parser


async def _check(settings: Settings, secrets: Secrets, path: Path | None, online: bool) -> int:
    missing = secrets.missing_for(settings)
    adapters = [name for name in ("slack", "discord", "console") if getattr(settings, name).enabled]
    if path is None:
        print(f"config: no {DEFAULT_CONFIG} here and no --config given; using the built-in defaults")
    else:
        print(f"config: {path}")
    print(f"database: {settings.bot.database_url}")
    print(f"adapters: {', '.join(adapters) or 'none'}")
    if settings.slack.enabled:
        print(f"slack: {settings.slack.mode} mode, announcing in {settings.slack.announce_channels or 'no channels'}")
    if settings.discord.enabled:
        channels = settings.discord.announce_channels or "no channels"
        print(f"discord: guilds {settings.discord.guild_ids}, announcing in {channels}")
    if settings.http.enabled:
        print(f"http: {settings.http.host}:{settings.http.port} (/healthz, /metrics, /calendar.ics)")
        print(f"calendar links: {settings.http.public_url}/events/<slug>.ics")
    for warning in _warnings(settings):
        print(f"warning: {warning}", file=sys.stderr)
    if missing:
        print(f"error: missing environment variables: {', '.join(missing)}", file=sys.stderr)
        return 1
    if online and not await _check_online(settings, secrets):
        return 1
    print("config OK")
    return 0


async def _check_online(settings: Settings, secrets: Secrets) -> bool:
    """Sign in to each enabled platform and check its announce channels; print what works and every problem."""
    from bot.ports import OnlineCheck

    reports: list[OnlineCheck] = []
    if settings.slack.enabled:
        from adapters.slack.check import check_online as check_slack

        reports.append(await check_slack(settings.slack, secrets))
    if settings.discord.enabled:
        from adapters.discord.check import check_online as check_discord

        reports.append(await check_discord(settings.discord, secrets))
    for report in reports:
        for fact in report.facts:
            print(f"{report.platform}: {fact}")
        for problem in report.problems:
            print(f"error: {problem}", file=sys.stderr)
    return not any(report.problems for report in reports)


def _warnings(settings: Settings) -> list[str]:
    """What would run but not do what an operator expects."""
    return [
        f"[{name}] announce_channels is empty: cards and reminders will not be posted on {name.title()}"
        for name in ("slack", "discord")
        if getattr(settings, name).enabled and not getattr(settings, name).announce_channels
    ]


async def _run(settings: Settings, secrets: Secrets) -> int:
    """Answer /healthz first (503, starting), then load the bot and run it on the same server."""
    missing = secrets.missing_for(settings)
    if missing:
        print(f"error: missing environment variables: {', '.join(missing)}", file=sys.stderr)
        return 1
    http = None
    if settings.http.enabled:
        from bot.http import HttpServer

        http = HttpServer(settings.http)
        await http.listen()
    try:
        app = await _load(settings, secrets, http)
    except BaseException:
        if http is not None:
            await http.stop()
        raise
    from bot.app import serve_forever

    await serve_forever(app)
    return 0


async def _load(settings: Settings, secrets: Secrets, http: HttpServer | None) -> App:
    """The bot, built on `http`. Its modules (SQLAlchemy, the chat libraries: most of a second) are imported in
    a worker thread, so that the event loop answers /healthz meanwhile."""
    await asyncio.to_thread(importlib.import_module, "bot.app")
    from bot.app import build_app

    return build_app(settings, secrets, http=http)


async def _db_upgrade(settings: Settings) -> int:
    from bot.db import Database

    db = Database(settings.bot.database_url)
    try:
        await db.upgrade()
    finally:
        await db.close()
    print("database is up to date")
    return 0


@contextlib.asynccontextmanager
async def _offline_engine(settings: Settings) -> AsyncIterator[Engine]:
    """The engine on the configured database, with no adapters or server, for one-off commands."""
    from bot.app import build_app

    app = build_app(settings, Secrets(), adapters={}, with_http=False)
    await app.start()
    try:
        yield app.engine
    finally:
        await app.stop()


async def _import(settings: Settings, file: Path) -> int:
    from bot.eventfile import EventFileError, import_event_file

    try:
        async with _offline_engine(settings) as engine:
            slug = await import_event_file(engine, file)
            print(await _imported(engine, slug))
    except EventFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _imported(engine: Engine, slug: str) -> str:
    """What a new imported event became: a draft to publish, or, when it is already over, a past event."""
    from bot.commands.events import publish
    from bot.formatting import format_moment

    event = await _event(engine, slug)
    if event.ends_at <= engine.clock.now():
        ended = format_moment(event.ends_at, event.timezone)
        return f"imported {slug} as a past event (it ended {ended}): kept as a draft for the record, with no reminders"
    return f"imported {slug} as a draft; publish it with {publish.ref} {slug} (or emcee event publish {slug})"


async def _event(engine: Engine, ref: str) -> Event:
    """The event `ref` names; UnknownEvent (a UsageError) when none does."""
    from bot.lookup import resolve_event

    async with engine.db.session() as session:
        return await resolve_event(session, engine.clock.now(), ref, organizer=True)


async def _import_ics(settings: Settings, file: Path) -> int:
    from bot.calendar import IcsError, import_ics

    try:
        async with _offline_engine(settings) as engine:
            result = await import_ics(engine, file)
            if result.action == "created":
                print(await _imported(engine, result.slug))
    except IcsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.action == "updated":
        print(f"updated {result.slug}: {', '.join(result.changed)}")
    elif result.action == "unchanged":
        print(f"{result.slug} is already up to date; nothing changed")
    return 0


async def _export_ics(settings: Settings, event: str | None, output: Path | None) -> int:
    from bot.calendar import event_feed, upcoming_feed
    from bot.commands import UsageError
    from bot.lookup import resolve_event

    try:
        async with _offline_engine(settings) as engine, engine.db.session() as session:
            if event is None:
                feed = await upcoming_feed(session, engine.clock.now(), settings.bot.name)
            else:
                feed = await event_feed(
                    session, await resolve_event(session, engine.clock.now(), event, organizer=True)
                )
    except UsageError as exc:
        print(f"error: {_cli_message(exc)}", file=sys.stderr)
        return 1
    if not feed.events:
        print(f"nothing to export: no upcoming published event (see {LISTING}); no file written", file=sys.stderr)
        return 1
    if output == Path("-"):
        sys.stdout.buffer.write(feed.body)
        return 0
    target = output or Path(feed.filename)
    try:
        target.write_bytes(feed.body)
    except OSError as exc:
        print(f"error: {target}: cannot write: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {target}")
    return 0


def _cli_message(exc: UsageError) -> str:
    """A refusal as the command line words it: an unknown event points to `emcee events`."""
    from bot.lookup import UnknownEvent

    return exc.saying(LISTING) if isinstance(exc, UnknownEvent) else exc.message


async def _events(settings: Settings) -> int:
    from sqlmodel import col, select

    from bot.commands.events import create
    from bot.formatting import format_moment
    from bot.models import Event

    async with _offline_engine(settings) as engine, engine.db.session() as session:
        events = (await session.exec(select(Event).order_by(col(Event.starts_at)))).all()
        now = engine.clock.now()
    if not events:
        print(f"no events yet: import one with `emcee import FILE`, or create one with {create.ref} in chat")
        return 0
    rows = [("SLUG", "STATE", "STARTS", "TITLE")]
    rows += [(e.slug, _state(e, now), format_moment(e.starts_at, e.timezone), e.title) for e in events]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    return 0


def _state(event: Event, now: datetime) -> str:
    return f"{event.status}, past" if event.ends_at <= now else str(event.status)


async def _publish(settings: Settings, ref: str) -> int:
    """Publish through the engine as the command line; with no chat connection here, no card is posted."""
    from bot.commands import UsageError
    from bot.commands.announce import announce
    from bot.commands.events import publish
    from bot.commands.listings import events
    from bot.engine import Refused
    from bot.invocation import Invocation

    async with _offline_engine(settings) as engine:
        try:
            event = await _event(engine, ref)
            await engine.run(Invocation(COMMAND_LINE, None, publish.path, {"event": event.slug}))
        except UsageError as exc:
            print(f"error: {_cli_message(exc)}", file=sys.stderr)
            return 1
        except Refused as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1
    if event.ends_at <= engine.clock.now():
        print(f"published {event.slug}; it is over, so it is not listed in {events.ref} and gets no reminders.")
    else:
        print(
            f"published {event.slug}: members see it in {events.ref}, and its reminders go out while `emcee run` runs."
        )
    print(f"no card was posted (the command line has no chat connection): type {announce.ref} {event.slug} in chat")
    return 0


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from bot.demo import run_demo

        await run_demo(sys.stdout, sys.stdin if args.interactive else None)
        return 0
    path = _config_path(args)
    settings = load_settings(path)
    if args.command == "check":
        return await _check(settings, Secrets.from_env(), path, args.online)
    if args.command == "run":
        return await _run(settings, Secrets.from_env())
    if args.command == "db":
        return await _db_upgrade(settings)
    if args.command == "events":
        return await _events(settings)
    if args.command == "event":
        return await _publish(settings, args.event)
    if args.command == "slack-manifest":
        from adapters.slack.manifest import manifest_json

        print(manifest_json(settings, args.url))
        return 0
    if args.command == "discord-invite":
        from adapters.discord.invite import print_invite

        return await print_invite(settings.discord, Secrets.from_env(), args.client_id)
    if args.command == "export":
        return await _export_ics(settings, args.event, args.output)
    if args.format == "ics" or args.file.suffix.lower() == ".ics":
        return await _import_ics(settings, args.file)
    return await _import(settings, args.file)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.command == "run" else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(_dispatch(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from bot.db import DatabaseUnusable, SchemaOutOfDate  # loaded already when the database raised them

        if not isinstance(exc, SchemaOutOfDate | DatabaseUnusable):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
