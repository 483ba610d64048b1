"""A PostgreSQL connection whose release fails does not poison the task that used it.

When the server goes away, asyncpg's pool fails to reset a connection being given back: it
terminates the connection and re-raises. The task's next query must get a fresh connection.
Before the fix the stock ``databases`` backend kept the dead connection as "acquired" and every
later query of that task failed with ``Connection is already acquired`` (the dispatcher never
sent again after a database outage). The fault is injected at the driver: ``reset`` raises the
error a dead socket gives.
"""

from __future__ import annotations

import asyncpg
import pytest

from mailproxy_core.db.engine import Database
from mailproxy_core.testing.db import postgres_test_schema


async def test_a_failed_release_leaves_the_task_able_to_query(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with postgres_test_schema() as url:
        db = Database.from_setting(url, pool_max_size=2)
        async with db:
            assert await db.fetch_val("SELECT 1") == 1
            real_reset = asyncpg.connection.Connection.reset
            failures = []

            async def reset_on_a_dead_socket(self: object, **_options: object) -> None:
                failures.append(1)
                raise ConnectionResetError(104, "Connection reset by peer")

            monkeypatch.setattr(asyncpg.connection.Connection, "reset", reset_on_a_dead_socket)
            with pytest.raises(ConnectionResetError):
                await db.fetch_val("SELECT 2")  # the query works, giving the connection back fails
            assert failures
            monkeypatch.setattr(asyncpg.connection.Connection, "reset", real_reset)
            # the same task (this one) queries again, on a new connection
            for attempt in range(3):
                assert await db.fetch_val("SELECT 3") == 3, attempt
