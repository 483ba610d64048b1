"""Peers that go away and come back: the SMTP server, the client application.

The contract: mail for a server that is down is deferred (a transient failure, retried), then
delivered once the server is back, nothing lost and, with no crash, nothing sent twice; reports
for a client application that is down stay queued and reach it once it is back, and an event
acknowledged once is never posted again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.harness import Api, ClientApp, Proc, Sink, Store, base_env, free_port, until

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token", "reporter_http")

COUNT = 60
DOWN_SECONDS = 4.0


def env_for(tmp_path: Path, **values: str) -> tuple[str, dict[str, str]]:
    db = str(tmp_path / "mail.db")
    return db, base_env(
        db, tmp_path, MAILPROXY_PORT=str(free_port()), MAILPROXY_REPORT_INTERVAL="1", **values
    )


async def test_smtp_server_down_then_up(tmp_path: Path, sink: Sink, client_app: ClientApp):
    # retries after 1 s, then every 2 s: 5 retries cover ~9 s, the outage lasts 4
    db, env = env_for(tmp_path, MAILPROXY_RETRY_DELAYS="1,2")
    serve = await Proc("serve", env, tmp_path / "serve.log").start()
    api = Api(serve.url)
    try:
        await api.setup_tenant(client_app, sink)
        await sink.down()
        down_at = time.monotonic()
        ids = [f"s{n:03d}" for n in range(COUNT)]
        await api.enqueue(ids)
        async with Store(db) as store:

            async def all_deferred() -> bool:
                return await store.count("attempts >= 1 AND status = 'deferred'") == COUNT

            await until(all_deferred, 30, "every message deferred while the server is away")
            await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
            await sink.up()
            back = time.monotonic()

            async def all_sent() -> bool:
                return await store.count("status = 'sent'") == COUNT

            await until(all_sent, 60, "every message sent after the server came back")
            recovery = time.monotonic() - back
            assert sorted(sink.delivered) == sorted(ids)  # nothing lost
            assert sink.duplicates == 0  # no crash: each message accepted once
            deferred = await store.count("event_type = 'deferred'", "message_events")
            assert deferred >= COUNT
            events = await store.event_ids()
            await until(lambda: set(client_app.acked) >= events, 60, "every event reported")
            assert not client_app.reposted_after_ack()
            kinds = {entry.get("deferred_reason") is not None for entry in
                     client_app.entries.values()}  # fmt: skip
            assert kinds == {True, False}  # the client saw the deferrals and the sends
        print(
            f"\nFIGURES smtp-down-up: lost 0, duplicates {sink.duplicates}, deferred events "
            f"{deferred}, all sent {recovery:.1f} s after the server came back"
        )
    finally:
        await api.aclose()
        serve.stop()


async def test_client_application_down_then_up(tmp_path: Path, sink: Sink, client_app: ClientApp):
    db, env = env_for(tmp_path)
    serve = await Proc("serve", env, tmp_path / "serve.log").start()
    api = Api(serve.url)
    try:
        await api.setup_tenant(client_app, sink)
        client_app.down()
        ids = [f"c{n:03d}" for n in range(COUNT)]
        await api.enqueue(ids)
        async with Store(db) as store:

            async def all_sent() -> bool:
                return await store.count("status = 'sent'") == COUNT

            await until(all_sent, 60, "every message sent")
            await asyncio.sleep(DOWN_SECONDS)  # reports fail meanwhile (connection refused)
            assert await store.count("reported_ts IS NULL", "message_events") == COUNT
            failures = await store.db.fetch_val(
                "SELECT failures FROM tenant_sync_state WHERE tenant_id = 'acme'"
            )
            assert failures and int(failures) >= 1, "no failed report was recorded"
            client_app.up()
            back = time.monotonic()
            events = await store.event_ids()

            async def all_acknowledged() -> bool:
                return (
                    set(client_app.acked) >= events
                    and await store.count("reported_ts IS NULL", "message_events") == 0
                )

            await until(all_acknowledged, 60, "every event reported after the app came back")
            recovery = time.monotonic() - back
            await asyncio.sleep(2.5)  # two more report intervals: nothing may come again
            assert not client_app.reposted_after_ack()
            assert {len(times) for times in client_app.posts.values()} == {1}
        print(
            f"\nFIGURES client-app-down-up: {len(events)} events, each posted once, all "
            f"acknowledged {recovery:.1f} s after the app came back"
        )
    finally:
        await api.aclose()
        serve.stop()
