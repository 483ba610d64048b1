"""Delivery reports end to end: dispatcher → outbox → reporting loop → HTTP → a real client app.

The client application is a real HTTP server on loopback that records every POST with its headers
and raw body. The instance runs its loops by itself (not in test mode), with short intervals.
Both databases.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest

from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from tests.reporting.support import (
    all_reported,
    enqueue,
    history,
    message,
    wait_for,
    wait_for_async,
)

pytestmark = pytest.mark.requires_plugins("reporter_http", "smtp", "auth_token")

ENTRY_KEYS = {
    "sent": {"id", "sent_ts", "event_id", "tenant_id"},
    "error": {"id", "error_ts", "error", "event_id", "tenant_id"},
    "deferred": {"id", "deferred_ts", "deferred_reason", "event_id", "tenant_id"},
}


async def test_sent_deferred_and_error_entries(
    mp_client: ApiClient, mp_kernel, client_app, smtp_server
) -> None:
    server = await smtp_server()
    app = client_app()
    assert (await mp_client.post("/tenants/add", id="acme", client_base_url=app.url)).status == 200
    account = await mp_client.post(
        "/accounts/add",
        id="main",
        tenant_id="acme",
        host="127.0.0.1",
        port=server.port,
        use_tls=False,
    )
    assert account.status == 200, account.json
    server.handler.script("DATA", "451 4.7.1 Try again later")
    server.handler.rcpt_replies["ghost@example.com"] = "550 5.1.1 User unknown"
    await enqueue(mp_client, message("acme", "m1"))
    await wait_for(lambda: len(app.acknowledged_entries()) >= 2)
    await enqueue(mp_client, message("acme", "m2", to="ghost@example.com"))
    await wait_for(lambda: len(app.acknowledged_entries()) >= 3)
    await wait_for_async(lambda: all_reported(mp_kernel, "acme"))

    entries = app.acknowledged_entries()
    assert [(e["id"], _kind(e)) for e in entries] == [
        ("m1", "deferred"),
        ("m1", "sent"),
        ("m2", "error"),
    ]
    events = await history(mp_client, "acme", "m1") + await history(mp_client, "acme", "m2")
    for entry, event in zip(entries, events, strict=True):
        kind = event["event_type"]
        assert _kind(entry) == kind and set(entry) == ENTRY_KEYS[kind]
        assert entry["event_id"] == event["event_id"] and entry["tenant_id"] == "acme"
        assert entry[f"{kind}_ts"] == event["event_ts"]
        assert event["reported_ts"] is not None
    assert entries[0]["deferred_reason"] == "451 4.7.1 Try again later"
    assert "550 5.1.1 User unknown" in entries[2]["error"]
    assert entries[2]["error"] == events[2]["description"]

    # Acknowledged events are never posted again: the next idle polls are empty.
    seen = len(app.received())
    await wait_for(lambda: len(app.received()) >= seen + 3)
    assert len(app.acknowledged_entries()) == 3


@pytest.mark.parametrize("report_settings", [{"report_interval": 60.0}], indirect=True)
async def test_events_are_reported_right_after_sending(
    mp_client: ApiClient, client_app, add_tenant
) -> None:
    app = client_app()
    await add_tenant("acme", client_base_url=app.url)
    await _pause(0.3)  # the loop scanned at start and now sleeps for the report interval
    polls = len(app.received())  # 0, or 1 if the first scan came after the tenant was added
    started = time.time()
    await enqueue(mp_client, message("acme", "m1"))
    # The next scan is a minute away: only the dispatcher's wake-up explains a report now.
    await wait_for(lambda: len(app.acknowledged_entries()) == 1, within=5.0)
    assert app.acknowledged_entries()[0]["id"] == "m1"
    assert len(app.received()) == polls + 1
    assert app.received()[-1].received_at - started < 2.0


async def test_client_auth_modes_and_sync_paths(mp_client: ApiClient, client_app, add_tenant):
    app = client_app()
    auth = {
        "bearer": {"method": "bearer", "token": "tok-123"},
        "basic": {"method": "basic", "user": "ann", "password": "pa:ss"},
        "none": {"method": "none"},
    }
    for name, client_auth in auth.items():
        await add_tenant(
            name,
            client_base_url=app.url + "/",
            client_sync_path=f"/sync/{name}",
            client_auth=client_auth,
        )
    await add_tenant("plain", client_base_url=app.url)
    paths = ["/sync/bearer", "/sync/basic", "/sync/none", "/mail-proxy/sync"]
    await wait_for(lambda: all(app.received(path) for path in paths))

    assert app.received("/sync/bearer")[0].headers["authorization"] == "Bearer tok-123"
    basic = base64.b64encode(b"ann:pa:ss").decode()
    assert app.received("/sync/basic")[0].headers["authorization"] == f"Basic {basic}"
    for path in ("/sync/none", "/mail-proxy/sync"):
        assert "authorization" not in app.received(path)[0].headers
    for path in paths:
        request = app.received(path)[0]
        assert request.headers["content-type"] == "application/json"
        assert request.document == {"delivery_report": []}


async def test_signed_reports_verify_with_the_tenant_secret(
    mp_client: ApiClient, client_app, add_tenant
) -> None:
    app = client_app()
    await add_tenant(
        "signed",
        client_base_url=app.url,
        client_sync_path="/s",
        report_signing_secret="s3cret-key",
    )
    await add_tenant("unsigned", client_base_url=app.url, client_sync_path="/u")
    await enqueue(mp_client, message("signed", "m1"), message("unsigned", "m2"))
    await wait_for(lambda: app.acknowledged_entries("/s") and app.acknowledged_entries("/u"))

    for request in app.received("/s"):
        fields = dict(
            part.split("=", 1) for part in request.headers["x-mailproxy-signature"].split(",")
        )
        assert abs(int(fields["t"]) - time.time()) < 30
        signed = fields["t"].encode() + b"." + request.body
        expected = hmac.new(b"s3cret-key", signed, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(fields["v1"], expected)
        wrong = hmac.new(b"other-key", signed, hashlib.sha256).hexdigest()
        assert fields["v1"] != wrong
    assert any(r.entries for r in app.received("/s"))  # a non-empty body was signed too
    assert all("x-mailproxy-signature" not in r.headers for r in app.received("/u"))


async def test_next_sync_after_is_do_not_disturb_for_idle_polls_only(
    mp_client: ApiClient, client_app, add_tenant
) -> None:
    app = client_app(answer={"ok": True, "queued": 0, "next_sync_after": int(time.time()) + 3600})
    await add_tenant("acme", client_base_url=app.url)
    await wait_for(lambda: len(app.received()) == 1)
    await wait_for_async(lambda: _in_dnd(mp_client, "acme"))
    assert (await _sync_status(mp_client, "acme"))["next_sync_due"] is False

    await _pause(1.0)  # five report intervals
    assert len(app.received()) == 1  # no idle poll during do-not-disturb
    await enqueue(mp_client, message("acme", "m1"))
    await wait_for(lambda: len(app.acknowledged_entries()) == 1)  # events are still pushed
    assert len(app.received()) == 2

    app.answer = {"ok": True, "queued": 0}
    assert (await mp_client.post("/instance/run_now", tenant_id="acme")).status == 200
    await wait_for(lambda: len(app.received()) >= 3, within=2.0)  # polled at once
    assert app.received()[2].entries == []
    await wait_for(lambda: len(app.received()) >= 5)  # idle polls resume
    assert not await _in_dnd(mp_client, "acme")


@pytest.mark.parametrize("reporter_settings", [{"batch_size": 100}], indirect=True)
async def test_client_outage_during_500_sends_loses_nothing(
    mp_client: ApiClient, mp_kernel, client_app, add_tenant
) -> None:
    app = client_app(status=500)
    await add_tenant("acme", client_base_url=app.url)
    await enqueue(mp_client, *(message("acme", f"m{n:03d}") for n in range(500)))
    await wait_for(lambda: sum(1 for r in app.received() if r.entries) >= 2)
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["failures"] >= 1
    assert state["last_error"] == "HTTP 500 Internal Server Error"
    assert app.acknowledged_entries() == []

    app.status = 200  # the client recovers
    await wait_for_async(lambda: _sent_and_reported(mp_kernel, "acme", 500), within=30.0)

    listed = await mp_client.get(
        "/messages/list", tenant_id="acme", include_history=True, limit=1000
    )
    event_ids = {event["event_id"] for m in listed.json for event in m["history"]}
    assert len(event_ids) == 500
    acked = [entry["event_id"] for entry in app.acknowledged_entries()]
    assert set(acked) == event_ids  # every event arrived, none missing
    assert len(acked) == len(set(acked))  # acknowledged once, never posted again
    assert all(len(r.entries) <= 100 for r in app.received())
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is not None and state["failures"] == 0 and state["last_error"] is None


async def test_a_hanging_client_does_not_delay_another_tenant(
    mp_client: ApiClient, client_app, add_tenant
) -> None:
    slow, fast = client_app(hang=True), client_app()
    await add_tenant("slow", client_base_url=slow.url)
    await add_tenant("fast", client_base_url=fast.url)
    await wait_for(lambda: slow.received() and fast.received())  # slow's first poll hangs
    started = time.time()
    await enqueue(mp_client, message("slow", "s1"), message("fast", "f1"))
    await wait_for(lambda: len(fast.acknowledged_entries()) == 1, within=5.0)
    assert time.time() - started < 2.0
    assert slow.acknowledged() == []  # still hanging

    slow.release()
    await wait_for(lambda: [e["id"] for e in slow.acknowledged_entries()] == ["s1"], within=15.0)


async def test_events_written_before_a_client_url_are_not_sent_later(
    mp_client: ApiClient, mp_kernel, client_app, add_tenant
) -> None:
    # Without a client application the events count as reported (test_reports_nowhere.py);
    # a client_base_url set later receives only what happens from then on.
    await add_tenant("acme")
    await enqueue(mp_client, message("acme", "m1"))
    await wait_for_async(lambda: _sent_and_reported(mp_kernel, "acme", 1, reported=True))
    state = await mp_kernel.repos.sync_state.get("acme")
    assert state is None or state["last_error"] is None

    app = client_app()
    updated = await mp_client.post("/tenants/update", tenant_id="acme", client_base_url=app.url)
    assert updated.status == 200
    await enqueue(mp_client, message("acme", "m2"))
    await wait_for(lambda: [e["id"] for e in app.acknowledged_entries()] == ["m2"], within=5.0)


@pytest.mark.parametrize("report_settings", [{"test_mode": True}], indirect=True)
async def test_in_test_mode_only_run_now_reports(
    mp_client: ApiClient, mp_kernel, client_app, add_tenant
) -> None:
    from mailproxy_core.testing.dispatch import dispatch_now

    app = client_app()
    await add_tenant("acme", client_base_url=app.url)
    await enqueue(mp_client, message("acme", "m1"))
    await dispatch_now(mp_kernel)
    await _pause(0.5)
    assert app.received() == []

    assert (await mp_client.post("/instance/run_now")).status == 200
    await wait_for(lambda: [e["id"] for e in app.acknowledged_entries()] == ["m1"])
    assert len(app.received()) == 1


# -- helpers -----------------------------------------------------------------------------------


def _kind(entry: dict[str, Any]) -> str:
    return next(kind for kind in ENTRY_KEYS if f"{kind}_ts" in entry)


async def _sync_status(client: ApiClient, tenant_id: str) -> dict[str, Any]:
    response = await client.get("/instance/get_sync_status")
    assert response.status == 200, response.json
    return next(row for row in response.json["tenants"] if row["id"] == tenant_id)


async def _in_dnd(client: ApiClient, tenant_id: str) -> bool:
    return bool((await _sync_status(client, tenant_id))["in_dnd"])


async def _pause(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def _sent_and_reported(mp: Any, tenant_id: str, count: int, *, reported: bool = True) -> bool:
    """Whether ``count`` messages were sent, and (unless told) all their events reported."""
    sent = await mp.repos.messages.list(tenant_id, status="sent", limit=count + 1)
    return len(sent) == count and (not reported or await all_reported(mp, tenant_id))


async def _has_failures(mp: Any, tenant_id: str) -> bool:
    state = await mp.repos.sync_state.get(tenant_id)
    return state is not None and state["failures"] > 0


async def test_unreported_events_are_reported_after_a_restart(
    mp_settings, mp_extra_plugins, client_app
) -> None:
    app = client_app(status=503)
    first = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with first.test_app():
        client = ApiClient(first.test_client(), token=ADMIN_TOKEN)
        kernel = kernel_of(first)
        assert (await client.post("/tenants/add", id="acme", client_base_url=app.url)).status == 200
        account = await client.post(
            "/accounts/add",
            id="main",
            tenant_id="acme",
            host="x.invalid",
            port=25,
            transport="null",
        )
        assert account.status == 200
        await enqueue(client, *(message("acme", f"m{n:02d}") for n in range(20)))
        await wait_for_async(lambda: _sent_and_reported(kernel, "acme", 20, reported=False))
        await wait_for_async(lambda: _has_failures(kernel, "acme"))
    assert app.acknowledged() == []

    app.status = 200
    second = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with second.test_app():
        kernel = kernel_of(second)
        await wait_for_async(lambda: _sent_and_reported(kernel, "acme", 20), within=15.0)
    assert sorted(e["id"] for e in app.acknowledged_entries()) == [f"m{n:02d}" for n in range(20)]


@pytest.mark.parametrize("report_settings", [{"test_mode": True}], indirect=True)
async def test_a_stop_right_after_the_answer_still_records_the_acknowledgement(
    mp_settings, mp_extra_plugins, client_app
) -> None:
    from mailproxy_core.testing.dispatch import dispatch_now

    app = client_app()
    first = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with first.test_app():
        client = ApiClient(first.test_client(), token=ADMIN_TOKEN)
        assert (await client.post("/tenants/add", id="acme", client_base_url=app.url)).status == 200
        account = await client.post(
            "/accounts/add",
            id="main",
            tenant_id="acme",
            host="x.invalid",
            port=25,
            transport="null",
        )
        assert account.status == 200
        await enqueue(client, *(message("acme", f"m{n}") for n in range(5)))
        await dispatch_now(kernel_of(first))
        assert (await client.post("/instance/run_now")).status == 200
        await wait_for(lambda: len(app.acknowledged_entries()) == 5)
    # stopped at once: the acknowledgement was written during the shutdown

    second = create_app(mp_settings, extra_plugins=mp_extra_plugins)
    async with second.test_app():
        assert await all_reported(kernel_of(second), "acme")
