"""accounts/*: add (upsert), get, list, delete, validation and scoping (SQLite + PostgreSQL)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.crypto import generate_key
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient, is_utc_text
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

ACCOUNT: dict[str, Any] = {
    "tenant_id": "acme",
    "id": "main",
    "transport": "null",
    "host": "smtp.acme.test",
    "port": 587,
    "user": "mailer",
    "password": "pw-1",
    "use_tls": None,
    "batch_size": 50,
    "ttl": 120,
    "limit_per_minute": 30,
    "limit_per_hour": 600,
    "limit_per_day": 5000,
    "limit_behavior": "reject",
    "options": {"directory": "out", "helo": "mx.acme.test"},
}


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


@pytest.fixture
async def admin(mp_client: ApiClient) -> ApiClient:
    """The admin client, with tenants ``acme`` and ``globex`` created."""
    for tenant_id in ("acme", "globex"):
        assert (await mp_client.post("/tenants/add", json={"id": tenant_id})).status == 200
    return mp_client


def fields_of(body: dict[str, Any]) -> list[str]:
    """The fields a 422 body names."""
    return [entry["field"] for entry in body.get("errors", [])]


async def test_add_get_list_delete(admin: ApiClient) -> None:
    added = await admin.post("/accounts/add", json=ACCOUNT)
    assert added.status == 200, added
    account = added.json
    uuid.UUID(account["pk"])
    expected = {key: value for key, value in ACCOUNT.items() if key != "password"}
    assert {key: account[key] for key in expected} == expected
    assert account["has_password"] is True and "password" not in account
    assert account["secret_option_keys"] == []
    assert is_utc_text(account["created_at"]) and is_utc_text(account["updated_at"])

    got = await admin.get("/accounts/get", tenant_id="acme", account_id="main")
    assert got.status == 200 and got.json == account
    second = await admin.post(
        "/accounts/add", json={"tenant_id": "acme", "id": "bulk", "transport": "file"}
    )
    assert second.status == 200, second
    defaults = second.json
    assert defaults["host"] is None and defaults["port"] is None and defaults["user"] is None
    assert defaults["has_password"] is False and defaults["use_tls"] is True
    assert defaults["ttl"] == 300 and defaults["limit_behavior"] == "defer"
    assert defaults["options"] == {} and defaults["batch_size"] is None
    listed = await admin.get("/accounts/list", tenant_id="acme")
    assert [a["id"] for a in listed.json] == ["bulk", "main"]
    assert (await admin.get("/accounts/list", tenant_id="globex")).json == []

    deleted = await admin.post("/accounts/delete", json={"tenant_id": "acme", "account_id": "main"})
    assert deleted.status == 200 and deleted.json == {"ok": True}
    for call in (
        admin.get("/accounts/get", tenant_id="acme", account_id="main"),
        admin.post("/accounts/delete", json={"tenant_id": "acme", "account_id": "main"}),
    ):
        response = await call
        assert response.status == 404
        assert response.json["detail"] == "account 'main' not found for tenant 'acme'"
    assert [a["id"] for a in (await admin.get("/accounts/list", tenant_id="acme")).json] == ["bulk"]


async def test_adding_an_existing_id_replaces_the_account(admin: ApiClient) -> None:
    first = (await admin.post("/accounts/add", json=ACCOUNT)).json
    replaced = await admin.post(
        "/accounts/add",
        json={"tenant_id": "acme", "id": "main", "transport": "null", "host": "relay.acme.test"},
    )
    assert replaced.status == 200, replaced
    account = replaced.json
    assert account["pk"] == first["pk"] and account["created_at"] == first["created_at"]
    assert account["host"] == "relay.acme.test" and account["port"] is None
    assert account["has_password"] is False and account["user"] is None
    assert account["limit_behavior"] == "defer" and account["options"] == {}
    listed = (await admin.get("/accounts/list", tenant_id="acme")).json
    assert [a["pk"] for a in listed] == [first["pk"]]
    same_id_other_tenant = await admin.post(
        "/accounts/add", json={**ACCOUNT, "tenant_id": "globex"}
    )
    assert same_id_other_tenant.json["pk"] != first["pk"]


ADD_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"id": ""}, "id"),
    ({"id": "has space"}, "id"),
    ({"transport": "pigeon"}, "transport"),
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"port": "smtp"}, "port"),
    ({"ttl": 0}, "ttl"),
    ({"batch_size": -1}, "batch_size"),
    ({"limit_per_minute": 0}, "limit_per_minute"),
    ({"limit_per_hour": -3}, "limit_per_hour"),
    ({"limit_per_day": 0}, "limit_per_day"),
    ({"limit_behavior": "drop"}, "limit_behavior"),
    ({"host": "   "}, "host"),
    ({"use_tls": "sometimes"}, "use_tls"),
    ({"options": ["directory"]}, "options"),
    ({"options": {"api_key": 12345}}, "options.api_key"),
    ({"options": {"relay": {"password": ["x"]}}}, "options.relay.password"),
    ({"colour": "red"}, "colour"),
]


async def test_validation_errors_name_the_field(admin: ApiClient) -> None:
    base = {"tenant_id": "acme", "id": "a1", "transport": "null"}
    for change, field in ADD_ERRORS:
        response = await admin.post("/accounts/add", json={**base, **change})
        assert response.status == 422, (change, response)
        assert field in fields_of(response.json), (change, response.json)
        assert field in response.json["detail"]
    unknown = await admin.post("/accounts/add", json={**base, "transport": "pigeon"})
    assert "available: file, null" in unknown.json["detail"]
    missing_id = await admin.post("/accounts/add", json={"tenant_id": "acme"})
    assert missing_id.status == 422 and "id" in fields_of(missing_id.json)
    assert (await admin.get("/accounts/list", tenant_id="acme")).json == []


async def test_unknown_tenant_is_404(admin: ApiClient) -> None:
    add = await admin.post("/accounts/add", json={**ACCOUNT, "tenant_id": "ghost"})
    assert add.status == 404 and add.json["detail"] == "tenant 'ghost' not found"
    listed = await admin.get("/accounts/list", tenant_id="ghost")
    assert listed.status == 404 and listed.json["detail"] == "tenant 'ghost' not found"
    get = await admin.get("/accounts/get", tenant_id="ghost", account_id="main")
    assert get.status == 404 and get.json["detail"] == "account 'main' not found for tenant 'ghost'"


async def test_tenant_key_scoping(admin: ApiClient) -> None:
    await admin.post("/accounts/add", json={**ACCOUNT, "tenant_id": "globex"})
    acme = admin.as_tenant("acme")
    own = await acme.post("/accounts/add", json={"id": "mine", "transport": "null"})
    assert own.status == 200 and own.json["tenant_id"] == "acme"
    assert [a["id"] for a in (await acme.get("/accounts/list")).json] == ["mine"]
    assert (await acme.get("/accounts/get", account_id="mine")).status == 200
    foreign = [
        acme.get("/accounts/list", tenant_id="globex"),
        acme.get("/accounts/get", tenant_id="globex", account_id="main"),
        acme.post("/accounts/add", json={**ACCOUNT, "tenant_id": "globex", "id": "x"}),
        acme.post("/accounts/delete", json={"tenant_id": "globex", "account_id": "main"}),
    ]
    for call in foreign:
        response = await call
        assert response.status == 403 and response.json["code"] == "forbidden"
    # Another tenant's account id under its own tenant is simply not there.
    hidden = await acme.get("/accounts/get", account_id="main")
    assert hidden.status == 404
    assert (await acme.post("/accounts/delete", json={"account_id": "mine"})).json == {"ok": True}
    assert len((await admin.get("/accounts/list", tenant_id="globex")).json) == 1


@pytest.mark.requires_plugins("smtp")
async def test_smtp_is_the_default_and_needs_host_and_port(admin: ApiClient) -> None:
    bare = await admin.post("/accounts/add", json={"tenant_id": "acme", "id": "a1"})
    assert bare.status == 422 and sorted(fields_of(bare.json)) == ["host", "port"]
    assert "required for the smtp transport" in bare.json["detail"]
    added = await admin.post(
        "/accounts/add",
        json={"tenant_id": "acme", "id": "a1", "host": "smtp.acme.test", "port": 465},
    )
    assert added.status == 200 and added.json["transport"] == "smtp"
