"""Tenants page (rate-limit usage, SMTP pool state), the kept ``.eml``, and the Reports back-off.

Messages are really sent: through the ``file`` transport (which keeps the ``.eml``) and over
SMTP to an in-process server (whose pooled session the Tenants page shows). Each page as the
admin and as a tenant key: the tenant never sees the other tenant's numbers.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from mailproxy_core import MailProxy, NotFound, PoolState, RateUsage, Scope, method_scope
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.smtp import ScriptedServer


async def send_through_file(api: ApiClient, mp: MailProxy, tenant_id: str) -> None:
    """Account ``disk`` (file transport, limits 5/min and 100/hour) sends one message."""
    account = await api.post(
        "/accounts/add",
        id="disk",
        tenant_id=tenant_id,
        host="unused.invalid",
        port=25,
        transport="file",
        limit_per_minute=5,
        limit_per_hour=100,
    )
    assert account.status == 200, account.json
    queued = await api.post(
        "/messages/add",
        id=f"{tenant_id}-disk",
        tenant_id=tenant_id,
        account_id="disk",
        **{"from": f"shop@{tenant_id}.example"},
        to="reader@example.org",
        subject=f"Kept copy {tenant_id}",
        body="Body of the kept message.",
    )
    assert queued.status == 200, queued.json
    await dispatch_now(mp)
    sent = await api.get("/messages/get", tenant_id=tenant_id, message_id=f"{tenant_id}-disk")
    assert sent.json["status"] == "sent", sent.json


async def test_rate_limit_usage_counts_the_current_windows(
    two_tenants: ApiClient, mp_kernel: MailProxy, signed_in: Any, admin_token: str
) -> None:
    api = two_tenants
    updated = await api.post("/tenants/update", tenant_id="acme", rate_limits={"per_day": 1000})
    assert updated.status == 200, updated.json
    await send_through_file(api, mp_kernel, "acme")

    # The windows the send counted in (the clock may cross a minute boundary meanwhile).
    sent = await api.get(
        "/messages/get", tenant_id="acme", message_id="acme-disk", include_history=True
    )
    now = int(sent.json["history"][-1]["event_ts"])
    usage = await mp_kernel.rate_limit_usage("acme", now)
    # The tenant's limit counts every attempt of its accounts: the three messages of "main"
    # (whose server is closed) and the one of "disk".
    assert usage["tenant"] == [RateUsage("day", 4, 1000, now - now % 86400 + 86400)]
    assert [(u.window, u.used, u.limit) for u in usage["disk"]] == [
        ("minute", 1, 5),
        ("hour", 1, 100),
    ]
    assert usage["main"] == []
    assert (await mp_kernel.rate_limit_usage("globex"))["tenant"] == []

    admin = await signed_in(admin_token)
    status, html = await admin.get("/ui/tenants")
    assert status == 200
    assert "4 / 1000 per day" in html and "/ 5 per minute" in html and "/ 100 per hour" in html
    assert "no pool (file)" in html

    globex = await signed_in("tenant-token:globex")
    _status, html = await globex.get("/ui/tenants")
    assert "1 / 5 per minute" not in html and "4 / 1000 per day" not in html
    assert "acme" not in html.lower()


async def test_smtp_pool_state_is_shown_per_account(
    two_tenants: ApiClient, mp_kernel: MailProxy, signed_in: Any
) -> None:
    server = await ScriptedServer().start()
    try:
        added = await two_tenants.post(
            "/accounts/add",
            id="relay",
            tenant_id="acme",
            host="127.0.0.1",
            port=server.port,
            use_tls=False,
        )
        assert added.status == 200, added.json
        queued = await two_tenants.post(
            "/messages/add",
            id="acme-relay",
            tenant_id="acme",
            account_id="relay",
            **{"from": "shop@acme.example"},
            to="reader@example.org",
            subject="Over SMTP",
            body="Hello.",
        )
        assert queued.status == 200, queued.json
        await dispatch_now(mp_kernel)
        sent = await two_tenants.get("/messages/get", tenant_id="acme", message_id="acme-relay")
        assert sent.json["status"] == "sent", sent.json
        account = await mp_kernel.account("acme", "relay")
        assert account is not None
        state = mp_kernel.pool_state(account)
        assert state is not None and state.open == 1 and state.idle == 1 and state.in_use == 0
        assert isinstance(state, PoolState) and state.max_connections

        acme = await signed_in("tenant-token:acme")
        _status, html = await acme.get("/ui/tenants")
        assert "1 open, 1 idle, 0 sending" in html
        globex = await signed_in("tenant-token:globex")
        _status, html = await globex.get("/ui/tenants")
        assert "1 open" not in html and "relay" not in html
    finally:
        await server.stop()


async def test_message_page_shows_the_kept_eml_or_says_it_is_not_kept(
    two_tenants: ApiClient, mp_kernel: MailProxy, signed_in: Any
) -> None:
    await send_through_file(two_tenants, mp_kernel, "acme")
    acme = await signed_in("tenant-token:acme")
    status, html = await acme.get("/ui/messages/acme/acme-disk")
    assert status == 200
    assert "Raw message (.eml)" in html
    assert "Subject: Kept copy acme" in html and "Body of the kept message." in html
    assert 'href="/ui/raw/acme/acme-disk"' in html

    response = await acme.client.get("/ui/raw/acme/acme-disk")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "message/rfc822"
    raw = await response.get_data()
    assert raw == await mp_kernel.kept_message("acme", "acme-disk")
    assert b"Message-ID: " in raw

    # Another tenant cannot read it, by page or by download.
    globex = await signed_in("tenant-token:globex")
    assert (await globex.get("/ui/messages/acme/acme-disk"))[0] == 403
    assert (await globex.get("/ui/raw/acme/acme-disk"))[0] == 403


async def test_not_kept_by_this_transport(
    two_tenants: ApiClient, mp_kernel: MailProxy, signed_in: Any
) -> None:
    added = await two_tenants.post(
        "/accounts/add", id="void", tenant_id="acme", host="x.invalid", port=25, transport="null"
    )
    assert added.status == 200, added.json
    queued = await two_tenants.post(
        "/messages/add",
        id="acme-void",
        tenant_id="acme",
        account_id="void",
        **{"from": "shop@acme.example"},
        to="reader@example.org",
        subject="Into the void",
        body=".",
    )
    assert queued.status == 200, queued.json
    await dispatch_now(mp_kernel)
    assert await mp_kernel.kept_message("acme", "acme-void") is None
    acme = await signed_in("tenant-token:acme")
    _status, html = await acme.get("/ui/messages/acme/acme-void")
    assert "Not kept by this transport" in html
    assert (await acme.get("/ui/raw/acme/acme-void"))[0] == 404
    # A message not sent yet has no raw section at all.
    _status, html = await acme.get("/ui/messages/acme/acme-0")
    assert "Raw message" not in html


async def test_reports_page_shows_back_off_dnd_and_last_error(
    two_tenants: ApiClient, mp_kernel: MailProxy, signed_in: Any, admin_token: str
) -> None:
    now = int(time.time())
    sync = mp_kernel.repos.sync_state
    await sync.record_failure("acme", now, now + 600, "HTTP 503 from the acme client")
    await sync.record_failure("acme", now, now + 1200, "HTTP 503 from the acme client")
    await sync.record_success("globex", now - 5, next_sync_after=now + 3600)

    status = await two_tenants.get("/instance/get_sync_status")
    rows = {row["id"]: row for row in status.json["tenants"]}
    assert rows["acme"]["failures"] == 2 and rows["acme"]["retry_at"] == now + 1200
    assert rows["acme"]["last_error"] == "HTTP 503 from the acme client"
    assert rows["globex"]["dnd_until"] == now + 3600 and rows["globex"]["retry_at"] is None

    admin = await signed_in(admin_token)
    _status, html = await admin.get("/ui/reports")
    assert f'2 failed, retry at <time data-ts="{now + 1200}">' in html
    assert "HTTP 503 from the acme client" in html
    assert f'until <time data-ts="{now + 3600}">' in html

    globex = await signed_in("tenant-token:globex")
    _status, html = await globex.get("/ui/reports")
    assert "HTTP 503" not in html and "failed, retry" not in html
    assert f'until <time data-ts="{now + 3600}">' in html


def test_method_scope_reads_the_scoping_decision() -> None:
    from mailproxy_core.entities.instance import InstanceEndpoint
    from mailproxy_core.entities.messages import MessagesEndpoint

    assert method_scope(InstanceEndpoint.plugins) is Scope.ADMIN_ONLY
    assert method_scope(MessagesEndpoint.retry) is Scope.TENANT_SCOPED
    assert method_scope(InstanceEndpoint.health) is Scope.PUBLIC
    assert method_scope(len) is None


async def test_kept_message_of_an_unknown_message_is_not_found(
    two_tenants: ApiClient, mp_kernel: MailProxy
) -> None:
    with pytest.raises(NotFound):
        await mp_kernel.kept_message("acme", "no-such-message")


async def test_kept_message_never_returns_another_tenants_file(
    two_tenants: ApiClient, mp_kernel: MailProxy
) -> None:
    """Two tenants' file accounts write to the same directory, with the same Message-ID."""
    for tenant in ("acme", "globex"):
        added = await two_tenants.post(
            "/accounts/add",
            id="disk",
            tenant_id=tenant,
            host="x.invalid",
            port=25,
            transport="file",
        )
        assert added.status == 200, added.json
        queued = await two_tenants.post(
            "/messages/add",
            id="same",
            tenant_id=tenant,
            account_id="disk",
            message_id="<shared@example.org>",
            **{"from": f"shop@{tenant}.example"},
            to="reader@example.org",
            subject=f"Secret of {tenant}",
            body=".",
        )
        assert queued.status == 200, queued.json
    await dispatch_now(mp_kernel)
    acme = await mp_kernel.kept_message("acme", "same")
    globex = await mp_kernel.kept_message("globex", "same")
    assert acme is not None and b"Secret of acme" in acme and b"globex" not in acme
    assert globex is not None and b"Secret of globex" in globex and b"acme" not in globex
