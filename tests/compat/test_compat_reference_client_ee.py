"""The Enterprise calls of the genro-mail-proxy 0.7.0 client, where the EE plugins are installed.

Each test declares its EE plugin (``ee_apikeys``, ``ee_pec``, ``ee_bounce``) with the
``requires_plugins`` marker: skipped in an environment without it, a failure under
``MAILPROXY_TEST_ALL_PLUGINS=1``.
"""

from __future__ import annotations

import time
import types
import uuid
from typing import Any

import httpx
import pytest

from tests.compat.conftest import Service


@pytest.fixture
def client(reference_client: types.ModuleType, service: Service) -> Any:
    return reference_client.MailProxyClient(service.url, token=service.token)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.requires_plugins("auth_token", "ee_apikeys")
async def test_tenant_api_keys(
    client: Any, reference_client: types.ModuleType, service: Service
) -> None:
    tenant_id = unique("t")
    created = await client.tenants.add(id=tenant_id, name="Keys")
    first_key = created["api_key"]
    expires = int(time.time()) + 3600
    minted = await client.tenants.create_api_key(tenant_id, expires_at=expires)
    assert minted["ok"] is True and minted["tenant_id"] == tenant_id
    assert minted["expires_at"] == expires and minted["api_key"] != first_key
    assert (await client.tenants.get(tenant_id)).api_key_expires_at == expires

    as_tenant = reference_client.MailProxyClient(service.url, token=minted["api_key"])
    assert await as_tenant.messages.list() == []
    stale = reference_client.MailProxyClient(service.url, token=first_key)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await stale.messages.list()
    assert refused.value.response.status_code == 401

    assert (await client.tenants.revoke_api_key(tenant_id))["ok"] is True
    with pytest.raises(httpx.HTTPStatusError) as revoked:
        await as_tenant.messages.list()
    assert revoked.value.response.status_code == 401


@pytest.mark.requires_plugins("auth_token", "ee_pec")
async def test_pec_accounts(client: Any, service: Service) -> None:
    tenant_id = unique("t")
    await client.tenants.add(id=tenant_id)
    added = await client.accounts.add_pec(
        id="pec",
        tenant_id=tenant_id,
        host="smtps.pec.example.it",
        port=465,
        imap_host="imaps.pec.example.it",
        user="box@pec.example.it",
        password="secret",
    )
    assert added["id"] == "pec" and "imap_password" not in added and "password" not in added
    listed = await client.accounts.list_pec()
    assert ("pec", tenant_id) in {(a.id, a.tenant_id) for a in listed}
    assert "pec" in await client.accounts.get_pec_ids()
    plain = await client.accounts.get(tenant_id, "pec")
    assert (plain.host, plain.port) == ("smtps.pec.example.it", 465)


@pytest.mark.requires_plugins("auth_token", "ee_bounce")
async def test_bounce_configuration(client: Any) -> None:
    config = await client.instance.set_bounce_config(
        enabled=False, imap_host="imap.bounces.example.com", imap_user="bounces", poll_interval=60
    )
    assert config["imap_host"] == "imap.bounces.example.com" and config["poll_interval"] == 60
    assert "imap_password" not in config
    assert await client.instance.get_bounce_config() == config
    assert (await client.instance.reload_bounce())["ok"] is True
