"""The SQL text of the dispatcher's hot statements (claim and outcomes), per dialect.

These run for every few messages sent, so they are plain SQL text built once per dialect rather
than SQLAlchemy expressions compiled on every call (compiling a multi-row ``INSERT`` or a long
``IN`` list cost more than running it). Lists travel as one JSON text parameter that the database
expands itself (SQLite ``json_each``, PostgreSQL ``json_array_elements``), as in
``message_upsert.py``. The ready condition is spelled exactly as the partial claim index's, so
the index applies (``schema.py``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

from ..schema import LEASED_STATUS, READY_STATUSES, message_events, messages
from ..url import Dialect

CLAIM_COLUMNS = (
    "pk",
    "tenant_id",
    "id",
    "account_id",
    "account_pk",
    "priority",
    "batch_code",
    "payload",
    "status",
    "deferred_ts",
    "next_attempt_ts",
    "attempts",
    "last_error",
    "created_at",
    "updated_at",
    "message_id_header",
)
"""The columns of a claimed row."""

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_uuid", "text"),
    ("message_pk", "bigint"),
    ("tenant_id", "text"),
    ("event_type", "text"),
    ("event_ts", "bigint"),
    ("description", "text"),
    ("metadata", "text"),
)
"""The columns of an event row in each JSON row array, with PostgreSQL types."""

_READY = "status IN ({})".format(", ".join(f"'{status}'" for status in READY_STATUSES))


def _check_columns() -> None:
    # The statements are SQL text: fail at import, not at the first send, if a table changed.
    missing = sorted(set(CLAIM_COLUMNS) - set(messages.c.keys()))
    missing += sorted({name for name, _ in EVENT_COLUMNS} - set(message_events.c.keys()))
    if missing:
        raise RuntimeError(f"unknown column(s) {missing}; update queue_sql.py")


_check_columns()


def json_list(values: Iterable[Any]) -> str:
    """A list parameter: compact JSON."""
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def _pks(dialect: Dialect, param: str) -> str:
    """A subquery of the integer keys in JSON parameter ``param``."""
    if dialect == "sqlite":
        return f"SELECT value FROM json_each(:{param})"
    return f"SELECT CAST(value AS bigint) FROM json_array_elements_text(CAST(:{param} AS json))"


def _texts(dialect: Dialect, param: str) -> str:
    """A subquery of the strings in JSON parameter ``param``."""
    if dialect == "sqlite":
        return f"SELECT value FROM json_each(:{param})"
    return f"SELECT value FROM json_array_elements_text(CAST(:{param} AS json))"


@functools.cache
def in_flight_sql(dialect: Dialect) -> str:
    """Per account, the messages leased and not expired at ``:now``.

    On SQLite the partial lease index is named: left alone, the planner groups by walking the
    whole ``account_pk`` index, which reads every message ever queued.
    """
    source = "messages INDEXED BY ix_messages_lease" if dialect == "sqlite" else "messages"
    return (
        f"SELECT account_pk, count(*) AS n FROM {source} "
        f"WHERE status = '{LEASED_STATUS}' AND lease_until >= :now GROUP BY account_pk"
    )


@functools.cache
def candidates_sql(dialect: Dialect, saturated: bool, blocked: bool, batches: bool) -> str:
    """Ready rows (``pk``, ``account_pk``) in claim order, at most ``:limit``, at ``:now``.

    Optional exclusions, each a JSON parameter: ``:saturated`` account pks, ``:blocked`` tenant
    ids (inactive or fully suspended), ``:batches`` ``[tenant_id, batch_code]`` pairs suspended.
    """
    where = f"{_READY} AND next_attempt_ts <= :now"
    if saturated:
        where += f" AND (account_pk IS NULL OR account_pk NOT IN ({_texts(dialect, 'saturated')}))"
    if blocked:
        where += f" AND tenant_id NOT IN ({_texts(dialect, 'blocked')})"
    if batches:
        if dialect == "sqlite":
            pairs = (
                "SELECT 1 FROM json_each(:batches) AS h WHERE json_extract(h.value, '$[0]') = "
                "messages.tenant_id AND json_extract(h.value, '$[1]') = messages.batch_code"
            )
        else:
            pairs = (
                "SELECT 1 FROM json_array_elements(CAST(:batches AS json)) AS h(v) "
                "WHERE h.v->>0 = messages.tenant_id AND h.v->>1 = messages.batch_code"
            )
        where += f" AND NOT EXISTS ({pairs})"
    lock = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
    return (
        f"SELECT pk, account_pk FROM messages WHERE {where} "
        f"ORDER BY priority, pk LIMIT :limit{lock}"
    )


@functools.cache
def lease_sql(dialect: Dialect) -> str:
    """Lease the rows ``:pks`` to ``:owner`` until ``:until``; returns the claimed rows."""
    return (
        f"UPDATE messages SET status = '{LEASED_STATUS}', lease_owner = :owner, "
        f"lease_until = :until, updated_at = :now WHERE pk IN ({_pks(dialect, 'pks')}) "
        f"RETURNING {', '.join(CLAIM_COLUMNS)}"
    )


@functools.cache
def mark_sent_sql(dialect: Dialect) -> str:
    """Mark the rows ``:pks`` still leased by ``:owner`` sent at ``:ts``; returns their pks."""
    return (
        "UPDATE messages SET status = 'sent', smtp_ts = :ts, attempts = attempts + 1, "
        "lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = :ts "
        f"WHERE pk IN ({_pks(dialect, 'pks')}) AND lease_owner = :owner RETURNING pk"
    )


@functools.cache
def insert_events_sql(dialect: Dialect) -> str:
    """Insert the events of JSON parameter ``:rows`` (arrays in ``EVENT_COLUMNS`` order)."""
    names = ", ".join(name for name, _ in EVENT_COLUMNS)
    if dialect == "sqlite":
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(EVENT_COLUMNS)))
        source = f"SELECT {picks} FROM json_each(:rows) ORDER BY key"
    else:
        picks = ", ".join(
            f"CAST(r.v->>{i} AS {sql_type})" for i, (_, sql_type) in enumerate(EVENT_COLUMNS)
        )
        source = (
            f"SELECT {picks} FROM json_array_elements(CAST(:rows AS json)) "
            "WITH ORDINALITY AS r(v, n) ORDER BY r.n"
        )
    return f"INSERT INTO message_events ({names}) {source}"
