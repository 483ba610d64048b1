"""Remote commands: one per endpoint method, calling a running instance through the client.

Where the instance is and which token to send, in order: ``--url``/``--token``,
``MAILPROXY_URL``/``MAILPROXY_API_TOKEN``, then the selected named instance's own URL and token
(a named instance gets its own token even when ``MAILPROXY_API_TOKEN`` is set: that token goes
with ``MAILPROXY_URL`` or the default URL).
Exit status: 0 on success, 1 when the instance answered with an error, 2 when it could not be
reached (or for a usage error).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

import click

from .output import emit

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
EXIT_HTTP_ERROR = 1
EXIT_CONNECTION_ERROR = 2


class JsonParamType(click.ParamType):
    """A JSON value on the command line: the text itself, ``@file`` or ``-`` (stdin)."""

    name = "json"

    def __init__(self, *, object_only: bool = False) -> None:
        self.object_only = object_only

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Decode the JSON text (read from the file or stdin first when asked)."""
        if not isinstance(value, str):
            return value
        text = value
        if value == "-":
            text = sys.stdin.read()
        elif value.startswith("@"):
            try:
                with open(value[1:], encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                self.fail(f"cannot read {value[1:]!r}: {exc.strerror}", param, ctx)
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            shown = value if len(value) < 80 else value[:77] + "..."
            self.fail(
                f"{shown!r} is not valid JSON ({exc}); quote it for the shell, e.g. "
                '\'{"key": "value"}\', or pass @file.json or - for stdin',
                param,
                ctx,
            )
        if self.object_only and not isinstance(decoded, dict):
            self.fail('expected a JSON object, e.g. \'{"key": "value"}\'', param, ctx)
        return decoded


class AliasGroup(click.Group):
    """A group whose commands answer to their dashed names and to the underscore spellings."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, ``add_batch`` finding ``add-batch`` and back."""
        command = super().get_command(ctx, cmd_name)
        if command is None and "_" in cmd_name:
            command = super().get_command(ctx, cmd_name.replace("_", "-"))
        return command


def connection(url: str | None, token: str | None) -> tuple[str, str | None]:
    """The URL and token to use (see the module docstring for the order).

    ``MAILPROXY_API_TOKEN`` belongs to ``MAILPROXY_URL`` (or to the default URL): a named
    instance is called with its own token unless ``--token`` says otherwise, so a token exported
    for another instance (the README's quickstart does that) does not make its calls fail.
    """
    url = url or os.environ.get("MAILPROXY_URL") or None
    env_token = os.environ.get("MAILPROXY_API_TOKEN") or None
    if url is None or (token is None and env_token is None):
        from .instances import resolve_instance

        ctx = click.get_current_context(silent=True)
        explicit = ctx.meta.get("mp_instance") if ctx else None
        try:
            inst = resolve_instance(explicit)
        except click.BadParameter:
            inst = None
        if inst is not None and inst.config_path.is_file():
            if url is None:
                url = inst.url
                token = token or inst.token() or env_token
            elif token is None and url.rstrip("/") == inst.url:
                token = inst.token()
        elif explicit:
            raise click.UsageError(f"no instance named {explicit!r}; see 'mail-proxy list'")
    return url or DEFAULT_URL, token or env_token


def make_client(url: str | None, token: str | None, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A ``MailProxyClient`` for the selected instance."""
    from mailproxy_client import MailProxyClient

    resolved_url, resolved_token = connection(url, token)
    return MailProxyClient(resolved_url, resolved_token, timeout=timeout)


def fail_with(err: Any, *, as_json: bool, token_given: bool) -> NoReturn:
    """Report a ``MailProxyError`` and exit (1 for an error answer, 2 when unreachable)."""
    ctx = click.get_current_context()
    if err.status == 0:
        click.echo(
            f"Error: {err.detail}. Start it with 'mail-proxy serve [NAME]', or pass --url (or "
            "set MAILPROXY_URL) to reach a running instance.",
            err=True,
        )
        if as_json:
            click.echo(json.dumps({"detail": err.detail, "code": err.code}))
        ctx.exit(EXIT_CONNECTION_ERROR)
    click.echo(f"Error: HTTP {err.status} {err.code}: {err.detail}", err=True)
    if err.status == 401 and not token_given:
        click.echo(
            "Hint: pass --token, set MAILPROXY_API_TOKEN, or select a named instance "
            "('mail-proxy use NAME') whose token is known.",
            err=True,
        )
    if as_json:
        body = err.body if isinstance(err.body, dict) else {"detail": err.detail, "code": err.code}
        click.echo(json.dumps(body, ensure_ascii=False))
    ctx.exit(EXIT_HTTP_ERROR)


def call(method: str, path: str, payload: dict[str, Any], opts: dict[str, Any]) -> Any:
    """Send one call with the common options ``opts``; on failure report it and exit."""
    from mailproxy_client import MailProxyError

    client = make_client(opts["mp_url"], opts["mp_token"], opts["mp_timeout"])
    try:
        with client:
            return client.request(method, path, payload)
    except MailProxyError as err:
        token = connection(opts["mp_url"], opts["mp_token"])[1]
        fail_with(err, as_json=opts["mp_json"], token_given=bool(token))


def common_options() -> list[click.Parameter]:
    """``--url``, ``--token``, ``--timeout``, ``--json`` and ``--full``."""
    return [
        click.Option(
            ["--url", "mp_url"],
            default=None,
            metavar="URL",
            help="Base URL of the instance [env MAILPROXY_URL; default: the selected named "
            f"instance, else {DEFAULT_URL}].",
        ),
        click.Option(
            ["--token", "mp_token"],
            default=None,
            metavar="TOKEN",
            help="Admin token or tenant API key [env MAILPROXY_API_TOKEN; default: the "
            "selected named instance's token].",
        ),
        click.Option(
            ["--timeout", "mp_timeout"],
            type=click.FLOAT,
            default=DEFAULT_TIMEOUT,
            show_default=True,
            help="Seconds to wait for the instance.",
        ),
        click.Option(["--json", "mp_json"], is_flag=True, help="Print exactly one JSON document."),
        click.Option(
            ["--full", "mp_full"],
            is_flag=True,
            help="Show long values and payloads in full in tables.",
        ),
    ]


def _click_type(param: dict[str, Any]) -> click.ParamType:
    kind = param["kind"]
    if kind == "choice":
        return click.Choice([str(value) for value in param["choices"]])
    return {
        "bool": click.BOOL,
        "int": click.INT,
        "float": click.FLOAT,
        "str": click.STRING,
    }.get(kind) or JsonParamType()


def _typed(param: dict[str, Any], value: Any) -> Any:
    if param["kind"] == "choice":
        for choice in param["choices"]:
            if str(choice) == value:
                return choice
    return value


def _option_help(param: dict[str, Any]) -> str:
    parts = [param["description"]] if param["description"] else []
    if param["kind"] == "json":
        parts.append("JSON text, @file or - for stdin.")
    if param["default"] is not None and param["default"] != []:
        parts.append(f"[server default: {json.dumps(param['default'])}]")
    return " ".join(parts)


def _click_param(param: dict[str, Any]) -> click.Parameter:
    dest = f"p_{param['name']}"
    if param.get("positional", param["required"]):
        metavar = param["name"].upper()
        return click.Argument(
            [dest],
            type=_click_type(param),
            required=param["required"],
            metavar=metavar if param["required"] else f"[{metavar}]",
        )
    option = "--" + param["name"].replace("_", "-")
    if param["kind"] == "bool":
        return click.Option(
            [f"{option}/--no-{option[2:]}", dest], default=None, help=_option_help(param)
        )
    return click.Option([option, dest], type=_click_type(param), help=_option_help(param))


def _command_help(spec: dict[str, Any]) -> str:
    parts = [spec["summary"] or f"Call {spec['http_method']} {spec['path']}."]
    if spec["description"]:
        parts.append(spec["description"])
    arguments = [p for p in spec["params"] if p.get("positional", p["required"])]
    if arguments or spec["accepts_extra"]:
        lines = ["\b", "Arguments:"]
        lines += [f"  {p['name'].upper()}  {p['description']}".rstrip() for p in arguments]
        if spec["accepts_extra"]:
            lines.append("  DATA  the whole request as a JSON object: text, @file or - (stdin)")
        parts.append("\n".join(lines))
    parts.append(f"Calls {spec['http_method']} {spec['path']} on the instance.")
    return "\n\n".join(parts)


def payload_of(spec: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request fields of a command's parsed arguments (options left out are not sent)."""
    payload: dict[str, Any] = dict(kwargs.get("mp_data") or {})
    for param in spec["params"]:
        value = kwargs.get(f"p_{param['name']}")
        if value is not None or param["required"]:
            payload[param["name"]] = _typed(param, value)
    return payload


def _callback(spec: dict[str, Any]) -> Callable[..., None]:
    def callback(**kwargs: Any) -> None:
        result = call(spec["http_method"], spec["path"], payload_of(spec, kwargs), kwargs)
        emit(result, as_json=kwargs["mp_json"], full=kwargs["mp_full"])

    return callback


class RemoteCommand(click.Command):
    """A remote command whose leading TENANT_ID may be left out when a tenant is selected
    (``mail-proxy use NAME/TENANT``, ``GMP_TENANT`` or ``mail-proxy NAME TENANT ...``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args``; when arguments are missing, retry with the selected tenant first."""
        first = next((p for p in self.params if isinstance(p, click.Argument)), None)
        if first is None or first.name != "p_tenant_id" or ctx.resilient_parsing:
            return super().parse_args(ctx, args)
        try:
            return super().parse_args(ctx, list(args))
        except click.MissingParameter:
            from .instances import resolve_tenant

            tenant = resolve_tenant(ctx.meta.get("mp_tenant"))
            if not tenant:
                raise
            ctx.params.clear()
            return super().parse_args(ctx, [tenant, *args])


def build_command(spec: dict[str, Any]) -> click.Command:
    """The click command of one remote command description."""
    params = [_click_param(param) for param in spec["params"]]
    if spec["accepts_extra"]:
        params.append(
            click.Argument(
                ["mp_data"], required=False, type=JsonParamType(object_only=True), metavar="[DATA]"
            )
        )
    return RemoteCommand(
        spec["name"].replace("_", "-"),
        callback=_callback(spec),
        params=params + common_options(),
        help=_command_help(spec),
        short_help=spec["summary"] or None,
    )


def build_groups(
    specs: Iterable[dict[str, Any]],
    overrides: Mapping[tuple[str, str], Callable[[dict[str, Any]], click.Command]] | None = None,
) -> list[click.Group]:
    """One group per entity (dashed names, underscore aliases), one command per method.

    ``overrides`` maps ``(entity, method)`` to a factory of a hand-written command that
    replaces the generated one (it receives the description).
    """
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_entity.setdefault(spec["entity"], []).append(spec)
    return [
        EntityGroup(entity, entity_specs, overrides) for entity, entity_specs in by_entity.items()
    ]


class EntityGroup(AliasGroup):
    """The commands of one entity, built when the group is first used (start-up stays short)."""

    def __init__(
        self,
        entity: str,
        specs: list[dict[str, Any]],
        overrides: Mapping[tuple[str, str], Callable[[dict[str, Any]], click.Command]] | None,
    ) -> None:
        super().__init__(
            entity.replace("_", "-"),
            help=f"Commands on the {entity} of a running instance.",
            short_help=f"Remote: /{entity}/* of a running instance.",
        )
        self._specs = specs
        self._overrides = overrides or {}
        self._built = False

    def _build(self) -> None:
        if self._built:
            return
        self._built = True
        for spec in self._specs:
            factory = self._overrides.get((spec["entity"], spec["name"]))
            self.add_command(factory(spec) if factory else build_command(spec))

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command of the entity, in endpoint order."""
        self._build()
        return list(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """One command of the entity (dashed or underscore name)."""
        self._build()
        return super().get_command(ctx, cmd_name)


def stdin_is_terminal() -> bool:
    """Whether stdin is an interactive terminal."""
    return sys.stdin.isatty()
