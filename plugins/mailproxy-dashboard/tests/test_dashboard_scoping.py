"""What each page shows to whom: the admin sees every tenant, a tenant key only its own."""

from __future__ import annotations

from typing import Any

from mailproxy_core.testing.client import ApiClient

PAGES = ("/ui/", "/ui/messages", "/ui/tenants", "/ui/reports")


async def test_admin_sees_every_tenant_on_every_page(
    signed_in: Any, admin_token: str, two_tenants: ApiClient
) -> None:
    client = await signed_in(admin_token)
    for path in PAGES:
        status, html = await client.get(path)
        assert status == 200, path
        assert "Acme Corp" in html or "acme-" in html, path
        assert "Globex Corp" in html or "globex-" in html, path
    status, html = await client.get("/ui/plugins")
    assert status == 200 and "dashboard" in html


async def test_tenant_key_never_sees_another_tenant(signed_in: Any, two_tenants: ApiClient) -> None:
    client = await signed_in("tenant-token:acme")
    for path in (*PAGES, "/ui/messages?tenant_id=globex", "/ui/messages?recipient=globex"):
        status, html = await client.get(path)
        assert status == 200, path
        assert "globex-" not in html.lower() and "globex corp" not in html.lower(), path
    status, html = await client.get("/ui/messages")
    assert all(f"acme-{n}" in html for n in range(3))


async def test_tenant_key_counts_only_its_own_messages(
    signed_in: Any, two_tenants: ApiClient
) -> None:
    client = await signed_in("tenant-token:acme")
    status, html = await client.get("/ui/")
    assert status == 200
    assert 'data-status="pending">3<' in html  # 6 messages in the instance, 3 are acme's


async def test_tenant_key_cannot_open_or_act_on_another_tenants_message(
    signed_in: Any, two_tenants: ApiClient
) -> None:
    client = await signed_in("tenant-token:acme")
    status, html = await client.get("/ui/messages/globex/globex-0")
    assert status == 403 and "customer0@globex" not in html
    for action in ("retry", "delete", "suspend-batch", "activate-batch"):
        response = await client.post(f"/ui/messages/globex/globex-0/{action}")
        assert response.status_code == 403, action
    stored = await two_tenants.get("/messages/get", tenant_id="globex", message_id="globex-0")
    assert stored.status == 200
    suspended = await two_tenants.get("/tenants/get_suspended_batches", tenant_id="globex")
    assert suspended.json["suspended_batches"] == []


async def test_admin_only_pages_and_actions_are_forbidden_to_a_tenant_key(
    signed_in: Any, two_tenants: ApiClient
) -> None:
    client = await signed_in("tenant-token:acme")
    status, html = await client.get("/ui/plugins")
    assert status == 403
    assert (await client.post("/ui/reports/run")).status_code == 403
    status, html = await client.get("/ui/")
    assert 'href="/ui/plugins"' not in html


async def test_search_filters_and_keyset_pages(
    signed_in: Any, admin_token: str, two_tenants: ApiClient, mp_kernel: object
) -> None:
    client = await signed_in(admin_token)
    status, html = await client.get("/ui/messages?recipient=customer1@acme")
    assert status == 200 and "acme-1" in html and "acme-0" not in html and "globex" not in html
    status, html = await client.get("/ui/messages?subject=globex order 2")
    assert "globex-2" in html and "globex-1" not in html
    status, html = await client.get("/ui/messages?batch_code=acme-batch&status=pending")
    assert all(f"acme-{n}" in html for n in range(3)) and "globex-0" not in html
    status, html = await client.get("/ui/messages?status=bogus")
    assert status == 422 and "status must be one of" in html
    status, html = await client.get("/ui/messages?date_from=yesterday")
    assert status == 422 and "date_from" in html


async def test_htmx_search_answers_only_the_result_rows(
    signed_in: Any, admin_token: str, two_tenants: ApiClient
) -> None:
    client = await signed_in(admin_token)
    status, html = await client.get("/ui/messages?client_id=acme-2", headers={"HX-Request": "true"})
    assert status == 200 and "<html" not in html and "acme-2" in html and "acme-1" not in html


async def test_keyset_pagination_walks_every_message_once(
    signed_in: Any, admin_token: str, two_tenants: ApiClient, mp_app: object
) -> None:
    import re

    from mailproxy_dashboard.views import state

    client = await signed_in(admin_token)
    async with client.client.app.app_context():  # type: ignore[attr-defined]
        settings = state().settings
        object.__setattr__(settings, "page_size", 4)
    seen: list[str] = []
    path: str | None = "/ui/messages"
    while path:
        status, html = await client.get(path)
        assert status == 200
        seen += re.findall(r">((?:acme|globex)-\d)</a>", html)
        found = re.search(r'class="next" href="([^"]+)"', html)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert sorted(seen) == sorted(f"{t}-{n}" for t in ("acme", "globex") for n in range(3))
    assert len(seen) == 6
