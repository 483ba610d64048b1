"""The Database handle on SQLite and PostgreSQL: settings, transactions, errors, isolation."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from mailproxy_core.db.engine import Database
from mailproxy_core.errors import ConfigurationError
from mailproxy_core.testing.db import drop_schema, postgres_test_schema, url_with_schema

scratch_meta = sa.MetaData()
scratch = sa.Table(
    "scratch",
    scratch_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.Text, nullable=False),
)


@pytest.fixture
async def db(db_url: str) -> Database:
    database = Database.from_setting(db_url)
    await database.connect()
    await database.execute(sa.schema.CreateTable(scratch))
    yield database
    await database.disconnect()


async def _values(db: Database) -> list[str]:
    rows = await db.fetch_all(sa.select(scratch.c.value).order_by(scratch.c.id))
    return [row["value"] for row in rows]


async def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    db = Database.from_setting(str(tmp_path / "q.db"), busy_timeout=12.5)
    async with db:
        assert await db.fetch_val("PRAGMA journal_mode") == "wal"

        async def settings() -> tuple[int, int]:
            foreign_keys = await db.fetch_val("PRAGMA foreign_keys")
            busy_timeout = await db.fetch_val("PRAGMA busy_timeout")
            return foreign_keys, busy_timeout

        # Each task has its own connection: several of them at once must all be configured.
        results = await asyncio.gather(*(settings() for _ in range(4)))
        assert results == [(1, 12500)] * 4
        async with db.transaction():
            assert await settings() == (1, 12500)


async def test_sqlite_transactions_begin_immediate(tmp_path: Path) -> None:
    """A writer waiting for the lock gets it once the first commits, instead of failing."""
    path = str(tmp_path / "q.db")
    first, second = Database.from_setting(path), Database.from_setting(path, busy_timeout=10)
    async with first, second:
        await first.execute(sa.schema.CreateTable(scratch))
        locked = asyncio.Event()
        release = asyncio.Event()

        async def hold_lock() -> None:
            async with first.transaction():
                # IMMEDIATE: the write lock is ours before the first statement runs.
                locked.set()
                await release.wait()
                await first.execute(scratch.insert().values(id=1, value="first"))

        async def write_after() -> None:
            await locked.wait()
            async with second.transaction():
                count = await second.fetch_val(sa.select(sa.func.count()).select_from(scratch))
                await second.execute(scratch.insert().values(id=2, value=f"second saw {count}"))

        holder = asyncio.create_task(hold_lock())
        writer = asyncio.create_task(write_after())
        await locked.wait()
        await asyncio.sleep(0.05)
        assert not writer.done()
        release.set()
        await asyncio.gather(holder, writer)
        assert await _values(first) == ["first", "second saw 1"]


async def test_transaction_commits_and_rolls_back(db: Database) -> None:
    async with db.transaction():
        await db.execute(scratch.insert().values(id=1, value="kept"))
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.execute(scratch.insert().values(id=2, value="lost"))
            raise RuntimeError("abort")
    assert await _values(db) == ["kept"]


async def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    async with db.transaction():
        await db.execute(scratch.insert().values(id=1, value="outer"))
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute(scratch.insert().values(id=2, value="inner"))
                raise RuntimeError("abort inner")
        async with db.transaction():
            await db.execute(scratch.insert().values(id=3, value="inner kept"))
    assert await _values(db) == ["outer", "inner kept"]


async def test_statements_accept_text_and_values(db: Database) -> None:
    await db.execute_many(
        scratch.insert(),
        [{"id": 1, "value": "a"}, {"id": 2, "value": "b"}, {"id": 3, "value": "c"}],
    )
    await db.execute_many(scratch.insert(), [])
    rows = await db.fetch_all(
        "SELECT id, value FROM scratch WHERE id >= :low ORDER BY id", {"low": 2}
    )
    assert rows == [{"id": 2, "value": "b"}, {"id": 3, "value": "c"}]
    assert await db.fetch_one(sa.select(scratch).where(scratch.c.id == 9)) is None
    assert await db.fetch_val(sa.select(scratch.c.value).where(scratch.c.id == 1)) == "a"
    assert await db.fetch_val(sa.select(scratch.c.id, scratch.c.value), column="value") == "a"


async def test_multi_row_insert_and_upsert(db: Database) -> None:
    await db.execute(scratch.insert().values([{"id": i, "value": f"v{i}"} for i in range(1, 501)]))
    assert await db.fetch_val(sa.select(sa.func.count()).select_from(scratch)) == 500
    upsert = db.insert(scratch).values(id=1, value="changed")
    await db.execute(
        upsert.on_conflict_do_update(index_elements=[scratch.c.id], set_={"value": "changed"})
    )
    await db.execute(
        db.insert(scratch)
        .values(id=2, value="ignored")
        .on_conflict_do_nothing(index_elements=[scratch.c.id])
    )
    assert (await _values(db))[:2] == ["changed", "v2"]


async def test_reconnect_after_disconnect(db_url: str) -> None:
    db = Database.from_setting(db_url)
    await asyncio.gather(db.connect(), db.connect())  # concurrent calls connect once
    await db.connect()  # idempotent
    await db.disconnect()
    assert not db.is_connected
    await db.connect()
    assert await db.fetch_val("SELECT 1") == 1
    await db.disconnect()
    await db.disconnect()  # idempotent


async def test_cancelled_task_does_not_leak_its_transaction(db: Database) -> None:
    started = asyncio.Event()

    async def stuck() -> None:
        async with db.transaction():
            await db.execute(scratch.insert().values(id=1, value="never committed"))
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.transaction():
        await db.execute(scratch.insert().values(id=2, value="after"))
    assert await _values(db) == ["after"]


async def test_unopenable_sqlite_file_is_a_configuration_error(tmp_path: Path) -> None:
    db = Database.from_setting(str(tmp_path / "missing-dir" / "q.db"))
    with pytest.raises(ConfigurationError) as caught:
        await db.connect()
    message = str(caught.value)
    assert "missing-dir/q.db" in message and "directory exists" in message
    assert not db.is_connected


async def test_unreachable_postgres_is_a_configuration_error_without_password() -> None:
    # Port 9 (discard) is closed on loopback: the connection is refused at once.
    db = Database.from_setting("postgresql://mp:topsecret@127.0.0.1:9/mail", connect_timeout=5)
    with pytest.raises(ConfigurationError) as caught:
        await db.connect()
    message = str(caught.value)
    assert "postgresql://mp:***@127.0.0.1:9/mail" in message
    assert "topsecret" not in message
    assert not db.is_connected


async def test_missing_postgres_database_is_a_configuration_error(pg_server_url: str) -> None:
    url = pg_server_url.rsplit("/", 1)[0] + "/mailproxy_no_such_database"
    with pytest.raises(ConfigurationError, match="mailproxy_no_such_database"):
        await Database.from_setting(url).connect()


async def test_postgres_schema_is_created_and_isolates_tables(pg_server_url: str) -> None:
    suffix = uuid.uuid4().hex[:12]
    names = [f"mp_test_iso_a_{suffix}", f"mp_test_iso_b_{suffix}"]
    first = Database.from_setting(url_with_schema(pg_server_url, names[0]))
    second = Database.from_setting(url_with_schema(pg_server_url, names[1]))
    try:
        async with first, second:
            assert await first.fetch_val("SELECT current_schema()") == names[0]
            await first.execute(sa.schema.CreateTable(scratch))
            await first.execute(scratch.insert().values(id=1, value="only in a"))
            # Same table name, other schema: nothing in common.
            await second.execute(sa.schema.CreateTable(scratch))
            assert await _values(second) == []
            assert await _values(first) == ["only in a"]
            # A session that changes search_path does not leak it to the next pool user.
            await first.execute("SET search_path TO public")
            for _ in range(3):
                assert await first.fetch_val("SELECT current_schema()") == names[0]
    finally:
        for name in names:
            await drop_schema(pg_server_url, name)


async def test_concurrent_connects_create_the_schema_once(pg_server_url: str) -> None:
    name = "mp_test_race_" + uuid.uuid4().hex[:12]
    handles = [Database.from_setting(url_with_schema(pg_server_url, name)) for _ in range(4)]
    try:
        await asyncio.gather(*(db.connect() for db in handles))
        for db in handles:
            assert await db.fetch_val("SELECT current_schema()") == name
    finally:
        for db in handles:
            await db.disconnect()
        await drop_schema(pg_server_url, name)


async def test_task_cancelled_while_waiting_for_the_write_lock_leaks_nothing(
    tmp_path: Path,
) -> None:
    """A transaction whose BEGIN is interrupted must not keep its connection (or, later, the
    write lock it was waiting for)."""
    path = str(tmp_path / "q.db")
    first = Database.from_setting(path)
    second = Database.from_setting(path, busy_timeout=30)
    third = Database.from_setting(path, busy_timeout=2)
    async with first, second, third:
        await first.execute(sa.schema.CreateTable(scratch))
        locked, release = asyncio.Event(), asyncio.Event()

        async def hold_lock() -> None:
            async with first.transaction():
                locked.set()
                await release.wait()

        async def wait_for_lock() -> None:
            async with second.transaction():
                await second.execute(scratch.insert().values(id=1, value="never"))

        holder = asyncio.create_task(hold_lock())
        await locked.wait()
        waiter = asyncio.create_task(wait_for_lock())
        await asyncio.sleep(0.05)  # the waiter is now blocked in BEGIN IMMEDIATE
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        release.set()
        await holder
        # Had the interrupted BEGIN kept its connection, it would now own the write lock.
        async with third.transaction():
            await third.execute(scratch.insert().values(id=2, value="written"))
        assert await _values(third) == ["written"]
        async with second.transaction():
            await second.execute(scratch.insert().values(id=3, value="second works"))
        assert await _values(second) == ["written", "second works"]


async def test_statement_cancelled_inside_a_transaction_returns_the_connection(
    pg_server_url: str,
) -> None:
    """With a pool of one, a leaked connection would make the next query wait forever."""
    async with postgres_test_schema(pg_server_url) as url:
        db = Database.from_setting(url + "&max_size=1")
        async with db:
            started = asyncio.Event()

            async def slow() -> None:
                async with db.transaction():
                    started.set()
                    await db.fetch_val("SELECT pg_sleep(30)")

            task = asyncio.create_task(slow())
            await started.wait()
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # A deadlock guard, not a timing assertion: a leaked connection never comes back.
            assert await asyncio.wait_for(db.fetch_val("SELECT 1"), timeout=20) == 1


async def test_process_exits_even_if_sqlite_database_is_never_disconnected(tmp_path: Path) -> None:
    """Pooled idle connections must not keep the interpreter alive at exit."""
    script = (
        "import asyncio\n"
        "from mailproxy_core.db.engine import Database\n"
        f"DB = Database.from_setting({str(tmp_path / 'q.db')!r})\n"
        "async def main():\n"
        "    await DB.connect()\n"
        "    assert await DB.fetch_val('SELECT 1') == 1\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    try:
        # A deadlock guard, not a timing assertion.
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_many_handles_opening_a_fresh_sqlite_file_at_once(tmp_path: Path) -> None:
    """Switching a new file to WAL needs it exclusively; simultaneous starts must not fail.

    The race is narrow, so it is run on several fresh files."""
    for attempt in range(10):
        handles = [Database.from_setting(str(tmp_path / f"fresh{attempt}.db")) for _ in range(8)]
        try:
            await asyncio.gather(*(db.connect() for db in handles))
            for db in handles:
                assert await db.fetch_val("PRAGMA journal_mode") == "wal"
        finally:
            for db in handles:
                await db.disconnect()


async def test_sqlite_statement_cancelled_outside_a_transaction_is_not_reused(
    tmp_path: Path,
) -> None:
    """A cancelled statement may still run in its connection's thread, and a write with
    ``RETURNING`` stays in progress until its cursor is dropped: that connection must not go
    back to the idle pool, where the next owner's ``COMMIT`` could fail with "SQL statements in
    progress". The test looks at which aiosqlite connections the pool hands out."""
    db = Database.from_setting(str(tmp_path / "q.db"))
    async with db:
        await db.execute(sa.schema.CreateTable(scratch))

        async def raw_connection() -> object:
            async with db._db.connection() as connection:
                return connection.raw_connection

        slow = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000000) "
            "SELECT max(i) FROM n"
        )
        used: list[object] = []

        async def slow_read() -> None:
            async with db._db.connection() as connection:
                used.append(connection.raw_connection)
                await connection.fetch_one(slow)

        task = asyncio.create_task(slow_read())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await raw_connection() is not used[0]
        async with db.transaction():
            await db.execute(scratch.insert().values(id=1, value="after the cancel"))
        assert await _values(db) == ["after the cancel"]
        # An uninterrupted statement's connection is reused.
        first = await raw_connection()
        assert await raw_connection() is first


