"""Core migration v4 on a database created by v1-v3: Message-IDs of existing messages (queued ones
too) are filled with exactly the id earlier versions derived at send time, so a retry after the
upgrade carries the id its earlier attempts carried; the new columns, indexes and table exist."""

from __future__ import annotations

import email
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from mailproxy_core import Settings
from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.db.engine import Database
from mailproxy_core.db.migrate import apply_migrations, core_migrations
from mailproxy_core.testing.dispatch import dispatch_now
from mailproxy_core.testing.plugin import ADMIN_TOKEN, admin_token_plugins
from mailproxy_core.testing.smtp import ScriptedServer

NOW = 1_700_000_000


def derived_before_v4(pk: int, tenant_id: str, message_id: str, payload: dict) -> str:
    """The Message-ID the composers derived before it was stored (written out independently)."""
    own = payload.get("message_id")
    if isinstance(own, str) and own.strip():
        own = own.strip()
        return own if own.startswith("<") and own.endswith(">") else f"<{own.strip('<>')}>"
    domain = email.utils.parseaddr(payload["from"])[1].rpartition("@")[2]
    digest = hashlib.sha256(f"{tenant_id}\0{message_id}\0{pk}".encode()).hexdigest()
    return f"<mp.{pk}.{digest[:20]}@{domain}>"


async def _seed_v3(db_url: str, smtp_port: int) -> dict[str, tuple[int, dict]]:
    """A database migrated to core v3 with a sent, a failed and two queued messages."""
    db = Database.from_setting(db_url)
    await db.connect()
    try:
        await apply_migrations(db, core_migrations()[:3])
        await db.execute(
            "INSERT INTO tenants (id, created_at, updated_at) VALUES ('acme', :t, :t)", {"t": NOW}
        )
        account_pk = str(uuid.uuid4())
        await db.execute(
            "INSERT INTO accounts (pk, tenant_id, id, host, port, use_tls, transport, created_at,"
            " updated_at) VALUES (:pk, 'acme', 'main', '127.0.0.1', :port, false, 'smtp', :t, :t)",
            {"pk": account_pk, "port": smtp_port, "t": NOW},
        )
        seeded: dict[str, tuple[int, dict]] = {}
        for mid, status, extra in [
            ("sent-1", "sent", {}),
            ("failed-1", "error", {"message_id": "client-own@shop.example"}),
            ("queued-1", "pending", {}),
            ("queued-2", "deferred", {"message_id": " <Queued.Own@shop.example> "}),
        ]:
            payload = {
                "id": mid,
                "tenant_id": "acme",
                "account_id": "main",
                "from": "Shop <shop@acme.example>",
                "to": "bob@example.com",
                "subject": mid,
                "body": "hello",
                **extra,
            }
            pk = await db.fetch_val(
                "INSERT INTO messages (tenant_id, id, account_id, account_pk, payload, status, "
                "attempts, next_attempt_ts, created_at, updated_at) VALUES ('acme', :id, 'main', "
                ":account_pk, :payload, :status, :attempts, 0, :t, :t) RETURNING pk",
                {
                    "id": mid,
                    "account_pk": account_pk,
                    "payload": json.dumps(payload),
                    "status": status,
                    "attempts": 1 if status == "deferred" else 0,
                    "t": NOW,
                },
            )
            seeded[mid] = (int(pk), payload)
        return seeded
    finally:
        await db.disconnect()


@pytest.mark.requires_plugins("smtp")
async def test_v4_fills_message_ids_and_retries_keep_them(
    db_url: str, tmp_path: Path, smtp_server
) -> None:
    server: ScriptedServer = await smtp_server()
    seeded = await _seed_v3(db_url, server.port)
    settings = Settings.from_values(db=db_url, api_token=ADMIN_TOKEN, test_mode=True)
    app = create_app(settings, extra_plugins=admin_token_plugins())
    async with app.test_app():
        mp = kernel_of(app)
        for mid, (pk, payload) in seeded.items():
            (found,) = await mp.find_messages(client_message_id=mid, tenant_id="acme")
            assert found.pk == pk
            assert found.message_id_header == derived_before_v4(pk, "acme", mid, payload), mid
        await dispatch_now(mp)
        sent = {
            email.message_from_bytes(m.content)["Subject"]: m.content
            for m in server.handler.messages
        }
        assert sorted(sent) == ["queued-1", "queued-2"]
        for mid, content in sent.items():
            pk, payload = seeded[mid]
            header = email.message_from_bytes(content)["Message-ID"]
            assert header == derived_before_v4(pk, "acme", mid, payload)
        assert email.message_from_bytes(sent["queued-2"])["Message-ID"] == (
            "<Queued.Own@shop.example>"
        )


async def test_v4_adds_columns_indexes_and_the_lease_table(database: Database) -> None:
    if database.dialect == "sqlite":
        names = {r["name"] for r in await database.fetch_all("PRAGMA index_list(messages)")}
        events = {r["name"] for r in await database.fetch_all("PRAGMA index_list(message_events)")}
        dedup = await database.fetch_all("PRAGMA index_info(ix_message_events_dedup)")
        assert [r["name"] for r in dedup] == ["message_pk", "dedup_key"]
    else:
        names = {
            r["indexname"]
            for r in await database.fetch_all(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
        events = names
    assert {"ix_messages_message_id_header", "ix_messages_id"} <= names
    assert "ix_message_events_dedup" in events
    assert await database.fetch_val("SELECT count(*) FROM receipt_leases") == 0
