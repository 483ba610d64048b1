"""messages/delete, delete_batch, cleanup, count_active, count_pending_for_tenant (SQLite + PG)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.db import schema
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

MESSAGES = schema.messages
EVENTS = schema.message_events


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    """An instance on SQLite or PostgreSQL."""
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")


def msg(message_id: str, tenant_id: str = "acme", **fields: Any) -> dict[str, Any]:
    return {
        "id": message_id,
        "tenant_id": tenant_id,
        "account_id": "main",
        "from": "sender@acme.test",
        "to": "rcpt@example.com",
        "subject": "Hi",
        "body": "Hi",
        **fields,
    }


@pytest.fixture
async def admin(mp_client: ApiClient) -> ApiClient:
    """``acme`` with a0..a5 (a0-a2 batch ``b1``), ``globex`` with g0, g1."""
    for tenant_id in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant_id})).status == 200
        account = {"id": "main", "tenant_id": tenant_id, "host": "h.test", "port": 25}
        response = await mp_client.post("/accounts/add", json={**account, "transport": "null"})
        assert response.status == 200, response.json
    batch = [msg(f"a{i}", batch_code="b1" if i < 3 else None) for i in range(6)]
    batch += [msg("g0", "globex"), msg("g1", "globex")]
    response = await mp_client.post("/messages/add_batch", json={"messages": batch})
    assert response.json["queued"] == 8
    return mp_client


async def set_state(mp_kernel: MailProxy, message_id: str, **values: Any) -> None:
    await mp_kernel.db.execute(
        MESSAGES.update().where(MESSAGES.c.id == message_id).values(**values)
    )


async def pk_of(mp_kernel: MailProxy, message_id: str) -> int:
    return int(
        await mp_kernel.db.fetch_val(sa.select(MESSAGES.c.pk).where(MESSAGES.c.id == message_id))
    )


async def ids(mp_kernel: MailProxy) -> list[str]:
    rows = await mp_kernel.db.fetch_all(sa.select(MESSAGES.c.id).order_by(MESSAGES.c.pk))
    return [row["id"] for row in rows]


async def add_event(mp_kernel: MailProxy, message_id: str, reported_ts: int | None) -> None:
    await mp_kernel.db.execute(
        EVENTS.insert().values(
            event_uuid=str(uuid.uuid4()),
            message_pk=await pk_of(mp_kernel, message_id),
            tenant_id="globex" if message_id.startswith("g") else "acme",
            event_type="sent",
            event_ts=1,
            reported_ts=reported_ts,
        )
    )


async def test_delete_by_pk(admin: ApiClient, mp_kernel: MailProxy) -> None:
    a0 = await pk_of(mp_kernel, "a0")
    await add_event(mp_kernel, "a0", None)
    assert (await admin.post("/messages/delete", json={"message_pk": a0})).json is True
    assert (await admin.post("/messages/delete", json={"message_pk": a0})).json is False
    assert await mp_kernel.db.fetch_val(sa.select(sa.func.count()).select_from(EVENTS)) == 0

    await set_state(mp_kernel, "a1", status="sending")
    response = await admin.post(
        "/messages/delete", json={"message_pk": await pk_of(mp_kernel, "a1")}
    )
    assert response.status == 409 and response.json["code"] == "message_in_flight"

    for absurd in (0, -1, 2**63, 10**30):
        response = await admin.post("/messages/delete", json={"message_pk": absurd})
        assert (response.status, response.json) == (200, False)

    acme = admin.as_tenant("acme")
    g0 = await pk_of(mp_kernel, "g0")
    assert (await acme.post("/messages/delete", json={"message_pk": g0})).json is False
    assert (
        await acme.post("/messages/delete", json={"message_pk": await pk_of(mp_kernel, "a2")})
    ).json is True
    assert await ids(mp_kernel) == ["a1", "a3", "a4", "a5", "g0", "g1"]


async def test_delete_batch(admin: ApiClient, mp_kernel: MailProxy) -> None:
    await set_state(mp_kernel, "a2", status="sending")
    response = await admin.post(
        "/messages/delete_batch",
        json={
            "tenant_id": "acme",
            "ids": ["a0", "nope", "a2", "g0", "a1", "a0", "x\x00", "\ud800"],
        },
    )
    assert response.json == {
        "ok": True,
        "removed": 2,
        "not_found": ["nope", "g0", "x\x00", "?"],
        "in_flight": ["a2"],
    }
    assert await ids(mp_kernel) == ["a2", "a3", "a4", "a5", "g0", "g1"]
    response = await admin.post("/messages/delete_batch", json={"tenant_id": "acme", "ids": []})
    assert response.json == {"ok": True, "removed": 0, "not_found": [], "in_flight": []}

    acme = admin.as_tenant("acme")
    response = await acme.post("/messages/delete_batch", json={"ids": ["a3", "g1"]})
    assert response.json == {"ok": True, "removed": 1, "not_found": ["g1"], "in_flight": []}
    forbidden = await acme.post(
        "/messages/delete_batch", json={"tenant_id": "globex", "ids": ["g1"]}
    )
    assert forbidden.status == 403
    missing = await admin.post("/messages/delete_batch", json={"tenant_id": "nope", "ids": ["x"]})
    assert missing.status == 404
    assert await ids(mp_kernel) == ["a2", "a4", "a5", "g0", "g1"]


async def test_cleanup_removes_old_finished_fully_reported_messages(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    old = int(time.time()) - 7200
    await set_state(mp_kernel, "a0", status="sent", updated_at=old)  # removed
    await set_state(mp_kernel, "a1", status="error", updated_at=old)  # removed: events reported
    await add_event(mp_kernel, "a1", reported_ts=old)
    await set_state(mp_kernel, "a2", status="sent", updated_at=old)  # kept: unreported event
    await add_event(mp_kernel, "a2", reported_ts=old)
    await add_event(mp_kernel, "a2", reported_ts=None)
    await set_state(mp_kernel, "a3", status="sent", updated_at=old + 7000)  # kept: too recent
    await set_state(mp_kernel, "a4", status="deferred", updated_at=old)  # kept: not finished
    await set_state(mp_kernel, "g0", status="sent", updated_at=old)  # kept: other tenant

    response = await admin.post(
        "/messages/cleanup", json={"tenant_id": "acme", "older_than_seconds": 3600}
    )
    assert response.json == {"ok": True, "removed": 2}
    assert await ids(mp_kernel) == ["a2", "a3", "a4", "a5", "g0", "g1"]
    response = await admin.post("/messages/cleanup", json={"tenant_id": "acme"})
    assert response.json == {"ok": True, "removed": 0}  # default: one day
    response = await admin.post(
        "/messages/cleanup", json={"tenant_id": "acme", "older_than_seconds": 100}
    )
    assert response.json == {"ok": True, "removed": 1}  # a3
    bad = await admin.post(
        "/messages/cleanup", json={"tenant_id": "acme", "older_than_seconds": -1}
    )
    assert bad.status == 422

    globex = admin.as_tenant("globex")
    assert (await globex.post("/messages/cleanup", json={"older_than_seconds": 60})).json == {
        "ok": True,
        "removed": 1,
    }
    assert (await globex.post("/messages/cleanup", json={"tenant_id": "acme"})).status == 403
    assert (await admin.post("/messages/cleanup", json={"tenant_id": "nope"})).status == 404
    huge = {"tenant_id": "acme", "older_than_seconds": 10**20}
    assert (await admin.post("/messages/cleanup", json=huge)).status == 422


async def test_cleanup_pages_through_many_rows(admin: ApiClient, mp_kernel: MailProxy) -> None:
    batch = [msg(f"bulk{i}") for i in range(1100)]
    for start in range(0, len(batch), 1000):
        response = await admin.post(
            "/messages/add_batch", json={"messages": batch[start : start + 1000]}
        )
        assert response.json["queued"] == len(batch[start : start + 1000])
    await mp_kernel.db.execute(
        MESSAGES.update().where(MESSAGES.c.id.like("bulk%")).values(status="sent", updated_at=1)
    )
    response = await admin.post("/messages/cleanup", json={"tenant_id": "acme"})
    assert response.json == {"ok": True, "removed": 1100}


async def test_counts(admin: ApiClient, mp_kernel: MailProxy) -> None:
    await set_state(mp_kernel, "a0", status="sending")
    await set_state(mp_kernel, "a1", status="deferred")
    await set_state(mp_kernel, "a3", status="sent")
    await set_state(mp_kernel, "a4", status="error")
    await set_state(mp_kernel, "g0", status="sent")

    assert (await admin.get("/messages/count_active")).json == 5  # a0 a1 a2 a5 g1
    assert (await admin.as_tenant("acme").get("/messages/count_active")).json == 4
    assert (await admin.as_tenant("globex").get("/messages/count_active")).json == 1

    count = "/messages/count_pending_for_tenant"
    assert (await admin.get(count, tenant_id="acme")).json == 3  # a1 a2 a5
    assert (await admin.get(count, tenant_id="acme", batch_code="b1")).json == 2  # a1 a2
    assert (await admin.get(count, tenant_id="acme", batch_code="zz")).json == 0
    assert (await admin.as_tenant("globex").get(count)).json == 1
    assert (await admin.as_tenant("globex").get(count, tenant_id="acme")).status == 403
    assert (await admin.get(count, tenant_id="nope")).status == 404
