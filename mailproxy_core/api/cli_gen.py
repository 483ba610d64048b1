"""Generate the remote CLI commands from the endpoint methods (API.md §8).

``mail-proxy <entity> <method> ...`` talks to a running instance over HTTP, one command per
endpoint method: ``mail-proxy tenants add acme --name Acme``, ``mail-proxy messages list acme``,
``mail-proxy tenants suspend_batch acme``. The mapping from the method's signature:

* required parameters → positional arguments, in signature order;
* optional parameters → ``--option-name`` (underscores become dashes); left out, they are not
  sent at all, so the server's default applies;
* ``bool`` → ``--flag/--no-flag``; ``Literal``/``Enum`` → a choice; ``int``/``float`` → numbers;
  lists, dicts and anything else → a JSON string (``--config '{"root": "/srv"}'``);
* a method taking ``**kwargs`` gets ``--extra '<JSON object>'`` merged into the request.

Common options: ``--url`` (``MAILPROXY_URL``, default ``http://127.0.0.1:8000``), ``--token``
(``MAILPROXY_API_TOKEN``, sent as ``X-API-Token``), ``--timeout`` seconds and ``--json``.
Output: the result pretty-printed (a string result printed as is); with ``--json`` exactly one
compact JSON document on stdout, also on failure (the error body). Errors are described on
stderr; exit status 1 for an HTTP error, 2 when the instance cannot be reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import click
import httpx

from ..errors import PluginError
from .endpoint import MethodInfo, collect_methods
from .signature import (
    ParamInfo,
    is_scalar,
    literal_values,
    unwrap_optional,
    without_args_section,
)

if TYPE_CHECKING:
    from ..specs import EndpointSpec

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
EXIT_HTTP_ERROR = 1
EXIT_CONNECTION_ERROR = 2
_RESERVED_OPTIONS = frozenset({"--url", "--token", "--timeout", "--json", "--extra", "--help"})


class JsonParamType(click.ParamType):
    """A command-line value given as JSON text (``'["a", "b"]'``, ``'{"k": 1}'``)."""

    name = "json"

    def __init__(self, *, object_only: bool = False) -> None:
        self.object_only = object_only

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Decode the JSON text; fails with a usage error naming the problem."""
        if not isinstance(value, str):
            return value
        try:
            decoded = json.loads(value)
        except ValueError as exc:
            self.fail(
                f"{value!r} is not valid JSON ({exc}); quote it for the shell, e.g. "
                '\'{"key": "value"}\' or \'["a", "b"]\'',
                param,
                ctx,
            )
        if self.object_only and not isinstance(decoded, dict):
            self.fail('expected a JSON object, e.g. \'{"key": "value"}\'', param, ctx)
        return decoded


