"""The bulk enqueue statement of ``MessagesRepo`` and the JSON id-list helper.

Why not ``insert(messages).values([...])``: SQLAlchemy compiles a multi-row ``VALUES`` statement
bind parameter by bind parameter on every call (``databases`` has no compiled cache), which costs
about 0.2 ms per row, more than the database needs to store it (measured: ~5,000 rows/s either
way, see docs/performance.md). Here a chunk of rows travels as **one JSON text parameter** and
the database expands it itself (SQLite ``json_each``, PostgreSQL ``json_array_elements``): the
statement text is built once per dialect, compiles in microseconds, has no bound-parameter limit
to mind, and stores 10,000-30,000 rows/s (1 KB payloads; PostgreSQL at the low end).

The statement is an upsert on ``(tenant_id, id)``. A conflicting row is replaced only while it
is ``pending`` or ``deferred`` (the ``WHERE`` of ``DO UPDATE``), which keeps its ``pk`` and
``created_at`` (its queue position) and resets the delivery state. A row being sent or already
finished is left alone and is absent from ``RETURNING``; the caller then reads its status. The
guard sits in the statement, not in an earlier ``SELECT``, so a message claimed by a dispatcher
between validation and the write can never be overwritten (PostgreSQL re-checks the ``WHERE`` on
the locked, current row version).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ...message_ids import GENERATED_PREFIX
from ...pacing import Pacer
from ..schema import READY_STATUSES, messages
from ..url import Dialect

UPSERT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "text"),
    ("id", "text"),
    ("account_id", "text"),
    ("account_pk", "text"),
    ("priority", "smallint"),
    ("batch_code", "text"),
    ("payload", "text"),
    ("deferred_ts", "bigint"),
    ("next_attempt_ts", "bigint"),
    ("created_at", "bigint"),
    ("updated_at", "bigint"),
    ("message_id_header", "text"),
)
"""The columns an enqueued row sets, in the order of each JSON row array, with PostgreSQL types."""

_REPLACED_ON_CONFLICT = (
    "account_id",
    "account_pk",
    "priority",
    "batch_code",
    "payload",
    "deferred_ts",
    "next_attempt_ts",
    "updated_at",
)
_RESET_ON_CONFLICT = {
    "status": "'pending'",
    "attempts": "0",
    "lease_owner": "NULL",
    "lease_until": "NULL",
    "last_error": "NULL",
    "smtp_ts": "NULL",
}


# A replaced message keeps the Message-ID it was given when neither submission named one (its
# earlier attempts may have carried it); a client-given ``message_id`` always wins.
# (substr rather than LIKE: the drivers' parameter formatting would read its "%".)
_PREFIX = f"substr({{}}, 1, {len(GENERATED_PREFIX)}) = '{GENERATED_PREFIX}'"
_KEEP_GENERATED_ID = (
    f"CASE WHEN {_PREFIX.format('excluded.message_id_header')} "
    f"AND {_PREFIX.format('messages.message_id_header')} "
    "THEN messages.message_id_header ELSE excluded.message_id_header END"
)


def _check_columns() -> None:
    # The statement is SQL text: fail at import, not at the first enqueue, if the table changed.
    known = set(messages.c.keys())
    used = {name for name, _ in UPSERT_COLUMNS} | set(_RESET_ON_CONFLICT)
    missing = sorted(used - known)
    if missing:
        raise RuntimeError(f"messages table has no column(s) {missing}; update message_upsert.py")


_check_columns()


def upsert_sql(dialect: Dialect) -> str:
    """The enqueue upsert for ``dialect``: one ``:rows`` parameter.

    Returns ``pk, tenant_id, id, created_at, message_id_header`` of every row inserted or
    replaced.

    ``:rows`` is a JSON array of row arrays in :data:`UPSERT_COLUMNS` order. Rows are inserted in
    array order, so new messages get increasing ``pk`` values in submission order.
    """
    names = [name for name, _ in UPSERT_COLUMNS]
    if dialect == "sqlite":
        picks = ", ".join(f"json_extract(value, '$[{index}]')" for index in range(len(names)))
        # "WHERE true" keeps SQLite from reading ON CONFLICT as a join constraint.
        source = f"SELECT {picks} FROM json_each(:rows) WHERE true ORDER BY key"
    else:
        picks = ", ".join(
            f"CAST(r.v->>{index} AS {sql_type})"
            for index, (_, sql_type) in enumerate(UPSERT_COLUMNS)
        )
        source = (
            f"SELECT {picks} FROM json_array_elements(CAST(:rows AS json)) "
            "WITH ORDINALITY AS r(v, n) ORDER BY r.n"
        )
    assignments = [f"{name} = excluded.{name}" for name in _REPLACED_ON_CONFLICT]
    assignments += [f"{name} = {value}" for name, value in _RESET_ON_CONFLICT.items()]
    assignments.append(f"message_id_header = {_KEEP_GENERATED_ID}")
    ready = ", ".join(f"'{status}'" for status in READY_STATUSES)
    return (
        f"INSERT INTO messages ({', '.join(names)}) {source} "
        f"ON CONFLICT (tenant_id, id) DO UPDATE SET {', '.join(assignments)} "
        f"WHERE messages.status IN ({ready}) "
        "RETURNING pk, tenant_id, id, created_at, message_id_header"
    )


ENCODE_SLICE_SECONDS = 0.01
"""Longest stretch of :func:`encode_rows_yielding` between two yields to the event loop."""


async def encode_rows_yielding(rows: Iterable[Iterable[Any]]) -> str:
    """The ``:rows`` parameter: a compact JSON array of row arrays.

    Encoded one row at a time, handing the event loop back every ``ENCODE_SLICE_SECONDS``: a
    chunk of large messages (payloads of tens of kilobytes each) takes
    long enough to encode in one call that other requests would wait for it."""
    parts = []
    pacer = Pacer(ENCODE_SLICE_SECONDS)
    for row in rows:
        parts.append(json.dumps(list(row), ensure_ascii=False, separators=(",", ":")))
        await pacer.pause()
    return "[" + ",".join(parts) + "]"


def json_values(dialect: Dialect, values: Iterable[Any], sql_type: Any = sa.Text) -> sa.Select[Any]:
    """A one-column ``SELECT`` of ``values``, sent as one JSON parameter.

    Use it as ``column.in_(json_values(db.dialect, ids))``: any number of values costs one bound
    parameter (no SQLite parameter limit, no per-value compilation), unlike an expanding ``IN``.
    ``sql_type`` is the type to compare as (``sa.Text`` or ``sa.BigInteger``).
    """
    param = sa.bindparam(None, json.dumps(list(values), ensure_ascii=False), type_=sa.Text)
    if dialect == "sqlite":
        table = sa.func.json_each(param).table_valued("value")
        return sa.select(table.c.value)
    table = sa.func.json_array_elements_text(sa.cast(param, sa.JSON)).table_valued("value")
    return sa.select(sa.cast(table.c.value, sql_type))
