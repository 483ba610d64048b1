"""``MailProxy.search_messages`` and ``status_counts``: filters, keyset pages, tenant scoping."""

from __future__ import annotations

from typing import Any

from mailproxy_core import MailProxy
from mailproxy_core.testing.client import ApiClient


async def _setup(client: ApiClient) -> None:
    for tenant in ("acme", "globex"):
        assert (await client.post("/tenants/add", id=tenant)).status == 200
        account = await client.post(
            "/accounts/add", id="main", tenant_id=tenant, host="127.0.0.1", port=2525
        )
        assert account.status == 200, account.json
    messages: list[dict[str, Any]] = [
        {
            "id": f"{tenant}-{n}",
            "tenant_id": tenant,
            "account_id": "main",
            "from": "shop@example.com",
            "to": f"user{n}@example.org",
            "subject": f"Order {n} 100%",
            "body": "hello",
            "batch_code": "spring" if n % 2 else None,
        }
        for tenant in ("acme", "globex")
        for n in range(7)
    ]
    added = await client.post("/messages/add_batch", messages=messages)
    assert added.json["queued"] == 14, added.json


async def test_search_pages_newest_first_without_gaps(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _setup(mp_client)
    seen: list[str] = []
    before = None
    while True:
        page = await mp_kernel.search_messages(tenant_id="acme", before_pk=before, limit=3)
        if not page:
            break
        seen += [message["id"] for message in page]
        before = int(page[-1]["pk"])
    assert seen == [f"acme-{n}" for n in reversed(range(7))]


async def test_search_filters_combine(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _setup(mp_client)
    by_recipient = await mp_kernel.search_messages(text="USER3@example.org")
    assert sorted(m["id"] for m in by_recipient) == ["acme-3", "globex-3"]
    scoped = await mp_kernel.search_messages(tenant_id="globex", text="user3@")
    assert [m["id"] for m in scoped] == ["globex-3"]
    batch = await mp_kernel.search_messages(tenant_id="acme", batch_code="spring")
    assert [m["id"] for m in batch] == ["acme-5", "acme-3", "acme-1"]
    assert [m["id"] for m in await mp_kernel.search_messages(client_id="acme-2")] == ["acme-2"]
    # LIKE wildcards in the text are matched literally
    assert len(await mp_kernel.search_messages(text="100%")) == 14
    assert await mp_kernel.search_messages(text="1_0") == []
    assert await mp_kernel.search_messages(status="sent") == []
    assert await mp_kernel.search_messages(created_to=0) == []


async def test_status_counts_per_tenant(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _setup(mp_client)
    assert await mp_kernel.status_counts("acme") == {"pending": 7}
    assert await mp_kernel.status_counts() == {"pending": 14}
    assert await mp_kernel.status_counts("nobody") == {}
