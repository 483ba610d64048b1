"""Describe the remote CLI commands of the endpoint methods, as plain data.

``mail-proxy <entity> <method> ...`` talks to a running instance over HTTP, one command per
endpoint method. This module turns each method's signature into a JSON-serialisable description
(:func:`describe_commands`); the ``mail-proxy`` command (package ``mailproxy_cli``) builds click
commands from it and caches it, so that remote commands start without importing the kernel.

The mapping from a method's signature:

* required parameters become positional arguments, a ``tenant_id`` always first (an optional
  ``tenant_id`` too, as an optional first argument), then in signature order;
* optional parameters become ``--option-name`` (underscores become dashes); left out, they are
  not sent, so the server's default applies;
* ``bool`` gives ``--flag/--no-flag``; ``Literal``/``Enum`` a choice; ``int``/``float`` numbers;
  lists, dicts and anything else a JSON value (text, ``@file`` or ``-`` for stdin);
* a method taking ``**kwargs`` accepts a JSON object for the whole request (``--data``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any

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

RESERVED_OPTIONS = frozenset(
    {"--url", "--token", "--timeout", "--json", "--data", "--help", "--full", "--instance"}
)
_DOC_NAME = r"(?:API|DESIGN|STYLE)\.md(?:\s?§\s?[\d.]+)?"
_DOC_REFERENCES = (
    (re.compile(r"\s*\((?:see )?" + _DOC_NAME + r"[^)]*\)"), ""),
    (re.compile(r"\s+(?:of|in|see|per|as in|from) " + _DOC_NAME), ""),
    (re.compile(_DOC_NAME), "the documentation"),
)


def terminal_text(text: str) -> str:
    """Docstring text made for a terminal: no reST double backticks, no references to design
    documents a user does not have."""
    text = text.replace("``", "")
    for pattern, replacement in _DOC_REFERENCES:
        text = pattern.sub(replacement, text)
    return text.strip()


def _kind(annotation: Any) -> dict[str, Any]:
    inner, _ = unwrap_optional(annotation)
    values = literal_values(inner)
    if values is not None:
        plain = [value.value if isinstance(value, Enum) else value for value in values]
        return {"kind": "choice", "choices": plain}
    if inner is bool:
        return {"kind": "bool"}
    if inner is int:
        return {"kind": "int"}
    if inner is float:
        return {"kind": "float"}
    if is_scalar(inner):
        return {"kind": "str"}
    return {"kind": "json"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        value = value.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _describe_param(info: MethodInfo, param: ParamInfo) -> dict[str, Any]:
    positional = param.required or param.name == "tenant_id"
    option = "--" + param.name.replace("_", "-")
    if not positional and option in RESERVED_OPTIONS:
        raise PluginError(
            f"endpoint method {info.qualname} ({info.owner}): parameter {param.name!r} clashes "
            f"with the CLI's own {option} option; rename the parameter"
        )
    return {
        "name": param.name,
        "required": param.required,
        "positional": positional,
        "default": _jsonable(param.default) if not param.required else None,
        "description": terminal_text(param.description),
        **_kind(param.annotation),
    }


def describe_command(info: MethodInfo) -> dict[str, Any]:
    """The description of one remote command (JSON-serialisable).

    Raises:
        PluginError: a parameter whose option name clashes with a common option.
    """
    params = [_describe_param(info, param) for param in info.params]
    # The tenant comes first wherever a command takes one, whatever the signature's order.
    params.sort(key=lambda p: 0 if p["name"] == "tenant_id" else 1)
    return {
        "entity": info.entity,
        "name": info.name,
        "http_method": info.http_method,
        "path": info.path,
        "summary": terminal_text(info.summary),
        "description": terminal_text(without_args_section(info.description)),
        "params": params,
        "accepts_extra": info.accepts_extra,
    }


def describe_commands(source: Iterable[MethodInfo | EndpointSpec]) -> list[dict[str, Any]]:
    """One description per endpoint method, in the order the entities first appear.

    Args:
        source: ``MethodInfo`` objects (e.g. from ``build_api``) and/or ``EndpointSpec`` objects
            (introspected with ``collect_methods``).

    Raises:
        PluginError: see ``collect_methods`` and :func:`describe_command`.
    """
    items = list(source)
    infos = [item for item in items if isinstance(item, MethodInfo)]
    infos += collect_methods([item for item in items if not isinstance(item, MethodInfo)])
    return [describe_command(info) for info in infos]
