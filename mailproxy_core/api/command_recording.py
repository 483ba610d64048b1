"""Record every state-changing API call in the command log (docs/api.md, docs/architecture.md).

What is recorded: every ``POST`` to a generated ``/{entity}/{method}`` route, whatever its
outcome — 2xx, 4xx (403, 404, 409, 422 ...) and 5xx — with the status answered, and the ``GET``
form of a write served for compatibility (``GET /messages/cleanup``, with its query parameters
as the payload). Not recorded: other ``GET`` calls (they change nothing), plugin blueprint
routes (not part of the generated API), and calls answered 401 (no principal was established:
recording them would let anyone without a token fill the log). ``command_log/purge`` is
recorded like any other write, after the purge, so the trail shows who purged and when.

An entry holds:

* ``endpoint`` — ``"POST /tenants/add"``;
* ``principal`` — ``"admin"``, or ``"tenant:<id>"``, or ``"tenant:<id>/<name>"`` when the
  tenant's credentials have a name of their own (an EE API key's name; never the key);
* ``tenant_id`` — a tenant caller's own tenant; for the admin the body's ``tenant_id``, else the
  ``id`` of ``tenants/add``, else the one tenant all entries of a ``messages/add_batch`` name;
  else ``None``;
* ``payload`` — the JSON body with every secret masked (``"***"``): at any depth, any key that
  :func:`~mailproxy_core.crypto.is_secret_key` recognises with the names of
  ``entities.secrets.CONFIG_SECRET_KEYS`` (the defaults plus cloud-storage names such as
  ``key``, ``account_key``, ``connection_string``): account and IMAP passwords, ``client_auth``
  tokens and passwords, ``report_signing_secret``, storage credentials, attachment ``auth``
  tokens. A body that is not JSON is recorded as ``None``;
* ``response_status`` and ``response_body`` — the answer, masked too (an EE ``api_key`` shown once
  is never logged); an answer longer than ``RESPONSE_SUMMARY_BYTES`` is summarised: scalar fields
  kept (strings cut to ``MAX_SUMMARY_TEXT`` characters), each array or object replaced by
  ``{"count": N}``, and ``"_truncated": true`` added.

Cost: the view keeps the body it parsed (``g``, see ``json_yielding.PARSED_BODY``), so the recorder
parses it again only when the view did not (a body refused before parsing), walks it for secret keys
(a per-key-name cache keeps that cheap) and stores the client's own JSON text unchanged when
nothing had to be masked: the payload is encoded at most once. One ``INSERT`` per call, in the
request, before the answer leaves, so a call is in the log when the client sees its result.

A failure to record is logged (with the endpoint, never the payload) and does not change the
answer: the call itself already succeeded or failed on its own.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import TYPE_CHECKING, Any

from quart import Quart, Response, g, request
from quart.wrappers.response import DataBody

from ..crypto import MASK, is_secret_key
from ..db.outage import is_unavailable
from ..logs import principal_label
from ..pacing import Pacer
from ..records.secrets import CONFIG_SECRET_KEYS
from .endpoint import GET_FORM_SUFFIX
from .errors import outage_log
from .json_limits import too_deep
from .json_yielding import (
    PARSED_BODY,
    YIELDING_THRESHOLD_BYTES,
    loads_yielding,
    too_deep_yielding,
)

if TYPE_CHECKING:
    from ..kernel import MailProxy
    from ..models import Principal

logger = logging.getLogger(__name__)

GENERATED_ROUTE_PREFIX = "mailproxy_api:"
"""Quart endpoint names of the generated routes: ``mailproxy_api:<entity>:<method>``."""

RESPONSE_SUMMARY_BYTES = 2048
"""Answers up to this size (JSON text) are recorded whole; longer ones are summarised."""

MAX_SUMMARY_TEXT = 200
"""Strings in a summarised answer are cut to this many characters."""


def install_command_recording(app: Quart, mp: MailProxy) -> None:
    """Record the state-changing calls served by ``app`` in ``mp.repos.command_log``.

    Relies on the generated routes' authentication having stored the caller in
    ``g.principal`` (``create_app`` does).
    """

    @app.after_request
    async def record_command(response: Response) -> Response:
        route = request.endpoint or ""
        if not route.startswith(GENERATED_ROUTE_PREFIX):
            return response
        if request.method != "POST" and not route.endswith(GET_FORM_SUFFIX):
            return response
        if response.status_code == 401:
            return response
        try:
            await _record(mp, route, response)
        except Exception as exc:
            if is_unavailable(exc):
                # the call itself was answered 503: the outage is logged once, not per call
                outage_log(app).failed(exc)
                return response
            logger.error(
                "could not record %s %s (status %s) in the command log",
                request.method,
                request.path,
                response.status_code,
                exc_info=True,
                extra={"endpoint": f"{request.method} {request.path}"},
            )
        return response


async def _record(mp: MailProxy, route: str, response: Response) -> None:
    principal: Principal | None = g.get("principal")
    _, entity, method = [*route.removesuffix(GET_FORM_SUFFIX).split(":", 2), "", ""][:3]
    if response.status_code == 413:
        # The body was refused unread: record the call without it.
        body, payload_json = None, None
    else:
        if request.method == "GET":
            raw = json.dumps(request.args.to_dict(flat=True)).encode()
        else:
            raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        parsed = g.get(PARSED_BODY, NOT_PARSED)
        if len(raw) > YIELDING_THRESHOLD_BYTES:
            body, payload_json = await masked_large_payload(raw, parsed)
        else:
            body, payload_json = masked_payload(raw, parsed)
    await mp.repos.command_log.record(
        endpoint=f"{request.method} {request.path}",
        tenant_id=attributed_tenant(entity, method, body, principal),
        principal=_principal_label(principal),
        payload_json=payload_json,
        response_status=response.status_code,
        response_body=await _response_summary(response),
    )


NOT_PARSED: Any = object()
"""``parsed`` of :func:`masked_payload` when the body has not been parsed yet."""


async def masked_large_payload(raw: bytes, parsed: Any = NOT_PARSED) -> tuple[Any, str | None]:
    """:func:`masked_payload` for a large body, in pieces that hand the event loop back."""
    if parsed is NOT_PARSED:
        if not raw.strip() or await too_deep_yielding(raw):
            return None, None
        try:
            parsed = await loads_yielding(raw)
        except ValueError:
            return None, None
    pacer = Pacer()
    masked, changed = await _mask_yielding(parsed, pacer)
    if not changed:
        try:
            return parsed, raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return masked, await _dumps_yielding(masked, pacer)


async def _mask_yielding(value: Any, pacer: Pacer) -> tuple[Any, bool]:
    """:func:`mask_secret_values`, pausing between containers."""
    await pacer.pause()
    if isinstance(value, dict):
        changed = False
        result: dict[Any, Any] = {}
        for key, item in value.items():
            flag = item is None or isinstance(item, bool)
            if not flag and isinstance(key, str) and _is_secret(key):
                result[key] = MASK
                changed = True
            else:
                result[key], inner = await _mask_yielding(item, pacer)
                changed = changed or inner
        return (result if changed else value), changed
    if isinstance(value, list):
        if _only_scalars(value):
            return value, False
        items = [await _mask_yielding(item, pacer) for item in value]
        if any(inner for _, inner in items):
            return [item for item, _ in items], True
        return value, False
    return value, False


async def _dumps_yielding(value: Any, pacer: Pacer) -> str:
    """``json.dumps(value, separators=(",", ":"))``, encoding containers member by member."""
    await pacer.pause()
    if isinstance(value, dict) and value:
        parts = [
            f"{json.dumps(str(key))}:{await _dumps_yielding(item, pacer)}"
            for key, item in value.items()
        ]
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list) and value and not _only_scalars(value):
        return "[" + ",".join([await _dumps_yielding(item, pacer) for item in value]) + "]"
    return json.dumps(value, separators=(",", ":"))


def _only_scalars(values: list[Any]) -> bool:
    """Whether no member of ``values`` is a dict or a list (one pass in C over the members)."""
    return not any(issubclass(kind, dict | list) for kind in set(map(type, values)))


def masked_payload(raw: bytes, parsed: Any = NOT_PARSED) -> tuple[Any, str | None]:
    """The request body decoded and masked, and the JSON text to store for it.

    ``parsed`` is the body already parsed from ``raw``, if it was. Returns ``(None, None)``
    for an empty or non-JSON body, and for one nested deeper than the API accepts (refused
    unparsed, see ``json_limits``). When nothing was masked the client's own text is stored
    (no second encoding); otherwise the masked value is encoded.
    """
    if not raw.strip():
        return None, None
    if parsed is not NOT_PARSED:
        body = parsed
    else:
        if too_deep(raw):
            return None, None
        try:
            body = json.loads(raw)
        except ValueError:
            return None, None
    masked, changed = mask_secret_values(body)
    if not changed:
        try:
            return body, raw.decode("utf-8")
        except UnicodeDecodeError:
            pass  # UTF-16/32 JSON: re-encode below
    # ASCII escapes: a lone surrogate (valid JSON, not valid UTF-8) must not make the insert fail.
    return masked, json.dumps(masked, separators=(",", ":"))


def mask_secret_values(value: Any) -> tuple[Any, bool]:
    """Mask secrets like ``crypto.mask_secrets``; also say whether anything was masked.

    Key names are those of ``CONFIG_SECRET_KEYS`` (a superset of the defaults), so whatever the
    entities encrypt at rest is also masked here.

    The recursion copies only what it changes, and key names are checked once each (a 1,000
    message batch repeats the same few keys thousands of times).
    """
    if isinstance(value, dict):
        changed = False
        result: dict[Any, Any] = {}
        for key, item in value.items():
            flag = item is None or isinstance(item, bool)  # "no secret" / has_credentials: true
            if not flag and isinstance(key, str) and _is_secret(key):
                result[key] = MASK
                changed = True
            else:
                result[key], inner = mask_secret_values(item)
                changed = changed or inner
        return (result if changed else value), changed
    if isinstance(value, list):
        if _only_scalars(value):
            return value, False  # a list of scalars (recipients ...): nothing to look into
        items = [mask_secret_values(item) for item in value]
        if any(inner for _, inner in items):
            return [item for item, _ in items], True
        return value, False
    return value, False


@functools.lru_cache(maxsize=4096)
def _is_secret(key: str) -> bool:
    return is_secret_key(key, CONFIG_SECRET_KEYS)


def attributed_tenant(
    entity: str, method: str, body: Any, principal: Principal | None
) -> str | None:
    """The tenant a call concerns (see the module docstring), or ``None``."""
    if principal is not None and not principal.is_admin:
        return principal.tenant_id
    if not isinstance(body, dict):
        return None
    tenant_id = body.get("tenant_id")
    if _is_id(tenant_id):
        return str(tenant_id)
    if (entity, method) == ("tenants", "add") and _is_id(body.get("id")):
        return str(body["id"])
    messages = body.get("messages")
    if (entity, method) == ("messages", "add_batch") and isinstance(messages, list):
        named = {entry.get("tenant_id") for entry in messages if isinstance(entry, dict)}
        if len(named) == 1:
            (only,) = named
            return str(only) if _is_id(only) else None
    return None


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255


def _principal_label(principal: Principal | None) -> str | None:
    return None if principal is None else principal_label(principal)


async def _response_summary(response: Response) -> Any:
    if not isinstance(response.response, DataBody):
        return None  # a streamed or file answer: reading it here would consume it
    raw = await response.get_data(as_text=False)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # generated routes answer JSON; anything else is not worth the risk
    masked, _ = mask_secret_values(value)
    if len(raw) <= RESPONSE_SUMMARY_BYTES:
        return masked
    return summarise(masked)


def summarise(value: Any) -> Any:
    """A short stand-in for a long JSON answer (see the module docstring).

    ``{"ok": true, "queued": 3, "rejected": [...900 entries...]}`` becomes
    ``{"ok": true, "queued": 3, "rejected": {"count": 900}, "_truncated": true}``.
    """
    if isinstance(value, dict):
        summary = {str(key): _summary_item(item) for key, item in value.items()}
        summary["_truncated"] = True
        return summary
    if isinstance(value, list):
        return {"count": len(value), "_truncated": True}
    return _summary_item(value)


def _summary_item(value: Any) -> Any:
    if isinstance(value, dict | list):
        return {"count": len(value)}
    if isinstance(value, str) and len(value) > MAX_SUMMARY_TEXT:
        return value[:MAX_SUMMARY_TEXT] + "…"
    return value
