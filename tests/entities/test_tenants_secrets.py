"""Secrets are encrypted at rest, never returned, and decrypted only by the load_* helpers
(SQLite + PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mailproxy_core.crypto import ENCRYPTED_PREFIX, generate_key
from mailproxy_core.db.schema import accounts, storages, tenants
from mailproxy_core.kernel import MailProxy
from mailproxy_core.models import Account, StorageMount, Tenant
from mailproxy_core.plugins.markers import hookimpl
from mailproxy_core.records.accounts import load_account, load_account_by_pk
from mailproxy_core.records.storages import load_storage, load_storages
from mailproxy_core.records.tenants import load_tenant, load_tenants
from mailproxy_core.settings import Settings
from mailproxy_core.specs import StorageBackendSpec
from mailproxy_core.testing.client import ApiClient, Response
from mailproxy_core.testing.fakes import TenantTokenPlugin
from mailproxy_core.testing.plugin import ADMIN_TOKEN

BEARER_TOKEN = "plain-bearer-token-0001"
BASIC_PASSWORD = "plain-basic-password-0002"
SIGNING_SECRET = "plain-signing-secret-0003"
SMTP_PASSWORD = "plain-smtp-password-0004"
OPTION_KEY = "plain-option-api-key-0005"
STORAGE_SECRET = "plain-storage-secret-0006"
STORAGE_TOKEN = "plain-storage-token-0007"
SECRETS = (
    BEARER_TOKEN,
    BASIC_PASSWORD,
    SIGNING_SECRET,
    SMTP_PASSWORD,
    OPTION_KEY,
    STORAGE_SECRET,
    STORAGE_TOKEN,
)


class FakeStoragePlugin:
    """Registers the storage protocol ``fake``."""

    @hookimpl
    def mailproxy_register_storage_backends(self) -> list[StorageBackendSpec]:
        factory: Any = lambda mp, config: object()  # noqa: E731
        return [StorageBackendSpec("fake", factory)]


@pytest.fixture
def mp_settings(db_url: str, tmp_path: Path) -> Settings:
    """An instance on SQLite or PostgreSQL with an encryption key."""
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


def assert_no_secret(response: Response) -> None:
    """Neither a plaintext secret nor ciphertext appears anywhere in the response body."""
    text = json.dumps(response.json)
    for secret in SECRETS:
        assert secret not in text, (secret, response)
    assert ENCRYPTED_PREFIX not in text, response
    assert '"password"' not in text and '"token"' not in text, response


async def _populate(client: ApiClient) -> list[Response]:
    """Create objects holding every kind of secret; return the write responses."""
    return [
        await client.post(
            "/tenants/add",
            json={
                "id": "acme",
                "client_base_url": "https://acme.test",
                "client_auth": {"method": "bearer", "token": BEARER_TOKEN},
                "report_signing_secret": SIGNING_SECRET,
            },
        ),
        await client.post(
            "/tenants/add",
            json={
                "id": "globex",
                "client_auth": {"method": "basic", "user": "gx", "password": BASIC_PASSWORD},
            },
        ),
        await client.post(
            "/accounts/add",
            json={
                "tenant_id": "acme",
                "id": "main",
                "transport": "null",
                "host": "smtp.acme.test",
                "port": 587,
                "user": "mailer",
                "password": SMTP_PASSWORD,
                "options": {"api_key": OPTION_KEY, "region": "eu"},
            },
        ),
        await client.post(
            "/storages/add",
            json={
                "tenant_id": "acme",
                "name": "HOME",
                "protocol": "fake",
                "config": {
                    "bucket": "b",
                    "aws_secret_access_key": STORAGE_SECRET,
                    "auth": {"token": STORAGE_TOKEN},
                },
            },
        ),
    ]


async def test_no_response_contains_a_secret(mp_client: ApiClient) -> None:
    writes = await _populate(mp_client)
    assert [response.status for response in writes] == [200, 200, 200, 200], writes
    acme = mp_client.as_tenant("acme")
    reads = [
        await mp_client.get("/tenants/get", tenant_id="acme"),
        await mp_client.get("/tenants/get", tenant_id="globex"),
        await mp_client.get("/tenants/list"),
        await mp_client.get("/tenants/list", active_only=True),
        await mp_client.get("/tenants/get_suspended_batches", tenant_id="acme"),
        await mp_client.get("/accounts/get", tenant_id="acme", account_id="main"),
        await mp_client.get("/accounts/list", tenant_id="acme"),
        await mp_client.get("/storages/get", tenant_id="acme", name="HOME"),
        await mp_client.get("/storages/list", tenant_id="acme"),
        await acme.get("/tenants/get"),
        await acme.get("/accounts/list"),
        await acme.get("/storages/list"),
        await mp_client.post("/tenants/update", json={"tenant_id": "acme", "name": "ACME"}),
        await mp_client.post(
            "/tenants/update",
            json={"tenant_id": "globex", "report_signing_secret": SIGNING_SECRET},
        ),
    ]
    assert all(response.status == 200 for response in reads), reads
    for response in writes + reads:
        assert_no_secret(response)

    tenant = reads[0].json
    assert tenant["client_auth"] == {"method": "bearer"} and tenant["has_credentials"] is True
    assert tenant["has_report_signing_secret"] is True
    assert reads[1].json["client_auth"] == {"method": "basic", "user": "gx"}
    account = reads[5].json
    assert account["has_password"] is True and account["options"] == {"region": "eu"}
    assert account["secret_option_keys"] == ["api_key"]
    mount = reads[7].json
    assert mount["config"] == {"bucket": "b", "auth": {}}
    assert mount["secret_config_keys"] == ["auth.token", "aws_secret_access_key"]


async def test_rejected_input_does_not_echo_secrets(mp_client: ApiClient) -> None:
    await _populate(mp_client)
    rejected = [
        await mp_client.post(
            "/tenants/add",
            json={"id": "bad id", "client_auth": {"method": "bearer", "token": BEARER_TOKEN}},
        ),
        await mp_client.post(
            "/tenants/add",
            json={"id": "t2", "client_auth": {"method": "digest", "token": BEARER_TOKEN}},
        ),
        await mp_client.post(
            "/accounts/add",
            json={"tenant_id": "acme", "id": "x", "transport": "?", "password": SMTP_PASSWORD},
        ),
        await mp_client.post(
            "/storages/add",
            json={"tenant_id": "acme", "name": "a:b", "protocol": "fake", "config": "x"},
        ),
    ]
    assert [response.status for response in rejected] == [422, 422, 422, 422]
    for response in rejected:
        assert_no_secret(response)


async def test_secrets_are_encrypted_at_rest(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _populate(mp_client)
    db = mp_kernel.db
    rows = await db.fetch_all(sa.select(tenants.c.client_auth, tenants.c.report_signing_secret))
    stored = " ".join(str(value) for row in rows for value in row.values())
    for secret in (BEARER_TOKEN, BASIC_PASSWORD, SIGNING_SECRET):
        assert secret not in stored
    acme = await db.fetch_one(
        sa.select(tenants.c.client_auth, tenants.c.report_signing_secret).where(
            tenants.c.id == "acme"
        )
    )
    assert acme is not None
    assert json.loads(acme["client_auth"])["token"].startswith(ENCRYPTED_PREFIX)
    assert acme["report_signing_secret"].startswith(ENCRYPTED_PREFIX)
    globex_auth = await db.fetch_val(
        sa.select(tenants.c.client_auth).where(tenants.c.id == "globex")
    )
    assert json.loads(globex_auth)["password"].startswith(ENCRYPTED_PREFIX)

    account = await db.fetch_one(sa.select(accounts.c.password, accounts.c.options))
    assert account is not None and account["password"].startswith(ENCRYPTED_PREFIX)
    options = json.loads(account["options"])
    assert options["api_key"].startswith(ENCRYPTED_PREFIX) and options["region"] == "eu"

    config = await db.fetch_val(sa.select(storages.c.config))
    assert config.startswith(ENCRYPTED_PREFIX)
    assert STORAGE_SECRET not in config and "bucket" not in config


async def test_load_helpers_decrypt_for_internal_use(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _populate(mp_client)
    await mp_client.post("/tenants/suspend_batch", json={"tenant_id": "acme", "batch_code": "b"})

    tenant = await load_tenant(mp_kernel, "acme")
    assert isinstance(tenant, Tenant)
    assert tenant.client_auth == {"method": "bearer", "token": BEARER_TOKEN}
    assert tenant.report_signing_secret == SIGNING_SECRET
    assert tenant.client_base_url == "https://acme.test" and tenant.active is True
    assert tenant.suspended_batches == ("b",) and tenant.reporter == "http"
    assert await load_tenant(mp_kernel, "ghost") is None
    everyone = await load_tenants(mp_kernel)
    assert [t.id for t in everyone] == ["acme", "globex"]
    assert everyone[1].client_auth == {"method": "basic", "user": "gx", "password": BASIC_PASSWORD}
    assert everyone[1].report_signing_secret is None

    account = await load_account(mp_kernel, "acme", "main")
    assert isinstance(account, Account)
    assert account.password == SMTP_PASSWORD and account.user == "mailer"
    assert account.options == {"api_key": OPTION_KEY, "region": "eu"}
    assert account.host == "smtp.acme.test" and account.port == 587
    assert account.transport == "null" and account.use_tls is True
    assert await load_account_by_pk(mp_kernel, account.pk) == account
    assert await load_account(mp_kernel, "globex", "main") is None
    assert await load_account_by_pk(mp_kernel, "no-such-pk") is None

    mount = await load_storage(mp_kernel, "acme", "HOME")
    assert mount == StorageMount(
        tenant_id="acme",
        name="HOME",
        protocol="fake",
        config={
            "bucket": "b",
            "aws_secret_access_key": STORAGE_SECRET,
            "auth": {"token": STORAGE_TOKEN},
        },
    )
    assert await load_storages(mp_kernel, "acme") == [mount]
    assert await load_storage(mp_kernel, "acme", "OTHER") is None
    assert await load_storages(mp_kernel, "globex") == []
