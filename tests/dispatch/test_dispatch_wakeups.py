"""Immediate messages overtake a bulk backlog; LISTEN/NOTIFY between database handles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailproxy_core import Settings
from mailproxy_core.db.engine import Database
from mailproxy_core.db.notifications import scoped_channel
from mailproxy_core.testing.db import postgres_test_schema
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from mailproxy_core.testing.smtp import eventually
from tests.dispatch.sink import CountingSink
from tests.dispatch.support import enqueue, message

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")

CONCURRENCY = 2
BACKLOG = 200


@pytest.fixture
async def sink() -> AsyncIterator[CountingSink]:
    counting = await CountingSink(["main"], data_delay=0.01).start()
    yield counting
    await counting.stop()


@pytest.fixture
def mp_settings(tmp_path: Path) -> Settings:
    """A dispatcher that runs on its own (not test mode), two sends at a time."""
    return Settings.from_values(
        db=str(tmp_path / "mailproxy.db"),
        api_token=ADMIN_TOKEN,
        test_mode=False,
        max_concurrency=CONCURRENCY,
        max_per_account=CONCURRENCY,
        plugin_sections={"smtp": {"max_connections": CONCURRENCY}},
    )


async def test_immediate_message_overtakes_the_bulk_backlog(mp_client, sink):
    await mp_client.post("/tenants/add", id="acme", name="Acme")
    added = await mp_client.post(
        "/accounts/add",
        id="main",
        tenant_id="acme",
        host="127.0.0.1",
        port=sink.ports["main"],
        use_tls=False,
    )
    assert added.status == 200, added.json
    await enqueue(mp_client, *(message(f"bulk-{n:03d}", priority="low") for n in range(BACKLOG)))
    await eventually(lambda: len(sink.arrivals) >= 10, within=30)
    before = len(sink.arrivals)
    await enqueue(mp_client, message("urgent", priority="immediate"))
    await eventually(lambda: "urgent" in sink.delivered, within=30)
    position = sink.arrivals.index("urgent")
    # Only sends already started or claimed ahead (two per slot) may arrive first.
    assert position - before <= 3 * CONCURRENCY
    assert BACKLOG - position >= BACKLOG // 2  # far from drained


@pytest.fixture
async def pg_pair() -> AsyncIterator[tuple[Database, Database]]:
    async with postgres_test_schema() as url:
        first, second = Database.from_setting(url), Database.from_setting(url)
        await first.connect()
        await second.connect()
        try:
            yield first, second
        finally:
            await first.disconnect()
            await second.disconnect()


async def test_notify_reaches_other_handles_only(pg_pair):
    first, second = pg_pair
    heard_first: list[str | None] = []
    heard_second: list[str | None] = []
    await first.listen("wake", heard_first.append)
    await second.listen("wake", heard_second.append)
    assert first.listener is not None and await first.listener.wait_connected(10)
    assert second.listener is not None and await second.listener.wait_connected(10)
    await first.notify("wake", "hello")
    await eventually(lambda: heard_second == ["hello"])
    await asyncio.sleep(0.2)
    assert heard_first == []  # a handle never hears itself


async def test_notify_is_scoped_to_the_schema(pg_pair):
    first, _second = pg_pair
    heard: list[str | None] = []
    await first.listen("wake", heard.append)
    assert first.listener is not None and await first.listener.wait_connected(10)
    async with postgres_test_schema() as other_url:
        other = Database.from_setting(other_url)
        await other.connect()
        try:
            await other.notify("wake", "elsewhere")
        finally:
            await other.disconnect()
    await asyncio.sleep(0.3)
    assert heard == []


async def test_listener_reconnects_after_its_connection_is_killed(pg_pair):
    first, second = pg_pair
    heard: list[str | None] = []
    await first.listen("wake", heard.append)
    assert first.listener is not None and await first.listener.wait_connected(10)
    channel = scoped_channel("wake", first.schema)
    killed = await second.fetch_val(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query = :listen",
        {"listen": f'LISTEN "{channel}"'},
    )
    assert killed == 1
    await eventually(lambda: None in heard, within=20)  # told that it may have missed some
    await second.notify("wake", "after")
    await eventually(lambda: "after" in heard, within=10)


async def test_sqlite_notify_and_listen_do_nothing(tmp_path):
    db = Database.from_setting(str(tmp_path / "one.db"))
    await db.connect()
    try:
        heard: list[str | None] = []
        await db.listen("wake", heard.append)
        await db.notify("wake", "x")
        db.notify_soon("wake", "y")
        assert db.listener is None and heard == []
    finally:
        await db.disconnect()
