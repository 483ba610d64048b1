"""The ``command_log`` table: the audit trail of state-changing API calls.

Entries are written by the API's command recorder (``api/command_recording.py``) and read by the
``command_log`` entity. ``payload`` arrives already encoded (the recorder has the request's JSON
text at hand and encodes at most once: a ``messages/add_batch`` body can be half a megabyte), with
secrets already masked; ``response_body`` is a small JSON value encoded here.

Order: ids grow with insertion (identity / ``AUTOINCREMENT``, never reused), so ``id`` order is
the order in which calls were recorded — the replay order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..engine import Database, Row
from ..jsontext import decode_json, encoded_json
from ..schema import command_log

_ENTRY_COLUMNS = (
    command_log.c.id,
    command_log.c.command_ts,
    command_log.c.endpoint,
    command_log.c.tenant_id,
    command_log.c.principal,
    command_log.c.payload,
    command_log.c.response_status,
    command_log.c.response_body,
)

_LIKE_ESCAPE = "!"


class CommandLogRepo:
    """Writes, lists and purges command log entries.

    An entry is ``{id, command_ts, endpoint, tenant_id, principal, payload, response_status,
    response_body}`` with ``payload`` and ``response_body`` decoded from JSON.
    """

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self,
        *,
        endpoint: str,
        tenant_id: str | None,
        principal: str | None,
        payload_json: str | None,
        response_status: int,
        response_body: Any = None,
        command_ts: int | None = None,
    ) -> int:
        """Append one entry and return its id.

        Args:
            endpoint: ``"<HTTP method> <path>"``, e.g. ``"POST /tenants/add"``.
            tenant_id: the tenant the call concerns, if any.
            principal: who called: ``"admin"`` or ``"tenant:<id>"``.
            payload_json: the request body as JSON text, secrets already masked (``None`` when
                the body was not JSON).
            response_status: the HTTP status answered.
            response_body: a short JSON-able summary of the answer (no secrets).
            command_ts: unix seconds; default now.
        """
        insert = (
            command_log.insert()
            .values(
                command_ts=int(self._clock()) if command_ts is None else command_ts,
                endpoint=endpoint,
                tenant_id=tenant_id,
                principal=principal,
                payload=payload_json,
                response_status=response_status,
                response_body=_encode_ascii(response_body),
            )
            .returning(command_log.c.id)
        )
        return int(await self._db.fetch_val(insert))

    async def get(self, command_id: int, *, encoded: bool = False) -> dict[str, Any] | None:
        """One entry, or ``None`` when there is no entry with that id.

        With ``encoded``, ``payload`` and ``response_body`` stay JSON text
        (:class:`~mailproxy_core.db.jsontext.JSONText`): a payload can be tens of megabytes.
        """
        row = await self._db.fetch_one(
            sa.select(*_ENTRY_COLUMNS).where(command_log.c.id == command_id)
        )
        return None if row is None else _entry(row, encoded)

    async def list(
        self,
        *,
        tenant_id: str | None = None,
        since_ts: int | None = None,
        until_ts: int | None = None,
        endpoint_filter: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
        encoded: bool = False,
    ) -> list[dict[str, Any]]:
        """Entries matching every given filter, oldest first (replay order).

        Args:
            tenant_id: only entries of this tenant.
            since_ts: only entries with ``command_ts >= since_ts``.
            until_ts: only entries with ``command_ts <= until_ts``.
            endpoint_filter: only entries whose endpoint contains this text (any case;
                ``%`` and ``_`` match themselves).
            limit: at most this many entries (``None``: no limit).
            offset: skip this many matching entries first.
            encoded: leave ``payload`` and ``response_body`` as JSON text (see :meth:`get`).
        """
        query = sa.select(*_ENTRY_COLUMNS).order_by(command_log.c.id).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        for condition in _conditions(tenant_id, since_ts, until_ts, endpoint_filter):
            query = query.where(condition)
        return [_entry(row, encoded) for row in await self._db.fetch_all(query)]

    async def purge(self, threshold_ts: int) -> int:
        """Delete every entry with ``command_ts < threshold_ts``; return how many were deleted."""
        older = command_log.c.command_ts < threshold_ts
        async with self._db.transaction():
            found = await self._db.fetch_one(
                sa.select(
                    sa.func.count().label("n"), sa.func.max(command_log.c.id).label("last")
                ).where(older)
            )
            count = int(found["n"]) if found is not None else 0
            if found is not None and count:
                # Bounded by the last counted id, so the answer matches what was deleted even
                # when calls are being recorded meanwhile.
                await self._db.execute(
                    command_log.delete().where(older, command_log.c.id <= found["last"])
                )
        return count


def _conditions(
    tenant_id: str | None,
    since_ts: int | None,
    until_ts: int | None,
    endpoint_filter: str | None,
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if tenant_id is not None:
        conditions.append(command_log.c.tenant_id == tenant_id)
    if since_ts is not None:
        conditions.append(command_log.c.command_ts >= since_ts)
    if until_ts is not None:
        conditions.append(command_log.c.command_ts <= until_ts)
    if endpoint_filter:
        # The pattern is built here, not with ``contains(autoescape=True)``: that puts literal
        # ``%`` in the SQL text, which the SQLite backend of ``databases`` cannot format.
        text = endpoint_filter.lower()
        for char in (_LIKE_ESCAPE, "%", "_"):
            text = text.replace(char, _LIKE_ESCAPE + char)
        pattern = f"%{text}%"
        conditions.append(sa.func.lower(command_log.c.endpoint).like(pattern, escape=_LIKE_ESCAPE))
    return conditions


def _encode_ascii(value: Any) -> str | None:
    # ASCII escapes: an answer echoing a lone surrogate must not make the insert fail (and so
    # keep the call out of the audit trail).
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _entry(row: Row, encoded: bool) -> dict[str, Any]:
    value = encoded_json if encoded else decode_json
    entry = dict(row)
    entry["payload"] = value(row["payload"])
    entry["response_body"] = value(row["response_body"])
    return entry