class ValueChoice(click.Choice):
    """A choice among ``Literal``/``Enum`` values, typed on the command line as text."""

    def __init__(self, values: Iterable[Any]) -> None:
        self._by_text = {str(value): value for value in values}
        super().__init__(list(self._by_text))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The original value (``1``, not ``"1"``) of the chosen text."""
        text = super().convert(value, param, ctx)
        return self._by_text.get(str(text), text)


def _click_type(annotation: Any) -> click.ParamType:
    inner, _ = unwrap_optional(annotation)
    values = literal_values(inner)
    if values is not None:
        return ValueChoice(values)
    if inner is bool:
        return click.BOOL
    if inner is int:
        return click.INT
    if inner is float:
        return click.FLOAT
    if is_scalar(inner):
        return click.STRING
    return JsonParamType()


def _option_help(param: ParamInfo) -> str:
    parts = [param.description] if param.description else []
    if param.default is not None:
        try:
            parts.append(f"[server default: {json.dumps(param.default)}]")
        except (TypeError, ValueError):
            parts.append(f"[server default: {param.default!r}]")
    return " ".join(parts)


def _click_param(info: MethodInfo, param: ParamInfo) -> click.Parameter:
    dest = f"p_{param.name}"
    if param.required:
        return click.Argument(
            [dest], type=_click_type(param.annotation), metavar=param.name.upper()
        )
    option = "--" + param.name.replace("_", "-")
    if option in _RESERVED_OPTIONS:
        raise PluginError(
            f"endpoint method {info.qualname} ({info.owner}): parameter {param.name!r} clashes "
            f"with the CLI's own {option} option; rename the parameter"
        )
    inner, _ = unwrap_optional(param.annotation)
    if inner is bool:
        return click.Option(
            [f"{option}/--no-{option[2:]}", dest], default=None, help=_option_help(param)
        )
    return click.Option(
        [option, dest], type=_click_type(param.annotation), default=None, help=_option_help(param)
    )


def _common_options() -> list[click.Parameter]:
    return [
        click.Option(
            ["--url", "mp_url"],
            envvar="MAILPROXY_URL",
            default=DEFAULT_URL,
            show_default=True,
            show_envvar=True,
            help="Base URL of the running mail-proxy instance.",
        ),
        click.Option(
            ["--token", "mp_token"],
            envvar="MAILPROXY_API_TOKEN",
            default=None,
            show_envvar=True,
            help="API token (admin token or tenant key), sent as X-API-Token.",
        ),
        click.Option(
            ["--timeout", "mp_timeout"],
            type=click.FLOAT,
            default=DEFAULT_TIMEOUT,
            show_default=True,
            help="Seconds to wait for the instance.",
        ),
        click.Option(
            ["--json", "mp_json"],
            is_flag=True,
            default=False,
            help="Print exactly one JSON document on stdout.",
        ),
    ]


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def call_remote(
    info: MethodInfo, payload: dict[str, Any], *, url: str, token: str | None, timeout: float
) -> httpx.Response:
    """Send one request for ``info`` to the instance at ``url``.

    GET methods send ``payload`` as query parameters (bools as ``true``/``false``, lists and
    dicts JSON-encoded); POST methods send it as the JSON body.

    Raises:
        httpx.TransportError: the instance could not be reached or did not answer in time.
        httpx.InvalidURL: ``url`` is not a usable URL.
    """
    headers = {"Accept": "application/json", "User-Agent": "mail-proxy-cli"}
    if token:
        headers["X-API-Token"] = token
    with httpx.Client(base_url=url, timeout=timeout, headers=headers) as client:
        if info.http_method == "GET":
            params = {name: _query_value(value) for name, value in payload.items()}
            return client.get(info.path, params=params)
        return client.post(info.path, json=payload)


def _emit(result: Any, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    elif isinstance(result, str):
        click.echo(result)
    else:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))


def _report_http_error(response: httpx.Response, *, as_json: bool, token: str | None) -> None:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:500] or response.reason_phrase
        body = {"detail": text, "code": f"http_{response.status_code}"}
    click.echo(
        f"Error: HTTP {response.status_code} {body.get('code', '')}: {body.get('detail', '')}",
        err=True,
    )
    if response.status_code == 401 and not token:
        click.echo("Hint: pass --token or set MAILPROXY_API_TOKEN.", err=True)
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False))


def _make_callback(info: MethodInfo) -> Callable[..., None]:
    def callback(
        mp_url: str, mp_token: str | None, mp_timeout: float, mp_json: bool, **kwargs: Any
    ) -> None:
        payload: dict[str, Any] = {}
        for param in info.params:
            value = kwargs.get(f"p_{param.name}")
            if value is not None or param.required:
                payload[param.name] = value
        payload.update(kwargs.get("mp_extra") or {})
        ctx = click.get_current_context()
        try:
            response = call_remote(info, payload, url=mp_url, token=mp_token, timeout=mp_timeout)
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            detail = (
                f"cannot reach mail-proxy at {mp_url} ({type(exc).__name__}: {exc}). Start the "
                "service with 'mail-proxy serve', or pass --url (or set MAILPROXY_URL) to reach "
                "a running instance."
            )
            click.echo(f"Error: {detail}", err=True)
            if mp_json:
                click.echo(json.dumps({"detail": detail, "code": "connection_error"}))
            ctx.exit(EXIT_CONNECTION_ERROR)
        if response.status_code >= 400:
            _report_http_error(response, as_json=mp_json, token=mp_token)
            ctx.exit(EXIT_HTTP_ERROR)
        try:
            result = response.json()
        except ValueError:
            click.echo(response.text)
            return
        _emit(result, as_json=mp_json)

    return callback


def _command_help(info: MethodInfo) -> str:
    description = without_args_section(info.description)
    help_text = "\n\n".join(part for part in (info.summary, description) if part)
    help_text = help_text or f"Call {info.http_method} {info.path}."
    arguments = [param for param in info.params if param.required]
    if arguments:
        lines = ["\b", "Arguments:"]
        lines += [f"  {p.name.upper()}  {p.description}".rstrip() for p in arguments]
        help_text = f"{help_text}\n\n" + "\n".join(lines)
    return f"{help_text}\n\nRemote: {info.http_method} {info.path}."


def build_command(info: MethodInfo) -> click.Command:
    """The click command calling one endpoint method on a running instance.

    Raises:
        PluginError: a parameter whose option name clashes with a common option.
    """
    params = [_click_param(info, param) for param in info.params]
    if info.accepts_extra:
        params.append(
            click.Option(
                ["--extra", "mp_extra"],
                type=JsonParamType(object_only=True),
                default=None,
                help="More request fields, as a JSON object.",
            )
        )
    return click.Command(
        info.name,
        callback=_make_callback(info),
        params=params + _common_options(),
        help=_command_help(info),
        short_help=info.summary or None,
    )


def build_remote_commands(source: Iterable[MethodInfo | EndpointSpec]) -> list[click.Group]:
    """One click group per entity, one command per endpoint method.

    Args:
        source: ``MethodInfo`` objects (e.g. from ``build_api``) and/or ``EndpointSpec`` objects
            (introspected with ``collect_methods``).

    Returns:
        The groups, in the order their entities first appear.

    Raises:
        PluginError: see ``collect_methods`` and :func:`build_command`.
    """
    items = list(source)
    infos = [item for item in items if isinstance(item, MethodInfo)]
    infos += collect_methods([item for item in items if not isinstance(item, MethodInfo)])
    groups: dict[str, click.Group] = {}
    for info in infos:
        group = groups.get(info.entity)
        if group is None:
            group = click.Group(
                info.entity,
                help=f"Remote commands on /{info.entity}/* of a running instance.",
            )
            groups[info.entity] = group
        group.add_command(build_command(info))
    return list(groups.values())
