"""messages/add_batch and messages/add: validation, exact rejection wording, storage.

SQLite + PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.crypto import ENCRYPTED_PREFIX, generate_key
from mailproxy_core.db import schema
from mailproxy_core.kernel import MailProxy
from mailproxy_core.plugins.markers import hookimpl
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    """An instance on SQLite or PostgreSQL, secrets encrypted, a small batch cap."""
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        encryption_key=generate_key(),
        max_batch_messages=20,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


class QueuedRecorder:
    """Records ``mailproxy_message_queued`` calls."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    @hookimpl
    def mailproxy_message_queued(self, mp: MailProxy, message: Any) -> None:
        self.messages.append(message)


@pytest.fixture
def recorder(register_plugin: Any) -> QueuedRecorder:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")
    return register_plugin(QueuedRecorder(), "queued_recorder")  # type: ignore[no-any-return]


@pytest.fixture
def wakeups(mp_kernel: MailProxy, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records ``wake_dispatcher`` calls (the dispatcher clears the event itself)."""
    calls: list[bool] = []
    monkeypatch.setattr(mp_kernel, "wake_dispatcher", lambda run_now=False: calls.append(run_now))
    return calls


@pytest.fixture
async def admin(recorder: QueuedRecorder, mp_client: ApiClient) -> ApiClient:
    """Tenants ``acme`` (account ``main``), ``globex`` (``main``), ``sleepy`` (inactive)."""
    for tenant_id, active in (("acme", True), ("globex", True), ("sleepy", False)):
        response = await mp_client.post("/tenants/add", json={"id": tenant_id, "active": active})
        assert response.status == 200, response.json
        account = {"id": "main", "tenant_id": tenant_id, "host": "h.test", "port": 25}
        response = await mp_client.post("/accounts/add", json={**account, "transport": "null"})
        assert response.status == 200, response.json
    return mp_client


def msg(message_id: str | None, **fields: Any) -> dict[str, Any]:
    """A valid message for acme/main, with ``fields`` overriding (``None`` removes a field)."""
    message: dict[str, Any] = {
        "id": message_id,
        "tenant_id": "acme",
        "account_id": "main",
        "from": "Sender <sender@acme.test>",
        "to": ["rcpt@example.com"],
        "subject": "Hello",
        "body": "Hi there",
    }
    message.update(fields)
    return {key: value for key, value in message.items() if value is not None}


async def stored(mp_kernel: MailProxy) -> dict[str, dict[str, Any]]:
    rows = await mp_kernel.db.fetch_all(sa.select(schema.messages).order_by(schema.messages.c.pk))
    return {row["id"]: row for row in rows}


REJECTIONS: list[tuple[dict[str, Any], str]] = [
    (msg("m-tenant", tenant_id=None), "Missing 'tenant_id' field"),
    (msg("m-account", account_id=None), "Missing 'account_id' field"),
    (msg("m-from", **{"from": None}), "Missing 'from' field"),
    (msg("m-to", to=None), "Missing 'to' field"),
    (msg("m-to-empty", to=[]), "Missing 'to' field"),
    (msg("m-subject", subject=None), "Missing 'subject' field"),
    (msg("m-body", body=None), "Missing 'body' field"),
    (msg("m-unknown", tenant_id="nope"), "tenant 'nope' not found"),
    (msg("m-inactive", tenant_id="sleepy"), "tenant 'sleepy' is inactive"),
    (msg("m-acct", account_id="other"), "account 'other' not found for tenant 'acme'"),
    (msg("m-prio", priority=7), "invalid priority '7'"),
    (msg("m-prio-label", priority="urgent"), "invalid priority 'urgent'"),
    (msg("m-prio-bool", priority=True), "invalid priority 'True'"),
    (
        msg("m-addr", to=["ok@example.com", "not-an-address"]),
        "invalid address 'not-an-address' in 'to'",
    ),
    (
        msg("m-addr-str", to="ok@example.com, bob@localhost"),
        "invalid address 'bob@localhost' in 'to'",
    ),
    (msg("m-cc", cc="@example.com"), "invalid address '@example.com' in 'cc'"),
    (msg("m-bcc", bcc=["a@b.com, c@d.com"]), "invalid address 'a@b.com, c@d.com' in 'bcc'"),
    (
        msg("m-from-bad", **{"from": "Alice alice@example.com"}),
        "invalid address 'Alice alice@example.com' in 'from'",
    ),
    (
        msg("m-from-addr", **{"from": None, "from_addr": "x@"}),
        "invalid address 'x@' in 'from_addr'",
    ),
    (
        msg("m-inject", to=["a@b.com\r\nBcc: evil@x.com"]),
        "invalid address 'a@b.com\r\nBcc: evil@x.com' in 'to'",
    ),
    (
        msg("m-att", attachments={"filename": "a"}),
        "invalid attachment: 'attachments' must be a list",
    ),
    (
        msg("m-att-name", attachments=[{"storage_path": "base64:AA=="}]),
        "invalid attachment: #1 has no 'filename'",
    ),
    (
        msg("m-att-path", attachments=[{"filename": "a.txt"}]),
        "invalid attachment: #1 has no 'storage_path'",
    ),
    (
        msg(
            "m-att-mode", attachments=[{"filename": "a", "storage_path": "x", "fetch_mode": "ftp"}]
        ),
        "invalid attachment: #1 has unknown fetch_mode 'ftp' "
        "(base64, endpoint, filesystem, http_url, storage)",
    ),
    (
        msg("m-att-md5", attachments=[{"filename": "a", "storage_path": "x", "content_md5": "zz"}]),
        "invalid attachment: #1 content_md5 must be 32 hexadecimal digits",
    ),
    (
        msg("m-deferred", deferred_ts="tomorrow"),
        "invalid 'deferred_ts' field: must be unix seconds (a non-negative integer)",
    ),
    (
        msg("m-headers", headers=["X-A: b"]),
        "invalid 'headers' field: must be an object of header names to strings",
    ),
    (
        msg("m-header-val", headers={"X-A": 1}),
        "invalid 'headers' field: the value of 'X-A' must be a string",
    ),
    (
        msg("m-header-nl", headers={"X-A": "b\nBcc: e@x.com"}),
        "invalid 'headers' field: the value of 'X-A' must not contain line breaks",
    ),
    (
        msg("m-header-name", headers={"X A": "b"}),
        "invalid 'headers' field: 'X A' is not a valid header name",
    ),
    (msg("m-ctype", content_type="rtf"), "invalid 'content_type' field: must be 'plain' or 'html'"),
    (
        msg("m-subject-nl", subject="a\r\nBcc: e@x.com"),
        "invalid 'subject' field: must not contain line breaks",
    ),
    (msg("m-subject-type", subject=5), "invalid 'subject' field: must be a string"),
    (
        msg("m-huge-ts", deferred_ts=10**30),
        "invalid 'deferred_ts' field: must be unix seconds (a non-negative integer)",
    ),
    (
        msg("m-neg-ts", deferred_ts=-5),
        "invalid 'deferred_ts' field: must be unix seconds (a non-negative integer)",
    ),
    (
        msg("m-surrogate", subject="broken \ud800 text"),
        "invalid message: text must not contain unpaired surrogates",
    ),
    (
        msg("m-batch-ctl", batch_code="a\x00b"),
        "invalid 'batch_code' field: must not contain control characters",
    ),
    (
        msg("m-acct-nul", account_id="ma\x00in"),
        "invalid 'account_id' field: must not contain control characters",
    ),
    (msg("m-typo", atachments=[]), "unknown field 'atachments' (did you mean 'attachments'?)"),
    (msg("m-extra", extra_field={"kept": True}), "unknown field 'extra_field'"),
    (
        msg("m-att-typo", attachments=[{"filename": "a", "storage_path": "x", "fetchmode": "x"}]),
        "invalid attachment: #1 has unknown field 'fetchmode' (did you mean 'fetch_mode'?)",
    ),
    (
        msg("m-att-b64", attachments=[{"filename": "a", "storage_path": "base64:not base64!"}]),
        "invalid attachment: #1 storage_path is not valid base64",
    ),
    (
        msg(
            "m-att-b64-mode",
            attachments=[{"filename": "a", "storage_path": "QQ=", "fetch_mode": "base64"}],
        ),
        "invalid attachment: #1 storage_path is not valid base64",
    ),
    (msg("m-subject-long", subject="s" * 999), "invalid 'subject' field: at most 998 characters"),
    (msg(None), "Missing 'id' field"),
    (msg(""), "Missing 'id' field"),
    (msg(5), "invalid 'id' field: must be a string"),  # type: ignore[arg-type]
    (msg("nul\x00id"), "invalid 'id' field: must not contain control characters"),
    (msg("m-addr-sur", to=["x\ud800@example.com"]), "invalid address 'x?@example.com' in 'to'"),
    (msg("lone\udc00"), "invalid 'id' field: must not contain control characters"),
]


async def test_every_rejection_reason_is_worded_exactly(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    for message, reason in REJECTIONS:
        response = await admin.post(
            "/messages/add_batch", json={"messages": [message, msg("good")]}
        )
        assert response.status == 200, (reason, response.json)
        expected_id = message.get("id") or None
        if isinstance(expected_id, str):
            expected_id = expected_id.replace("\udc00", "?")
        assert response.json == {
            "ok": True,
            "queued": 1,
            "rejected": [{"id": expected_id, "reason": reason}],
        }, reason
    assert list(await stored(mp_kernel)) == ["good"]


async def test_a_batch_stores_the_valid_messages_and_lists_the_rejected(
    admin: ApiClient, mp_kernel: MailProxy, recorder: QueuedRecorder, wakeups: list[bool]
) -> None:
    batch = [msg("a"), {"tenant_id": "acme"}, "not an object", msg("b", priority="immediate")]
    response = await admin.post("/messages/add_batch", json={"messages": batch})
    assert response.status == 200
    assert response.json == {
        "ok": True,
        "queued": 2,
        "rejected": [
            {"id": None, "reason": "Missing 'id' field"},
            {"id": None, "reason": "invalid message: not a JSON object"},
        ],
    }
    rows = await stored(mp_kernel)
    assert list(rows) == ["a", "b"]
    assert rows["a"]["pk"] < rows["b"]["pk"]
    assert [m.id for m in recorder.messages] == ["a", "b"]
    assert recorder.messages[1].priority == 0 and recorder.messages[1].pk == rows["b"]["pk"]
    assert wakeups == [False]


async def test_stored_columns_and_payload_exactly_as_submitted(
    admin: ApiClient, mp_kernel: MailProxy, wakeups: list[bool]
) -> None:
    account = await mp_kernel.db.fetch_one(
        sa.select(schema.accounts.c.pk).where(schema.accounts.c.tenant_id == "acme")
    )
    assert account is not None
    future = 4_000_000_000
    message = msg(
        "full",
        to='Bob <bob@example.com>, "Doe, Jane" <jane@example.org>',
        cc=["cc@example.com"],
        priority="low",
        batch_code="spring",
        deferred_ts=future,
        html="<p>Hi</p>",
        headers={"X-Campaign": "spring"},
        attachments=[{"filename": "a.txt", "storage_path": "base64:QQ==", "fetch_mode": "base64"}],
    )
    response = await admin.post("/messages/add_batch", json={"messages": [message, msg("plain")]})
    assert response.json["queued"] == 2
    rows = await stored(mp_kernel)
    full, plain = rows["full"], rows["plain"]
    assert json.loads(full["payload"]) == message
    assert list(json.loads(full["payload"])) == list(message)  # key order kept
    assert full["priority"] == 3 and plain["priority"] == 2
    assert full["batch_code"] == "spring" and plain["batch_code"] is None
    assert full["deferred_ts"] == future and full["next_attempt_ts"] == future
    assert plain["deferred_ts"] is None
    assert plain["next_attempt_ts"] == plain["created_at"] == plain["updated_at"]
    assert full["status"] == plain["status"] == "pending"
    assert full["attempts"] == 0
    assert full["account_id"] == "main" and full["account_pk"] == account["pk"]
    assert wakeups == []  # no immediate message


async def test_defaults_and_accepted_variants(admin: ApiClient, mp_kernel: MailProxy) -> None:
    batch = [
        msg("labels", priority="High"),
        msg("digit", priority="0"),
        msg("given", priority=1),
        msg("default"),
        msg("html-only", body=None, html="<b>x</b>", content_type="html"),
        msg("from-addr", **{"from": None, "from_addr": "noreply@acme.test"}),
        msg("past", deferred_ts=100),
        msg("float-ts", deferred_ts=4_000_000_000.7),
        msg("text-ts", deferred_ts="4000000000"),
        msg("trailing-comma", to="a@example.com, "),
        msg("display", to=["=?utf-8?q?J=C3=B6rg?= <j@example.com>", "x@[10.0.0.1]"]),
    ]
    response = await admin.post(
        "/messages/add_batch", json={"messages": batch, "default_priority": "medium"}
    )
    assert response.json == {"ok": True, "queued": 11, "rejected": []}
    rows = await stored(mp_kernel)
    assert rows["labels"]["priority"] == 1 and rows["digit"]["priority"] == 0
    assert rows["given"]["priority"] == 1 and rows["default"]["priority"] == 2
    assert rows["past"]["next_attempt_ts"] == rows["past"]["created_at"]
    assert rows["float-ts"]["deferred_ts"] == 4_000_000_000
    assert rows["text-ts"]["next_attempt_ts"] == 4_000_000_000

    response = await admin.post(
        "/messages/add_batch", json={"messages": [msg("d2")], "default_priority": 0}
    )
    assert response.json["queued"] == 1
    assert (await stored(mp_kernel))["d2"]["priority"] == 0


async def test_malformed_bodies_and_the_cap_are_422(admin: ApiClient, mp_kernel: MailProxy) -> None:
    for body in ({"messages": {"id": "x"}}, {"messages": "x"}, {}, {"messages": [], "extra": 1}):
        response = await admin.post("/messages/add_batch", json=body)
        assert response.status == 422, body
    response = await admin.post(
        "/messages/add_batch", json={"messages": [msg("a")], "default_priority": "soon"}
    )
    assert response.status == 422
    assert response.json["detail"] == "default_priority: invalid priority 'soon'"
    too_many = [msg(f"m{i}") for i in range(21)]
    response = await admin.post("/messages/add_batch", json={"messages": too_many})
    assert response.status == 422
    assert (
        response.json["detail"] == "messages: at most 20 messages per call, got 21; split the batch"
    )
    assert response.json["errors"][0]["field"] == "messages"
    assert await stored(mp_kernel) == {}


async def test_all_rejected_and_empty_batches_answer_ok_false(admin: ApiClient) -> None:
    response = await admin.post("/messages/add_batch", json={"messages": [msg("x", to=None)]})
    assert response.status == 200
    assert response.json == {
        "ok": False,
        "queued": 0,
        "rejected": [{"id": "x", "reason": "Missing 'to' field"}],
    }
    response = await admin.post("/messages/add_batch", json={"messages": []})
    assert response.json == {"ok": False, "queued": 0, "rejected": []}


async def test_add_one_message(admin: ApiClient, mp_kernel: MailProxy, wakeups: list[bool]) -> None:
    response = await admin.post("/messages/add", json=msg("single", priority=0))
    assert response.status == 200
    row = (await stored(mp_kernel))["single"]
    assert response.json == {"id": "single", "pk": str(row["pk"])}
    assert json.loads(row["payload"])["from"] == "Sender <sender@acme.test>"
    assert wakeups == [False]

    response = await admin.post("/messages/add", json=msg("bad", to=["nobody"]))
    assert response.status == 422
    assert response.json == {
        "detail": "invalid address 'nobody' in 'to'",
        "code": "message_rejected",
    }
    response = await admin.post("/messages/add", json=msg("lost", tenant_id="nope"))
    assert (response.status, response.json["detail"]) == (422, "tenant 'nope' not found")
    response = await admin.post("/messages/add", json=msg(None))
    assert (response.status, response.json["detail"]) == (422, "Missing 'id' field")
    response = await admin.post("/messages/add", json=msg("typo", atachments=[]))
    assert (response.status, response.json["detail"]) == (
        422,
        "unknown field 'atachments' (did you mean 'attachments'?)",
    )
    assert list(await stored(mp_kernel)) == ["single"]


async def test_attachment_credentials_are_encrypted_at_rest_and_never_returned(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    attachment = {
        "filename": "report.pdf",
        "storage_path": "reports/1",
        "fetch_mode": "endpoint",
        "auth": {"method": "bearer", "token": "s3cr3t-token"},
    }
    response = await admin.post("/messages/add", json=msg("att", attachments=[attachment]))
    assert response.status == 200
    payload = json.loads((await stored(mp_kernel))["att"]["payload"])
    auth = payload["attachments"][0]["auth"]
    assert auth["method"] == "bearer" and auth["token"].startswith(ENCRYPTED_PREFIX)
    from mailproxy_core.records.secrets import open_attachment_auth

    assert open_attachment_auth(mp_kernel.secrets, auth) == attachment["auth"]

    for response in (
        await admin.get("/messages/get", tenant_id="acme", message_id="att"),
        await admin.get("/messages/list", tenant_id="acme"),
    ):
        assert response.status == 200
        assert "s3cr3t" not in json.dumps(response.json)
        assert "auth" not in json.dumps(response.json).replace("has_auth", "")
    shown = (await admin.get("/messages/get", tenant_id="acme", message_id="att")).json
    assert shown["payload"]["attachments"][0] == {
        "filename": "report.pdf",
        "storage_path": "reports/1",
        "fetch_mode": "endpoint",
        "has_auth": True,
    }
