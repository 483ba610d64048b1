"""The genro-mail-proxy 0.7.0 Python client, unchanged, drives mail-proxy over real HTTP.

Every capability of ``tools.http_client`` is called exactly as an application would, against a
running service (SQLite and PostgreSQL) sending through a real SMTP sink; the answers are read
through the client's own dataclasses. The Enterprise calls run where the EE plugins are
installed (``test_compat_reference_client_ee.py``).
"""

from __future__ import annotations

import asyncio
import email
import time
import types
import uuid
from email.utils import parseaddr
from typing import Any

import httpx
import pytest

from tests.compat.conftest import Service

pytestmark = pytest.mark.requires_plugins("auth_token", "smtp")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(reference_client: types.ModuleType, service: Service) -> Any:
    """The reference client, as the admin."""
    return reference_client.MailProxyClient(service.url, token=service.token)


async def tenant_with_account(client: Any, service: Service) -> tuple[str, str]:
    """A new tenant with one SMTP account pointing at the sink."""
    tenant_id, account_id = unique("t"), "smtp"
    await client.tenants.add(id=tenant_id, name=f"Tenant {tenant_id}")
    await client.accounts.add(
        id=account_id,
        tenant_id=tenant_id,
        host="127.0.0.1",
        port=service.smtp_port,
        use_tls=False,
        limit_per_minute=600,
    )
    return tenant_id, account_id


