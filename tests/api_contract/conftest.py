"""Shared set-up of the cross-cutting API contract tests (scoping, secrets, fuzzing).

* ``mp_settings`` runs the app on ``db_url`` (SQLite and PostgreSQL), with an encryption key
  unless a test overrides ``encryption_key``.
* Every app gets the test-only tenant auth (``tenant-token:<id>``) and a storage backend named
  ``fake`` (no real storage plugin is needed to create mounts).
* ``world`` seeds two tenants, ``acme`` and ``globex``, each with an account, a storage mount and
  two messages, and describes what it created.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mailproxy_core.crypto import generate_key
from mailproxy_core.plugins.markers import hookimpl
from mailproxy_core.settings import Settings
from mailproxy_core.specs import StorageBackendSpec
from mailproxy_core.testing.client import ApiClient
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

TENANTS = ("acme", "globex")
"""The tenants of ``world``: ``acme`` is the caller of the tenant probes, ``globex`` the other."""

FAKE_STORAGE_PROTOCOL = "fake"


class FakeStoragePlugin:
    """Registers the storage protocol ``fake`` (mounts are only stored, never opened here)."""

    @hookimpl
    def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
        """The ``fake`` backend; its factory is never called by these tests."""
        factory: Any = lambda mp, config: object()  # noqa: E731
        return [StorageBackendSpec(FAKE_STORAGE_PROTOCOL, factory)]


@pytest.fixture
def encryption_key() -> str | None:
    """The instance encryption key (``None``: secrets stored in plaintext)."""
    return generate_key()


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path, encryption_key: str | None) -> Settings:
    """An instance on SQLite or PostgreSQL, in test mode (the dispatcher waits for run_now)."""
    return Settings.from_values(
        db=db_url,
        api_token=ADMIN_TOKEN,
        test_mode=True,
        encryption_key=encryption_key,
        plugin_sections={"file": {"root": str(tmp_path / "mail-out")}},
    )


@pytest.fixture(autouse=True)
def _contract_plugins(register_plugin: Any) -> None:
    register_plugin(TenantTokenPlugin(), "tenant_tokens")
    register_plugin(FakeStoragePlugin(), "fake_storage")


async def ok(response: Any, what: str) -> Any:
    """The JSON body of a set-up call, which must have succeeded."""
    assert response.status == 200, f"set-up call {what} failed: {response!r}"
    return response.json


@dataclass
class World:
    """What ``seed_world`` created, and a way to create throwaway objects with unique ids.

    Per tenant ``t``: account ``t-acct`` (null transport), mount ``T_HOME`` (protocol ``fake``),
    messages ``t-m1`` and ``t-m2`` (batch ``b1``). ``message_pks[t]`` maps message id to pk;
    ``api_keys[t]`` is the tenant's default key when the EE ``ee_apikeys`` plugin is loaded.
    """

    admin: ApiClient
    message_pks: dict[str, dict[str, int]] = field(default_factory=dict)
    api_keys: dict[str, str] = field(default_factory=dict)
    """Each tenant's first default key, where the EE ``ee_apikeys`` plugin minted one."""
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    @staticmethod
    def account_id(tenant_id: str) -> str:
        """The seeded account of ``tenant_id``."""
        return f"{tenant_id}-acct"

    @staticmethod
    def message(tenant_id: str, message_id: str, **extra: Any) -> dict[str, Any]:
        """A valid message of ``tenant_id`` through its seeded account."""
        return {
            "id": message_id,
            "tenant_id": tenant_id,
            "account_id": f"{tenant_id}-acct",
            "from": f"sender@{tenant_id}.example.com",
            "to": "rcpt@example.com",
            "subject": "hello",
            "body": "hello there",
            **extra,
        }

    @staticmethod
    def mount(tenant_id: str) -> str:
        """The seeded storage mount of ``tenant_id``."""
        return f"{tenant_id.upper()}_HOME"

    def unique(self, prefix: str) -> str:
        """A new id, never returned before in this test."""
        return f"{prefix}-{next(self._counter)}"

    async def new_tenant(self) -> str:
        """A new tenant, for calls that delete one."""
        tenant_id = self.unique("tmp-tenant")
        await ok(await self.admin.post("/tenants/add", json={"id": tenant_id}), "tenants/add")
        return tenant_id

    async def new_account(self, tenant_id: str) -> str:
        """A new account of ``tenant_id``, for calls that delete one."""
        account_id = self.unique("tmp-acct")
        body = {"id": account_id, "tenant_id": tenant_id, "transport": "null"}
        await ok(await self.admin.post("/accounts/add", json=body), "accounts/add")
        return account_id

    async def new_mount(self, tenant_id: str) -> str:
        """A new storage mount of ``tenant_id``, for calls that delete one."""
        name = self.unique("TMP")
        body = {"tenant_id": tenant_id, "name": name, "protocol": FAKE_STORAGE_PROTOCOL}
        await ok(await self.admin.post("/storages/add", json=body), "storages/add")
        return name

    async def new_message(self, tenant_id: str) -> tuple[str, int]:
        """A new pending message of ``tenant_id``: its client id and pk."""
        message_id = self.unique(f"tmp-{tenant_id}-msg")
        added = await ok(
            await self.admin.post("/messages/add", json=self.message(tenant_id, message_id)),
            "messages/add",
        )
        return message_id, int(added["pk"])

    async def new_api_key(self, tenant_id: str) -> str:
        """A new scoped key of ``tenant_id`` (EE ``ee_apikeys``), for calls that revoke one."""
        name = self.unique("tmp-key")
        body = {"tenant_id": tenant_id, "name": name, "scopes": ["read"]}
        await ok(await self.admin.post("/api_keys/add", json=body), "api_keys/add")
        return name

    async def exists(self, path: str, **query: Any) -> bool:
        """Whether the admin's ``GET path`` finds the object (200) rather than 404."""
        response = await self.admin.get(path, **query)
        assert response.status in (200, 404), f"GET {path} {query}: {response!r}"
        return response.status == 200


async def seed_world(admin: ApiClient) -> World:
    """Create tenants ``acme`` and ``globex`` with an account, a mount and two messages each."""
    world = World(admin)
    for tenant_id in TENANTS:
        created = await ok(
            await admin.post("/tenants/add", json={"id": tenant_id, "name": tenant_id.title()}),
            "tenants/add",
        )
        if created.get("api_key"):
            world.api_keys[tenant_id] = created["api_key"]
        account = {
            "id": world.account_id(tenant_id),
            "tenant_id": tenant_id,
            "transport": "null",
            "user": f"{tenant_id}-user",
        }
        await ok(await admin.post("/accounts/add", json=account), "accounts/add")
        mount = {
            "tenant_id": tenant_id,
            "name": world.mount(tenant_id),
            "protocol": FAKE_STORAGE_PROTOCOL,
            "config": {"base_path": f"/data/{tenant_id}"},
        }
        await ok(await admin.post("/storages/add", json=mount), "storages/add")
        messages = [world.message(tenant_id, f"{tenant_id}-m{n}", batch_code="b1") for n in (1, 2)]
        queued = await ok(
            await admin.post("/messages/add_batch", json={"messages": messages}),
            "messages/add_batch",
        )
        assert queued["queued"] == 2, queued
        listed = await ok(await admin.get("/messages/list", tenant_id=tenant_id), "list")
        world.message_pks[tenant_id] = {entry["id"]: entry["pk"] for entry in listed}
    return world


@pytest.fixture
async def world(mp_client: ApiClient) -> World:
    """Two seeded tenants (see :func:`seed_world`) on the running ``mp_app``."""
    return await seed_world(mp_client)
