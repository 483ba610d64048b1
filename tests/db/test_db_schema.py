"""The migrated core schema: matches schema.py, cascades, and serves the queue's queries."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from mailproxy_core.db.engine import Database
from mailproxy_core.db.schema import (
    CORE_TABLES,
    LEASED_CONDITION,
    READY_CONDITION,
    accounts,
    command_log,
    message_events,
    messages,
    metadata,
    storages,
    tenants,
)


async def _columns(db: Database, table: str) -> set[str]:
    if db.dialect == "sqlite":
        return {row["name"] for row in await db.fetch_all(f"PRAGMA table_info({table})")}
    rows = await db.fetch_all(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = :table",
        {"table": table},
    )
    return {row["column_name"] for row in rows}


async def _indexes(db: Database, table: str) -> set[str]:
    if db.dialect == "sqlite":
        rows = await db.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :table "
            "AND sql IS NOT NULL",
            {"table": table},
        )
        return {row["name"] for row in rows}
    rows = await db.fetch_all(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = :table AND indexname NOT LIKE 'pk_%' AND indexname NOT LIKE 'uq_%' "
        "AND indexname NOT LIKE '%_key'",
        {"table": table},
    )
    return {row["indexname"] for row in rows}


async def test_migrated_database_matches_schema_definitions(database: Database) -> None:
    for table in metadata.sorted_tables:
        assert await _columns(database, table.name) == {c.name for c in table.columns}, table.name
        assert await _indexes(database, table.name) == {str(i.name) for i in table.indexes}


async def _seed_tenant(db: Database, tenant_id: str) -> int:
    """One tenant with an account, a message, an event and a storage; returns the message pk."""
    now = 1_700_000_000
    await db.execute(tenants.insert().values(id=tenant_id, created_at=now, updated_at=now))
    account_pk = str(uuid.uuid4())
    await db.execute(
        accounts.insert().values(
            pk=account_pk,
            tenant_id=tenant_id,
            id="main",
            host="smtp.test",
            port=587,
            created_at=now,
            updated_at=now,
        )
    )
    message_pk = await db.fetch_val(
        messages.insert()
        .values(
            tenant_id=tenant_id,
            id="m1",
            account_id="main",
            account_pk=account_pk,
            payload="{}",
            created_at=now,
            updated_at=now,
        )
        .returning(messages.c.pk)
    )
    await db.execute(
        message_events.insert().values(
            event_uuid=str(uuid.uuid4()),
            message_pk=message_pk,
            tenant_id=tenant_id,
            event_type="sent",
            event_ts=now,
        )
    )
    await db.execute(
        storages.insert().values(
            tenant_id=tenant_id,
            name="docs",
            protocol="local",
            config="{}",
            created_at=now,
            updated_at=now,
        )
    )
    await db.execute(
        command_log.insert().values(
            command_ts=now,
            endpoint="POST /tenants/add",
            tenant_id=tenant_id,
            payload="{}",
            response_status=200,
        )
    )
    return int(message_pk)


async def _count(db: Database, table: sa.Table, tenant_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
    return int(await db.fetch_val(query))


async def test_deleting_a_tenant_cascades_but_keeps_the_audit_log(database: Database) -> None:
    await _seed_tenant(database, "acme")
    await _seed_tenant(database, "globex")
    await database.execute(tenants.delete().where(tenants.c.id == "acme"))
    for table in (accounts, messages, message_events, storages):
        assert await _count(database, table, "acme") == 0, table.name
        assert await _count(database, table, "globex") == 1, table.name
    assert await _count(database, command_log, "acme") == 1


async def test_deleting_an_account_keeps_its_messages(database: Database) -> None:
    message_pk = await _seed_tenant(database, "acme")
    await database.execute(accounts.delete().where(accounts.c.tenant_id == "acme"))
    row = await database.fetch_one(
        sa.select(messages.c.account_id, messages.c.account_pk).where(messages.c.pk == message_pk)
    )
    assert row == {"account_id": "main", "account_pk": None}


async def test_foreign_keys_are_enforced(database: Database) -> None:
    try:
        await database.execute(
            accounts.insert().values(pk="x", tenant_id="nobody", id="a", created_at=0, updated_at=0)
        )
    except Exception as exc:  # sqlite3.IntegrityError / asyncpg.ForeignKeyViolationError
        assert "foreign key" in str(exc).lower()
    else:
        raise AssertionError("an account of an unknown tenant was accepted")


async def test_claim_statement_update_returning_works_on_both_dialects(database: Database) -> None:
    """The shape of the dispatcher's claim: one UPDATE ... WHERE pk IN (ready subquery
    [FOR UPDATE SKIP LOCKED]) RETURNING; priority first, FIFO within a priority."""
    await database.execute(tenants.insert().values(id="acme", created_at=0, updated_at=0))
    now = 1_700_000_100
    rows = [
        {"id": f"c{i}", "priority": priority, "status": status, "next_attempt_ts": due}
        for i, (priority, status, due) in enumerate(
            [
                (2, "pending", 0),
                (0, "pending", 0),
                (2, "deferred", now - 1),
                (1, "deferred", now + 60),  # not due yet
                (0, "sent", 0),  # finished
                (3, "pending", 0),
            ]
        )
    ]
    await database.execute(
        messages.insert().values(
            [
                {**row, "tenant_id": "acme", "payload": "{}", "created_at": now, "updated_at": now}
                for row in rows
            ]
        )
    )
    ready = (
        sa.select(messages.c.pk)
        .where(READY_CONDITION, messages.c.next_attempt_ts <= now)
        .order_by(messages.c.priority, messages.c.pk)
        .limit(3)
        .with_for_update(skip_locked=True)
    )
    claim = (
        messages.update()
        .where(messages.c.pk.in_(ready.scalar_subquery()))
        .values(status="sending", lease_owner="worker-1", lease_until=now + 300)
        .returning(messages.c.pk, messages.c.id, messages.c.priority, messages.c.status)
    )
    async with database.transaction():
        claimed = await database.fetch_all(claim)
    # RETURNING order is not guaranteed: the dispatcher sorts what it claimed.
    claimed.sort(key=lambda row: (row["priority"], row["pk"]))
    assert [(row["id"], row["status"]) for row in claimed] == [
        ("c1", "sending"),
        ("c0", "sending"),
        ("c2", "sending"),
    ]
    async with database.transaction():
        second = await database.fetch_all(claim)
    assert [row["id"] for row in second] == ["c5"]
    expired = await database.fetch_all(
        sa.select(messages.c.id)
        .where(LEASED_CONDITION, messages.c.lease_until < now + 301)
        .order_by(messages.c.pk)
    )
    assert [row["id"] for row in expired] == ["c0", "c1", "c2", "c5"]


async def test_claim_query_can_use_the_partial_index(database: Database) -> None:
    ready = (
        sa.select(messages.c.pk)
        .where(READY_CONDITION, messages.c.next_attempt_ts <= 1)
        .order_by(messages.c.priority, messages.c.pk)
        .limit(10)
    )
    sql = str(ready.compile(compile_kwargs={"literal_binds": True}))
    if database.dialect == "sqlite":
        plan = await database.fetch_all("EXPLAIN QUERY PLAN " + sql)
        assert any("ix_messages_claim" in row["detail"] for row in plan), plan
        return
    async with database.transaction():
        # The table is empty: forbid sequential scans so the planner shows what it could use.
        await database.execute("SET LOCAL enable_seqscan = off")
        plan = await database.fetch_all("EXPLAIN " + sql)
    assert any("ix_messages_claim" in row["QUERY PLAN"] for row in plan), plan


async def test_core_tables_are_all_created(database: Database) -> None:
    for table in CORE_TABLES:
        await database.fetch_all(sa.select(table).limit(1))
