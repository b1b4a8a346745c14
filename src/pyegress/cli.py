"""The ``pyegress`` command line: ``serve``, ``worker``, ``config``, ``demo``, ``webhooks``, ``db``,
``livekit-server``, and the operator commands ``egress`` and ``record`` (:mod:`pyegress.operator_cli`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NoReturn

import typer

from .operator_cli import egress_app, record

app = typer.Typer(help="pyegress: record LiveKit rooms through LiveKit's Egress API.", no_args_is_help=True)
app.add_typer(egress_app, name="egress")
app.command("record")(record)


@app.command()
def serve(host: str = typer.Option(None, help="bind address (default from PYEGRESS_HOST)"),
          port: int = typer.Option(None, help="port (default from PYEGRESS_PORT)")) -> None:
    """Serve the Egress API and run egress jobs (settings from PYEGRESS_* variables)."""
    import uvicorn

    from .api.app import create_app

    settings = _settings()
    _configure_logging(settings.logging.level)
    _log_ignored_keys()
    # Idle connections are kept longer than clients keep them (aiohttp, under livekit-api: 15 s), so a
    # client never reuses one the server is closing at that moment (uvicorn's default is 5 s).
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                log_level="info", timeout_graceful_shutdown=30, timeout_keep_alive=75)


@app.command()
def worker() -> None:
    """Run as an egress worker of livekit-server over Redis/psrpc (needs `redis.address` in the config).

    Settings come from LiveKit's egress config.yaml keys (PYEGRESS_CONFIG, EGRESS_CONFIG_FILE or
    EGRESS_CONFIG_BODY) and PYEGRESS_* variables. SIGTERM/SIGINT drain: stop claiming, finish and
    report every active egress, then exit.
    """
    import asyncio

    from .bus.runner import run_worker

    settings = _settings()
    _configure_logging(settings.logging.level)
    _log_ignored_keys()
    if not settings.redis.configured:
        typer.echo("pyegress worker needs Redis: set redis.address in the config (or PYEGRESS_REDIS__ADDRESS)",
                   err=True)
        raise typer.Exit(2)
    asyncio.run(run_worker(settings))


def _settings():
    """Settings, or exit 2 with the reasons (a missing config file, bad YAML, an unknown key, an invalid value)."""
    from pydantic import ValidationError

    from .config import Settings

    try:
        return Settings()
    except ValidationError as e:
        _fail(_validation_problems(e))
    except ValueError as e:  # ConfigError is a ValueError
        _fail(str(e).splitlines())


def _validation_problems(e) -> list[str]:
    """One line per invalid value, naming its key; never the value, which may be a secret."""
    return [f"{'.'.join(map(str, err['loc'])) or 'config'}: {err['msg']}" for err in e.errors()]


def _fail(problems: list[str]) -> NoReturn:
    """Print each problem and exit 2."""
    for problem in problems:
        typer.echo(f"pyegress: {problem}", err=True)
    raise typer.Exit(2)


def _log_ignored_keys() -> None:
    """Warn of the config file's LiveKit egress keys that pyegress does not use (the file passed _settings)."""
    from .config import read_config_file
    from .config_keys import check_keys

    source, data = read_config_file()
    ignored = check_keys(data).ignored
    if ignored:
        logging.getLogger("pyegress.config").warning("config %s: LiveKit egress keys pyegress ignores: %s", source,
                                                     ", ".join(ignored))


