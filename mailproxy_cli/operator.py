"""Operator commands: named instances, the current context, token, stats, send, run-now and
connect."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import click

from . import instances as inst_mod
from .output import emit, emit_json
from .remote import (
    call,
    common_options,
    make_client,
)


def _with_common(command: click.Command) -> click.Command:
    command.params.extend(common_options())
    return command


# -- named instances -----------------------------------------------------------------------


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_instances(as_json: bool) -> None:
    """List the named instances, running or not, with their URL and PID."""
    rows = []
    for inst in inst_mod.all_instances():
        pid = inst.pid()
        rows.append({"name": inst.name, "url": inst.url, "pid": pid, "running": pid is not None})
    if as_json:
        emit_json(rows)
    elif rows:
        emit(rows, as_json=False)
    else:
        click.echo(
            f"No instances yet in {inst_mod.home_dir()}: create one with 'mail-proxy serve NAME'."
        )


def _targets(name: str | None) -> list[inst_mod.Instance]:
    if name:
        if not inst_mod.exists(name):
            raise click.UsageError(f"no instance named {name!r}; see 'mail-proxy list'")
        return [inst_mod.instance(name)]
    return inst_mod.all_instances()


@click.command()
@click.argument("name", required=False)
@click.option("-f", "--force", is_flag=True, help="Kill at once instead of a graceful stop.")
def stop(name: str | None, force: bool) -> None:
    """Stop the named instance, or every running instance when no NAME is given."""
    targets = _targets(name)
    stopped = 0
    for inst in targets:
        if inst_mod.stop(inst, force=force):
            click.echo(f"Stopped {inst.name}.")
            stopped += 1
        elif name:
            click.echo(f"{inst.name} is not running.")
    if not name and not stopped:
        click.echo("No instance was running.")


@click.command()
@click.argument("name", required=False)
def restart(name: str | None) -> None:
    """Stop and start the named instance (NAME defaults to the selected one)."""
    inst = inst_mod.resolve_instance(name)
    if inst is None or not inst.config_path.is_file():
        raise click.UsageError("name the instance to restart; see 'mail-proxy list'")
    inst_mod.stop(inst, force=False)
    pid = inst_mod.start(inst)
    click.echo(f"Restarted {inst.name} at {inst.url} (pid {pid}).")


def start_named(name: str, port: int | None, open_connect: bool) -> None:
    """``serve NAME``: create the instance if needed and start it in the background."""
    inst = inst_mod.instance(name)
    if not inst.config_path.is_file():
        inst_mod.create(inst, port)
        click.echo(f"Created instance {name} in {inst.path}.")
    pid = inst.pid()
    if pid is not None:
        click.echo(f"{name} is already running at {inst.url} (pid {pid}).")
    else:
        if port and port != inst.port:
            inst_mod.set_port(inst, port)
        pid = inst_mod.start(inst)
        click.echo(f"Started {name} at {inst.url} (pid {pid}); log: {inst.log_path}")
    if open_connect:
        ctx = click.get_current_context()
        ctx.meta["mp_instance"] = name
        ctx.invoke(connect)


@click.command("token")
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="TOML settings file.")
@click.option("--regenerate", is_flag=True, help="Replace the admin token with a new one.")
def token(config: str | None, regenerate: bool) -> None:
    """Show where the admin token is, or make a new one with --regenerate.

    For a named instance the token is its 'token' file; --regenerate writes a new one and
    restarts the instance if it runs. Otherwise the token of the local database is meant.
    """
    inst = (
        None
        if config or _settings_from_env()
        else inst_mod.resolve_instance(click.get_current_context().meta.get("mp_instance"))
    )
    if inst is None or not inst.config_path.is_file():
        from mailproxy_core import cli as local

        click.get_current_context().invoke(local.token, config=config, regenerate=regenerate)
        return
    if not regenerate:
        click.echo(
            f"The admin token of {inst.name} is in {inst.token_path} (readable by its owner "
            "only); remote commands use it by themselves. --regenerate replaces it."
        )
        return
    inst_mod.write_token(inst)
    click.echo(f"New admin token written to {inst.token_path}.")
    if inst.pid() is not None:
        inst_mod.stop(inst, force=False)
        inst_mod.start(inst)
        click.echo(f"Restarted {inst.name}: the old token no longer works.")


def _settings_from_env() -> bool:
    return any(os.environ.get(key) for key in ("MAILPROXY_DB", "MAILPROXY_CONFIG", "GMP_DB_PATH"))


# -- context ---------------------------------------------------------------------------------


@click.command()
@click.argument("target", metavar="NAME | NAME/TENANT | /TENANT")
def use(target: str) -> None:
    """Select the current instance and tenant for the commands that follow."""
    name, slash, tenant = target.partition("/")
    current_name, _current_tenant = inst_mod.read_current()
    if not name:
        name = current_name or ""
        if not name:
            raise click.UsageError("no current instance yet: use NAME/TENANT")
    if not inst_mod.exists(name):
        raise click.UsageError(f"no instance named {name!r}; see 'mail-proxy list'")
    inst_mod.write_current(name, tenant if slash else None)
    click.echo(f"Now using {name}" + (f", tenant {tenant}." if tenant else "."))


@click.command()
@click.option("--export", "as_export", is_flag=True, help="Print shell export lines.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def current(as_export: bool, as_json: bool) -> None:
    """Show the current instance and tenant."""
    inst = inst_mod.resolve_instance(click.get_current_context().meta.get("mp_instance"))
    tenant = inst_mod.resolve_tenant(click.get_current_context().meta.get("mp_tenant"))
    name = inst.name if inst else None
    if as_json:
        emit_json({"instance": name, "tenant": tenant, "url": inst.url if inst else None})
    elif as_export:
        if name:
            click.echo(f"export GMP_INSTANCE={name}")
        if tenant:
            click.echo(f"export GMP_TENANT={tenant}")
    elif name:
        click.echo(f"instance: {name} ({inst.url})" if inst else "")
        click.echo(f"tenant:   {tenant or '-'}")
    else:
        click.echo("No instance selected: 'mail-proxy use NAME'.")


def _tenant(argument: str | None) -> str:
    tenant = inst_mod.resolve_tenant(argument or click.get_current_context().meta.get("mp_tenant"))
    if not tenant:
        raise click.UsageError("name the tenant (argument, 'mail-proxy use /TENANT' or GMP_TENANT)")
    return tenant


# -- stats, send, run-now ----------------------------------------------------------------------


def _all_messages(opts: dict[str, Any], tenant_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    while True:
        page = call(
            "GET",
            "/messages/list",
            {"tenant_id": tenant_id, "limit": 10000, "offset": len(rows)},
            opts,
        )
        rows += page
        if len(page) < 10000:
            return rows


@click.command()
def stats(**opts: Any) -> None:
    """Tenants, accounts, and messages by status, per tenant."""
    tenants = call("GET", "/tenants/list", {}, opts)
    per_tenant = []
    totals: Counter[str] = Counter()
    for tenant in tenants:
        accounts = call("GET", "/accounts/list", {"tenant_id": tenant["id"]}, opts)
        statuses = Counter(m["status"] for m in _all_messages(opts, tenant["id"]))
        totals.update(statuses)
        per_tenant.append(
            {
                "tenant": tenant["id"],
                "active": tenant.get("active"),
                "accounts": len(accounts),
                **{
                    s: statuses.get(s, 0)
                    for s in ("pending", "deferred", "sending", "sent", "error")
                },
            }
        )
    document = {
        "tenants": len(tenants),
        "accounts": sum(row["accounts"] for row in per_tenant),
        "messages": dict(totals),
        "per_tenant": per_tenant,
    }
    if opts["mp_json"]:
        emit_json(document)
        return
    click.echo(
        f"{document['tenants']} tenants, {document['accounts']} accounts, "
        f"{sum(totals.values())} messages"
        + (": " + ", ".join(f"{n} {s}" for s, n in sorted(totals.items())) if totals else "")
    )
    if per_tenant:
        emit(per_tenant, as_json=False)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "tenant_id", default=None, help="Tenant [default: the current one].")
@click.option("--account", "account_id", default=None, help="Account that sends it.")
@click.option("--priority", default=None, help="0..3 or immediate, high, medium, low.")
@click.option("--id", "message_id", default=None, help="Message id [default: derived].")
def send(
    file: Path,
    tenant_id: str | None,
    account_id: str | None,
    priority: str | None,
    message_id: str | None,
    **opts: Any,
) -> None:
    """Queue an RFC 5322 file (.eml) as a message of the current tenant.

    Headers, the text and HTML bodies and every attachment are kept; attachments travel
    base64-encoded inside the message.
    """
    from .mail_file import message_from_eml

    tenant = _tenant(tenant_id)
    try:
        message = message_from_eml(file.read_bytes())
    except ValueError as exc:
        raise click.UsageError(f"{file}: {exc}") from exc
    message["tenant_id"] = tenant
    if account_id:
        message["account_id"] = account_id
    if priority is not None:
        message["priority"] = int(priority) if priority.isdigit() else priority
    message["id"] = message_id or f"{file.stem}-{os.urandom(4).hex()}"
    if "account_id" not in message:
        accounts = call("GET", "/accounts/list", {"tenant_id": tenant}, opts)
        if len(accounts) != 1:
            raise click.UsageError(
                f"tenant {tenant!r} has {len(accounts)} accounts: choose one with --account"
            )
        message["account_id"] = accounts[0]["id"]
    result = call("POST", "/messages/add", message, opts)
    if opts["mp_json"]:
        emit_json(result)
    else:
        click.echo(f"Queued {result['id']} (pk {result['pk']}) for tenant {tenant}.")


@click.command("run-now")
@click.argument("tenant_id", required=False)
def run_now(tenant_id: str | None, **opts: Any) -> None:
    """Send what is ready and report to clients now (TENANT: poll that tenant at once)."""
    tenant = tenant_id or click.get_current_context().meta.get("mp_tenant")
    result = call("POST", "/instance/run_now", {"tenant_id": tenant} if tenant else {}, opts)
    if opts["mp_json"]:
        emit_json(result)
    else:
        click.echo(
            "Dispatcher and reporter woken" + (f"; tenant {tenant} polled." if tenant else ".")
        )


for _command in (stats, send, run_now):
    _with_common(_command)


# -- connect -------------------------------------------------------------------------------


@click.command()
@click.option("--url", "mp_url", default=None, help="Base URL [default: as remote commands].")
@click.option("--token", "mp_token", default=None, help="Token [default: as remote commands].")
def connect(mp_url: str | None = None, mp_token: str | None = None) -> None:
    """An interactive Python prompt with 'proxy', a ready client of the instance.

    Try proxy.status(), proxy.tenants.list(), proxy.messages.list(tenant_id="acme").
    Private and secret-bearing attributes are not reachable from the prompt.
    """
    from .repl import run_repl

    client = make_client(mp_url, mp_token)
    run_repl(client)
