"""Sign-in, sessions, CSRF and sign-out of ``/ui/``."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from mailproxy_core import MailProxy


def test_dashboard_is_installed() -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group="mailproxy")}
    assert "dashboard" in names


async def test_pages_redirect_to_sign_in_without_a_session(ui: Callable[[], Any]) -> None:
    client = ui()
    for path in ("/ui/", "/ui/messages", "/ui/tenants", "/ui/reports", "/ui/plugins"):
        response = await client.client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/ui/login?next=")


async def test_static_assets_are_served_without_a_session(ui: Callable[[], Any]) -> None:
    client = ui()
    status, text = await client.get("/ui/static/htmx-2.0.4.min.js")
    assert status == 200 and "htmx" in text
    status, licence = await client.get("/ui/static/htmx-LICENSE.txt")
    assert status == 200 and "Zero-Clause BSD" in licence


async def test_wrong_token_is_refused_and_gives_no_session(
    ui: Callable[[], Any],
) -> None:
    client = ui()
    response = await client.sign_in("not-a-token")
    assert response.status_code == 401
    assert "was not accepted" in await response.get_data(as_text=True)
    assert (await client.client.get("/ui/")).status_code == 302


async def test_session_cookie_is_httponly_strict_and_holds_no_token(
    ui: Callable[[], Any], admin_token: str
) -> None:
    client = ui()
    response = await client.sign_in(admin_token)
    assert response.status_code == 302 and response.headers["Location"] == "/ui/"
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie"]
    session_cookie = next(c for c in cookies if c.startswith("mailproxy_ui_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    assert "Path=/ui/" in session_cookie
    assert admin_token not in " ".join(cookies)
    status, html = await client.get("/ui/")
    assert status == 200 and "Overview" in html and admin_token not in html


async def test_sign_in_form_without_its_csrf_token_is_403(
    ui: Callable[[], Any], admin_token: str
) -> None:
    client = ui()
    await client.client.get("/ui/login")
    response = await client.client.post(
        "/ui/login", form={"token": admin_token, "csrf_token": "forged"}
    )
    assert response.status_code == 403


async def test_every_form_without_a_valid_csrf_token_is_403(
    signed_in: Any, admin_token: str, two_tenants: object
) -> None:
    client = await signed_in(admin_token)
    for path in (
        "/ui/logout",
        "/ui/reports/run",
        "/ui/messages/acme/acme-0/retry",
        "/ui/messages/acme/acme-0/delete",
        "/ui/messages/acme/acme-0/suspend-batch",
    ):
        for csrf in ("", "wrong"):
            response = await client.post(path, csrf=csrf)
            assert response.status_code == 403, (path, csrf)
            assert "Location" not in response.headers
    # nothing happened: still signed in, message still there
    status, html = await client.get("/ui/messages/acme/acme-0")
    assert status == 200 and "acme-0" in html


async def test_sign_out_ends_the_session(signed_in: Any, admin_token: str) -> None:
    client = await signed_in(admin_token)
    response = await client.post("/ui/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/ui/login"
    assert (await client.client.get("/ui/")).status_code == 302


async def test_idle_session_expires(signed_in: Any, admin_token: str, mp_kernel: MailProxy) -> None:
    from mailproxy_dashboard.views import state

    client = await signed_in(admin_token)
    async with client.client.app.app_context():  # type: ignore[attr-defined]
        store = state().sessions
    for session in list(store._sessions.values()):
        session.last_seen -= store.idle_seconds + 1
    assert (await client.client.get("/ui/")).status_code == 302


async def test_a_revoked_credential_ends_the_session_on_its_next_request(
    signed_in: Any, admin_token: str, mp_kernel: MailProxy
) -> None:
    client = await signed_in("tenant-token:acme")
    assert (await client.get("/ui/"))[0] == 200
    original = mp_kernel.auth

    class Nobody:
        async def authenticate(self, request: object) -> None:
            return None

    mp_kernel.auth = Nobody()  # type: ignore[assignment]
    try:
        assert (await client.client.get("/ui/")).status_code == 302
    finally:
        mp_kernel.auth = original


async def test_api_clients_get_json_errors_from_ui_forms(
    ui: Callable[[], Any], admin_token: str
) -> None:
    client = ui()
    response = await client.client.post(
        "/ui/reports/run", headers={"X-API-Token": admin_token}, form={"csrf_token": "x"}
    )
    assert response.status_code == 403
    body = await response.get_json()
    assert body["code"] == "forbidden" and "security token" in body["detail"]
