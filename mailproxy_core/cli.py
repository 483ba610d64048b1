"""The local commands of ``mail-proxy``: ``serve``, ``worker``, ``migrate``, ``plugins``, ``token``.

They act on the local installation and need no running instance. The ``mail-proxy`` command
itself (package ``mailproxy_cli``) imports this module only when one of them runs. Results go to
stdout; logs and warnings to stderr, and only ``serve`` and ``worker`` log at the configured
level: the others stay silent unless something goes wrong for them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from .errors import MailproxyError
from .kernel import MailProxy, build_kernel
from .logs import configure_logging
from .settings import Settings, load_settings

T = TypeVar("T")


QUIET_COMMANDS = ("migrate", "plugins", "token")


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.command.name in QUIET_COMMANDS:
        warnings.simplefilter("ignore")
        # Some loggers set their own level (the database drivers' INFO lines): the handler's
        # level is what keeps them off the terminal.
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.ERROR)


def _fail(err: MailproxyError) -> None:
    click.echo(f"mail-proxy: {err.detail}", err=True)
    sys.exit(2)


def _settings(config: str | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except MailproxyError as err:
        _fail(err)
    _configure_logging(settings)
    return settings


def _kernel(settings: Settings) -> MailProxy:
    try:
        return build_kernel(settings)
    except MailproxyError as err:
        _fail(err)
        raise  # unreachable: _fail exits


def _run(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(coro_factory())
    except MailproxyError as err:
        _fail(err)
        raise  # unreachable


@click.group()
@click.version_option(package_name="mailproxy-core")
def main() -> None:
    """The local commands of mail-proxy (the full command is ``mailproxy_cli.main``)."""


config_option = click.option(
    "--config", type=click.Path(dir_okay=False), default=None, help="TOML settings file."
)


def freeze_startup_heap() -> None:
    """Keep what start-up built (modules, plugins, schemas, routes) out of garbage collection.

    A full collection walks every tracked object; in a service process most of them were made
    at start-up and live until it exits. Walking them is what made the longest pauses of the
    event loop while a large request was processed (a 0.1 s full collection during a 27 MB
    ``add_batch``); frozen, they are never walked again. Called once, in the service process
    only (never in a test process, which starts many apps).
    """
    gc.collect()
    gc.freeze()


@main.command()
@config_option
@click.option("--host", default=None, help="Listen address (MAILPROXY_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (MAILPROXY_PORT).")
def serve(config: str | None, host: str | None, port: int | None) -> None:
    """Run the API, the dispatcher and the background loops."""
    from .app import create_app, kernel_of
    from .server import PortUnavailable, serve_app

    settings = _settings(config, host=host, port=port)
    try:
        app = create_app(settings)
    except MailproxyError as err:
        _fail(err)
    kernel_of(app).announce = click.echo
    freeze_startup_heap()
    try:
        asyncio.run(
            serve_app(
                app,
                host=settings.host,
                port=settings.port,
                drain_timeout=settings.drain_timeout,
                announce=lambda line: click.echo(line, err=True),
            )
        )
    except PortUnavailable as err:  # a runtime condition, not a usage error: exit 1
        click.echo(f"mail-proxy: {err.detail}", err=True)
        sys.exit(1)
    except MailproxyError as err:
        _fail(err)


@main.command()
@config_option
def worker(config: str | None) -> None:
    """Run only the dispatcher (scale-out processes sharing one PostgreSQL database)."""
    from .server import run_worker

    mp = _kernel(_settings(config))
    freeze_startup_heap()
    _run(lambda: run_worker(mp))


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def migrate(config: str | None, as_json: bool) -> None:
    """Apply pending schema migrations of the core and every plugin."""
    from .db.migrate import apply_migrations

    mp = _kernel(_settings(config))

    async def run() -> list[str]:
        await mp.db.connect()
        try:
            applied = await apply_migrations(mp.db, list(mp.registry.migrations))
        finally:
            await mp.db.disconnect()
        return [step.name for step in applied]

    names = _run(run)
    if as_json:
        click.echo(json.dumps({"ok": True, "applied": names}))
    elif names:
        for name in names:
            click.echo(f"applied {name}")
    else:
        click.echo("schema is up to date")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plugins(config: str | None, as_json: bool) -> None:
    """List plugins: built-in, loaded, failed (with the error) and disabled."""
    mp = _kernel(_settings(config))
    infos = [info.as_dict() for info in mp.plugins]
    if as_json:
        click.echo(json.dumps({"plugins": infos}))
        return
    for info in infos:
        dist = f"{info['distribution'] or '-'} {info['version'] or ''}"
        line = f"{info['name']:<16} {info['status']:<9} {dist}"
        click.echo(line.rstrip())
        if info["load_error"]:
            click.echo(f"{'':<16} error: {info['load_error']}")


@main.command()
@config_option
@click.option("--regenerate", is_flag=True, help="Replace the admin token with a new one.")
def token(config: str | None, regenerate: bool) -> None:
    """Show whether an admin token is set, or make a new one with --regenerate."""
    from .crypto import hash_token, new_token

    settings = _settings(config)
    if settings.api_token is not None:
        click.echo("The admin token comes from MAILPROXY_API_TOKEN; change it there.")
        return
    mp = _kernel(settings)

    async def run() -> str | None:
        await mp.open_database()
        try:
            if regenerate:
                fresh = new_token()
                await mp.repos.instance.set_admin_token_hash(hash_token(fresh))
                return fresh
            stored = await mp.repos.instance.get_admin_token_hash()
            return "set" if stored else None
        finally:
            await mp.db.disconnect()

    result = _run(run)
    if regenerate:
        click.echo(f"New admin API token (shown once, keep it safe): {result}")
    elif result:
        click.echo(
            "An admin token is set (only its hash is stored). Use --regenerate to replace it."
        )
    else:
        click.echo("No admin token yet: `mail-proxy serve` generates one on first start.")
