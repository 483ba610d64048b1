"""Tenants with nowhere to report to: no ``client_base_url``, or ``reporter: "none"``.

Their events count as reported as soon as they are written, so ``messages/cleanup`` and
retention remove finished messages, and no failing report attempt is ever logged for them.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailproxy_core.testing.client import ApiClient
from tests.reporting.support import all_reported, enqueue, history, message, wait_for_async

pytestmark = pytest.mark.requires_plugins("reporter_http", "auth_token")


@pytest.mark.parametrize(
    "fields",
    [{}, {"reporter": "none"}, {"reporter": "none", "client_base_url": "http://127.0.0.1:9"}],
    ids=["no-client-app", "reporter-none", "reporter-none-with-url"],
)
async def test_events_count_as_reported_and_nothing_fails(
    mp_client: ApiClient, mp_kernel, add_tenant, caplog: pytest.LogCaptureFixture, fields
) -> None:
    caplog.set_level(logging.INFO)
    await add_tenant("quiet", **fields)
    await enqueue(mp_client, message("quiet", "m1", account_id="main"))

    async def sent_and_reported() -> bool:
        events = await history(mp_client, "quiet", "m1")
        return bool(events) and await all_reported(mp_kernel, "quiet")

    await wait_for_async(sent_and_reported)
    events = await history(mp_client, "quiet", "m1")
    assert [e["event_type"] for e in events] == ["sent"]
    assert events[0]["reported_ts"] is not None
    await asyncio.sleep(1.1)  # cleanup removes messages unchanged for more than 0 whole seconds
    cleaned = await mp_client.post("/messages/cleanup", tenant_id="quiet", older_than_seconds=0)
    assert cleaned.json == {"ok": True, "removed": 1}
    state = await mp_client.get("/instance/get_sync_status")
    (tenant,) = [t for t in state.json["tenants"] if t["id"] == "quiet"]
    assert tenant["last_sync_ts"] is not None
    failures = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "quiet" in r.getMessage()
    ]
    assert failures == []
