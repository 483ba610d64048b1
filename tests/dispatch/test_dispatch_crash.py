"""A dispatcher that dies: duplicates stay within its sends in flight, its leases are freed early.

docs/dispatch.md, "At-least-once and duplicates": a send slot frees only once the outcome of its
send is committed, so a process killed at any moment leaves at most ``max_concurrency`` messages
sent but unrecorded; a restarted process takes over its predecessor's leases at once (SQLite:
every lease; PostgreSQL: a registered process on this machine whose pid is gone), and a process
that stops heartbeating loses its leases after ``3 x heartbeat_seconds``, long before they expire.

The crash tests run real processes (``serve`` / ``worker``) killed with SIGKILL while the
database holds their writes back (another transaction locks PostgreSQL's ``message_events``;
another connection holds SQLite's write lock), so finished sends pile up unrecorded as they
would while the database is slow.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from mailproxy_core.db.repos.processes import ProcessRepo
from mailproxy_core.dispatch.dispatcher import machine_id
from mailproxy_core.testing.db import postgres_test_schema
from tests.dispatch.sink import CountingSink
from tests.dispatch.support import enqueue, message
from tests.dispatch.test_dispatch_workers import ACCOUNTS, Cluster

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")

SLOTS = 4
"""``MAILPROXY_MAX_CONCURRENCY`` of the victim: the bound on its duplicates."""

TOTAL = 240


@pytest.fixture
async def sink() -> AsyncIterator[CountingSink]:
    counting = await CountingSink(ACCOUNTS, data_delay=0.01).start()
    yield counting
    await counting.stop()


@asynccontextmanager
async def crash_cluster(kind: str, tmp_path: Any) -> AsyncIterator[Cluster]:
    env = {
        "MAILPROXY_MAX_CONCURRENCY": str(SLOTS),
        "MAILPROXY_MAX_PER_ACCOUNT": "10",
        "MAILPROXY_SMTP__MAX_CONNECTIONS": "10",
        "MAILPROXY_SEND_LOOP_INTERVAL": "0.05",
        # Neither expiry nor missed heartbeats can free the victim's leases within the test:
        # only the restart can.
        "MAILPROXY_LEASE_SECONDS": "60",
        "MAILPROXY_HEARTBEAT_SECONDS": "30",
    }
    if kind == "sqlite":
        cluster = Cluster(str(tmp_path / "queue.db"), env)
        try:
            yield cluster
        finally:
            await cluster.close()
        return
    async with postgres_test_schema() as url:
        cluster = Cluster(url, env)
        try:
            yield cluster
        finally:
            await cluster.close()


@contextmanager
def sqlite_write_lock(path: str) -> Iterator[None]:
    """Hold SQLite's write lock from another connection (as a long writer would)."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def quiet(sink: CountingSink, seconds: float = 1.5, within: float = 30.0) -> None:
    """Wait until no message arrived at the sink for ``seconds``."""
    deadline = time.monotonic() + within
    seen, since = len(sink.arrivals), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the sink never went quiet"
        await asyncio.sleep(0.05)
        if len(sink.arrivals) != seen:
            seen, since = len(sink.arrivals), time.monotonic()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_killed_process_resends_at_most_its_slots_and_a_restart_reclaims_at_once(
    kind, tmp_path, sink
):
    async with crash_cluster(kind, tmp_path) as cluster:
        victim = await cluster.start_serve(test_mode=kind == "postgresql")
        await cluster.setup(sink)
        await cluster.enqueue(TOTAL)
        if kind == "postgresql":
            victim = await cluster.start_worker()
        await cluster.wait_for("status = 'sent'", 40, within=60)
        # The database stops taking the victim's writes; its sends go on as long as it lets them.
        if kind == "sqlite":
            with sqlite_write_lock(str(tmp_path / "queue.db")):
                await quiet(sink)
                victim.send_signal(signal.SIGKILL)
                await victim.wait()
        else:
            async with cluster.db.transaction():
                # Outcomes are written with their events: the victim's next write waits here.
                await cluster.db.execute("LOCK TABLE message_events IN EXCLUSIVE MODE")
                await quiet(sink)
                victim.send_signal(signal.SIGKILL)
                await victim.wait()
        unrecorded = len(sink.delivered) - await cluster.count("status = 'sent'")
        assert 0 < await cluster.count("status = 'sending'")
        killed = time.monotonic()
        if kind == "sqlite":
            await cluster.start_serve(test_mode=False)
        else:
            await cluster.start_worker()
        # Leases are 60 s and heartbeats 30 s: only the restart frees the victim's messages.
        await cluster.wait_for("status = 'sent'", TOTAL, within=25)
        recovered = time.monotonic() - killed

    assert len(sink.delivered) == TOTAL  # none lost
    duplicates = sum(n - 1 for n in sink.delivered.values())
    assert duplicates == unrecorded  # each unrecorded send went out again, once
    assert duplicates <= SLOTS, (duplicates, unrecorded)
    assert recovered < 25


