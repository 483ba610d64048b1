"""The ``message_events`` table: a message's history for the API, and the reporting outbox.

Events are written by the dispatcher and the receipt handlers in the same transaction as the
status change they record. This repository reads them for ``messages/get`` and
``messages/list`` with ``include_history``, and serves the reporting loop
(``dispatch/reporting.py``): which tenants have unreported events, a tenant's oldest unreported
events in order, and marking events reported once a client acknowledged them.

Event ids (the ``id`` column) only grow (``AUTOINCREMENT`` on SQLite, an identity on PostgreSQL),
so ordering by id is event order. ``ix_message_events_unreported (tenant_id, reported_ts, id)``
answers both outbox queries from the index.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..engine import Database
from ..jsontext import decode_json
from ..schema import message_events, messages, tenants
from .message_upsert import json_values


@dataclass(frozen=True, slots=True)
class OutboxTenant:
    """A tenant as the reporting loop sees it: whether it is active and has unreported events."""

    tenant_id: str
    active: bool
    pending: bool


class EventsRepo:
    """Reads of ``message_events``; the outbox queries of the reporting loop."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def history(self, message_pks: Collection[int]) -> dict[int, list[dict[str, Any]]]:
        """The events of each message in ``message_pks``, oldest first, in one query.

        Returns ``{message pk: [event, ...]}`` with an entry (possibly empty) for every pk asked
        for. Each event is ``{event_id, event_type, event_ts, description, metadata,
        reported_ts}``; ``event_id`` is the event's uuid (the id delivery reports carry) and
        ``metadata`` is decoded (``{}`` when absent).
        """
        history: dict[int, list[dict[str, Any]]] = {int(pk): [] for pk in message_pks}
        if not history:
            return history
        query = (
            sa.select(
                message_events.c.message_pk,
                message_events.c.event_uuid,
                message_events.c.event_type,
                message_events.c.event_ts,
                message_events.c.description,
                message_events.c.metadata,
                message_events.c.reported_ts,
            )
            .where(
                message_events.c.message_pk.in_(
                    json_values(self._db.dialect, list(history), sa.BigInteger)
                )
            )
            .order_by(message_events.c.message_pk, message_events.c.id)
        )
        for row in await self._db.fetch_all(query):
            history[int(row["message_pk"])].append(
                {
                    "event_id": row["event_uuid"],
                    "event_type": row["event_type"],
                    "event_ts": row["event_ts"],
                    "description": row["description"],
                    "metadata": decode_json(row["metadata"], {}),
                    "reported_ts": row["reported_ts"],
                }
            )
        return history

    async def outbox_overview(self) -> list[OutboxTenant]:
        """Every tenant, ordered by id, with its ``active`` flag and whether it has unreported
        events (one index probe per tenant, however many events are waiting)."""
        return [
            OutboxTenant(row["id"], bool(row["active"]), bool(row["pending"]))
            for row in await self._db.fetch_all(OVERVIEW_SQL)
        ]

    async def unreported(
        self, tenant_id: str, limit: int, *, after: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's oldest ``limit`` unreported events, in event order.

        ``after`` skips events whose row id is not greater (those already handed to a reporter
        whose acknowledgement is not written yet). Each is ``{id, event_id, tenant_id,
        message_id, event_type, event_ts, description, metadata}``: ``id`` is the row id (for
        :meth:`mark_reported`), ``event_id`` the uuid, ``message_id`` the client's message id
        and ``metadata`` decoded (``{}`` when absent).
        """
        values = {"tenant_id": tenant_id, "after": -1 if after is None else after, "limit": limit}
        return [
            {
                "id": row["id"],
                "event_id": row["event_uuid"],
                "tenant_id": row["tenant_id"],
                "message_id": row["message_id"],
                "event_type": row["event_type"],
                "event_ts": row["event_ts"],
                "description": row["description"],
                "metadata": decode_json(row["metadata"], {}),
            }
            for row in await self._db.fetch_all(UNREPORTED_SQL, values)
        ]

    async def mark_reported(self, event_ids: Sequence[int], ts: int) -> int:
        """Set ``reported_ts = ts`` on the events with these row ids that are still unreported;
        return how many changed (an event deleted meanwhile, with its message, is skipped)."""
        if not event_ids:
            return 0
        values = {"ts": ts, "ids": json.dumps([int(event_id) for event_id in event_ids])}
        rows = await self._db.fetch_all(_mark_reported_sql(self._db.dialect), values)
        return len(rows)


# The outbox statements run for every report, so they are SQL text rather than expressions
# compiled on every call (compiling cost more than running them). Same text on both databases
# except how a JSON list of ids is expanded (as in ``message_upsert.json_values``).

OVERVIEW_SQL = (
    "SELECT t.id, t.active, EXISTS (SELECT 1 FROM message_events AS e "
    "WHERE e.tenant_id = t.id AND e.reported_ts IS NULL) AS pending "
    "FROM tenants AS t ORDER BY t.id"
)
"""Every tenant with its active flag and whether it has an unreported event."""

UNREPORTED_SQL = (
    "SELECT e.id, e.event_uuid, e.tenant_id, m.id AS message_id, e.event_type, e.event_ts, "
    "e.description, e.metadata "
    "FROM message_events AS e JOIN messages AS m ON m.pk = e.message_pk "
    "WHERE e.tenant_id = :tenant_id AND e.reported_ts IS NULL AND e.id > :after "
    "ORDER BY e.id LIMIT :limit"
)
"""A tenant's oldest unreported events after a row id (``ix_message_events_unreported``)."""


@functools.cache
def _mark_reported_sql(dialect: str) -> str:
    if dialect == "sqlite":
        ids = "SELECT value FROM json_each(:ids)"
    else:
        ids = "SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:ids AS json))"
    return (
        f"UPDATE message_events SET reported_ts = :ts WHERE id IN ({ids}) "
        "AND reported_ts IS NULL RETURNING id"
    )


def _check_columns() -> None:
    # The statements are SQL text: fail at import, not at the first report, if a table changed.
    wanted = {
        message_events: {"id", "event_uuid", "tenant_id", "message_pk", "event_type", "event_ts",
                         "description", "metadata", "reported_ts"},
        messages: {"pk", "id"},
        tenants: {"id", "active"},
    }  # fmt: skip
    for table, columns in wanted.items():
        missing = sorted(columns - set(table.c.keys()))
        if missing:
            raise RuntimeError(f"unknown column(s) {missing} of {table.name}; update events.py")


_check_columns()
