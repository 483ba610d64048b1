"""messages/get and messages/list: the message object, paging, filters, history (SQLite + PG)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.db import schema
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient, is_utc_text
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

MESSAGE_KEYS = {
    "pk",
    "id",
    "tenant_id",
    "account_id",
    "status",
    "priority",
    "batch_code",
    "deferred_ts",
    "next_attempt_ts",
    "attempts",
    "smtp_ts",
    "error",
    "last_error",
    "created_at",
    "updated_at",
    "payload",
}


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
        "to": ["rcpt@example.com"],
        "subject": f"Subject {message_id}",
        "body": "Hi",
        **fields,
    }


@pytest.fixture
async def admin(mp_client: ApiClient) -> ApiClient:
    """``acme`` with messages m0..m5, ``globex`` with g0."""
    for tenant_id in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant_id})).status == 200
        account = {"id": "main", "tenant_id": tenant_id, "host": "h.test", "port": 25}
        response = await mp_client.post("/accounts/add", json={**account, "transport": "null"})
        assert response.status == 200, response.json
    batch = [msg(f"m{i}", priority=i % 4) for i in range(6)] + [msg("g0", "globex")]
    response = await mp_client.post("/messages/add_batch", json={"messages": batch})
    assert response.json["queued"] == 7
    return mp_client


async def pk_of(mp_kernel: MailProxy, message_id: str) -> int:
    query = sa.select(schema.messages.c.pk).where(schema.messages.c.id == message_id)
    return int(await mp_kernel.db.fetch_val(query))


async def add_event(
    mp_kernel: MailProxy, message_id: str, event_type: str, event_ts: int, **values: Any
) -> str:
    event_id = str(uuid.uuid4())
    tenant_id = "globex" if message_id.startswith("g") else "acme"
    await mp_kernel.db.execute(
        schema.message_events.insert().values(
            event_uuid=event_id,
            message_pk=await pk_of(mp_kernel, message_id),
            tenant_id=tenant_id,
            event_type=event_type,
            event_ts=event_ts,
            **values,
        )
    )
    return event_id


async def test_get_returns_the_message_object(admin: ApiClient, mp_kernel: MailProxy) -> None:
    response = await admin.get("/messages/get", tenant_id="acme", message_id="m1")
    assert response.status == 200
    message = response.json
    assert set(message) == MESSAGE_KEYS
    assert message["pk"] == str(await pk_of(mp_kernel, "m1"))
    assert (message["id"], message["tenant_id"], message["account_id"]) == ("m1", "acme", "main")
    assert (message["status"], message["priority"], message["attempts"]) == ("pending", 1, 0)
    assert message["payload"] == msg("m1", priority=1)
    assert is_utc_text(message["created_at"]) and isinstance(message["next_attempt_ts"], int)
    assert message["smtp_ts"] is None and message["error"] is None

    response = await admin.get("/messages/get", tenant_id="acme", message_id="nope")
    assert response.status == 404
    assert response.json["detail"] == "message 'nope' not found for tenant 'acme'"
    response = await admin.get("/messages/get", tenant_id="acme", message_id="g0")
    assert response.status == 404
    response = await admin.get("/messages/get", tenant_id="acme", message_id="m\x001")
    assert response.status == 404
    response = await admin.get("/messages/get", tenant_id="ac\x00me", message_id="m1")
    assert response.status == 404


async def test_history_is_oldest_first_and_fetched_for_the_page(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    first = await add_event(mp_kernel, "m2", "deferred", 100, description="rate_limit")
    second = await add_event(
        mp_kernel,
        "m2",
        "sent",
        200,
        description=None,
        metadata='{"refused": {"x@y.z": "550 no"}}',
        reported_ts=250,
    )
    await add_event(mp_kernel, "m4", "error", 300, description="550 5.1.1 User unknown")
    await add_event(mp_kernel, "g0", "sent", 300)

    response = await admin.get(
        "/messages/get", tenant_id="acme", message_id="m2", include_history=True
    )
    assert response.json["history"] == [
        {
            "event_id": first,
            "event_type": "deferred",
            "event_ts": 100,
            "description": "rate_limit",
            "metadata": {},
            "reported_ts": None,
        },
        {
            "event_id": second,
            "event_type": "sent",
            "event_ts": 200,
            "description": None,
            "metadata": {"refused": {"x@y.z": "550 no"}},
            "reported_ts": 250,
        },
    ]
    listed = (await admin.get("/messages/list", tenant_id="acme", include_history=True)).json
    assert [len(m["history"]) for m in listed] == [0, 0, 2, 0, 1, 0]
    assert listed[4]["history"][0]["description"] == "550 5.1.1 User unknown"
    plain = (await admin.get("/messages/list", tenant_id="acme")).json
    assert all("history" not in m for m in plain)
    single = (await admin.get("/messages/get", tenant_id="acme", message_id="m2")).json
    assert "history" not in single


async def test_list_pages_in_creation_order_with_filters(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    listed = (await admin.get("/messages/list", tenant_id="acme")).json
    assert [m["id"] for m in listed] == [f"m{i}" for i in range(6)]
    assert all(set(m) == MESSAGE_KEYS for m in listed)
    page = (await admin.get("/messages/list", tenant_id="acme", limit=2, offset=3)).json
    assert [m["id"] for m in page] == ["m3", "m4"]
    assert (await admin.get("/messages/list", tenant_id="acme", offset=6)).json == []

    table = schema.messages
    for message_id, status in (
        ("m1", "sent"),
        ("m2", "error"),
        ("m3", "sending"),
        ("m4", "deferred"),
    ):
        await mp_kernel.db.execute(
            table.update().where(table.c.id == message_id).values(status=status)
        )
    active = (await admin.get("/messages/list", tenant_id="acme", active_only=True)).json
    assert [m["id"] for m in active] == ["m0", "m3", "m4", "m5"]
    sent = (await admin.get("/messages/list", tenant_id="acme", status="sent")).json
    assert [m["id"] for m in sent] == ["m1"]
    both = await admin.get("/messages/list", tenant_id="acme", status="sent", active_only=True)
    assert both.json == []

    bad_values: list[dict[str, Any]] = [
        {"limit": 0},
        {"limit": 10001},
        {"offset": -1},
        {"offset": 2**63},
        {"status": "queued"},
    ]
    for bad in bad_values:
        response = await admin.get("/messages/list", tenant_id="acme", **bad)
        assert response.status == 422, bad
    assert (await admin.get("/messages/list", tenant_id="acme", limit=10000)).status == 200
    response = await admin.get("/messages/list", tenant_id="nope")
    assert (response.status, response.json["detail"]) == (404, "tenant 'nope' not found")


async def test_tenant_keys_read_only_their_own_messages(admin: ApiClient) -> None:
    acme = admin.as_tenant("acme")
    listed = (await acme.get("/messages/list")).json
    assert [m["id"] for m in listed] == [f"m{i}" for i in range(6)]
    assert (await acme.get("/messages/get", message_id="m0")).status == 200
    assert (await acme.get("/messages/get", message_id="g0")).status == 404
    assert (await acme.get("/messages/list", tenant_id="globex")).status == 403
    assert (await acme.get("/messages/get", tenant_id="globex", message_id="g0")).status == 403
    # Without tenant_id a tenant key still sees only its own; the admin sees every tenant's.
    assert len((await admin.get("/messages/list")).json) == 7


async def test_admin_lists_every_tenant_without_tenant_id(admin: ApiClient) -> None:
    everything = await admin.get("/messages/list")
    assert everything.status == 200, everything
    listed = [(m["tenant_id"], m["id"]) for m in everything.json]
    assert listed == [("acme", f"m{i}") for i in range(6)] + [("globex", "g0")]
    assert [int(m["pk"]) for m in everything.json] == sorted(int(m["pk"]) for m in everything.json)
    page = await admin.get("/messages/list", limit=3, offset=5)
    assert [(m["tenant_id"], m["id"]) for m in page.json] == listed[5:]
    history = await admin.get("/messages/list", include_history=True, limit=1)
    assert history.json[0]["history"] == []
    only = await admin.get("/messages/list", tenant_id="globex")
    assert [m["id"] for m in only.json] == ["g0"]
    assert (await admin.get("/messages/list", tenant_id="nobody")).status == 404
