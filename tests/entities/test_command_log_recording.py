"""The command recorder: every state-changing call lands in the command log, secrets masked.

A ``probe`` entity registered by an in-process plugin stands in for arbitrary write routes, so
the recorder is tested apart from the behaviour of the real entities; ``instance/update`` covers
a real route. Both databases.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from quart import Quart

from mailproxy_core.api.command_recording import (
    RESPONSE_SUMMARY_BYTES,
    attributed_tenant,
    masked_large_payload,
    masked_payload,
    summarise,
)
from mailproxy_core.api.endpoint import POST, Endpoint, admin_only, any_principal, tenant_scoped
from mailproxy_core.errors import Conflict
from mailproxy_core.kernel import MailProxy
from mailproxy_core.models import Principal
from mailproxy_core.plugins.markers import hookimpl
from mailproxy_core.settings import Settings
from mailproxy_core.specs import EndpointSpec
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN


class ProbeEndpoint(Endpoint):
    """Write routes that accept anything, for exercising the recorder."""

    @POST
    @admin_only
    async def store(self, **fields: Any) -> dict[str, Any]:
        """Accept any body."""
        return {"ok": True, "fields": sorted(fields)}

    @POST
    @tenant_scoped
    async def touch(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """A tenant-scoped write."""
        return {"ok": True, "tenant_id": tenant_id}

    @POST
    @admin_only
    async def clash(self, tenant_id: str) -> dict[str, Any]:
        """Always conflicts."""
        raise Conflict(f"tenant '{tenant_id}' is busy")

    @POST
    @admin_only
    async def reject_many(self, count: int) -> dict[str, Any]:
        """A long add_batch-like answer."""
        rejected = [{"id": f"m{i}", "reason": "invalid priority '9'"} for i in range(count)]
        return {"ok": False, "queued": 0, "rejected": rejected}

    @POST
    @admin_only
    async def issue_key(self, tenant_id: str) -> dict[str, Any]:
        """Answers a secret once, like EE tenants/create_api_key."""
        return {"ok": True, "tenant_id": tenant_id, "api_key": "shown-once-secret"}

    @POST
    @admin_only
    async def crash(self) -> dict[str, Any]:
        """A server bug."""
        raise RuntimeError("boom")

    @any_principal
    async def read(self, tenant_id: str | None = None) -> dict[str, Any]:
        """A read: never recorded."""
        return {"ok": True}


class ProbePlugin:
    """Registers the ``probe`` entity."""

    @hookimpl
    def mailproxy_register_endpoints(self) -> list[EndpointSpec]:
        return [EndpointSpec("probe", ProbeEndpoint)]


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), name="test_tenant_token")
    register_plugin(ProbePlugin(), name="probe")


async def _entries(mp: MailProxy) -> list[dict[str, Any]]:
    return await mp.repos.command_log.list(limit=None)


async def test_a_successful_write_is_recorded(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    resp = await mp_client.post("/instance/update", json={"name": "relay-1"})
    assert resp.status == 200
    (entry,) = await _entries(mp_kernel)
    assert entry["endpoint"] == "POST /instance/update"
    assert entry["principal"] == "admin"
    assert entry["tenant_id"] is None
    assert entry["payload"] == {"name": "relay-1"}
    assert entry["response_status"] == 200
    assert entry["response_body"]["name"] == "relay-1"
    assert isinstance(entry["command_ts"], int) and entry["command_ts"] > 1_700_000_000


async def test_failed_writes_are_recorded_with_their_status(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    assert (await mp_client.post("/probe/clash", json={"tenant_id": "acme"})).status == 409
    assert (await mp_client.post("/instance/update", json={"nmae": "x"})).status == 422
    assert (await mp_client.as_tenant("acme").post("/instance/update", json={})).status == 403
    assert (await mp_client.post("/probe/crash", json={})).status == 500
    entries = await _entries(mp_kernel)
    assert [(e["endpoint"], e["response_status"]) for e in entries] == [
        ("POST /probe/clash", 409),
        ("POST /instance/update", 422),
        ("POST /instance/update", 403),
        ("POST /probe/crash", 500),
    ]
    clash, invalid, forbidden, crash = entries
    assert clash["tenant_id"] == "acme"
    assert clash["response_body"] == {"detail": "tenant 'acme' is busy", "code": "conflict"}
    assert invalid["payload"] == {"nmae": "x"}
    assert invalid["response_body"]["code"] == "invalid_input"
    assert forbidden["principal"] == "tenant:acme"
    assert forbidden["tenant_id"] == "acme"
    assert crash["response_body"] == {"detail": "internal error", "code": "internal_error"}


async def test_reads_unauthenticated_calls_and_unknown_routes_are_not_recorded(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    assert (await mp_client.get("/probe/read")).status == 200
    assert (await mp_client.get("/instance/get")).status == 200
    assert (await mp_client.with_token(None).post("/instance/update", json={})).status == 401
    assert (await mp_client.with_token("wrong").post("/probe/store", json={})).status == 401
    assert (await mp_client.post("/nothing/here", json={})).status == 404
    assert (await mp_client.post("/instance/get", json={})).status == 405
    assert await _entries(mp_kernel) == []


async def test_secrets_of_every_kind_are_masked(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    tenant = {
        "id": "acme",
        "client_base_url": "https://acme.example",
        "client_auth": {"method": "basic", "user": "acme", "password": "basic-pw"},
        "report_signing_secret": "hmac-secret",
    }
    bearer = {"id": "globex", "client_auth": {"method": "bearer", "token": "bearer-tok"}}
    account = {
        "id": "main",
        "tenant_id": "acme",
        "host": "smtp.example",
        "user": "mailer",
        "password": "smtp-pw",
        "imap_password": "imap-pw",
        "options": {"api_key": "relay-key"},
    }
    storage = {
        "tenant_id": "acme",
        "name": "s3docs",
        "protocol": "s3",
        "config": {
            "bucket": "docs",
            "key": "AKIAEXAMPLE",
            "secret": "s3-secret",
            "client_kwargs": {"aws_secret_access_key": "nested-secret"},
            "account_key": "azure-key",
            "connection_string": "AccountKey=azure",
        },
    }
    message = {
        "messages": [
            {
                "id": "m1",
                "tenant_id": "acme",
                "attachments": [
                    {
                        "filename": "a.pdf",
                        "storage_path": "https://files.example/a.pdf",
                        "auth": {"method": "bearer", "token": "fetch-tok"},
                    }
                ],
            }
        ]
    }
    for body in (tenant, bearer, account, storage, message):
        assert (await mp_client.post("/probe/store", json=body)).status == 200
    entries = await _entries(mp_kernel)
    stored = json.dumps([entry["payload"] for entry in entries])
    for secret in (
        "basic-pw",
        "hmac-secret",
        "bearer-tok",
        "smtp-pw",
        "imap-pw",
        "relay-key",
        "AKIAEXAMPLE",
        "s3-secret",
        "nested-secret",
        "azure-key",
        "AccountKey",
        "fetch-tok",
    ):
        assert secret not in stored, secret
    tenant_entry, bearer_entry, account_entry, storage_entry, message_entry = entries
    assert tenant_entry["payload"]["client_auth"] == {
        "method": "basic",
        "user": "acme",
        "password": "***",
    }
    assert tenant_entry["payload"]["report_signing_secret"] == "***"
    assert tenant_entry["payload"]["client_base_url"] == "https://acme.example"
    assert bearer_entry["payload"]["client_auth"]["token"] == "***"
    assert account_entry["payload"]["password"] == "***"
    assert account_entry["payload"]["user"] == "mailer"
    assert storage_entry["payload"]["config"]["bucket"] == "docs"
    assert storage_entry["payload"]["config"]["client_kwargs"] == {"aws_secret_access_key": "***"}
    attachment = message_entry["payload"]["messages"][0]["attachments"][0]
    assert attachment["auth"] == {"method": "bearer", "token": "***"}
    assert attachment["storage_path"] == "https://files.example/a.pdf"


async def test_a_secret_in_the_answer_is_masked(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    resp = await mp_client.post("/probe/issue_key", json={"tenant_id": "acme"})
    assert resp.json["api_key"] == "shown-once-secret"
    (entry,) = await _entries(mp_kernel)
    assert entry["response_body"] == {"ok": True, "tenant_id": "acme", "api_key": "***"}


async def test_a_long_answer_is_summarised(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    assert (await mp_client.post("/probe/reject_many", json={"count": 2})).status == 200
    assert (await mp_client.post("/probe/reject_many", json={"count": 500})).status == 200
    short, long = await _entries(mp_kernel)
    assert len(short["response_body"]["rejected"]) == 2
    assert long["response_body"] == {
        "ok": False,
        "queued": 0,
        "rejected": {"count": 500},
        "_truncated": True,
    }


async def test_tenant_attribution(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    tenant = mp_client.as_tenant("acme")
    assert (await tenant.post("/probe/touch", json={})).status == 200
    assert (await tenant.post("/probe/touch", json={"tenant_id": "globex"})).status == 403
    assert (await mp_client.post("/probe/touch", json={"tenant_id": "globex"})).status == 200
    assert (await mp_client.post("/probe/store", json={"note": "no tenant"})).status == 200
    entries = await _entries(mp_kernel)
    assert [(e["principal"], e["tenant_id"], e["response_status"]) for e in entries] == [
        ("tenant:acme", "acme", 200),
        ("tenant:acme", "acme", 403),
        ("admin", "globex", 200),
        ("admin", None, 200),
    ]


async def test_a_large_batch_is_stored_whole(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    messages = [
        {"id": f"m{i}", "tenant_id": "acme", "subject": "hello", "body": "x" * 400}
        for i in range(1000)
    ]
    assert (await mp_client.post("/probe/store", json={"messages": messages})).status == 200
    (entry,) = await _entries(mp_kernel)
    assert entry["payload"] == {"messages": messages}


async def test_a_failing_insert_does_not_fail_the_call(
    mp_client: ApiClient, mp_kernel: MailProxy, caplog: pytest.LogCaptureFixture
) -> None:
    await mp_kernel.db.execute("DROP TABLE command_log")
    with caplog.at_level(logging.ERROR, logger="mailproxy_core.api.command_recording"):
        resp = await mp_client.post("/probe/store", json={"password": "never-logged"})
    assert resp.status == 200
    assert "could not record POST /probe/store" in caplog.text
    assert "never-logged" not in caplog.text


async def test_a_body_that_is_not_valid_utf8_text_is_still_recorded(
    mp_app: Quart, mp_kernel: MailProxy
) -> None:
    # Valid JSON holding a lone surrogate: it cannot be stored as UTF-8 text once decoded.
    body = '{"name": "\\ud800", "password": "pw"}'
    resp = await mp_app.test_client().post(
        "/probe/store", data=body, headers={"X-API-Token": ADMIN_TOKEN}
    )
    # Refused at the API edge (no column can store it), and still recorded, masked.
    assert resp.status_code == 422
    (entry,) = await _entries(mp_kernel)
    assert entry["response_status"] == 422
    assert entry["payload"] == {"name": "\ud800", "password": "***"}


def test_tenant_attribution_rules() -> None:
    admin = Principal.admin()
    assert attributed_tenant("tenants", "add", {"id": "acme"}, admin) == "acme"
    assert attributed_tenant("accounts", "add", {"id": "main"}, admin) is None
    assert attributed_tenant("tenants", "update", {"tenant_id": "acme"}, admin) == "acme"
    one = {"messages": [{"tenant_id": "acme"}, {"tenant_id": "acme"}]}
    mixed = {"messages": [{"tenant_id": "acme"}, {"tenant_id": "globex"}]}
    assert attributed_tenant("messages", "add_batch", one, admin) == "acme"
    assert attributed_tenant("messages", "add_batch", mixed, admin) is None
    assert attributed_tenant("messages", "add_batch", mixed, Principal.tenant("t1")) == "t1"
    assert attributed_tenant("tenants", "update", {"tenant_id": 5}, admin) is None
    assert attributed_tenant("tenants", "update", ["not", "an", "object"], admin) is None


def test_payload_text_is_kept_when_nothing_is_masked() -> None:
    raw = b'{ "name" : "relay",  "n": 1 }'
    assert masked_payload(raw) == ({"name": "relay", "n": 1}, raw.decode())
    body, text = masked_payload(b'{"a": {"pass\\u0077ord": "pw"}}')
    assert body == {"a": {"password": "***"}}
    assert text == '{"a":{"password":"***"}}'
    assert masked_payload(b"not json") == (None, None)
    assert masked_payload(b"") == (None, None)


async def test_large_payloads_are_masked_like_small_ones() -> None:
    # the large-body path (yielding) stores exactly what the one-call path stores
    bodies = [
        b'{ "name" : "relay",  "n": 1 }',
        b'{"a": {"pass\\u0077ord": "pw"}, "b": [1, 2, {"token": "t", "x": null}], "c": "\\u00e9"}',
        json.dumps(
            {
                "messages": [
                    {
                        "id": f"m{n}",
                        "to": ["a@b.c"] * 50,
                        "attachments": [
                            {"filename": "f", "storage_path": "https://x", "auth": {"token": "s3"}}
                        ],
                    }
                    for n in range(300)
                ]
            }
        ).encode(),
        b"not json",
        b"",
        b"[" * 100 + b"]" * 100,
    ]
    for raw in bodies:
        assert await masked_large_payload(raw) == masked_payload(raw), raw[:60]
        if masked_payload(raw)[0] is not None:
            parsed = json.loads(raw)
            assert await masked_large_payload(raw, parsed) == masked_payload(raw, parsed)


def test_summaries() -> None:
    assert summarise(["a"] * 3) == {"count": 3, "_truncated": True}
    long_text = "y" * 5000
    assert summarise({"detail": long_text})["detail"] == "y" * 200 + "…"
    assert RESPONSE_SUMMARY_BYTES >= 1024


async def test_real_write_routes_are_recorded_masked_and_attributed(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    """The entities' own routes, whatever they answer: the log holds no secret of theirs."""
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "/tenants/add",
            {
                "id": "acme",
                "client_base_url": "https://acme.example",
                "client_auth": {"method": "bearer", "token": "tenant-bearer"},
                "report_signing_secret": "tenant-hmac",
            },
        ),
        (
            "/tenants/update",
            {
                "tenant_id": "acme",
                "client_auth": {"method": "basic", "user": "u", "password": "tenant-basic"},
            },
        ),
        (
            "/accounts/add",
            {
                "id": "main",
                "tenant_id": "acme",
                "host": "smtp.example",
                "port": 587,
                "user": "mailer",
                "password": "smtp-password",
            },
        ),
        (
            "/storages/add",
            {
                "tenant_id": "acme",
                "name": "docs",
                "protocol": "local",
                "config": {"base_path": "/srv/docs", "secret_access_key": "storage-secret"},
            },
        ),
        (
            "/messages/add_batch",
            {
                "messages": [
                    {
                        "id": f"m{i}",
                        "tenant_id": "acme",
                        "account_id": "main",
                        "from": "shop@example.com",
                        "to": "client@example.com",
                        "subject": "hi",
                        "body": "hello",
                    }
                    for i in range(3)
                ]
            },
        ),
    ]
    statuses = [(await mp_client.post(path, json=body)).status for path, body in calls]
    entries = await _entries(mp_kernel)
    assert [(e["endpoint"], e["response_status"]) for e in entries] == [
        (f"POST {path}", status) for (path, _), status in zip(calls, statuses, strict=True)
    ]
    assert [e["tenant_id"] for e in entries] == ["acme"] * len(calls)
    assert statuses[0] == 200
    assert entries[0]["response_body"]["id"] == "acme"
    logged = json.dumps(entries)
    for secret in (
        "tenant-bearer",
        "tenant-hmac",
        "tenant-basic",
        "smtp-password",
        "storage-secret",
    ):
        assert secret not in logged, secret
    assert entries[2]["payload"]["password"] == "***"
    assert entries[3]["payload"]["config"]["base_path"] == "/srv/docs"


async def test_flags_about_secrets_are_not_masked(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    auth = {"method": "bearer", "token": "client-secret-token"}
    added = await mp_client.post("/tenants/add", json={"id": "flags", "client_auth": auth})
    assert added.status == 200 and added.json["has_credentials"] is True
    (entry,) = [e for e in await _entries(mp_kernel) if e["tenant_id"] == "flags"]
    assert entry["payload"]["client_auth"] == {"method": "bearer", "token": "***"}
    assert entry["response_body"]["has_credentials"] is True
    assert "client-secret-token" not in str(entry)
