"""Logging set-up of the ``mail-proxy`` commands: text or JSON lines, and the access log.

``MAILPROXY_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``message`` and every ``extra`` field the code attached, such as ``tenant_id`` or
``message_id``), for log shippers. The access log (logger ``mailproxy.access``, one INFO line
per request: method, path, status, duration, principal) is on by default and turned off with
``MAILPROXY_ACCESS_LOG=false``. Query strings are never logged (they may carry ids a tenant
considers private); neither are bodies or headers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from quart import Quart, Response, g, request

from .settings import Settings

ACCESS_LOGGER = "mailproxy.access"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the standard fields plus the record's ``extra`` values."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Send log records to stderr at ``settings.log_level``, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger(ACCESS_LOGGER).disabled = not settings.access_log


def install_access_log(app: Quart) -> None:
    """Log every request once it is answered: method, path, status, duration, principal."""
    log = logging.getLogger(ACCESS_LOGGER)

    @app.before_request
    async def _start_clock() -> None:
        g.access_started = time.perf_counter()

    @app.after_request
    async def _log_request(response: Response) -> Response:
        if log.disabled or not log.isEnabledFor(logging.INFO):
            return response
        started = g.get("access_started")
        duration = None if started is None else time.perf_counter() - started
        principal = g.get("principal")
        who = "-" if principal is None else principal_label(principal)
        log.info(
            "%s %s %d %s %s",
            request.method,
            request.path,
            response.status_code,
            "-" if duration is None else f"{duration * 1000:.1f}ms",
            who,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration": None if duration is None else round(duration, 6),
                "principal": who,
            },
        )
        return response


def principal_label(principal: Any) -> str:
    """Who called, for logs and the command log: ``admin``, ``tenant:<id>``, or
    ``tenant:<id>/<name>`` when the tenant's credentials have a name of their own (an EE API
    key's name, never the key)."""
    if principal.is_admin:
        return "admin"
    label = f"tenant:{principal.tenant_id}"
    if principal.name and principal.name != principal.tenant_id:
        label += f"/{principal.name}"
    return label
