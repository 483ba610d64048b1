"""The dashboard in a real headless Chromium against a real service and an aiosmtpd sink.

Chromium comes from Debian's ``chromium`` package (``make test-deps`` installs it); without it,
or without Playwright, the tests are skipped saying so. Every request off the service's own
address is refused, so the pages are proven to work offline (no CDN). Screenshots of each page
are written to ``$MAILPROXY_DASHBOARD_SHOTS`` (default: the test's temporary directory).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailproxy_core.testing.plugin import ADMIN_TOKEN

playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = pytest.mark.requires_plugins("smtp")


def chromium_path() -> str | None:
    return os.environ.get("MAILPROXY_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("MAILPROXY_DASHBOARD_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def api(service: Any, path: str, token: str = ADMIN_TOKEN, **body: Any) -> Any:
    with httpx.Client(base_url=service.url, headers={"X-API-Token": token}, timeout=10) as c:
        response = c.post(path, json=body) if body else c.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def status_of(service: Any, tenant: str, message_id: str) -> str:
    with httpx.Client(base_url=service.url, headers={"X-API-Token": ADMIN_TOKEN}) as c:
        found = c.get("/messages/get", params={"tenant_id": tenant, "message_id": message_id})
    return str(found.json()["status"])


def set_up_relay(service: Any) -> None:
    for tenant in ("acme", "globex"):
        api(service, "/tenants/add", id=tenant, name=f"{tenant.title()} Corp")
        api(
            service,
            "/accounts/add",
            id="main",
            tenant_id=tenant,
            host="127.0.0.1",
            port=service.smtp.port,
            use_tls=False,
        )


def message(tenant: str, mid: str, to: str, batch: str | None = None) -> dict[str, Any]:
    return {
        "id": mid,
        "tenant_id": tenant,
        "account_id": "main",
        "from": f"shop@{tenant}.example",
        "to": to,
        "subject": f"Order {mid}",
        "body": "Thanks for your order.",
        "batch_code": batch,
    }


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed (make test-deps installs Debian's chromium)")
    with playwright_sync.sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Any, service: Any, outside: list[str], timezone: str = "UTC") -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, timezone_id=timezone)
    page = context.new_page()

    def only_service(route: Any) -> None:
        if route.request.url.startswith(service.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_service)
    return page


def sign_in(page: Any, service: Any, token: str) -> None:
    page.goto(f"{service.url}/ui/")
    page.get_by_label("Admin token or tenant API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{service.url}/ui/")


def test_operator_finds_a_failed_message_and_retries_it(
    browser: Any, service: Any, shots: Path
) -> None:
    set_up_relay(service)
    service.smtp.handler.rcpt_replies["bob@example.org"] = (
        "550 5.1.1 <bob@example.org>: no such user"
    )
    api(
        service,
        "/messages/add_batch",
        messages=[
            message("acme", "order-1", "alice@example.org", batch="spring"),
            message("acme", "order-2", "bob@example.org", batch="spring"),
            message("globex", "g-1", "carol@example.org"),
        ],
    )
    wait_until(lambda: status_of(service, "acme", "order-1") == "sent")
    wait_until(lambda: status_of(service, "acme", "order-2") == "error")
    wait_until(lambda: status_of(service, "globex", "g-1") == "sent")
    outside: list[str] = []
    page = open_page(browser, service, outside)

    page.goto(f"{service.url}/ui/")
    assert "/ui/login" in page.url
    page.screenshot(path=str(shots / "sign-in.png"))
    sign_in(page, service, ADMIN_TOKEN)
    assert page.locator('[data-status="sent"]').inner_text() == "2"
    assert page.locator('[data-status="error"]').inner_text() == "1"
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    page.get_by_role("link", name="Messages", exact=True).click()
    page.get_by_label("Recipient").fill("bob@example")
    page.get_by_role("button", name="Search").click()
    # the results are swapped in by htmx: wait for the filtered table, not for any order-2
    playwright_sync.expect(page.locator("table.messages tbody tr")).to_have_count(1)
    assert "recipient=bob" in page.url
    page.screenshot(path=str(shots / "messages.png"), full_page=True)

    page.get_by_role("link", name="order-2").click()
    page.wait_for_selector("text=no such user")
    page.screenshot(path=str(shots / "message.png"), full_page=True)

    service.smtp.handler.rcpt_replies.clear()
    page.get_by_role("button", name="Retry now").click()
    page.wait_for_selector("text=Queued again")
    wait_until(lambda: status_of(service, "acme", "order-2") == "sent")
    assert any("bob@example.org" in m.rcpt_tos for m in service.smtp.handler.messages)
    page.reload()
    assert page.locator("h1 .badge").inner_text() == "sent"

    page.get_by_role("button", name="Suspend batch spring").click()
    page.wait_for_selector("text=Batch spring suspended")
    suspended = api(service, "/tenants/get_suspended_batches?tenant_id=acme")
    assert suspended["suspended_batches"] == ["spring"]
    page.get_by_role("button", name="Activate batch spring").click()
    page.wait_for_selector("text=Batch spring activated")
    assert api(service, "/tenants/get_suspended_batches?tenant_id=acme")["suspended_batches"] == []

    for name, shot in (("Tenants", "tenants"), ("Reports", "reports"), ("Plugins", "plugins")):
        page.get_by_role("link", name=name, exact=True).click()
        page.wait_for_selector("h1")
        page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)

    # a form posted without the session's CSRF token: 403, not a redirect
    refused = page.request.post(
        f"{service.url}/ui/reports/run", form={"csrf_token": "forged"}, max_redirects=0
    )
    assert refused.status == 403

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{service.url}/ui/login")
    page.goto(f"{service.url}/ui/messages")
    assert "/ui/login" in page.url
    assert outside == [], f"the dashboard loaded from outside the service: {outside}"


def test_tenant_key_sees_only_its_tenant_in_the_browser(
    browser: Any, service: Any, shots: Path
) -> None:
    set_up_relay(service)
    api(
        service,
        "/messages/add_batch",
        messages=[
            message("acme", "a-1", "alice@example.org"),
            message("globex", "g-1", "carol@globex-clients.example"),
        ],
    )
    wait_until(lambda: status_of(service, "globex", "g-1") == "sent")
    outside: list[str] = []
    page = open_page(browser, service, outside, timezone="Asia/Tokyo")
    sign_in(page, service, "tenant-token:acme")
    for path in (
        "/ui/",
        "/ui/messages",
        "/ui/tenants",
        "/ui/reports",
        "/ui/messages?recipient=carol",
    ):
        page.goto(f"{service.url}{path}")
        text = page.content().lower()
        assert "globex corp" not in text and "g-1" not in text and "carol@" not in text, path
    page.goto(f"{service.url}/ui/messages")
    assert page.locator("table.messages tbody tr").count() == 1
    # dates are shown in the browser's time zone (UTC+9 here), read as the UTC they are
    created = page.locator("table.messages tbody time").first
    utc_text = created.get_attribute("datetime")
    assert created.get_attribute("title") == utc_text.replace(" ", "T") + ".000Z"
    local_hour = page.evaluate("t => new Date(t.replace(' ', 'T') + 'Z').getHours()", utc_text)
    assert local_hour == (int(utc_text[11:13]) + 9) % 24
    local_text = page.evaluate(
        "t => new Date(t.replace(' ', 'T') + 'Z').toLocaleString()", utc_text
    )
    assert created.inner_text() == local_text
    page.screenshot(path=str(shots / "tenant-messages.png"), full_page=True)
    response = page.goto(f"{service.url}/ui/messages/globex/g-1")
    assert response is not None and response.status == 403
    assert outside == []


def shot(page: Any, shots: Path, name: str) -> None:
    """A full-page screenshot once the page's scripts ran (dates shown in local time)."""
    page.wait_for_load_state("load")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_enterprise_pages_and_operations_in_the_browser(
    browser: Any, service: Any, shots: Path
) -> None:
    """Suppressions add / remove, an API key created and shown once, the bounce and PEC pages,
    rate-limit usage and pool state, the kept .eml, the reports back-off, and what a send-only
    key is offered. Needs the EE plugins (installed by ``make install-test``)."""
    pytest.importorskip("mailproxy_ee_apikeys", reason="the EE plugins are not installed")
    pytest.importorskip("mailproxy_ee_bounce", reason="the EE plugins are not installed")
    pytest.importorskip("mailproxy_ee_pec", reason="the EE plugins are not installed")
    set_up_relay(service)
    api(service, "/tenants/update", tenant_id="acme", rate_limits={"per_hour": 500})
    api(
        service,
        "/accounts/add",
        id="disk",
        tenant_id="acme",
        host="unused.invalid",
        port=25,
        transport="file",
        limit_per_day=1000,
    )
    api(
        service,
        "/accounts/add_pec",
        id="pec",
        tenant_id="acme",
        host="smtp.pec.example",
        port=465,
        imap_host="imap.pec.example",
        user="acme@pec.example",
        password="pec-password",
    )
    api(
        service,
        "/instance/set_bounce_config",
        imap_host="imap.example.org",
        imap_user="bounces",
        imap_password="bounce-password",
        return_path="bounces@example.org",
    )
    api(service, "/suppressions/add", tenant_id="acme", address="gone@example.org")
    api(
        service,
        "/messages/add_batch",
        messages=[
            message("acme", "relay-1", "alice@example.org"),
            {**message("acme", "kept-1", "dave@example.org"), "account_id": "disk"},
        ],
    )
    wait_until(lambda: status_of(service, "acme", "relay-1") == "sent")
    wait_until(lambda: status_of(service, "acme", "kept-1") == "sent")
    outside: list[str] = []
    page = open_page(browser, service, outside)
    sign_in(page, service, ADMIN_TOKEN)

    # Suppressions: add one, then remove it.
    page.get_by_role("link", name="Suppressions", exact=True).click()
    page.get_by_label("Address").fill("blocked@example.org")
    page.get_by_role("button", name="Suppress").click()
    page.wait_for_selector("text=blocked@example.org is suppressed")
    page.wait_for_load_state("load")
    listed = api(service, "/suppressions/list?tenant_id=acme")
    assert {row["address"] for row in listed} == {"gone@example.org", "blocked@example.org"}
    shot(page, shots, "suppressions")
    page.get_by_role("button", name="Send to gone@example.org again").click()
    page.wait_for_selector("text=gone@example.org removed")
    listed = api(service, "/suppressions/list?tenant_id=acme")
    assert [row["address"] for row in listed] == ["blocked@example.org"]

    # API keys: the new key is shown once.
    page.get_by_role("link", name="API keys", exact=True).click()
    page.get_by_label("Name").fill("newsletter")
    page.get_by_label("read").check()
    page.get_by_role("button", name="Create key").click()
    page.wait_for_load_state("load")
    new_key = page.locator("#new-key").inner_text()
    assert new_key.startswith("mpk_") and len(new_key) == 47
    shot(page, shots, "api-keys")
    page.reload()
    assert page.locator("#new-key").count() == 0
    assert new_key not in page.content()
    assert page.get_by_role("rowheader", name="newsletter").count() == 1
    with httpx.Client(base_url=service.url, headers={"X-API-Token": new_key}) as c:
        assert c.get("/messages/list").status_code == 200, "the key shown works"

    page.get_by_role("link", name="Bounce mailbox", exact=True).click()
    page.wait_for_selector("text=imap.example.org:993")
    assert "bounce-password" not in page.content()
    shot(page, shots, "bounce")
    page.get_by_role("link", name="PEC accounts", exact=True).click()
    page.wait_for_selector("text=imap.pec.example")
    assert "pec-password" not in page.content()
    shot(page, shots, "pec")

    # Tenants: usage against the limits and the SMTP connection kept by the pool.
    page.get_by_role("link", name="Tenants", exact=True).click()
    page.wait_for_selector("text=1 / 1000 per day")
    assert "1 open, 1 idle" in page.content()
    shot(page, shots, "tenants-usage")

    # The raw message the file transport kept.
    page.goto(f"{service.url}/ui/messages/acme/kept-1")
    page.wait_for_selector("text=Subject: Order kept-1")
    shot(page, shots, "message-eml")

    # Reports: a client that cannot be reached backs off, with its error.
    api(service, "/tenants/update", tenant_id="acme", client_base_url="http://127.0.0.1:9")
    api(service, "/instance/run_now", tenant_id="acme")

    def acme_backs_off() -> bool:
        rows = api(service, "/instance/get_sync_status")["tenants"]
        return any(row["id"] == "acme" and row["retry_at"] for row in rows)

    wait_until(acme_backs_off)
    page.get_by_role("link", name="Reports", exact=True).click()
    page.wait_for_selector("text=failed, retry at")
    shot(page, shots, "reports-backoff")
    page.get_by_role("button", name="Sign out").click()

    # A send-only key: messages without actions, no other page, 403 by URL.
    sender = api(service, "/api_keys/add", tenant_id="acme", name="sender", scopes=["send"])
    sign_in(page, service, sender["api_key"])
    nav = page.get_by_role("navigation", name="Dashboard")
    assert nav.get_by_role("link", name="Messages", exact=True).count() == 1
    for hidden in ("Tenants", "Reports", "Suppressions", "API keys", "PEC accounts"):
        assert nav.get_by_role("link", name=hidden, exact=True).count() == 0, hidden
    page.goto(f"{service.url}/ui/messages/acme/relay-1")
    page.wait_for_selector("text=Order relay-1")
    assert page.get_by_role("button", name="Delete").count() == 0
    shot(page, shots, "send-only-key")
    response = page.goto(f"{service.url}/ui/x/suppressions")
    assert response is not None and response.status == 403
    assert outside == [], f"the dashboard loaded from outside the service: {outside}"
