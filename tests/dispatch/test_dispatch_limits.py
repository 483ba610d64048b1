"""Rate limits, concurrency limits and connection reuse."""

from __future__ import annotations

import time

import pytest

from mailproxy_core.testing.dispatch import dispatch_now
from tests.dispatch.support import enqueue, history, message, status_of

pytestmark = pytest.mark.requires_plugins("smtp", "auth_token")


async def limited_account(client, server, **limits):
    added = await client.post(
        "/accounts/add",
        id="limited",
        tenant_id="acme",
        host="127.0.0.1",
        port=server.port,
        use_tls=False,
        **limits,
    )
    assert added.status == 200, added.json


async def test_rate_limit_defer_moves_to_the_next_window(relay, server, mp_kernel):
    await limited_account(relay, server, limit_per_minute=2)
    await enqueue(relay, *(message(f"m{i}", account_id="limited") for i in range(3)))
    before = int(time.time())
    await dispatch_now(mp_kernel)
    statuses = [await status_of(relay, f"m{i}") for i in range(3)]
    assert statuses.count("sent") == 2 and statuses.count("deferred") == 1
    deferred = f"m{statuses.index('deferred')}"
    assert await history(relay, deferred) == [("deferred", "rate_limit")]
    got = await relay.get("/messages/get", message_id=deferred, tenant_id="acme")
    assert got.json["next_attempt_ts"] % 60 == 0 and got.json["next_attempt_ts"] > before
    assert got.json["attempts"] == 0  # a rate-limit deferral is not a retry


async def test_rate_limit_reject_ends_the_message(relay, server, mp_kernel):
    await limited_account(relay, server, limit_per_hour=1, limit_behavior="reject")
    await enqueue(relay, message("a", account_id="limited"), message("b", account_id="limited"))
    await dispatch_now(mp_kernel)
    results = {mid: await history(relay, mid) for mid in ("a", "b")}
    kinds = sorted(events[0][0] for events in results.values())
    assert kinds == ["error", "sent"]
    assert ("error", "rate_limit_exceeded") in [e[0] for e in results.values()]


async def test_tenant_rate_limit_spans_its_accounts(relay, server, mp_kernel):
    await relay.post("/tenants/update", tenant_id="acme", rate_limits={"per_minute": 1})
    await limited_account(relay, server)
    await enqueue(relay, message("a"), message("b", account_id="limited"))
    await dispatch_now(mp_kernel)
    statuses = sorted([await status_of(relay, "a"), await status_of(relay, "b")])
    assert statuses == ["deferred", "sent"]


async def test_connections_are_reused_within_the_cap(relay, server, mp_kernel):
    await enqueue(relay, *(message(f"m{i}") for i in range(20)))
    await dispatch_now(mp_kernel)
    assert len(server.handler.messages) == 20
    assert server.peak_open <= 3
    assert server.connections <= 3