def _configure_logging(level: str) -> None:
    """LiveKit's level names (debug, info, warn, error) on Python logging."""
    logging.basicConfig(level={"warn": "WARNING"}.get(level.lower(), level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def demo(seconds: float = typer.Option(10.0, help="length of the recording in seconds"),
         publishers: int = typer.Option(3, help="generated participants (1-4 is sensible)"),
         workdir: str = typer.Option("demo-output", help="where the recording and logs go")) -> None:
    """Record a real room end to end: livekit-server, generated publishers, the Egress API, ffprobe."""
    from .devtools.demo import run_demo

    raise typer.Exit(run_demo(seconds=seconds, publishers=publishers, workdir=workdir))


config_app = typer.Typer(help="The config file: LiveKit egress config.yaml keys and pyegress's own.")
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(file: Path = typer.Argument(..., help="the config.yaml to check")) -> None:
    """Check a config file as `pyegress serve` and `pyegress worker` read it: exit 2 listing unknown keys (with
    the closest known one), invalid values and incomplete storage; else print the effective settings (the file,
    PYEGRESS_* variables over it) as YAML with secrets masked, and exit 0. LiveKit egress keys that pyegress
    does not use are listed as ignored."""
    import yaml
    from pydantic import ValidationError

    from .config import ConfigError, read_config_file, settings_from_file
    from .config_keys import check_keys, mask_secrets
    from .storage import from_config

    try:
        source, data = read_config_file(file)
        settings = settings_from_file(file)  # a ConfigError names every unknown key
    except ValidationError as e:
        _fail(_validation_problems(e))
    except ConfigError as e:
        _fail(str(e).splitlines())
    problems = []
    for name in ("storage", "backup"):
        try:
            from_config(getattr(settings, name), name)
        except ValueError as e:
            problems.append(str(e))
    if problems:
        _fail(problems)
    ignored = check_keys(data).ignored
    if ignored:
        typer.echo(f"config {source}: LiveKit egress keys pyegress ignores: {', '.join(ignored)}", err=True)
    typer.echo(f"# effective settings of {source} (PYEGRESS_* variables over it), secrets masked")
    typer.echo(yaml.safe_dump(mask_secrets(settings.model_dump(mode="json")), sort_keys=False), nl=False)


webhooks_app = typer.Typer(help="The webhook outbox: what was sent, what is pending, and replays.")
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("list")
def webhooks_list(egress_id: str = typer.Option("", help="only this egress"),
                  pending: bool = typer.Option(False, help="only undelivered ones")) -> None:
    """List webhook deliveries (settings from PYEGRESS_* variables)."""
    from rich.console import Console
    from rich.table import Table

    from .database.egress_store import EgressStore
    from .database.webhook_store import WebhookStore

    rows = WebhookStore(EgressStore(_settings().database_url).engine).list(egress_id, pending)
    table = Table("id", "event", "egress", "url", "attempts", "delivered", "last error")
    for r in rows:
        table.add_row(r.id, r.event, r.egress_id, r.url, str(r.attempts), "yes" if r.delivered_at else "no",
                      r.last_error)
    Console().print(table)


@webhooks_app.command("replay")
def webhooks_replay(delivery_id: str) -> None:
    """Send a delivery again (a running `pyegress serve` picks it up)."""
    from .database.egress_store import EgressStore
    from .database.webhook_store import WebhookStore

    if not WebhookStore(EgressStore(_settings().database_url).engine).replay(delivery_id):
        typer.echo(f"no webhook delivery {delivery_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{delivery_id} queued again")


db_app = typer.Typer(help="The database schema: Alembic migrations shipped with pyegress.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Migrate the database of PYEGRESS_DATABASE_URL (`pyegress serve` does this itself at start)."""
    from .database import engine as database

    engine = database.make_engine(_settings().database_url)
    database.upgrade(engine, revision)
    typer.echo(f"database at revision {database.current_revision(engine)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision and the newest one this pyegress ships."""
    from .database import engine as database

    current = database.current_revision(database.make_engine(_settings().database_url))
    typer.echo(f"current {current or 'none (not migrated)'}, head {database.head_revision()}")


@db_app.command("revision")
def db_revision(message: str = typer.Option(..., "-m", "--message", help="what the migration does"),
                autogenerate: bool = typer.Option(False, help="diff the models against a scratch database")) -> None:
    """Write a new migration into src/pyegress/database/migrations/versions (for developers; review it)."""
    import tempfile

    from alembic import command

    from .database import engine as database

    cfg = database.alembic_config()
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    rev_id = f"{int(database.head_revision()) + 1:04d}"
    if not autogenerate:
        command.revision(cfg, message, rev_id=rev_id)
        return
    # Autogenerate compares the models with a database at head: a scratch SQLite file is that database.
    with tempfile.TemporaryDirectory() as tmp:
        engine = database.make_engine(f"sqlite:///{tmp}/scratch.db")
        database.upgrade(engine)
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.revision(cfg, message, rev_id=rev_id, autogenerate=True)


@app.command("livekit-server")
def livekit_server(port: int = typer.Option(7880)) -> None:
    """Build (once) and run a dev-mode livekit-server on 127.0.0.1 until Ctrl-C."""
    import time

    from .devtools.livekit_server import LiveKitServer

    with LiveKitServer(port=port) as server:
        typer.echo(f"livekit-server on {server.url} (keys {server.api_key}/{server.api_secret}); Ctrl-C stops it")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