async def wait_for_mail(service: Service, subject: str, within: float = 15.0) -> Any:
    """The message with ``subject`` the sink received (waits for it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for message in service.sink.messages():
            parsed = email.message_from_bytes(message.content)
            if parsed["Subject"] == subject:
                return message.mail_from, message.rcpt_tos, parsed
        await asyncio.sleep(0.05)
    raise AssertionError(f"no mail with subject {subject!r} arrived")


async def wait_for_status(client: Any, tenant_id: str, message_id: str, status: str) -> Any:
    for _ in range(300):
        message = await client.messages.get(message_id, tenant_id)
        if message.status == status:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {message_id} never became {status}: {message.status}")


async def test_health_and_status(client: Any) -> None:
    assert await client.health() is True
    assert await client.instance.health() == {"status": "ok"}
    status = await client.status()
    assert status["ok"] is True and isinstance(status["active"], bool)
    assert await client.instance.status() == status


async def test_tenants(client: Any) -> None:
    tenant_id = unique("t")
    added = await client.tenants.add(id=tenant_id, name="Acme", client_base_url="http://a.test")
    assert added["id"] == tenant_id
    tenant = await client.tenants.get(tenant_id)
    assert (tenant.id, tenant.name, tenant.active) == (tenant_id, "Acme", True)
    assert tenant.client_base_url == "http://a.test" and tenant.suspended_batches == set()
    assert tenant_id in {t.id for t in await client.tenants.list()}
    assert tenant_id in {t.id for t in await client.tenants.list(active_only=True)}

    updated = await client.tenants.update(tenant_id, name="Acme Corp", active=False)
    assert updated["name"] == "Acme Corp"
    assert (await client.tenants.get(tenant_id)).active is False
    assert tenant_id not in {t.id for t in await client.tenants.list(active_only=True)}

    suspended = await client.tenants.suspend_batch(tenant_id, "spring")
    assert suspended["ok"] is True and suspended["suspended_batches"] == ["spring"]
    assert await client.tenants.get_suspended_batches(tenant_id) == {"spring"}
    assert (await client.tenants.get(tenant_id)).suspended_batches == {"spring"}
    await client.tenants.activate_batch(tenant_id, "spring")
    assert await client.tenants.get_suspended_batches(tenant_id) == set()
    await client.tenants.suspend_batch(tenant_id)
    assert await client.tenants.get_suspended_batches(tenant_id) == {"*"}
    await client.tenants.activate_batch(tenant_id)
    assert await client.tenants.get_suspended_batches(tenant_id) == set()

    assert await client.tenants.delete(tenant_id) is True
    with pytest.raises(httpx.HTTPStatusError) as missing:
        await client.tenants.get(tenant_id)
    assert missing.value.response.status_code == 404


async def test_accounts(client: Any, reference_client: types.ModuleType, service: Service) -> None:
    tenant_id, account_id = await tenant_with_account(client, service)
    account = await client.accounts.get(tenant_id, account_id)
    assert (account.id, account.tenant_id, account.host) == (account_id, tenant_id, "127.0.0.1")
    assert (account.port, account.use_tls, account.ttl) == (service.smtp_port, False, 300)
    assert account.limit_per_minute == 600 and account.limit_behavior == "defer"
    assert account.is_pec_account is False
    await client.accounts.add(
        id="backup", tenant_id=tenant_id, host="mx.example.com", port=587, user="u", password="p"
    )
    listed = await client.accounts.list(tenant_id)
    assert [a.id for a in listed] == ["backup", account_id]
    assert {a.user for a in listed} == {"u", None}
    # With a default tenant on the client, list() needs no argument.
    scoped = reference_client.MailProxyClient(service.url, token=service.token, tenant_id=tenant_id)
    assert [a.id for a in await scoped.accounts.list()] == ["backup", account_id]
    assert await client.accounts.delete(tenant_id, "backup") is True
    assert [a.id for a in await client.accounts.list(tenant_id)] == [account_id]


async def test_send_read_and_delete_messages(client: Any, service: Service) -> None:
    tenant_id, account_id = await tenant_with_account(client, service)
    subject = unique("Hello")
    before = int(time.time())
    added = await client.messages.add(
        id="m1",
        tenant_id=tenant_id,
        account_id=account_id,
        from_addr="Shop <shop@acme.example>",
        to=["bob@example.com", "carol@example.com"],
        subject=subject,
        body="It works.",
        batch_code="welcome",
        priority=1,
    )
    assert added["id"] == "m1" and isinstance(added["pk"], str)

    queued = await client.messages.get("m1", tenant_id)
    assert (queued.id, queued.pk, queued.tenant_id) == ("m1", added["pk"], tenant_id)
    assert (queued.status, queued.priority, queued.batch_code) == ("pending", 1, "welcome")
    assert queued.from_addr == "Shop <shop@acme.example>"
    assert queued.to == ["bob@example.com", "carol@example.com"] and queued.subject == subject
    assert queued.smtp_ts is None and queued.error is None
    assert time.strptime(queued.created_at, "%Y-%m-%d %H:%M:%S")
    assert await client.messages.count_pending_for_tenant(tenant_id) == 1
    assert await client.messages.count_pending_for_tenant(tenant_id, "welcome") == 1
    assert await client.messages.count_pending_for_tenant(tenant_id, "other") == 0
    assert await client.messages.count_active() >= 1

    assert (await client.run_now())["ok"] is True
    mail_from, rcpt_tos, mail = await wait_for_mail(service, subject)
    assert mail_from == "shop@acme.example"
    assert sorted(rcpt_tos) == ["bob@example.com", "carol@example.com"]
    assert parseaddr(mail["From"]) == ("Shop", "shop@acme.example")
    assert mail["Subject"] == subject and mail.get_payload().strip() == "It works."

    sent = await wait_for_status(client, tenant_id, "m1", "sent")
    assert isinstance(sent.smtp_ts, int) and before <= sent.smtp_ts <= int(time.time())
    assert sent.error is None and sent.from_addr == "Shop <shop@acme.example>"
    assert await client.messages.count_pending_for_tenant(tenant_id) == 0
    listed = await client.messages.list(tenant_id=tenant_id)
    assert [(m.id, m.status, m.from_addr) for m in listed] == [
        ("m1", "sent", "Shop <shop@acme.example>")
    ]
    history = await client.messages.list(tenant_id=tenant_id, include_history=True)
    assert [m.id for m in history] == ["m1"]
    assert await client.messages.list(tenant_id=tenant_id, active_only=True) == []
    everything = await client.messages.list()  # the admin: every tenant's messages
    assert ("m1", tenant_id) in {(m.id, m.tenant_id) for m in everything}

    assert await client.messages.delete(sent.pk) is True
    assert await client.messages.list(tenant_id=tenant_id) == []


async def test_batches_and_batch_deletion(client: Any, service: Service) -> None:
    tenant_id, account_id = await tenant_with_account(client, service)
    subject = unique("Batch")

    def entry(message_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": message_id,
            "tenant_id": tenant_id,
            "account_id": account_id,
            "from": "news@acme.example",
            "to": ["reader@example.com"],
            "subject": f"{subject} {message_id}",
            "body": "News",
            **extra,
        }

    bad = entry("b3", to=["not an address"])
    result = await client.messages.add_batch(
        [entry("b1"), entry("b2", batch_code="later"), bad], default_priority=3
    )
    assert result["ok"] is True and result["queued"] == 2
    assert [r["id"] for r in result["rejected"]] == ["b3"]
    b1 = await client.messages.get("b1", tenant_id)
    assert b1.priority == 3 and b1.from_addr == "news@acme.example"

    await client.suspend(tenant_id, "later")
    assert await client.tenants.get_suspended_batches(tenant_id) == {"later"}
    await client.run_now(tenant_id)
    await wait_for_mail(service, f"{subject} b1")
    await wait_for_status(client, tenant_id, "b1", "sent")
    assert (await client.messages.get("b2", tenant_id)).status == "pending"
    await client.activate(tenant_id, "later")
    await client.instance.suspend(tenant_id)
    assert await client.tenants.get_suspended_batches(tenant_id) == {"*"}
    await client.instance.activate(tenant_id)
    await client.instance.run_now()
    await wait_for_mail(service, f"{subject} b2")

    deleted = await client.messages.delete_batch(tenant_id, ["b1", "nope"])
    assert deleted["ok"] is True and deleted["removed"] == 1 and deleted["not_found"] == ["nope"]
    cleaned = await client.messages.cleanup(tenant_id, older_than_seconds=3600)
    assert cleaned == {"ok": True, "removed": 0}
    assert (await client.messages.cleanup(tenant_id))["ok"] is True


async def test_instance(client: Any, reference_client: types.ModuleType, service: Service) -> None:
    config = await client.instance.get()
    assert config["ok"] is True and config["edition"] in ("ce", "ee")
    assert time.strptime(config["created_at"], "%Y-%m-%d %H:%M:%S")
    renamed = await client.instance.update(name="compat relay", edition=config["edition"])
    assert renamed["ok"] is True and renamed["name"] == "compat relay"
    assert renamed["edition"] == config["edition"]
    sync = await client.instance.get_sync_status()
    assert sync["ok"] is True and isinstance(sync["tenants"], list)

    token = f"compat-{uuid.uuid4().hex}"
    answer = await client.instance.update(api_token=token)
    assert token not in str(answer)
    other = reference_client.MailProxyClient(service.url, token=token)
    assert (await other.status())["ok"] is True
    with pytest.raises(httpx.HTTPStatusError) as short:
        await client.instance.update(api_token="short")
    assert short.value.response.status_code == 422

    if config["edition"] == "ce":
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.instance.upgrade_to_ee()
        assert refused.value.response.status_code == 409
        assert "mailproxy-ee-" in refused.value.response.json()["detail"]
    else:
        upgraded = await client.instance.upgrade_to_ee()
        assert upgraded["ok"] is True and upgraded["edition"] == "ee"


async def test_command_log(client: Any, service: Service) -> None:
    start = int(time.time())
    tenant_id = unique("t")
    await client.tenants.add(id=tenant_id, name="Logged")
    entries = await client.command_log.list(tenant_id=tenant_id)
    assert [e.endpoint for e in entries] == ["POST /tenants/add"]
    entry = entries[0]
    assert entry.payload == {"id": tenant_id, "name": "Logged"} and entry.response_status == 200
    assert entry.command_ts >= start and entry.tenant_id == tenant_id
    assert (await client.command_log.get(entry.id)).endpoint == "POST /tenants/add"
    filtered = await client.command_log.list(endpoint_filter="tenants/add", since_ts=start)
    assert entry.id in {e.id for e in filtered}
    exported = await client.command_log.export(tenant_id=tenant_id, since_ts=start)
    assert [e["endpoint"] for e in exported] == ["POST /tenants/add"]
    purged = await client.command_log.purge(threshold_ts=start - 86400)
    assert purged["ok"] is True
