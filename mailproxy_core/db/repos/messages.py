"""The ``messages`` table: enqueue, read, delete, count (docs/api.md-§4).

Rows come back as dicts with ``payload`` decoded. Enqueueing writes whole batches in one
transaction with the JSON-parameter upsert of ``message_upsert.py``; lookups of many ids use
``json_values`` so a batch of any size costs one query per tenant.

For the dispatcher, which claims rows with its own statements: a message is enqueued (or
replaced) as ``status='pending'``, ``attempts=0``, no lease, ``next_attempt_ts =
max(deferred_ts, now)``; ``created_at`` and ``pk`` are kept on replacement (queue position); a
replacement only ever touches ``pending``/``deferred`` rows, so a claimed (``sending``) row is never
rewritten under a worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from ...pacing import Pacer
from ..engine import Database, Row
from ..jsontext import decode_json
from ..schema import LEASED_STATUS, READY_STATUSES, accounts, message_events, messages, tenants
from .message_upsert import encode_rows_yielding, json_values, upsert_sql

ACTIVE_STATUSES = (*READY_STATUSES, LEASED_STATUS)
"""Statuses of a message that is not finished: pending, deferred, sending."""

FINISHED_STATUSES = ("sent", "error")
"""Statuses of a message that will not be sent (again)."""

DEFAULT_CHUNK_ROWS = 500
"""Rows per enqueue statement: bounds the size of one JSON parameter and one statement."""

_DELETE_CHUNK = 1000

MESSAGE_COLUMNS = (
    "pk",
    "id",
    "tenant_id",
    "account_id",
    "status",
    "priority",
    "batch_code",
    "deferred_ts",
    "next_attempt_ts",
    "attempts",
    "smtp_ts",
    "last_error",
    "created_at",
    "updated_at",
    "payload",
    "message_id_header",
)
"""The columns :meth:`MessagesRepo.get` and :meth:`MessagesRepo.list` return."""

DeleteOutcome = Literal["deleted", "not_found", "in_flight"]

REQUEUE_STATUSES = ("error", "deferred")
"""Statuses ``messages/retry`` puts back in the queue."""


@dataclass(slots=True)
class RequeueOutcome:
    """What ``requeue`` did with each id, in the order asked."""

    requeued: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueuedRow:
    """One message to enqueue; ``payload`` is the JSON text to store."""

    tenant_id: str
    id: str
    account_id: str
    account_pk: str
    priority: int
    payload: str
    batch_code: str | None = None
    deferred_ts: int | None = None
    message_id_header: str | None = None


@dataclass(slots=True)
class EnqueueOutcome:
    """What :meth:`MessagesRepo.enqueue` did.

    ``stored`` maps ``(tenant_id, id)`` to the ``pk`` of each row inserted or replaced, and
    ``created_at`` to its creation time (kept on replacement); ``blocked`` maps ``(tenant_id,
    id)`` to the status of each existing row that was left alone because it is being sent or
    finished. ``now`` is the enqueue time (``updated_at``).
    """

    now: int
    stored: dict[tuple[str, str], int] = field(default_factory=dict)
    created_at: dict[tuple[str, str], int] = field(default_factory=dict)
    blocked: dict[tuple[str, str], str] = field(default_factory=dict)
    message_id_headers: dict[tuple[str, str], str] = field(default_factory=dict)
    """The Message-ID stored for each row written (a replacement may keep its earlier one)."""

    def next_attempt_ts(self, row: QueuedRow) -> int:
        """When ``row`` becomes ready: ``max(deferred_ts, now)``."""
        return self.now if row.deferred_ts is None else max(row.deferred_ts, self.now)


class MessagesRepo:
    """Queries on ``messages`` for the API; the dispatcher claims rows with its own queries."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], float] = time.time,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        self._db = db
        self._clock = clock
        self.chunk_rows = chunk_rows
        self._upsert: str | None = None

    # -- what validation needs -----------------------------------------------------------------

    async def tenant_states(self, tenant_ids: Collection[str]) -> dict[str, bool]:
        """``{tenant id: active}`` for those of ``tenant_ids`` that exist (one query)."""
        if not tenant_ids:
            return {}
        query = sa.select(tenants.c.id, tenants.c.active).where(
            tenants.c.id.in_(json_values(self._db.dialect, tenant_ids))
        )
        return {row["id"]: bool(row["active"]) for row in await self._db.fetch_all(query)}

    async def account_pks(self, pairs: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """``{(tenant id, account id): account pk}`` for the ``pairs`` that exist (one query)."""
        if not pairs:
            return {}
        dialect = self._db.dialect
        query = sa.select(accounts.c.tenant_id, accounts.c.id, accounts.c.pk).where(
            accounts.c.tenant_id.in_(json_values(dialect, {tenant for tenant, _ in pairs})),
            accounts.c.id.in_(json_values(dialect, {account for _, account in pairs})),
        )
        found = {(r["tenant_id"], r["id"]): r["pk"] for r in await self._db.fetch_all(query)}
        return {pair: pk for pair, pk in found.items() if pair in pairs}

    # -- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, rows: Sequence[QueuedRow]) -> EnqueueOutcome:
        """Insert or replace ``rows`` in one transaction; see ``message_upsert.py``.

        ``(tenant_id, id)`` must be unique within ``rows`` (the caller merges duplicates). New
        rows are stored in the order given. Either every row is written (or reported in
        ``blocked``) or, on any database error, nothing is.
        """
        outcome = EnqueueOutcome(now=int(self._clock()))
        if not rows:
            return outcome
        async with self._db.transaction():
            for start in range(0, len(rows), self.chunk_rows):
                chunk = rows[start : start + self.chunk_rows]
                for row in await self._write_chunk(chunk, outcome):
                    key = (row["tenant_id"], row["id"])
                    outcome.stored[key] = int(row["pk"])
                    outcome.created_at[key] = int(row["created_at"])
                    outcome.message_id_headers[key] = row["message_id_header"]
            if len(outcome.stored) < len(rows):
                missing = [
                    (r.tenant_id, r.id) for r in rows if (r.tenant_id, r.id) not in outcome.stored
                ]
                outcome.blocked = await self._statuses(missing)
        return outcome

    async def _write_chunk(self, chunk: Sequence[QueuedRow], outcome: EnqueueOutcome) -> list[Row]:
        """Upsert one chunk; returns ``pk, tenant_id, id, created_at`` of the rows written."""
        if self._upsert is None:
            self._upsert = upsert_sql(self._db.dialect)
        encoded = await encode_rows_yielding(_row_values(row, outcome) for row in chunk)
        return await self._db.fetch_all(self._upsert, {"rows": encoded})

    async def _statuses(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, message_id in keys:
            by_tenant.setdefault(tenant_id, []).append(message_id)
        found: dict[tuple[str, str], str] = {}
        for tenant_id, ids in by_tenant.items():
            query = sa.select(messages.c.id, messages.c.status).where(
                messages.c.tenant_id == tenant_id,
                messages.c.id.in_(json_values(self._db.dialect, ids)),
            )
            for row in await self._db.fetch_all(query):
                found[(tenant_id, row["id"])] = row["status"]
        return found

    # -- read ----------------------------------------------------------------------------------

    async def get(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        """The message ``message_id`` of ``tenant_id``, or ``None``."""
        query = _select_messages().where(
            messages.c.tenant_id == tenant_id, messages.c.id == message_id
        )
        row = await self._db.fetch_one(query)
        return None if row is None else _decode(row)

    async def count_active(self, tenant_id: str | None = None) -> int:
        """Messages pending, deferred or sending: of one tenant, or of all when ``None``."""
        query = sa.select(sa.func.count()).select_from(messages)
        query = query.where(messages.c.status.in_(ACTIVE_STATUSES))
        if tenant_id is not None:
            query = query.where(messages.c.tenant_id == tenant_id)
        return int(await self._db.fetch_val(query) or 0)

    async def count_pending(self, tenant_id: str, batch_code: str | None = None) -> int:
        """A tenant's messages waiting to be sent (pending or deferred), optionally of one batch."""
        query = sa.select(sa.func.count()).select_from(messages)
        query = query.where(
            messages.c.tenant_id == tenant_id, messages.c.status.in_(READY_STATUSES)
        )
        if batch_code is not None:
            query = query.where(messages.c.batch_code == batch_code)
        return int(await self._db.fetch_val(query) or 0)

    # -- delete --------------------------------------------------------------------------------

    async def delete(self, pk: int, *, tenant_id: str | None = None) -> DeleteOutcome:
        """Delete message ``pk`` (only if it belongs to ``tenant_id``, when given).

        A message being sent is not deleted (``"in_flight"``); events go with the message.
        """
        scope = [messages.c.pk == pk]
        if tenant_id is not None:
            scope.append(messages.c.tenant_id == tenant_id)
        delete = messages.delete().where(*scope, ~_leased()).returning(messages.c.pk)
        async with self._db.transaction():
            if await self._db.fetch_one(delete) is not None:
                return "deleted"
            status = await self._db.fetch_val(sa.select(messages.c.status).where(*scope))
        return "not_found" if status is None else "in_flight"

    async def delete_many(self, tenant_id: str, ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Delete a tenant's messages by client id, in one transaction.

        Returns ``(removed ids, in-flight ids)``; messages being sent are kept. Ids that match
        nothing are in neither list.
        """
        if not ids:
            return [], []
        dialect = self._db.dialect
        in_ids = messages.c.id.in_(json_values(dialect, ids))
        async with self._db.transaction():
            delete = (
                messages.delete()
                .where(messages.c.tenant_id == tenant_id, in_ids, ~_leased())
                .returning(messages.c.id)
            )
            removed = {row["id"] for row in await self._db.fetch_all(delete)}
            kept = sa.select(messages.c.id).where(messages.c.tenant_id == tenant_id, in_ids)
            in_flight = {row["id"] for row in await self._db.fetch_all(kept)}
        return [i for i in ids if i in removed], [i for i in ids if i in in_flight]

    async def requeue(
        self, tenant_id: str, ids: Sequence[str], *, requested_by: str
    ) -> RequeueOutcome:
        """Put a tenant's ``error`` and ``deferred`` messages back in the queue, ready now.

        Each requeued message becomes ``pending`` with ``attempts = 0`` (a full set of retries)
        and gets a ``requeued`` event naming ``requested_by``; the event is history only, marked
        reported at once (clients learn the outcome from the next ``sent``/``error``). Messages
        in another status are left alone and listed in ``skipped`` with it. One transaction.
        """
        outcome = RequeueOutcome()
        if not ids:
            return outcome
        now = int(self._clock())
        in_ids = messages.c.id.in_(json_values(self._db.dialect, ids))
        async with self._db.transaction():
            update = (
                messages.update()
                .where(
                    messages.c.tenant_id == tenant_id,
                    in_ids,
                    messages.c.status.in_(REQUEUE_STATUSES),
                )
                .values(
                    status="pending",
                    attempts=0,
                    next_attempt_ts=now,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
                .returning(messages.c.pk, messages.c.id)
            )
            requeued = {row["id"]: row["pk"] for row in await self._db.fetch_all(update)}
            description = f"requeued by {requested_by}"
            for message_id in ids:
                pk = requeued.pop(message_id, None)
                if pk is None:
                    continue
                outcome.requeued.append(message_id)
                await self._db.execute(
                    message_events.insert().values(
                        event_uuid=str(uuid.uuid4()),
                        message_pk=pk,
                        tenant_id=tenant_id,
                        event_type="requeued",
                        event_ts=now,
                        description=description,
                        reported_ts=now,
                    )
                )
            others = sa.select(messages.c.id, messages.c.status).where(
                messages.c.tenant_id == tenant_id, in_ids
            )
            statuses = {row["id"]: row["status"] for row in await self._db.fetch_all(others)}
        done = set(outcome.requeued)
        for message_id in dict.fromkeys(ids):
            if message_id in done:
                continue
            status = statuses.get(message_id)
            if status is None:
                outcome.not_found.append(message_id)
            else:
                outcome.skipped.append({"id": message_id, "reason": status})
        return outcome

    async def cleanup(self, tenant_id: str, older_than_seconds: int) -> int:
        """Delete a tenant's finished messages whose events are all reported.

        Finished = ``sent`` or ``error``, last changed more than ``older_than_seconds`` ago.
        Deletes in chunks inside one transaction (memory stays bounded); returns the count.
        """
        cutoff = int(self._clock()) - older_than_seconds
        unreported = sa.exists().where(
            message_events.c.message_pk == messages.c.pk, message_events.c.reported_ts.is_(None)
        )
        doomed = (
            sa.select(messages.c.pk)
            .where(
                messages.c.tenant_id == tenant_id,
                messages.c.status.in_(FINISHED_STATUSES),
                messages.c.updated_at < cutoff,
                ~unreported,
            )
            .limit(_DELETE_CHUNK)
            .scalar_subquery()
        )
        delete = messages.delete().where(messages.c.pk.in_(doomed)).returning(messages.c.pk)
        removed = 0
        async with self._db.transaction():
            while True:
                count = len(await self._db.fetch_all(delete))
                removed += count
                if count < _DELETE_CHUNK:
                    return removed

    async def search(
        self,
        *,
        tenant_id: str | None = None,
        status: str | None = None,
        text: str | None = None,
        client_id: str | None = None,
        batch_code: str | None = None,
        created_from: int | None = None,
        created_to: int | None = None,
        before_pk: int | None = None,
        limit: int = 50,
        text_window: int = 2000,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of messages, newest first, and the cursor of the next page (or ``None``).

        Every filter is optional and they combine: ``tenant_id``, ``status``, ``client_id``
        and ``batch_code`` match exactly, ``created_from``/``created_to`` bound ``created_at``
        (unix seconds, inclusive), ``text`` is a case-insensitive substring of the stored
        payload (the caller checks in which field it occurs). ``before_pk`` is the cursor: only
        messages with a smaller pk. The ``(tenant_id, pk)``, ``(tenant_id, status, pk)`` and
        ``(tenant_id, batch_code, pk)`` indexes serve the order.

        A ``text`` search reads at most the ``text_window`` newest messages that pass the other
        filters, so that one page costs the same on any queue size; when the window ends before
        the page is full, the cursor continues the search below the window (the page may then
        hold fewer than ``limit`` messages, or none).
        """
        conditions: list[sa.ColumnElement[bool]] = []
        if tenant_id is not None:
            conditions.append(messages.c.tenant_id == tenant_id)
        if status is not None:
            conditions.append(messages.c.status == status)
        if client_id is not None:
            conditions.append(messages.c.id == client_id)
        if batch_code is not None:
            conditions.append(messages.c.batch_code == batch_code)
        if created_from is not None:
            conditions.append(messages.c.created_at >= created_from)
        if created_to is not None:
            conditions.append(messages.c.created_at <= created_to)
        if before_pk is not None:
            conditions.append(messages.c.pk < before_pk)
        window_floor: int | None = None
        window_full = False
        if text:
            window = (
                sa.select(messages.c.pk)
                .where(*conditions)
                .order_by(messages.c.pk.desc())
                .limit(text_window)
                .subquery()
            )
            bounds = await self._db.fetch_one(
                sa.select(sa.func.min(window.c.pk).label("floor"), sa.func.count().label("n"))
            )
            if bounds is None or bounds["floor"] is None:
                return [], None
            window_floor = int(bounds["floor"])
            window_full = int(bounds["n"]) == text_window
            escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(messages.c.pk >= window_floor)
            conditions.append(
                sa.func.lower(sa.cast(messages.c.payload, sa.Text)).like(
                    f"%{escaped}%", escape="\\"
                )
            )
        query = _select_messages().where(*conditions).order_by(messages.c.pk.desc()).limit(limit)
        rows = [_decode(row) for row in await self._db.fetch_all(query)]
        if len(rows) == limit:
            return rows, int(rows[-1]["pk"])
        if window_full and window_floor is not None:
            return rows, window_floor
        return rows, None

    async def status_counts(self, tenant_id: str | None = None) -> dict[str, int]:
        """Messages per status, of one tenant or (``None``) of every tenant."""
        query = sa.select(messages.c.status, sa.func.count().label("n")).group_by(messages.c.status)
        if tenant_id is not None:
            query = query.where(messages.c.tenant_id == tenant_id)
        return {row["status"]: int(row["n"]) for row in await self._db.fetch_all(query)}

    # Last in the class: below it, ``list`` would name this method in annotations.
    async def list(
        self,
        tenant_id: str | None,
        *,
        active_only: bool = False,
        status: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of a tenant's messages (all tenants' with ``None``), in creation order (pk).

        ``active_only`` keeps pending, deferred and sending messages; ``status`` keeps one
        status (both filters apply when both are given).
        """
        query = _select_messages()
        if tenant_id is not None:
            query = query.where(messages.c.tenant_id == tenant_id)
        if active_only:
            query = query.where(messages.c.status.in_(ACTIVE_STATUSES))
        if status is not None:
            query = query.where(messages.c.status == status)
        query = query.order_by(messages.c.pk).limit(limit).offset(offset)
        rows = await self._db.fetch_all(query)
        decoded = []
        pacer = Pacer()  # a page of large payloads is tens of megabytes of JSON to decode
        for row in rows:
            decoded.append(_decode(row))
            await pacer.pause()
        return decoded


def _leased() -> sa.ColumnElement[bool]:
    return messages.c.status == LEASED_STATUS


def _row_values(row: QueuedRow, outcome: EnqueueOutcome) -> tuple[Any, ...]:
    """The values of one row, in ``UPSERT_COLUMNS`` order."""
    now = outcome.now
    return (
        row.tenant_id,
        row.id,
        row.account_id,
        row.account_pk,
        row.priority,
        row.batch_code,
        row.payload,
        row.deferred_ts,
        outcome.next_attempt_ts(row),
        now,
        now,
        row.message_id_header,
    )


def _select_messages() -> sa.Select[Any]:
    return sa.select(*(messages.c[name] for name in MESSAGE_COLUMNS))


def _decode(row: Row) -> dict[str, Any]:
    decoded = dict(row)
    decoded["payload"] = decode_json(row["payload"], {})
    return decoded
