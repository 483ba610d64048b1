"""The Enterprise pages (through ``mailproxy_dashboard_pages``) and what scope-limited keys see.

Real ``ee_apikeys`` keys (not the test backend): the admin mints them through the API, the
dashboard asks the authentication chain about each route as the API would. A tenant key never
sees another tenant's suppressions, keys or PEC accounts; a key without the scope a page or
button needs gets neither the link nor the button, and 403 when it asks by URL.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from mailproxy_core.testing.client import ApiClient

pytestmark = pytest.mark.requires_plugins("ee_apikeys", "ee_bounce", "ee_pec")

KEY = re.compile(r"mpk_[A-Za-z0-9_-]{43}")


async def default_key(api: ApiClient, tenant_id: str) -> str:
    """A new default key (scope ``manage``) of the tenant, minted by the admin."""
    answer = await api.post("/tenants/create_api_key", tenant_id=tenant_id)
    assert answer.status == 200, answer.json
    return str(answer.json["api_key"])


async def scoped_key(api: ApiClient, tenant_id: str, name: str, scopes: list[str]) -> str:
    answer = await api.post("/api_keys/add", tenant_id=tenant_id, name=name, scopes=scopes)
    assert answer.status == 200, answer.json
    return str(answer.json["api_key"])


async def suppressed(api: ApiClient, tenant_id: str) -> list[str]:
    answer = await api.get("/suppressions/list", tenant_id=tenant_id)
    assert answer.status == 200, answer.json
    return [row["address"] for row in answer.json]


async def test_suppressions_page_is_scoped_to_the_tenant_and_adds_and_removes(
    two_tenants: ApiClient, signed_in: Any
) -> None:
    api = two_tenants
    for tenant in ("acme", "globex"):
        added = await api.post(
            "/suppressions/add", tenant_id=tenant, address=f"gone@{tenant}-clients.example"
        )
        assert added.status == 200, added.json
    acme = await signed_in(await default_key(api, "acme"))

    status, html = await acme.get("/ui/")
    assert 'href="/ui/x/suppressions"' in html and 'href="/ui/x/bounce"' not in html
    for path in ("/ui/x/suppressions", "/ui/x/suppressions?tenant_id=globex"):
        status, html = await acme.get(path)
        assert status == 200
        assert "gone@acme-clients.example" in html
        assert "globex" not in html

    # Naming globex in the form does not reach globex: the API scopes tenant_id to the key.
    response = await acme.post(
        "/ui/x/suppressions", action="add", tenant_id="globex", address="new@example.org"
    )
    assert response.status_code == 200
    assert "new@example.org is suppressed" in await response.get_data(as_text=True)
    assert "new@example.org" in await suppressed(api, "acme")
    assert "new@example.org" not in await suppressed(api, "globex")

    response = await acme.post(
        "/ui/x/suppressions", action="delete", tenant_id="acme", address="new@example.org"
    )
    assert "new@example.org removed" in await response.get_data(as_text=True)
    assert await suppressed(api, "acme") == ["gone@acme-clients.example"]

    # An invalid address is explained on the page, nothing stored.
    response = await acme.post("/ui/x/suppressions", action="add", address="not an address")
    assert "invalid address" in await response.get_data(as_text=True)
    assert await suppressed(api, "acme") == ["gone@acme-clients.example"]

    refused = await acme.post("/ui/x/suppressions", csrf="forged", action="add", address="x@y.org")
    assert refused.status_code == 403


async def test_admin_picks_the_tenant_of_the_suppressions_page(
    two_tenants: ApiClient, signed_in: Any, admin_token: str
) -> None:
    await two_tenants.post("/suppressions/add", tenant_id="globex", address="a@globex.example")
    admin = await signed_in(admin_token)
    _status, html = await admin.get("/ui/x/suppressions?tenant_id=globex")
    assert "a@globex.example" in html and "<option selected>globex</option>" in html
    response = await admin.post(
        "/ui/x/suppressions", action="delete", tenant_id="globex", address="a@globex.example"
    )
    assert response.status_code == 200
    assert await suppressed(two_tenants, "globex") == []


async def test_bounce_mailbox_page_is_admin_only(
    two_tenants: ApiClient, signed_in: Any, admin_token: str
) -> None:
    configured = await two_tenants.post(
        "/instance/set_bounce_config",
        imap_host="imap.example.org",
        imap_user="bounces",
        imap_password="s3cret-pw",
        return_path="bounces@example.org",
    )
    assert configured.status == 200, configured.json
    admin = await signed_in(admin_token)
    status, html = await admin.get("/ui/x/bounce")
    assert status == 200
    assert "imap.example.org:993" in html and "bounces@example.org" in html
    assert "s3cret-pw" not in html and "Password</dt><dd>set" in html
    assert "Reconnect and poll now" in html

    tenant = await signed_in(await default_key(two_tenants, "acme"))
    _status, html = await tenant.get("/ui/")
    assert 'href="/ui/x/bounce"' not in html
    assert (await tenant.get("/ui/x/bounce"))[0] == 403


async def test_api_keys_page_creates_a_key_shown_once_and_revokes_it(
    two_tenants: ApiClient, signed_in: Any
) -> None:
    api = two_tenants
    await scoped_key(api, "globex", "globex-ci", ["send"])
    acme = await signed_in(await default_key(api, "acme"))

    response = await acme.post(
        "/ui/x/api-keys", action="add", tenant_id="globex", name="ci", scope_send="1"
    )
    html = await response.get_data(as_text=True)
    assert response.status_code == 200
    shown = KEY.findall(html)
    assert len(shown) == 1, "the new key is shown, once"
    assert 'New API key "ci"</strong> of acme' in html

    status, html = await acme.get("/ui/x/api-keys")
    assert status == 200
    assert KEY.search(html) is None, "never shown again"
    assert ">ci</th>" in html and "globex-ci" not in html
    listed = await api.get("/api_keys/list", tenant_id="acme")
    assert [k["name"] for k in listed.json if k["name"] == "ci"] == ["ci"]

    # The new key works, with its scope: it signs in and sees the messages only.
    ci = await signed_in(shown[0])
    _status, html = await ci.get("/ui/messages")
    assert "acme-0" in html and "globex" not in html

    response = await acme.post("/ui/x/api-keys", action="revoke", name="ci")
    assert "The key ci is revoked" in await response.get_data(as_text=True)
    assert (await ci.get("/ui/messages"))[0] == 302, "a revoked key's session ends"

    duplicate = await acme.post("/ui/x/api-keys", action="add", name="default", scope_read="1")
    assert "default" in await duplicate.get_data(as_text=True)


async def test_send_only_key_sees_messages_and_nothing_it_may_not_use(
    two_tenants: ApiClient, signed_in: Any
) -> None:
    key = await scoped_key(two_tenants, "acme", "sender", ["send"])
    client = await signed_in(key)

    _status, html = await client.get("/ui/")
    nav = html.split("</nav>")[0]
    assert 'href="/ui/messages"' in nav
    refused_pages = (
        "/ui/tenants",
        "/ui/reports",
        "/ui/x/suppressions",
        "/ui/x/api-keys",
        "/ui/x/pec",
    )
    for hidden in (*refused_pages, "/ui/plugins"):
        assert f'href="{hidden}"' not in nav, hidden
    for path in refused_pages:
        status, html = await client.get(path)
        assert status == 403, path

    status, html = await client.get("/ui/messages/acme/acme-0")
    assert status == 200 and "acme order 0" in html
    for button in ("Retry now", "Delete", "Suspend batch"):
        assert button not in html
    refused = await client.post("/ui/messages/acme/acme-0/delete")
    assert refused.status_code == 403
    assert "may not use messages/delete" in await refused.get_data(as_text=True)
    still = await two_tenants.get("/messages/get", tenant_id="acme", message_id="acme-0")
    assert still.status == 200, "the refused delete did nothing"


async def test_read_key_sees_pages_but_no_action(two_tenants: ApiClient, signed_in: Any) -> None:
    await two_tenants.post("/suppressions/add", tenant_id="acme", address="gone@acme.example")
    client = await signed_in(await scoped_key(two_tenants, "acme", "reader", ["read"]))
    _status, html = await client.get("/ui/")
    nav = html.split("</nav>")[0]
    for shown in ("/ui/tenants", "/ui/reports", "/ui/x/suppressions", "/ui/x/api-keys"):
        assert f'href="{shown}"' in nav, shown
    _status, html = await client.get("/ui/x/suppressions")
    assert "gone@acme.example" in html and "Suppress</button>" not in html and "Remove" not in html
    refused = await client.post("/ui/x/suppressions", action="delete", address="gone@acme.example")
    assert refused.status_code == 403
    assert await suppressed(two_tenants, "acme") == ["gone@acme.example"]
    _status, html = await client.get("/ui/x/api-keys")
    assert "Create key" not in html and "Revoke" not in html
    _status, html = await client.get("/ui/messages/acme/acme-0")
    assert "Retry now" not in html and "Delete" not in html


async def test_pec_page_lists_only_the_tenants_pec_accounts(
    two_tenants: ApiClient, signed_in: Any, admin_token: str
) -> None:
    for tenant in ("acme", "globex"):
        added = await two_tenants.post(
            "/accounts/add_pec",
            id="pec",
            tenant_id=tenant,
            host=f"smtp.{tenant}-pec.example",
            port=465,
            imap_host=f"imap.{tenant}-pec.example",
            user=f"{tenant}@pec.example",
            password="pec-pw",
        )
        assert added.status == 200, added.json
    acme = await signed_in(await default_key(two_tenants, "acme"))
    status, html = await acme.get("/ui/x/pec")
    assert status == 200
    assert "imap.acme-pec.example" in html and "globex" not in html and "pec-pw" not in html
    admin = await signed_in(admin_token)
    _status, html = await admin.get("/ui/x/pec")
    assert "imap.acme-pec.example" in html and "imap.globex-pec.example" in html


async def test_ee_plugins_run_without_the_dashboard(tmp_path: Any) -> None:
    """Their page hooks are optional: with the dashboard disabled they load and serve the API."""
    from mailproxy_core import Settings
    from mailproxy_core.app import create_app
    from mailproxy_core.testing.plugin import ADMIN_TOKEN

    settings = Settings.from_values(
        db=str(tmp_path / "mp.db"),
        api_token=ADMIN_TOKEN,
        test_mode=True,
        disabled_plugins=["dashboard"],
    )
    app = create_app(settings)
    async with app.test_app():
        client = ApiClient(app.test_client(), token=ADMIN_TOKEN)
        plugins = await client.get("/instance/plugins")
        loaded = {p["name"] for p in plugins.json["plugins"] if p["status"] == "loaded"}
        assert {"ee_apikeys", "ee_bounce", "ee_pec"} <= loaded and "dashboard" not in loaded
        assert (await client.post("/tenants/add", id="acme")).status == 200
        assert (await client.get("/suppressions/list", tenant_id="acme")).status == 200
        assert (await app.test_client().get("/ui/")).status_code == 404
