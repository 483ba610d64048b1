"""tenants/*: add, get, list, update, delete, validation, scoping, cascade (SQLite + PostgreSQL)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.crypto import generate_key
from mailproxy_core.db.schema import accounts, message_events, messages, storages
from mailproxy_core.kernel import MailProxy
from mailproxy_core.plugins.markers import hookimpl
from mailproxy_core.settings import Settings
from mailproxy_core.specs import StorageBackendSpec
from mailproxy_core.testing.client import ApiClient, is_utc_text
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

FULL_TENANT: dict[str, Any] = {
    "id": "acme",
    "name": "ACME",
    "client_base_url": "https://acme.test/app",
    "client_sync_path": "/hooks/sync",
    "client_attachment_path": "/hooks/files",
    "client_auth": {"method": "basic", "user": "mailer", "password": "pw-1"},
    "rate_limits": {"per_minute": 10, "per_day": 1000},
    "large_file_config": {
        "enabled": True,
        "max_size_mb": 5,
        "action": "rewrite",
        "storage_url": "file:///var/lib/big",
        "public_base_url": "https://files.acme.test",
        "file_ttl_days": 7,
    },
    "report_signing_secret": "sig-1",
}


class FakeStoragePlugin:
    """Registers a storage protocol ``fake`` so that mounts can be created."""

    @hookimpl
    def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
        factory: Any = lambda mp, config: object()  # noqa: E731
        return [StorageBackendSpec("fake", factory)]


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    """An instance on SQLite or PostgreSQL with secrets encrypted."""
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        encryption_key=generate_key(),
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")
    register_plugin(FakeStoragePlugin(), "fake_storage")


def fields_of(body: dict[str, Any]) -> list[str]:
    """The fields a 422 body names."""
    return [entry["field"] for entry in body.get("errors", [])]


async def test_add_get_list_update_delete(mp_client: ApiClient) -> None:
    created = await mp_client.post("/tenants/add", json=FULL_TENANT)
    assert created.status == 200, created
    tenant = created.json
    assert tenant["id"] == "acme" and tenant["name"] == "ACME"
    assert tenant["client_base_url"] == "https://acme.test/app"
    assert tenant["client_sync_path"] == "/hooks/sync"
    assert tenant["client_attachment_path"] == "/hooks/files"
    assert tenant["client_auth"] == {"method": "basic", "user": "mailer"}
    assert tenant["has_credentials"] is True and tenant["has_report_signing_secret"] is True
    assert tenant["rate_limits"] == {"per_minute": 10, "per_day": 1000}
    assert tenant["large_file_config"] == FULL_TENANT["large_file_config"]
    assert tenant["active"] is True and tenant["reporter"] == "http"
    assert tenant["suspended_batches"] == []
    assert is_utc_text(tenant["created_at"]) and tenant["updated_at"] >= tenant["created_at"]
    # Where the EE plugin ee_apikeys is installed, the creation also shows the first key, once.
    shown_once = {k: v for k, v in tenant.items() if k != "api_key"}
    assert (await mp_client.get("/tenants/get", tenant_id="acme")).json == shown_once

    minimal = await mp_client.post("/tenants/add", json={"id": "globex", "active": False})
    assert minimal.status == 200
    assert minimal.json["client_auth"] is None and minimal.json["has_credentials"] is False
    assert minimal.json["rate_limits"] is None and minimal.json["active"] is False
    listed = await mp_client.get("/tenants/list")
    assert [t["id"] for t in listed.json] == ["acme", "globex"]
    active = await mp_client.get("/tenants/list", active_only=True)
    assert [t["id"] for t in active.json] == ["acme"]

    updated = await mp_client.post(
        "/tenants/update",
        json={
            "tenant_id": "acme",
            "name": "ACME Corp",
            "client_auth": {"method": "bearer", "token": "tok-2"},
            "rate_limits": {"per_hour": 50},
        },
    )
    assert updated.status == 200, updated
    assert updated.json["name"] == "ACME Corp"
    assert updated.json["client_auth"] == {"method": "bearer"}
    assert updated.json["has_credentials"] is True
    assert updated.json["rate_limits"] == {"per_hour": 50}
    assert updated.json["client_base_url"] == "https://acme.test/app"  # left out: unchanged

    cleared = await mp_client.post(
        "/tenants/update",
        json={
            "tenant_id": "acme",
            "name": "",
            "client_base_url": "",
            "client_auth": {"method": "none"},
            "rate_limits": {},
            "report_signing_secret": "",
            "active": False,
        },
    )
    assert cleared.status == 200, cleared
    view = cleared.json
    assert view["name"] is None and view["client_base_url"] is None
    assert view["client_auth"] == {"method": "none"} and view["has_credentials"] is False
    assert view["rate_limits"] is None and view["has_report_signing_secret"] is False
    assert view["active"] is False
    nothing = await mp_client.post("/tenants/update", json={"tenant_id": "acme"})
    assert nothing.status == 200 and nothing.json == view

    deleted = await mp_client.post("/tenants/delete", json={"tenant_id": "acme"})
    assert deleted.status == 200 and deleted.json == {"ok": True}
    gone = await mp_client.get("/tenants/get", tenant_id="acme")
    assert gone.status == 404 and gone.json["detail"] == "tenant 'acme' not found"
    assert [t["id"] for t in (await mp_client.get("/tenants/list")).json] == ["globex"]


async def test_add_on_an_existing_id_updates_the_given_fields(mp_client: ApiClient) -> None:
    first = await mp_client.post("/tenants/add", json=FULL_TENANT)
    assert first.status == 200, first
    again = await mp_client.post(
        "/tenants/add", json={"id": "acme", "name": "second", "active": False}
    )
    assert again.status == 200, again
    tenant = again.json
    assert tenant["name"] == "second" and tenant["active"] is False
    # Fields left out keep their values, secrets included.
    assert tenant["client_base_url"] == "https://acme.test/app"
    assert tenant["rate_limits"] == {"per_minute": 10, "per_day": 1000}
    assert tenant["client_auth"] == {"method": "basic", "user": "mailer"}
    assert tenant["has_credentials"] is True and tenant["has_report_signing_secret"] is True
    assert tenant["reporter"] == "http"
    assert tenant["created_at"] == first.json["created_at"]
    # Only the id: nothing changes, still 200.
    same = await mp_client.post("/tenants/add", json={"id": "acme"})
    assert same.status == 200 and same.json["name"] == "second"
    assert (await mp_client.get("/tenants/get", tenant_id="acme")).json == same.json
    assert [t["id"] for t in (await mp_client.get("/tenants/list")).json] == ["acme"]


async def test_add_validates_an_update_like_a_creation(mp_client: ApiClient) -> None:
    assert (await mp_client.post("/tenants/add", json={"id": "acme"})).status == 200
    bad = await mp_client.post("/tenants/add", json={"id": "acme", "reporter": "pigeon"})
    assert bad.status == 422 and fields_of(bad.json) == ["reporter"]
    assert (await mp_client.get("/tenants/get", tenant_id="acme")).json["reporter"] == "http"


async def test_unknown_tenant_is_404_naming_it(mp_client: ApiClient) -> None:
    calls = [
        mp_client.get("/tenants/get", tenant_id="ghost"),
        mp_client.post("/tenants/update", json={"tenant_id": "ghost", "name": "x"}),
        mp_client.post("/tenants/update", json={"tenant_id": "ghost"}),
        mp_client.post("/tenants/delete", json={"tenant_id": "ghost"}),
    ]
    for call in calls:
        response = await call
        assert response.status == 404, response
        assert response.json == {"detail": "tenant 'ghost' not found", "code": "not_found"}


ADD_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"id": ""}, "id"),
    ({"id": "a b"}, "id"),
    ({"id": "a/b"}, "id"),
    ({"id": "x" * 129}, "id"),
    ({"id": "t", "client_base_url": "ftp://acme.test"}, "client_base_url"),
    ({"id": "t", "client_base_url": "acme.test"}, "client_base_url"),
    ({"id": "t", "client_sync_path": "sync"}, "client_sync_path"),
    ({"id": "t", "client_attachment_path": "files"}, "client_attachment_path"),
    ({"id": "t", "client_auth": {"method": "bearer"}}, "client_auth.bearer.token"),
    ({"id": "t", "client_auth": {"method": "bearer", "token": ""}}, "client_auth.bearer.token"),
    ({"id": "t", "client_auth": {"method": "basic", "user": "u"}}, "client_auth.basic.password"),
    ({"id": "t", "client_auth": {"method": "none", "token": "x"}}, "client_auth.none.token"),
    ({"id": "t", "client_auth": {"method": "digest"}}, "client_auth"),
    ({"id": "t", "client_auth": {"token": "x"}}, "client_auth"),
    ({"id": "t", "client_auth": "bearer x"}, "client_auth"),
    ({"id": "t", "rate_limits": {"per_minute": 0}}, "rate_limits.per_minute"),
    ({"id": "t", "rate_limits": {"per_day": -5}}, "rate_limits.per_day"),
    ({"id": "t", "rate_limits": {"per_hour": "many"}}, "rate_limits.per_hour"),
    ({"id": "t", "rate_limits": {"per_week": 1}}, "rate_limits.per_week"),
    (
        {"id": "t", "large_file_config": {"max_size_mb": 5, "action": "warn"}},
        "large_file_config.enabled",
    ),
    (
        {"id": "t", "large_file_config": {"enabled": True, "max_size_mb": 0, "action": "warn"}},
        "large_file_config.max_size_mb",
    ),
    (
        {"id": "t", "large_file_config": {"enabled": True, "max_size_mb": 5, "action": "zip"}},
        "large_file_config.action",
    ),
    (
        {"id": "t", "large_file_config": {"enabled": True, "max_size_mb": 5, "action": "rewrite"}},
        "large_file_config",
    ),
    (
        {
            "id": "t",
            "large_file_config": {
                "enabled": True,
                "max_size_mb": 5,
                "action": "warn",
                "file_ttl_days": 0,
            },
        },
        "large_file_config.file_ttl_days",
    ),
    ({"id": "t", "reporter": "carrier-pigeon"}, "reporter"),
    ({"id": "t", "active": "maybe"}, "active"),
    ({"id": "t", "colour": "red"}, "colour"),
    ({"name": "no id"}, "id"),
]


async def test_add_validation_errors_name_the_field(mp_client: ApiClient) -> None:
    for body, field in ADD_ERRORS:
        response = await mp_client.post("/tenants/add", json=body)
        assert response.status == 422, (body, response)
        assert response.json["code"] == "invalid_input"
        assert field in fields_of(response.json), (body, response.json)
        assert field.split(".")[0] in response.json["detail"]
    pigeon = await mp_client.post("/tenants/add", json={"id": "t", "reporter": "pigeon"})
    assert "available: http" in pigeon.json["detail"]
    assert (await mp_client.get("/tenants/list")).json == []


async def test_update_validation_errors_store_nothing(mp_client: ApiClient) -> None:
    await mp_client.post("/tenants/add", json=FULL_TENANT)
    before = (await mp_client.get("/tenants/get", tenant_id="acme")).json
    bad = await mp_client.post(
        "/tenants/update",
        json={"tenant_id": "acme", "name": "new", "client_base_url": "mailto:x@y.z"},
    )
    assert bad.status == 422 and fields_of(bad.json) == ["client_base_url"]
    for body, field in ADD_ERRORS:
        if "id" not in body or body["id"] != "t" or field in {"colour"}:
            continue
        changes = {key: value for key, value in body.items() if key != "id"}
        response = await mp_client.post("/tenants/update", json={"tenant_id": "acme", **changes})
        assert response.status == 422 and field in fields_of(response.json), (body, response)
    assert (await mp_client.get("/tenants/get", tenant_id="acme")).json == before


async def test_tenant_key_scoping(mp_client: ApiClient) -> None:
    for tenant_id in ("acme", "globex"):
        await mp_client.post("/tenants/add", json={"id": tenant_id})
    acme = mp_client.as_tenant("acme")

    own = await acme.get("/tenants/get")
    assert own.status == 200 and own.json["id"] == "acme"
    assert (await acme.get("/tenants/get", tenant_id="acme")).status == 200
    renamed = await acme.post("/tenants/update", json={"name": "Mine"})
    assert renamed.status == 200 and renamed.json["name"] == "Mine"

    for field, value in (("active", False), ("reporter", "http")):
        refused = await acme.post("/tenants/update", json={field: value})
        assert refused.status == 403 and field in refused.json["detail"]
    assert (await mp_client.get("/tenants/get", tenant_id="acme")).json["active"] is True

    other = await acme.get("/tenants/get", tenant_id="globex")
    assert other.status == 403 and other.json["code"] == "forbidden"
    assert (await acme.post("/tenants/update", json={"tenant_id": "globex"})).status == 403
    admin_routes = [
        acme.get("/tenants/list"),
        acme.post("/tenants/add", json={"id": "evil"}),
        acme.post("/tenants/delete", json={"tenant_id": "acme"}),
        acme.post("/tenants/delete", json={"tenant_id": "globex"}),
    ]
    for call in admin_routes:
        assert (await call).status == 403
    assert [t["id"] for t in (await mp_client.get("/tenants/list")).json] == ["acme", "globex"]
    missing = await mp_client.get("/tenants/get")
    assert missing.status == 422 and fields_of(missing.json) == ["tenant_id"]


async def _count(mp: MailProxy, table: sa.Table, tenant_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
    return int(await mp.db.fetch_val(query))


async def _add_message_with_event(mp: MailProxy, tenant_id: str, account_pk: str) -> None:
    pk = await mp.db.fetch_val(
        messages.insert()
        .values(
            tenant_id=tenant_id,
            id=f"m-{uuid.uuid4().hex[:8]}",
            account_id="a1",
            account_pk=account_pk,
            payload="{}",
            created_at=0,
            updated_at=0,
        )
        .returning(messages.c.pk)
    )
    await mp.db.execute(
        message_events.insert().values(
            event_uuid=str(uuid.uuid4()),
            message_pk=pk,
            tenant_id=tenant_id,
            event_type="sent",
            event_ts=0,
        )
    )


async def test_delete_cascades_to_everything_of_the_tenant(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    for tenant_id in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant_id})).status == 200
        for account_id in ("a1", "a2"):
            account = await mp_client.post(
                "/accounts/add",
                json={"tenant_id": tenant_id, "id": account_id, "transport": "null"},
            )
            assert account.status == 200, account
            await _add_message_with_event(mp_kernel, tenant_id, account.json["pk"])
        mount = await mp_client.post(
            "/storages/add", json={"tenant_id": tenant_id, "name": "HOME", "protocol": "fake"}
        )
        assert mount.status == 200, mount
    tables = (accounts, messages, message_events, storages)
    assert [await _count(mp_kernel, t, "acme") for t in tables] == [2, 2, 2, 1]

    assert (await mp_client.post("/tenants/delete", json={"tenant_id": "acme"})).json == {
        "ok": True
    }
    assert [await _count(mp_kernel, t, "acme") for t in tables] == [0, 0, 0, 0]
    assert [await _count(mp_kernel, t, "globex") for t in tables] == [2, 2, 2, 1]
    again = await mp_client.post("/tenants/delete", json={"tenant_id": "acme"})
    assert again.status == 404 and again.json["detail"] == "tenant 'acme' not found"