@pytest.fixture
def dispatch_settings() -> dict[str, Any]:
    return {"max_concurrency": 10, "max_per_account": 10, "heartbeat_seconds": 1.0}


async def test_a_silent_process_loses_its_leases_after_three_missed_heartbeats(relay, mp_kernel):
    db = mp_kernel.db
    processes = ProcessRepo(db)
    await enqueue(relay, *(message(f"m{n}") for n in range(4)))
    now = int(time.time())
    # Two dispatchers on other machines, each holding two messages under an hour-long lease;
    # one keeps heartbeating, the other has stopped (it died without a word).
    await processes.register("far:1:dead", "elsewhere", 1, now)
    await processes.register("far:2:live", "elsewhere", 2, now)
    for owner, ids in (("far:1:dead", ("m0", "m1")), ("far:2:live", ("m2", "m3"))):
        await db.execute(
            "UPDATE messages SET status = 'sending', lease_owner = :owner, lease_until = :until "
            "WHERE id IN (:a, :b)",
            {"owner": owner, "until": now + 3600, "a": ids[0], "b": ids[1]},
        )

    async def owners() -> dict[str, str | None]:
        rows = await db.fetch_all("SELECT id, lease_owner FROM messages ORDER BY id")
        return {row["id"]: row["lease_owner"] for row in rows}

    started = time.monotonic()
    freed_after = None
    while time.monotonic() - started < 12:
        await processes.heartbeat("far:2:live", int(time.time()))
        leased = await owners()
        if freed_after is None and leased["m0"] is None:
            freed_after = time.monotonic() - started
            break
        if time.monotonic() - started < 2.0:
            assert leased["m0"] == "far:1:dead"  # not before it missed its heartbeats
        await asyncio.sleep(0.2)
    assert freed_after is not None, "the silent process's leases were never taken over"
    # 3 x 1 s heartbeats (whole seconds: 3-4 s) plus one beat to notice, not the 3600 s lease
    assert 2.0 <= freed_after <= 8.0
    leased = await owners()
    assert leased == {"m0": None, "m1": None, "m2": "far:2:live", "m3": "far:2:live"}
    statuses = await db.fetch_all("SELECT id, status FROM messages WHERE id IN ('m0', 'm1')")
    assert {row["status"] for row in statuses} == {"pending"}
    remaining = await db.fetch_all("SELECT owner FROM dispatch_processes ORDER BY owner")
    assert "far:1:dead" not in {row["owner"] for row in remaining}
    assert "far:2:live" in {row["owner"] for row in remaining}


async def test_a_process_gone_from_this_machine_loses_its_leases_within_one_heartbeat(
    relay, mp_kernel
):
    db = mp_kernel.db
    processes = ProcessRepo(db)
    await enqueue(relay, message("m0"))
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()  # its pid exists no more
    now = int(time.time())
    owner = f"{socket.gethostname()}:{gone.pid}:cafe"
    await processes.register(owner, machine_id(), gone.pid, now + 3600)  # heartbeat "current"
    await db.execute(
        "UPDATE messages SET status = 'sending', lease_owner = :owner, lease_until = :until",
        {"owner": owner, "until": now + 3600},
    )
    started = time.monotonic()
    while await db.fetch_val("SELECT lease_owner FROM messages WHERE id = 'm0'") is not None:
        assert time.monotonic() - started < 2.5, "not taken over within one heartbeat (1 s)"
        await asyncio.sleep(0.1)
    assert await db.fetch_val("SELECT status FROM messages WHERE id = 'm0'") == "pending"
