"""Versioned migrations: applied once, recorded, ordered, safe under concurrent starts."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from mailproxy_core.db.engine import Database
from mailproxy_core.db.migrate import apply_migrations, core_migrations, migration_status
from mailproxy_core.db.schema import CORE_TABLES, plugin_metadata, schema_migrations
from mailproxy_core.errors import ConfigurationError, PluginError
from mailproxy_core.protocols import MigrationContext
from mailproxy_core.specs import MigrationSpec

plugin_meta = plugin_metadata()
relay_log = sa.Table(
    "relay_log",
    plugin_meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.Text, sa.ForeignKey("tenants.id", ondelete="CASCADE")),
    sa.Column("note", sa.Text),
    sa.Index("ix_relay_log_tenant", "tenant_id"),
)


async def _relay_v1(ctx: MigrationContext) -> None:
    await ctx.create_tables(relay_log)


async def _relay_v2(ctx: MigrationContext) -> None:
    await ctx.execute("ALTER TABLE relay_log ADD COLUMN level INTEGER NOT NULL DEFAULT 0")


RELAY = [
    MigrationSpec("relay", 2, "relay log level", _relay_v2),
    MigrationSpec("relay", 1, "relay log table", _relay_v1),
]


@pytest.fixture
async def db(db_url: str) -> Database:
    database = Database.from_setting(db_url)
    await database.connect()
    yield database
    await database.disconnect()


CORE_NAMES = [spec.name for spec in core_migrations()]
CORE_LEDGER = [("core", spec.version) for spec in core_migrations()]


async def _ledger(db: Database) -> list[tuple[str, int]]:
    rows = await db.fetch_all(
        sa.select(schema_migrations.c.component, schema_migrations.c.version).order_by(
            schema_migrations.c.component, schema_migrations.c.version
        )
    )
    return [(row["component"], row["version"]) for row in rows]


async def test_core_migrations_apply_once_and_are_recorded(db: Database) -> None:
    status = await migration_status(db, core_migrations())
    assert [(s.name, s.applied) for s in status] == [(name, False) for name in CORE_NAMES]

    applied = await apply_migrations(db, core_migrations())
    assert [spec.name for spec in applied] == CORE_NAMES
    assert await _ledger(db) == CORE_LEDGER
    for table in CORE_TABLES:
        assert await db.fetch_val(sa.select(sa.func.count()).select_from(table)) is not None

    assert await apply_migrations(db, core_migrations()) == []
    assert await _ledger(db) == CORE_LEDGER
    for state in await migration_status(db, core_migrations()):
        assert state.applied and state.known and isinstance(state.applied_at, int)


async def test_plugin_component_steps_apply_after_core_in_version_order(db: Database) -> None:
    applied = await apply_migrations(db, [*RELAY, *core_migrations()])
    assert [spec.name for spec in applied] == [*CORE_NAMES, "relay:1", "relay:2"]
    await db.execute(
        sa.insert(
            sa.table("tenants", sa.column("id"), sa.column("created_at"), sa.column("updated_at"))
        ).values(id="t1", created_at=0, updated_at=0)
    )
    await db.execute("INSERT INTO relay_log (tenant_id, note, level) VALUES ('t1', 'hello', 3)")
    assert await db.fetch_val("SELECT level FROM relay_log") == 3
    assert await _ledger(db) == [*CORE_LEDGER, ("relay", 1), ("relay", 2)]


async def test_a_new_step_applies_on_the_next_start(db: Database) -> None:
    await apply_migrations(db, [*core_migrations(), RELAY[1]])
    applied = await apply_migrations(db, [*core_migrations(), *RELAY])
    assert [spec.name for spec in applied] == ["relay:2"]


async def test_duplicate_version_is_rejected_before_anything_runs(db: Database) -> None:
    duplicate = MigrationSpec("relay", 1, "another table", _relay_v2)
    with pytest.raises(PluginError, match=r"relay:1 is registered twice"):
        await apply_migrations(db, [*core_migrations(), *RELAY, duplicate])
    with pytest.raises(PluginError, match="registered twice"):
        await migration_status(db, [*RELAY, duplicate])
    assert (await migration_status(db, core_migrations()))[0].applied is False


@pytest.mark.parametrize("version", [0, -1, True, "1"])
async def test_invalid_version_is_rejected(db: Database, version: object) -> None:
    with pytest.raises(PluginError, match="invalid version"):
        await apply_migrations(db, [MigrationSpec("relay", version, "bad", _relay_v1)])  # type: ignore[arg-type]


async def test_failing_step_rolls_back_and_is_not_recorded(db: Database) -> None:
    async def broken(ctx: MigrationContext) -> None:
        await ctx.create_tables(relay_log)
        await ctx.execute("INSERT INTO no_such_table VALUES (1)")

    specs = [*core_migrations(), MigrationSpec("relay", 1, "broken", broken), RELAY[0]]
    with pytest.raises(PluginError, match=r"migration relay:1 \(broken\) failed"):
        await apply_migrations(db, specs)
    assert await _ledger(db) == CORE_LEDGER
    # The half-created table went away with the transaction: the fixed step applies cleanly.
    applied = await apply_migrations(db, [*core_migrations(), *RELAY])
    assert [spec.name for spec in applied] == ["relay:1", "relay:2"]


async def test_database_newer_than_the_code_is_refused(db: Database) -> None:
    await apply_migrations(db, [*core_migrations(), *RELAY])
    with pytest.raises(ConfigurationError, match=r"relay migration\(s\) \[2\]"):
        await apply_migrations(db, [*core_migrations(), RELAY[1]])
    # A component nobody registers any more (plugin uninstalled) is left alone.
    assert await apply_migrations(db, core_migrations()) == []
    states = await migration_status(db, core_migrations())
    assert [(s.name, s.known) for s in states] == [
        *((name, True) for name in CORE_NAMES),
        ("relay:1", False),
        ("relay:2", False),
    ]


async def test_step_inserted_below_an_applied_version_is_refused(db: Database) -> None:
    await apply_migrations(db, [*core_migrations(), MigrationSpec("relay", 2, "v2", _relay_v1)])
    late = MigrationSpec("relay", 1, "late", _relay_v2)
    with pytest.raises(PluginError, match=r"relay migration\(s\) \[1\] are not applied"):
        await apply_migrations(
            db, [*core_migrations(), late, MigrationSpec("relay", 2, "v2", _relay_v1)]
        )


async def test_concurrent_apply_from_two_processes_applies_each_step_once(db_url: str) -> None:
    calls: list[str] = []

    def counted(name: str, step: object) -> object:
        async def upgrade(ctx: MigrationContext) -> None:
            calls.append(name)
            await asyncio.sleep(0)  # let the other "process" run into the lock
            await step(ctx)  # type: ignore[operator]

        return upgrade

    specs = [
        MigrationSpec("relay", 1, "relay log table", counted("relay:1", _relay_v1)),  # type: ignore[arg-type]
        MigrationSpec("relay", 2, "relay log level", counted("relay:2", _relay_v2)),  # type: ignore[arg-type]
        *core_migrations(),
    ]
    handles = [Database.from_setting(db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(db.connect() for db in handles))
        # A TaskGroup, not gather: should one fail, the others are cancelled and awaited.
        async with asyncio.TaskGroup() as group:
            runs = [group.create_task(apply_migrations(db, specs)) for db in handles]
        applied = sorted(spec.name for run in runs for spec in run.result())
        assert applied == sorted([*CORE_NAMES, "relay:1", "relay:2"])
        assert sorted(calls) == ["relay:1", "relay:2"]
        assert await _ledger(handles[0]) == [*CORE_LEDGER, ("relay", 1), ("relay", 2)]
    finally:
        for db in handles:
            await db.disconnect()
