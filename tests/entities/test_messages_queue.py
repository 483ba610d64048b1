"""Enqueue semantics: replacement, in-flight / already-sent ids, duplicates, atomicity, tenant keys.

SQLite + PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.db import schema
from mailproxy_core.db.repos.messages import MessagesRepo, QueuedRow
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN


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


@pytest.fixture
async def admin(mp_client: ApiClient) -> ApiClient:
    """Tenants ``acme`` and ``globex``, each with account ``main``."""
    for tenant_id in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant_id})).status == 200
        account = {"id": "main", "tenant_id": tenant_id, "host": "h.test", "port": 25}
        response = await mp_client.post("/accounts/add", json={**account, "transport": "null"})
        assert response.status == 200, response.json
    return mp_client


def msg(message_id: str, tenant_id: str | None = "acme", **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": message_id,
        "tenant_id": tenant_id,
        "account_id": "main",
        "from": "sender@acme.test",
        "to": "rcpt@example.com",
        "subject": "Hello",
        "body": "Hi",
        **fields,
    }
    return {key: value for key, value in message.items() if value is not None}


async def rows(mp_kernel: MailProxy, tenant_id: str = "acme") -> list[dict[str, Any]]:
    query = (
        sa.select(schema.messages)
        .where(schema.messages.c.tenant_id == tenant_id)
        .order_by(schema.messages.c.pk)
    )
    return await mp_kernel.db.fetch_all(query)


async def set_state(mp_kernel: MailProxy, message_id: str, **values: Any) -> None:
    await mp_kernel.db.execute(
        schema.messages.update().where(schema.messages.c.id == message_id).values(**values)
    )


async def add_batch(client: ApiClient, *messages: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/messages/add_batch", json={"messages": list(messages)})
    assert response.status == 200, response.json
    return response.json  # type: ignore[no-any-return]


async def test_resubmitting_a_pending_or_deferred_id_replaces_it_in_place(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    await add_batch(admin, msg("a"), msg("b"), msg("c"))
    before = {row["id"]: row for row in await rows(mp_kernel)}
    await set_state(
        mp_kernel,
        "b",
        status="deferred",
        attempts=3,
        last_error="451 later",
        next_attempt_ts=before["b"]["created_at"] + 900,
        created_at=1,
    )
    await set_state(mp_kernel, "c", attempts=1)

    result = await add_batch(
        admin, msg("b", subject="Replaced", priority=0, batch_code="x"), msg("c", deferred_ts=4e9)
    )
    assert result == {"ok": True, "queued": 2, "rejected": []}
    after = await rows(mp_kernel)
    assert [row["id"] for row in after] == ["a", "b", "c"]
    b = after[1]
    assert b["pk"] == before["b"]["pk"] and b["created_at"] == 1
    assert json.loads(b["payload"])["subject"] == "Replaced"
    assert (b["status"], b["attempts"], b["last_error"]) == ("pending", 0, None)
    assert (b["priority"], b["batch_code"]) == (0, "x")
    assert b["next_attempt_ts"] == b["updated_at"]
    c = after[2]
    assert c["pk"] == before["c"]["pk"]
    assert (c["attempts"], c["deferred_ts"], c["next_attempt_ts"]) == (
        0,
        4_000_000_000,
        4_000_000_000,
    )


async def test_ids_being_sent_or_finished_are_rejected_and_left_alone(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    await add_batch(admin, msg("sending"), msg("sent"), msg("failed"), msg("other-tenant"))
    await set_state(mp_kernel, "sending", status="sending", lease_owner="w1", lease_until=9e9)
    await set_state(mp_kernel, "sent", status="sent")
    await set_state(mp_kernel, "failed", status="error")
    before = await rows(mp_kernel)

    result = await add_batch(
        admin,
        msg("sending", subject="X"),
        msg("sent", subject="X"),
        msg("failed", subject="X"),
        msg("fresh"),
        msg("other-tenant", tenant_id="globex"),  # same id, other tenant: a new message
    )
    assert result == {
        "ok": True,
        "queued": 2,
        "rejected": [
            {"id": "sending", "reason": "in flight"},
            {"id": "sent", "reason": "already sent"},
            {"id": "failed", "reason": "already sent"},
        ],
    }
    after = await rows(mp_kernel)
    assert after[:4] == before
    assert [row["id"] for row in after] == ["sending", "sent", "failed", "other-tenant", "fresh"]
    assert [row["id"] for row in await rows(mp_kernel, "globex")] == ["other-tenant"]

    response = await admin.post("/messages/add", json=msg("sending"))
    assert (response.status, response.json["detail"]) == (422, "in flight")
    response = await admin.post("/messages/add", json=msg("sent"))
    assert (response.status, response.json["detail"]) == (422, "already sent")


async def test_duplicate_ids_in_one_batch_act_as_successive_submissions(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    result = await add_batch(
        admin,
        msg("dup", subject="first"),
        msg("solo"),
        msg("dup", subject="second"),
        msg("dup", to="broken"),
    )
    assert result == {
        "ok": True,
        "queued": 3,
        "rejected": [{"id": "dup", "reason": "invalid address 'broken' in 'to'"}],
    }
    stored = await rows(mp_kernel)
    assert [row["id"] for row in stored] == ["dup", "solo"]  # the first occurrence's place
    assert json.loads(stored[0]["payload"])["subject"] == "second"  # the last valid content

    await set_state(mp_kernel, "solo", status="sent")
    result = await add_batch(admin, msg("solo"), msg("solo", subject="again"))
    assert result["rejected"] == [
        {"id": "solo", "reason": "already sent"},
        {"id": "solo", "reason": "already sent"},
    ]
    assert result["ok"] is False


async def test_a_database_failure_mid_batch_stores_nothing(
    admin: ApiClient, mp_kernel: MailProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_batch(admin, msg("existing", subject="original"))
    repo = mp_kernel.repos.messages
    monkeypatch.setattr(repo, "chunk_rows", 2)
    real_write = MessagesRepo._write_chunk
    calls = 0

    async def fail_on_third_chunk(self: MessagesRepo, chunk: Any, outcome: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk full (simulated)")
        return await real_write(self, chunk, outcome)

    monkeypatch.setattr(MessagesRepo, "_write_chunk", fail_on_third_chunk)
    batch = [msg("existing", subject="replaced"), *(msg(f"n{i}") for i in range(5))]
    response = await admin.post("/messages/add_batch", json={"messages": batch})
    assert response.status == 500
    assert calls == 3
    stored = await rows(mp_kernel)
    assert [row["id"] for row in stored] == ["existing"]
    assert json.loads(stored[0]["payload"])["subject"] == "original"


async def test_a_statement_rejected_by_the_database_rolls_back_earlier_chunks(
    admin: ApiClient, mp_kernel: MailProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = mp_kernel.db
    if db.dialect == "sqlite":
        await db.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages WHEN NEW.id = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
        )
    else:
        await db.execute(
            "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.id = 'boom' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
            "RETURN NEW; END $$"
        )
        await db.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages "
            "FOR EACH ROW EXECUTE FUNCTION refuse_boom()"
        )
    monkeypatch.setattr(mp_kernel.repos.messages, "chunk_rows", 2)
    batch = [msg("a"), msg("b"), msg("c"), msg("boom")]
    response = await admin.post("/messages/add_batch", json={"messages": batch})
    assert response.status == 500
    assert await rows(mp_kernel) == []
    assert (await add_batch(admin, msg("a"), msg("b"), msg("c")))["queued"] == 3


async def test_the_repository_inserts_in_chunks_in_submission_order(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    repo = MessagesRepo(mp_kernel.db, chunk_rows=3)
    account_pk = (await repo.account_pks({("acme", "main")}))[("acme", "main")]
    queued = [
        QueuedRow("acme", f"r{i}", "main", account_pk, priority=i % 4, payload="{}")
        for i in range(10)
    ]
    outcome = await repo.enqueue(queued)
    assert list(outcome.stored) == [("acme", f"r{i}") for i in range(10)]
    assert outcome.blocked == {}
    stored = await rows(mp_kernel)
    assert [row["id"] for row in stored] == [f"r{i}" for i in range(10)]
    assert [row["pk"] for row in stored] == sorted(outcome.stored.values())
    assert await repo.tenant_states(["acme", "missing"]) == {"acme": True}


async def test_tenant_keys_queue_only_for_their_own_tenant(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    acme = admin.as_tenant("acme")
    result = await add_batch(
        acme,
        msg("own", tenant_id=None),
        msg("explicit"),
        msg("theirs", tenant_id="globex"),
        msg("ghost", tenant_id="ghost"),
    )
    assert result == {
        "ok": True,
        "queued": 2,
        "rejected": [
            {"id": "theirs", "reason": "tenant 'globex' not found"},
            {"id": "ghost", "reason": "tenant 'ghost' not found"},
        ],
    }
    stored = await rows(mp_kernel)
    assert [row["id"] for row in stored] == ["own", "explicit"]
    assert "tenant_id" not in json.loads(stored[0]["payload"])  # stored as submitted
    assert await rows(mp_kernel, "globex") == []

    response = await acme.post("/messages/add", json=msg("single", tenant_id=None))
    assert response.status == 200 and response.json["id"] == "single"
    response = await acme.post("/messages/add", json=msg("x", tenant_id="globex"))
    assert response.status == 403
    response = await admin.post("/messages/add", json=msg("x", tenant_id=None))
    assert (response.status, response.json["detail"]) == (422, "Missing 'tenant_id' field")
