"""Versioned schema migrations, per component (``core`` and each plugin).

Every step is a ``MigrationSpec(component, version, description, upgrade)``. ``apply_migrations``
applies the steps not yet recorded in ``schema_migrations``: ``core`` first, then the other
components in the order their steps were registered, each component's steps in version order,
each step in its own transaction together with its ``schema_migrations`` row, so a step is either
fully applied and recorded or not at all.

Several processes may start at once against one database. Each step's transaction first takes a
lock and then checks again whether the step is recorded, so every step runs exactly once:

- PostgreSQL: ``pg_advisory_xact_lock`` on a key derived from the current schema (instances in
  different schemas of one database do not wait for each other); released at commit/rollback;
- SQLite: the transaction begins ``IMMEDIATE`` (``Database.transaction``), which serialises
  writers on the database file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from ..errors import ConfigurationError, PluginError
from ..message_ids import derived_message_id
from ..protocols import MigrationContext
from ..specs import MigrationSpec
from . import schema
from .engine import Database
from .jsontext import decode_json
from .repos.instance import default_instance_row

log = logging.getLogger(__name__)

CORE_COMPONENT = "core"

_PG_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtext('mailproxy:migrations:' || coalesce(current_schema(), '')))"
)


@dataclass(frozen=True, slots=True)
class MigrationState:
    """One step as ``migration_status`` reports it.

    ``known`` is false for a step recorded in the database that no registered spec describes
    (written by a newer mail-proxy or by a plugin that is no longer installed).
    """

    component: str
    version: int
    description: str
    applied: bool
    applied_at: int | None = None
    known: bool = True

    @property
    def name(self) -> str:
        return f"{self.component}:{self.version}"


class _StepContext:
    """The ``MigrationContext`` of one step: its statements run in the step's transaction."""

    def __init__(self, db: Database) -> None:
        self.dialect: str = db.dialect
        self._db = db

    async def execute(self, statement: Any, values: Mapping[str, Any] | None = None) -> None:
        """Run one statement (SQLAlchemy expression, DDL element or SQL text)."""
        await self._db.execute(statement, values)

    async def fetch_all(
        self, statement: Any, values: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a query, in the step's transaction (core steps that transform data)."""
        return await self._db.fetch_all(statement, values)

    async def create_tables(self, *tables: Table) -> None:
        """``CREATE TABLE`` each table, then ``CREATE INDEX`` each of its indexes.

        A plugin's tables may live in a ``MetaData`` of their own and still reference core rows
        by name (``ForeignKey("tenants.id", ondelete="CASCADE")``): the core tables are made
        known to that ``MetaData`` (for reference only; they are not created again).
        """
        for table in tables:
            _know_core_tables(table.metadata)
        for table in tables:
            await self._db.execute(CreateTable(table))
            for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
                await self._db.execute(CreateIndex(index))


def _know_core_tables(meta: sa.MetaData) -> None:
    if meta is schema.metadata:
        return
    for table in schema.metadata.sorted_tables:
        if table.name not in meta.tables:
            table.to_metadata(meta)


def core_migrations() -> list[MigrationSpec]:
    """The kernel's own schema steps (registered by the built-in ``core`` plugin)."""
    return [
        MigrationSpec(
            CORE_COMPONENT,
            1,
            "core tables: tenants, accounts, messages, message_events, command_log, instance, "
            "storages",
            _core_v1,
        ),
        MigrationSpec(
            CORE_COMPONENT,
            2,
            "core table tenant_sync_state: per-tenant state of the reporting loop",
            _core_v2,
        ),
        MigrationSpec(
            CORE_COMPONENT,
            3,
            "core table rate_counters: rate-limit windows shared by every worker",
            _core_v3,
        ),
        MigrationSpec(
            CORE_COMPONENT,
            4,
            "receipts: messages.message_id_header (filled for existing messages), "
            "message_events.dedup_key, their indexes, core table receipt_leases",
            _core_v4,
        ),
        MigrationSpec(
            CORE_COMPONENT,
            5,
            "indexes ix_messages_tenant_pk, ix_messages_tenant_batch: message search pages",
            _core_v5,
        ),
        MigrationSpec(
            CORE_COMPONENT,
            6,
            "core table dispatch_processes: dispatcher heartbeats, for taking over the leases "
            "of a process that died",
            _core_v6,
        ),
    ]


async def _core_v1(ctx: MigrationContext) -> None:
    await ctx.create_tables(*_v1_tables())
    await ctx.execute(schema.instance.insert().values(**default_instance_row(int(time.time()))))


async def _core_v2(ctx: MigrationContext) -> None:
    await ctx.create_tables(*schema.CORE_V2_TABLES)


async def _core_v3(ctx: MigrationContext) -> None:
    await ctx.create_tables(*schema.CORE_V3_TABLES)


async def _core_v4(ctx: MigrationContext) -> None:
    for table_name, columns in schema.CORE_V4_COLUMNS.items():
        table = schema.metadata.tables[table_name]
        for name in columns:
            column_type = table.c[name].type.compile(dialect=_dialect(ctx.dialect))
            await ctx.execute(f"ALTER TABLE {table_name} ADD COLUMN {name} {column_type}")
    assert isinstance(ctx, _StepContext)
    await _fill_message_id_headers(ctx)
    for table_name in schema.CORE_V4_COLUMNS:
        for index in schema.metadata.tables[table_name].indexes:
            if index.name in schema.CORE_V4_INDEXES:
                await ctx.execute(CreateIndex(index))
    await ctx.create_tables(*schema.CORE_V4_TABLES)


async def _core_v5(ctx: MigrationContext) -> None:
    for index in schema.messages.indexes:
        if index.name in schema.CORE_V5_INDEXES:
            await ctx.execute(CreateIndex(index))


async def _core_v6(ctx: MigrationContext) -> None:
    await ctx.create_tables(*schema.CORE_V6_TABLES)


BACKFILL_CHUNK = 1000
"""Messages per statement when core v4 fills ``message_id_header``."""


async def _fill_message_id_headers(ctx: _StepContext) -> None:
    """Give every existing message the Message-ID its attempts sent so far (or would have):
    the client's own, else the one derived from the queue row, so retries keep it."""
    messages = schema.messages
    page = (
        sa.select(messages.c.pk, messages.c.tenant_id, messages.c.id, messages.c.payload)
        .order_by(messages.c.pk)
        .limit(BACKFILL_CHUNK)
    )
    update = _fill_sql(ctx.dialect)
    after = 0
    while rows := await ctx.fetch_all(page.where(messages.c.pk > after)):
        values = [
            [
                int(row["pk"]),
                derived_message_id(
                    int(row["pk"]), row["tenant_id"], row["id"], decode_json(row["payload"], {})
                ),
            ]
            for row in rows
        ]
        await ctx.execute(update, {"rows": json.dumps(values, ensure_ascii=False)})
        after = int(rows[-1]["pk"])


def _fill_sql(dialect: str) -> str:
    if dialect == "sqlite":
        return (
            "UPDATE messages SET message_id_header = (SELECT json_extract(value, '$[1]') "
            "FROM json_each(:rows) WHERE json_extract(value, '$[0]') = messages.pk) "
            "WHERE pk IN (SELECT json_extract(value, '$[0]') FROM json_each(:rows))"
        )
    return (
        "UPDATE messages SET message_id_header = v.header FROM (SELECT CAST(r->>0 AS bigint) "
        "AS pk, r->>1 AS header FROM json_array_elements(CAST(:rows AS json)) AS r) AS v "
        "WHERE messages.pk = v.pk"
    )


def _dialect(name: str) -> sa.engine.Dialect:
    return sqlite_dialect.dialect() if name == "sqlite" else pg_dialect.dialect()


def _v1_tables() -> tuple[Table, ...]:
    """The core tables as core v1 created them: without what v4 added (``schema.py``)."""
    meta = sa.MetaData(naming_convention=schema.NAMING_CONVENTION)
    later_indexes = {*schema.CORE_V4_INDEXES, *schema.CORE_V5_INDEXES}
    tables: list[Table] = []
    for table in schema.CORE_TABLES:
        later_columns = set(schema.CORE_V4_COLUMNS.get(table.name, ()))
        if not later_columns:
            tables.append(table.to_metadata(meta))
            continue
        items: list[Any] = [c._copy() for c in table.columns if c.name not in later_columns]
        items += [
            sa.UniqueConstraint(*(c.name for c in constraint.columns), name=constraint.name)
            for constraint in table.constraints
            if isinstance(constraint, sa.UniqueConstraint)
            # a column's own ``unique=True`` is copied with the column
            and not (len(constraint.columns) == 1 and next(iter(constraint.columns)).unique)
        ]
        items += [
            sa.ForeignKeyConstraint(
                [element.parent.name for element in fk.elements],
                [element.target_fullname for element in fk.elements],
                ondelete=fk.ondelete,
            )
            for fk in sorted(table.foreign_key_constraints, key=lambda fk: str(fk.name))
        ]
        items += [
            sa.Index(index.name, *(c.name for c in index.columns), unique=index.unique,
                     **index.dialect_kwargs)
            for index in table.indexes
            if index.name not in later_indexes
        ]  # fmt: skip
        tables.append(sa.Table(table.name, meta, *items, **table.dialect_kwargs))
    return tuple(tables)


async def apply_migrations(db: Database, specs: Iterable[MigrationSpec]) -> list[MigrationSpec]:
    """Apply every step of ``specs`` not yet recorded; return the steps applied by this call.

    Raises ``PluginError`` for an invalid or duplicate (component, version) or when a step
    fails (its transaction is rolled back, later steps are not attempted), and
    ``ConfigurationError`` when the database holds steps of a known component that ``specs``
    does not describe (it was migrated by a newer version).
    """
    plan = _plan(specs)
    await _ensure_ledger(db)
    recorded = await _recorded(db)
    _check_consistency(plan, recorded)
    applied: list[MigrationSpec] = []
    for spec in plan:
        if (spec.component, spec.version) in recorded:
            continue
        if await _apply_step(db, spec):
            applied.append(spec)
    return applied


async def migration_status(db: Database, specs: Iterable[MigrationSpec]) -> list[MigrationState]:
    """Every step of ``specs`` with whether (and when) it was applied, in application order,
    followed by recorded steps that no spec describes. Changes nothing in the database."""
    plan = _plan(specs)
    recorded = await _recorded(db) if await _ledger_exists(db) else {}
    states = [
        MigrationState(
            spec.component,
            spec.version,
            spec.description,
            applied=(spec.component, spec.version) in recorded,
            applied_at=recorded.get((spec.component, spec.version), (None, ""))[0],
        )
        for spec in plan
    ]
    known = {(spec.component, spec.version) for spec in plan}
    for (component, version), (applied_at, description) in sorted(recorded.items()):
        if (component, version) not in known:
            states.append(
                MigrationState(component, version, description, True, applied_at, known=False)
            )
    return states


def _plan(specs: Iterable[MigrationSpec]) -> list[MigrationSpec]:
    """Validate ``specs`` and order them: core first, then by registration order, by version."""
    seen: dict[tuple[str, int], MigrationSpec] = {}
    component_order: dict[str, int] = {CORE_COMPONENT: -1}
    for spec in specs:
        if not isinstance(spec.component, str) or not spec.component:
            raise PluginError(f"migration {spec!r} has no component name")
        if isinstance(spec.version, bool) or not isinstance(spec.version, int) or spec.version < 1:
            raise PluginError(
                f"migration {spec.component}:{spec.version!r} has an invalid version; "
                "versions are integers starting at 1"
            )
        key = (spec.component, spec.version)
        if key in seen:
            raise PluginError(
                f"migration {spec.name} is registered twice ({seen[key].description!r} and "
                f"{spec.description!r}); give each step of a component its own version"
            )
        seen[key] = spec
        component_order.setdefault(spec.component, len(component_order))
    return sorted(seen.values(), key=lambda s: (component_order[s.component], s.version))


def _check_consistency(
    plan: list[MigrationSpec], recorded: Mapping[tuple[str, int], tuple[int, str]]
) -> None:
    known: dict[str, set[int]] = {}
    for spec in plan:
        known.setdefault(spec.component, set()).add(spec.version)
    for component, versions in known.items():
        done = {version for (comp, version) in recorded if comp == component}
        unknown = sorted(done - versions)
        if unknown:
            raise ConfigurationError(
                f"the database has {component} migration(s) {unknown} that this installation "
                f"does not know (it knows {sorted(versions)}); it was migrated by a newer "
                "version: upgrade mail-proxy or the plugin"
            )
        if done:
            skipped = sorted(v for v in versions - done if v < max(done))
            if skipped:
                raise PluginError(
                    f"{component} migration(s) {skipped} are not applied but version "
                    f"{max(done)} is; new steps must take versions after the latest one"
                )


async def _apply_step(db: Database, spec: MigrationSpec) -> bool:
    try:
        async with db.transaction():
            await _lock(db)
            if await _is_recorded(db, spec):
                return False
            await spec.upgrade(_StepContext(db))
            await db.execute(
                schema.schema_migrations.insert().values(
                    component=spec.component,
                    version=spec.version,
                    description=spec.description,
                    applied_at=int(time.time()),
                )
            )
    except Exception as exc:
        raise PluginError(
            f"migration {spec.name} ({spec.description}) failed and was rolled back: {exc}"
        ) from exc
    log.info("applied migration %s: %s", spec.name, spec.description)
    return True


async def _lock(db: Database) -> None:
    if db.dialect == "postgresql":
        await db.fetch_val(_PG_LOCK)


async def _ensure_ledger(db: Database) -> None:
    if await _ledger_exists(db):
        return
    async with db.transaction():
        await _lock(db)
        await db.execute(CreateTable(schema.schema_migrations, if_not_exists=True))


async def _ledger_exists(db: Database) -> bool:
    name = schema.schema_migrations.name
    if db.dialect == "sqlite":
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"
    else:
        query = "SELECT 1 WHERE to_regclass(CAST(:name AS text)) IS NOT NULL"
    return bool(await db.fetch_val(query, {"name": name}))


async def _recorded(db: Database) -> dict[tuple[str, int], tuple[int, str]]:
    table = schema.schema_migrations
    rows = await db.fetch_all(
        table.select().with_only_columns(
            table.c.component, table.c.version, table.c.applied_at, table.c.description
        )
    )
    return {
        (row["component"], row["version"]): (row["applied_at"], row["description"]) for row in rows
    }


async def _is_recorded(db: Database, spec: MigrationSpec) -> bool:
    table = schema.schema_migrations
    query = (
        table.select()
        .with_only_columns(table.c.version)
        .where(table.c.component == spec.component, table.c.version == spec.version)
    )
    return await db.fetch_one(query) is not None
