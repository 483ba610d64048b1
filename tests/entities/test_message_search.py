"""``MailProxy.search_messages`` and ``status_counts``: filters, keyset pages, tenant scoping."""

from __future__ import annotations

from typing import Any

from mailproxy_core import MailProxy
from mailproxy_core.testing.client import ApiClient


async def _setup(client: ApiClient) -> None:
    for tenant in ("acme", "globex"):
        assert (await client.post("/tenants/add", id=tenant)).status == 200
        account = await client.post("/accounts/add", id="main", tenant_id=tenant, transport="null")
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
        page, cursor = await mp_kernel.search_messages(tenant_id="acme", before_pk=before, limit=3)
        seen += [message["id"] for message in page]
        if cursor is None:
            break
        assert cursor == int(page[-1]["pk"])
        before = cursor
    assert seen == [f"acme-{n}" for n in reversed(range(7))]


async def _ids(mp: MailProxy, **filters: Any) -> list[str]:
    page, _ = await mp.search_messages(**filters)
    return [message["id"] for message in page]


async def test_search_filters_combine(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _setup(mp_client)
    assert sorted(await _ids(mp_kernel, text="USER3@example.org")) == ["acme-3", "globex-3"]
    assert await _ids(mp_kernel, tenant_id="globex", text="user3@") == ["globex-3"]
    batch = await _ids(mp_kernel, tenant_id="acme", batch_code="spring")
    assert batch == ["acme-5", "acme-3", "acme-1"]
    assert await _ids(mp_kernel, client_id="acme-2") == ["acme-2"]
    # LIKE wildcards in the text are matched literally
    assert len(await _ids(mp_kernel, text="100%")) == 14
    assert await _ids(mp_kernel, text="1_0") == []
    assert await _ids(mp_kernel, status="sent") == []
    assert await _ids(mp_kernel, created_to=0) == []


async def test_text_search_reads_a_bounded_window_and_continues_below_it(
    mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    await _setup(mp_client)
    search = mp_kernel.repos.messages.search
    # acme-1 is the 6th newest of acme: a window of 3 does not reach it, the cursor goes on
    rows, cursor = await search(tenant_id="acme", text="user1@", text_window=3)
    assert rows == [] and cursor is not None
    rows, cursor = await search(tenant_id="acme", text="user1@", text_window=3, before_pk=cursor)
    assert [row["id"] for row in rows] == ["acme-1"] and cursor is not None
    rows, cursor = await search(tenant_id="acme", text="user1@", text_window=3, before_pk=cursor)
    assert rows == [] and cursor is None


async def test_status_counts_per_tenant(mp_client: ApiClient, mp_kernel: MailProxy) -> None:
    await _setup(mp_client)
    assert await mp_kernel.status_counts("acme") == {"pending": 7}
    assert await mp_kernel.status_counts() == {"pending": 14}
    assert await mp_kernel.status_counts("nobody") == {}
