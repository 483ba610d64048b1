"""Turn every exception leaving a request into the JSON error body of docs/api.md.

Body: ``{"detail": "<human readable>", "code": "<machine_code>"}``; 422 bodies add ``errors``,
one ``{"field", "message", "type"}`` per bad field. Validation messages never echo the
submitted value (it may be a password). An unexpected exception is logged with its traceback
and answered with a bare ``500 internal error``: its text could hold secrets or internals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, current_app, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ..db.outage import RETRY_AFTER_SECONDS, OutageLog, is_unavailable
from ..errors import InvalidInput, MailproxyError

logger = logging.getLogger(__name__)

_INSTALLED_FLAG = "mailproxy_error_handlers"
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """One ``{"field", "message", "type"}`` entry per error of a pydantic validation error.

    ``field`` is the dotted location (``messages.3.to``); the submitted value is left out.
    """
    entries: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field; check its spelling against the API reference"
        entries.append({"field": field, "message": message, "type": error["type"]})
    return entries


def invalid_input(errors: Iterable[dict[str, Any]]) -> InvalidInput:
    """An ``InvalidInput`` (422) whose ``detail`` names each bad field: ``"port: ..."``."""
    entries = list(errors)
    detail = "; ".join(f"{entry['field']}: {entry['message']}" for entry in entries)
    return InvalidInput(detail or "invalid input", errors=entries)


def _json_error(
    body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    response = current_app.response_class(
        current_app.json.dumps(body), status=status, content_type="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


async def _handle_mailproxy_error(exc: MailproxyError) -> Response:
    if exc.status >= 500:
        logger.error(
            "%s %s failed: %s",
            request.method,
            request.path,
            exc.code,
            exc_info=exc,
            extra={"error_code": exc.code},
        )
    headers = {"WWW-Authenticate": 'Bearer realm="mail-proxy"'} if exc.status == 401 else None
    return _json_error(exc.to_dict(), exc.status, headers)


async def _handle_validation_error(exc: ValidationError) -> Response:
    error = invalid_input(field_errors(exc))
    return _json_error(error.to_dict(), error.status)


async def _handle_schema_validation_error(exc: RequestSchemaValidationError) -> Response:
    inner = exc.validation_error
    if isinstance(inner, ValidationError):
        error = invalid_input(field_errors(inner))
    else:
        error = InvalidInput("the request does not match the expected schema")
    return _json_error(error.to_dict(), error.status)


async def _handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status < 400:
        return exc.get_response()  # type: ignore[return-value]
    code = _HTTP_CODES.get(status) or (exc.name or "http_error").lower().replace(" ", "_")
    detail = exc.description or exc.name or "request failed"
    headers: dict[str, str] = {}
    if isinstance(exc, NotFound) and request.routing_exception is exc:
        detail = (
            f"unknown route {request.method} {request.path}: routes are /{{entity}}/{{method}}; "
            "see /openapi.json for the list"
        )
    elif isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = (
            f"request body larger than {_size(limit)} ({limit} bytes), the limit set by "
            "MAILPROXY_MAX_REQUEST_BYTES; send large attachments by reference (http_url, storage "
            "mount) instead of inline base64, or split the batch"
        )
    elif isinstance(exc, MethodNotAllowed):
        allowed = sorted(set(exc.valid_methods or ()) - {"HEAD", "OPTIONS"})
        detail = f"{request.method} is not allowed on {request.path}; use {' or '.join(allowed)}"
        headers["Allow"] = ", ".join(exc.valid_methods or ())
    return _json_error({"detail": detail, "code": code}, status, headers)


def _size(limit: Any) -> str:
    if not isinstance(limit, int):
        return "the limit"
    if limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"


OUTAGE_LOG_KEY = "mailproxy_outage_log"


def outage_log(app: Quart) -> OutageLog:
    """The app's bounded log of database outages (created on first use)."""
    log = app.extensions.get(OUTAGE_LOG_KEY)
    if not isinstance(log, OutageLog):
        log = app.extensions[OUTAGE_LOG_KEY] = OutageLog(logger)
    return log


def database_unavailable_response() -> Response:
    """503 ``database_unavailable`` with ``Retry-After``."""
    return _json_error(
        {
            "detail": "the database is unavailable; retry in a few seconds",
            "code": "database_unavailable",
        },
        503,
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _handle_unexpected(exc: Exception) -> Response:
    if is_unavailable(exc):
        outage_log(current_app).failed(exc)
        return database_unavailable_response()
    logger.error(
        "unhandled error in %s %s",
        request.method,
        request.path,
        exc_info=exc,
    )
    return _json_error({"detail": "internal error", "code": "internal_error"}, 500)


def install_error_handlers(app: Quart) -> None:
    """Register the JSON error handlers on ``app``; calling it twice is harmless.

    Handled: ``MailproxyError`` (its ``status`` and ``to_dict()``; 401 adds
    ``WWW-Authenticate``), pydantic ``ValidationError`` and quart-schema's
    ``RequestSchemaValidationError`` (422 naming each field), ``HTTPException`` (404 unknown
    route, 405 with ``Allow``, 400 ...), a database that cannot be reached (503 with
    ``Retry-After``, logged as a bounded outage) and any other ``Exception`` (500, logged, text
    hidden).
    """
    if app.extensions.get(_INSTALLED_FLAG):
        return
    app.extensions[_INSTALLED_FLAG] = True
    app.register_error_handler(MailproxyError, _handle_mailproxy_error)
    app.register_error_handler(ValidationError, _handle_validation_error)
    app.register_error_handler(RequestSchemaValidationError, _handle_schema_validation_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
