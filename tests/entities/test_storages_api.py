"""storages/*: add (upsert), get, list, delete, validation and scoping (SQLite + PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.crypto import generate_key
from mailproxy_core.errors import ConfigurationError
from mailproxy_core.kernel import MailProxy
from mailproxy_core.plugins.markers import hookimpl
from mailproxy_core.settings import Settings
from mailproxy_core.specs import StorageBackendSpec
from mailproxy_core.testing.client import ApiClient, is_utc_text
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN


def _picky_factory(mp: Any, config: Any) -> object:
    if "bucket" not in config:
        raise ConfigurationError("picky storage needs config.bucket")
    return object()


class FakeStoragePlugin:
    """Registers the storage protocols ``fake`` and ``fake2`` (accept any config) and
    ``picky`` (needs ``bucket``)."""

    @hookimpl
    def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
        factory: Any = lambda mp, config: object()  # noqa: E731
        return [
            StorageBackendSpec("fake", factory),
            StorageBackendSpec("fake2", factory),
            StorageBackendSpec("picky", _picky_factory),
        ]


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
    config = {
        "base_path": "/data/acme",
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": "s3-secret",
        "nested": {"password": "pw", "region": "eu"},
    }
    added = await admin.post(
        "/storages/add",
        json={"tenant_id": "acme", "name": "HOME", "protocol": "fake", "config": config},
    )
    assert added.status == 200, added
    mount = added.json
    assert mount["tenant_id"] == "acme" and mount["name"] == "HOME"
    assert mount["protocol"] == "fake"
    assert mount["config"] == {
        "base_path": "/data/acme",
        "aws_access_key_id": "AKIAEXAMPLE",
        "nested": {"region": "eu"},
    }
    assert mount["secret_config_keys"] == ["aws_secret_access_key", "nested.password"]
    assert is_utc_text(mount["created_at"])
    got = await admin.get("/storages/get", tenant_id="acme", name="HOME")
    assert got.status == 200 and got.json == mount

    bare = await admin.post(
        "/storages/add", json={"tenant_id": "acme", "name": "ARCHIVE", "protocol": "fake2"}
    )
    assert bare.status == 200 and bare.json["config"] == {}
    assert bare.json["secret_config_keys"] == []
    listed = (await admin.get("/storages/list", tenant_id="acme")).json
    assert [m["name"] for m in listed] == ["ARCHIVE", "HOME"] and listed[1] == mount
    assert (await admin.get("/storages/list", tenant_id="globex")).json == []

    deleted = await admin.post("/storages/delete", json={"tenant_id": "acme", "name": "HOME"})
    assert deleted.status == 200 and deleted.json == {"ok": True}
    for call in (
        admin.get("/storages/get", tenant_id="acme", name="HOME"),
        admin.post("/storages/delete", json={"tenant_id": "acme", "name": "HOME"}),
    ):
        response = await call
        assert response.status == 404
        assert response.json["detail"] == "storage 'HOME' not found for tenant 'acme'"


async def test_adding_an_existing_name_replaces_the_mount(admin: ApiClient) -> None:
    body = {"tenant_id": "acme", "name": "HOME", "protocol": "fake", "config": {"token": "t"}}
    first = (await admin.post("/storages/add", json=body)).json
    replaced = await admin.post(
        "/storages/add",
        json={"tenant_id": "acme", "name": "HOME", "protocol": "fake2", "config": {"a": 1}},
    )
    assert replaced.status == 200, replaced
    assert replaced.json["protocol"] == "fake2" and replaced.json["config"] == {"a": 1}
    assert replaced.json["secret_config_keys"] == []
    assert replaced.json["created_at"] == first["created_at"]
    assert len((await admin.get("/storages/list", tenant_id="acme")).json) == 1


async def test_validation_errors_name_the_field(admin: ApiClient) -> None:
    base = {"tenant_id": "acme", "name": "HOME", "protocol": "fake"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"protocol": "ftp"}, "protocol"),
        ({"name": ""}, "name"),
        ({"name": "a:b"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "-x"}, "name"),
        ({"name": "base64"}, "name"),
        ({"name": "HTTPS"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"config": "base_path=/data"}, "config"),
        ({"mount": "x"}, "mount"),
    ]
    for change, field in cases:
        response = await admin.post("/storages/add", json={**base, **change})
        assert response.status == 422, (change, response)
        assert field in fields_of(response.json), (change, response.json)
    unknown = await admin.post("/storages/add", json={**base, "protocol": "ftp"})
    detail = unknown.json["detail"]
    assert "unknown storage protocol 'ftp'; available: " in detail
    available = detail.split("available: ", 1)[1].split(", ")
    assert {"fake", "fake2"} <= set(available) and available == sorted(available)
    missing = await admin.post("/storages/add", json={"tenant_id": "acme", "name": "HOME"})
    assert missing.status == 422 and fields_of(missing.json) == ["protocol"]
    assert (await admin.get("/storages/list", tenant_id="acme")).json == []


async def test_unknown_tenant_is_404(admin: ApiClient) -> None:
    add = await admin.post(
        "/storages/add", json={"tenant_id": "ghost", "name": "HOME", "protocol": "fake"}
    )
    assert add.status == 404 and add.json["detail"] == "tenant 'ghost' not found"
    listed = await admin.get("/storages/list", tenant_id="ghost")
    assert listed.status == 404 and listed.json["detail"] == "tenant 'ghost' not found"


async def test_tenant_key_scoping(admin: ApiClient) -> None:
    await admin.post(
        "/storages/add", json={"tenant_id": "globex", "name": "HOME", "protocol": "fake"}
    )
    acme = admin.as_tenant("acme")
    own = await acme.post("/storages/add", json={"name": "MINE", "protocol": "fake"})
    assert own.status == 200 and own.json["tenant_id"] == "acme"
    assert [m["name"] for m in (await acme.get("/storages/list")).json] == ["MINE"]
    assert (await acme.get("/storages/get", name="MINE")).status == 200
    assert (await acme.get("/storages/get", name="HOME")).status == 404
    foreign = [
        acme.get("/storages/list", tenant_id="globex"),
        acme.get("/storages/get", tenant_id="globex", name="HOME"),
        acme.post("/storages/add", json={"tenant_id": "globex", "name": "X", "protocol": "fake"}),
        acme.post("/storages/delete", json={"tenant_id": "globex", "name": "HOME"}),
    ]
    for call in foreign:
        response = await call
        assert response.status == 403 and response.json["code"] == "forbidden"
    assert (await acme.post("/storages/delete", json={"name": "MINE"})).json == {"ok": True}
    assert len((await admin.get("/storages/list", tenant_id="globex")).json) == 1


async def test_the_backend_checks_a_mount_when_it_is_added(admin: ApiClient) -> None:
    base = {"tenant_id": "acme", "name": "CLOUD", "protocol": "picky"}
    refused = await admin.post("/storages/add", json={**base, "config": {"region": "eu"}})
    assert refused.status == 422 and fields_of(refused.json) == ["config"]
    assert "picky storage needs config.bucket" in refused.json["detail"]
    assert (await admin.get("/storages/list", tenant_id="acme")).json == []
    accepted = await admin.post("/storages/add", json={**base, "config": {"bucket": "b"}})
    assert accepted.status == 200, accepted


async def test_plugins_read_a_mount_decrypted_through_the_kernel(
    admin: ApiClient, mp_kernel: MailProxy
) -> None:
    config = {"base_path": "/data", "token": "s3cret"}
    body = {"tenant_id": "acme", "name": "HOME", "protocol": "fake", "config": config}
    assert (await admin.post("/storages/add", json=body)).status == 200
    mount = await mp_kernel.storage_mount("acme", "HOME")
    assert mount is not None
    assert (mount.tenant_id, mount.name, mount.protocol) == ("acme", "HOME", "fake")
    assert dict(mount.config) == config
    assert await mp_kernel.storage_mount("acme", "NOPE") is None
    assert await mp_kernel.storage_mount("globex", "HOME") is None
