"""The ``mail-proxy`` command.

Local commands (``serve``, ``worker``, ``migrate``, ``plugins``, ``token``) act on the local
installation; ``serve NAME``, ``list``, ``stop``, ``restart``, ``use`` and ``current`` manage named
instances; ``stats``, ``send``, ``run-now``, ``connect`` and the generated entity commands
(``tenants add``, ``messages list`` ...) talk to a running instance through ``mailproxy_client``.

Start-up stays fast because nothing here imports the kernel until a local command runs: the
entity commands are built from a cached description (see :mod:`mailproxy_cli.catalog`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from . import operator as ops
from . import overrides
from .remote import AliasGroup

# Local commands live in the kernel (mailproxy_core.cli) and are imported only when run.
LAZY_LOCAL = {
    "worker": "Run only the dispatcher (scale-out processes sharing one PostgreSQL database).",
    "migrate": "Apply pending schema migrations of the core and every plugin.",
    "plugins": "List plugins: built-in, loaded, failed (with the error) and disabled.",
}
OPERATOR = {
    "token": ops.token,
    "list": ops.list_instances,
    "stop": ops.stop,
    "restart": ops.restart,
    "use": ops.use,
    "current": ops.current,
    "stats": ops.stats,
    "send": ops.send,
    "run-now": ops.run_now,
    "connect": ops.connect,
}
OVERRIDES: dict[tuple[str, str], Callable[[dict[str, Any]], click.Command]] = {
    ("messages", "add_batch"): overrides.add_batch_command,
    ("command_log", "export"): overrides.export_command,
}


class MailProxyCLI(AliasGroup):
    """Local and operator commands, plus the entity commands built from the endpoints."""

    _remote: dict[str, click.Command] | None = None

    def remote_commands(self) -> dict[str, click.Command]:
        """The entity groups, by dashed name."""
        if self._remote is None:
            from .catalog import CatalogError, load_commands
            from .remote import build_groups

            try:
                specs = load_commands()
            except CatalogError as err:
                click.echo(f"mail-proxy: {err.detail}", err=True)
                sys.exit(2)
            self._remote = {
                group.name: group for group in build_groups(specs, OVERRIDES) if group.name
            }
        return self._remote

    def _known(self, ctx: click.Context, name: str) -> bool:
        return (
            name in self.commands or name in LAZY_LOCAL or self.get_command(ctx, name) is not None
        )

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Accept the instance-scoped forms ``NAME COMMAND`` and ``NAME TENANT COMMAND``."""
        from .instances import exists

        rest = list(args)
        if rest and not rest[0].startswith("-") and not self._known(ctx, rest[0]):
            if exists(rest[0]):
                ctx.meta["mp_instance"] = rest.pop(0)
                if rest and not rest[0].startswith("-") and not self._known(ctx, rest[0]):
                    ctx.meta["mp_tenant"] = rest.pop(0)
        return super().parse_args(ctx, rest)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Local and operator commands first, then the entities."""
        names = list(self.commands) + list(LAZY_LOCAL)
        return names + sorted(set(self.remote_commands()) - set(names))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A command by name; local kernel commands are imported on first use."""
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        if cmd_name in LAZY_LOCAL:
            return _LazyLocal(cmd_name, help=LAZY_LOCAL[cmd_name])
        remote = self.remote_commands()
        return remote.get(cmd_name) or remote.get(cmd_name.replace("_", "-"))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Commands in three sections: local, instances and operator, remote entities."""
        sections = (
            ("Local commands (no running instance needed)", ["serve", *LAZY_LOCAL, "token"]),
            ("Named instances and context", ["list", "stop", "restart", "use", "current"]),
            ("Operator commands (talk to an instance)", ["stats", "send", "run-now", "connect"]),
            ("Entity commands (talk to an instance)", sorted(self.remote_commands())),
        )
        for title, names in sections:
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is not None:
                    rows.append((name, command.get_short_help_str(limit=70)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


class _LazyLocal(click.Command):
    """A kernel command, imported when it runs or shows its help."""

    def __init__(self, name: str, help: str) -> None:
        super().__init__(name, help=help, short_help=help, add_help_option=False)

    def _real(self) -> click.Command:
        from mailproxy_core import cli as local

        command = local.main.commands[self.name or ""]
        return command

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        """The kernel command's own context (so the kernel's command runs), on the selected
        instance's settings file unless ``--config``, ``MAILPROXY_DB`` or ``MAILPROXY_CONFIG``
        says otherwise."""
        return self._real().make_context(
            info_name, _with_instance_config(args, parent), parent=parent, **extra
        )


def _with_instance_config(args: list[str], parent: click.Context | None) -> list[str]:
    import os

    if "--help" in args or "-h" in args:
        return args
    if "--config" in args or any(arg.startswith("--config=") for arg in args):
        return args
    if any(os.environ.get(key) for key in ("MAILPROXY_DB", "MAILPROXY_CONFIG", "GMP_DB_PATH")):
        return args
    from .instances import resolve_instance

    explicit = parent.meta.get("mp_instance") if parent else None
    inst = resolve_instance(explicit)
    if inst is None or not inst.config_path.is_file():
        return args
    return [*args, "--config", str(inst.config_path)]


@click.group(
    cls=MailProxyCLI,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="mailproxy-core", prog_name="mail-proxy")
def main() -> None:
    """mail-proxy: multi-tenant outbound e-mail relay.

    \b
    Quick start:
      mail-proxy serve demo            start a named instance in the background
      mail-proxy use demo              make it the current one
      mail-proxy tenants add acme --name "Acme"
      mail-proxy messages list acme

    Remote commands find the instance's URL and token by themselves: --url/--token,
    then MAILPROXY_URL/MAILPROXY_API_TOKEN, then the selected named instance. Instance-scoped
    forms work too: 'mail-proxy NAME stats', 'mail-proxy NAME TENANT send mail.eml'.
    """


@main.command()
@click.argument("name", required=False)
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="TOML settings file.")
@click.option("--host", default=None, help="Listen address (MAILPROXY_HOST).")
@click.option("-p", "--port", type=int, default=None, help="Listen port (MAILPROXY_PORT).")
@click.option(
    "-c",
    "--connect",
    "open_connect",
    is_flag=True,
    help="With NAME: open 'connect' once the instance runs.",
)
def serve(
    name: str | None, config: str | None, host: str | None, port: int | None, open_connect: bool
) -> None:
    """Run the service here, or start the named instance NAME in the background.

    Without NAME the API, the dispatcher and the background loops run in this process until
    Ctrl-C. With NAME the instance in ~/.mail-proxy/NAME (or $MAILPROXY_HOME/NAME) is created
    if needed (its own config, SQLite database, admin token and log) and started in the
    background; an instance already running is left as it is.
    """
    if name:
        if config or host:
            raise click.UsageError("--config and --host apply to 'serve' without NAME only")
        ops.start_named(name, port, open_connect)
        return
    from mailproxy_core import cli as local

    ctx = click.get_current_context()
    ctx.invoke(local.serve, config=config, host=host, port=port)


for _name, _command in OPERATOR.items():
    main.add_command(_command, _name)

__all__ = ["main"]