async def test_sqlite_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    """A task that commits and begins again at once must not starve other writers of the same
    process: SQLite's busy handler polls, so they queue for the write turn first come, first
    served (a transaction or a single write statement alike)."""
    db = Database.from_setting(str(tmp_path / "q.db"))
    async with db:
        await db.execute(sa.schema.CreateTable(scratch))
        done = 0
        other_finished_at: list[int] = []

        async def busy_writer() -> None:
            nonlocal done
            for n in range(200):
                async with db.transaction():
                    await db.execute(scratch.insert().values(id=1000 + n, value="busy"))
                    await asyncio.sleep(0.003)  # work inside the transaction, as a cycle does
                done += 1

        async def other_writer() -> None:
            # Five rounds: on SQLite's busy handler alone a round is sometimes lucky, rarely all.
            for round_ in range(5):
                started = done
                await db.execute(scratch.insert().values(id=1 + 2 * round_, value="statement"))
                async with db.transaction():
                    await db.execute(scratch.insert().values(id=2 + 2 * round_, value="txn"))
                other_finished_at.append(done)
                waited_for.append(done - started)

        waited_for: list[int] = []
        busy = asyncio.create_task(busy_writer())
        while done < 10:  # noqa: ASYNC110 - polls a counter the busy writer advances
            await asyncio.sleep(0)
        await asyncio.gather(other_writer(), busy)
        # Each of the other writer's two writes waits for at most the busy writer's next turn.
        assert other_finished_at[0] <= 10 + 3
        assert max(waited_for) <= 3, waited_for
        assert len(await _values(db)) == 210


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain ascii", "plain ascii"),
        ("già ü 😀", "già ü 😀"),
        (b"ung\xfcltig".decode("utf-8", "surrogateescape"), "ung\ufffdltig"),
        ("lone \ud800 high", "lone \ufffd\ufffd\ufffd high"),
    ],
)
def test_storable_text_replaces_only_what_no_column_can_store(text: str, stored: str) -> None:
    from mailproxy_core.db.jsontext import storable_text

    assert storable_text(text) == stored
    stored.encode("utf-8")  # storable


class _CountedText(str):
    """A text value that counts how often ``repr`` renders it."""

    renders = 0

    def __repr__(self) -> str:
        type(self).renders += 1
        return super().__repr__()


async def test_statement_arguments_are_rendered_only_when_logged(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # the database library logs every statement's arguments at DEBUG; building that text for a
    # large parameter held the event loop, so it is built only when the line is written
    _CountedText.renders = 0
    with caplog.at_level("INFO", logger="databases"):
        await db.execute(scratch.insert().values(id=1, value=_CountedText("quiet")))
    assert _CountedText.renders == 0
    with caplog.at_level("DEBUG", logger="databases"):
        await db.execute(scratch.insert().values(id=2, value=_CountedText("logged")))
    assert _CountedText.renders >= 1  # once per handler that formats the line
    assert any("'logged'" in record.getMessage() for record in caplog.records)
    assert await _values(db) == ["quiet", "logged"]
