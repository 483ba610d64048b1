"""SIGKILL mid-flight: ``serve`` on SQLite, a ``worker`` on PostgreSQL.

The contract: nothing is lost (every queued message ends sent, or in a stated error);
duplicate deliveries at the SMTP server are no more than the sends in flight at the kill (a
process has at most ``MAILPROXY_MAX_CONCURRENCY`` sends between their start and their recorded
outcome); every event reaches the client application at least once, and never again once its
acknowledgement was recorded (a SIGKILL between the client's 200 and the write of that
acknowledgement may post those events once more: the documented at-least-once window).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailproxy_core.testing.db import postgres_test_schema
from tests.faults.harness import Api, ClientApp, Proc, Sink, Store, base_env, free_port, until

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token", "reporter_http")

MAX_CONCURRENCY = 10
COUNT = 400
TUNING = {
    "MAILPROXY_MAX_CONCURRENCY": str(MAX_CONCURRENCY),
    "MAILPROXY_MAX_PER_ACCOUNT": str(MAX_CONCURRENCY),
    "MAILPROXY_SMTP__MAX_CONNECTIONS": str(MAX_CONCURRENCY),
    "MAILPROXY_REPORT_INTERVAL": "1",
    # a killed process's leases run out after 10 s (default 60): keeps the suite short
    "MAILPROXY_LEASE_SECONDS": "10",
}


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """Holds each DATA for 200 ms: the kill finds sends in flight and most of the queue left."""
    running = await Sink(data_delay=0.2).up()
    yield running
    await running.down()


async def assert_contract(
    store: Store, sink: Sink, app: ClientApp, ids: list[str], excused: set[str]
) -> dict[str, int]:
    statuses = await store.statuses()
    assert set(statuses) <= {"sent", "error"}, statuses
    errors = await store.db.fetch_all(
        "SELECT id, last_error FROM messages WHERE status = 'error' LIMIT 5"
    )
    assert not errors, [dict(row) for row in errors]  # a healthy sink: no stated error either
    lost = [mid for mid in ids if mid not in sink.delivered]
    assert not lost, f"lost: {lost[:10]}"
    events = await store.event_ids()
    unreported = events - set(app.posts)
    assert not unreported, f"{len(unreported)} events never reported"
    reposted = app.reposted_after_ack(excused)
    assert not reposted, f"{len(reposted)} events posted again after a recorded acknowledgement"
    return {"lost": len(lost), "duplicates": sink.duplicates, "events": len(events)}


async def all_reported(store: Store, app: ClientApp, total: int) -> bool:
    return (
        await store.count("reported_ts IS NULL", "message_events") == 0
        and await store.count("1 = 1", "message_events") >= total
        and len(app.acked) >= total
    )


async def test_sigkill_of_serve_on_sqlite(tmp_path: Path, sink: Sink, client_app: ClientApp):
    db = str(tmp_path / "mail.db")
    env = base_env(db, tmp_path, MAILPROXY_PORT=str(free_port()), **TUNING)
    serve = await Proc("serve", env, tmp_path / "serve.log").start()
    api = Api(serve.url)
    try:
        await api.setup_tenant(client_app, sink)
        ids = [f"k{n:04d}" for n in range(COUNT)]
        await api.enqueue(ids)
        await until(lambda: len(sink.delivered) >= COUNT // 4, 60, "a quarter delivered")
        in_flight_at_kill = sink.open
        serve.kill()
        async with Store(db) as store:
            # acknowledged by the client app, but the write of the acknowledgement was cut
            recorded = await store.event_ids("reported_ts IS NOT NULL")
            excused = set(client_app.acked) - recorded
            held = await store.count("status = 'sending'")
            restarted = time.monotonic()
            await serve.start()
            await until(lambda: _done(store), 120, "every message finished after the restart")
            recovery = time.monotonic() - restarted
            await until(lambda: all_reported(store, client_app, COUNT), 60, "all reported")
            figures = await assert_contract(store, sink, client_app, ids, excused)
        print(
            f"\nFIGURES sigkill-serve-sqlite: {figures}, held at kill {held}, "
            f"DATA open at kill {in_flight_at_kill}, acks re-sendable {len(excused)}, "
            f"all finished {recovery:.1f} s after the restart"
        )
        assert sink.duplicates <= MAX_CONCURRENCY, (
            f"{sink.duplicates} duplicates, more than the {MAX_CONCURRENCY} sends in flight"
        )
    finally:
        await api.aclose()
        serve.stop()


async def _done(store: Store) -> bool:
    return await store.count("status NOT IN ('sent', 'error')") == 0


async def test_sigkill_of_a_worker_on_postgresql(tmp_path: Path, sink: Sink, client_app: ClientApp):
    async with postgres_test_schema() as db:
        # three dispatchers (serve and two workers), each with its own MAX_CONCURRENCY slots
        tuning = {**TUNING, "MAILPROXY_MAX_PER_ACCOUNT": str(3 * MAX_CONCURRENCY)}
        env = base_env(db, tmp_path, MAILPROXY_PORT=str(free_port()), **tuning)
        # serve: API, reporting and a small dispatcher of its own; two workers do most sends
        serve_env = {**env, "MAILPROXY_MAX_CONCURRENCY": "2"}
        serve = await Proc("serve", serve_env, tmp_path / "serve.log").start()
        api = Api(serve.url)
        workers = [Proc("worker", env, tmp_path / f"worker{n}.log") for n in range(2)]
        try:
            await api.setup_tenant(client_app, sink)
            ids = [f"w{n:04d}" for n in range(COUNT)]
            for worker in workers:
                await worker.start()
            async with Store(db) as store:
                victim = workers[0]
                owner = f"%:{victim.pid}:%"
                await api.enqueue(ids)

                async def victim_sending() -> bool:
                    # well into its work (outcomes written: one log line each) and busy
                    done = sum(" sent " in line for line in victim.log_lines())
                    if done < 20:
                        return False
                    busy = await store.count(f"status = 'sending' AND lease_owner LIKE '{owner}'")
                    return busy >= 3

                await until(victim_sending, 60, "the victim worker mid-flight", step=0.02)
                victim.kill()
                held = await store.count(f"status = 'sending' AND lease_owner LIKE '{owner}'")
                killed = time.monotonic()
                await until(lambda: _done(store), 120, "every message finished after the kill")
                recovery = time.monotonic() - killed
                await until(lambda: all_reported(store, client_app, COUNT), 60, "all reported")
                # no reporting process was killed: no acknowledgement may be re-posted
                figures = await assert_contract(store, sink, client_app, ids, excused=set())
            print(
                f"\nFIGURES sigkill-worker-postgresql: {figures}, victim held {held}, "
                f"all finished {recovery:.1f} s after the kill"
            )
            assert sink.duplicates <= MAX_CONCURRENCY, (
                f"{sink.duplicates} duplicates, more than the {MAX_CONCURRENCY} sends in flight"
            )
        finally:
            await api.aclose()
            for process in [*workers, serve]:
                process.stop()
