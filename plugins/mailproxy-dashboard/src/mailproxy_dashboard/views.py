"""The ``/ui/`` blueprint: sign-in, the pages, and the actions of the dashboard.

Every page reads through the endpoint methods of the REST API (``kernel_calls.call``) or the
kernel's public methods, scoped to the signed-in principal: a tenant key sees its own tenant
only, exactly as the API scopes it. Every POST must carry the session's CSRF token (403
otherwise), and every request re-checks the session's credential with the auth chain.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, abort, g, render_template, request

from mailproxy_core import MailProxy, MailproxyError, current_kernel

from .chart import minute_chart
from .guard import (
    LOGIN_COOKIE,
    authenticate_token,
    clear_session_cookie,
    current_session,
    new_login_csrf,
    set_login_cookie,
    set_session_cookie,
)
from .kernel_calls import call
from .pages import PageContext, collect_pages
from .search import STATUSES, SearchForm
from .sessions import COOKIE_NAME, Session, SessionStore
from .settings import SETTINGS_SECTION, DashboardSettings

STATIC_PATH = "/ui/static/"
LOGIN_PATH = "/ui/login"

View = Callable[..., Awaitable[Any]]


class DashboardState:
    """Per-app state: the session store and the extra pages (built on first use)."""

    def __init__(self, mp: MailProxy) -> None:
        settings = mp.plugin_settings(SETTINGS_SECTION)
        assert isinstance(settings, DashboardSettings)
        self.settings = settings
        self.sessions = SessionStore(settings.session_idle_seconds, settings.session_max_seconds)
        plugins = [
            (mp.hooks.plugin_manager.get_name(plugin) or "", plugin)
            for plugin in mp.hooks.plugin_manager.get_plugins()
        ]
        self.pages = collect_pages(sorted(plugins, key=lambda item: item[0]))


_STATES: weakref.WeakKeyDictionary[MailProxy, DashboardState] = weakref.WeakKeyDictionary()


def prepare(mp: MailProxy) -> DashboardState:
    """Build the dashboard's state for ``mp`` (at startup, so a bad extra page stops it).

    Raises:
        PluginError: an extra page registration is invalid (see ``pages.collect_pages``).
    """
    _STATES[mp] = DashboardState(mp)
    return _STATES[mp]


def state() -> DashboardState:
    """The dashboard's state of the app serving this request."""
    mp = current_kernel()
    return _STATES.get(mp) or prepare(mp)


def signed_in(view: View) -> View:
    """Require a live session; POSTs also need its CSRF token (403 without a valid one)."""

    @wraps(view)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = await current_session(current_kernel(), state().sessions)
        if request.method == "POST":
            form = await request.form
            if session is None or not session.csrf_ok(form.get("csrf_token")):
                return await _forbidden(
                    session,
                    "The form was refused: its security token is "
                    "missing or expired. Reload the page and try again.",
                )
        if session is None:
            here = request.path
            if request.query_string:
                here += "?" + request.query_string.decode("latin-1")
            response = redirect(f"{LOGIN_PATH}?{urlencode({'next': here})}")
            if request.headers.get("HX-Request"):
                response = Response("", status=401, headers={"HX-Redirect": LOGIN_PATH})
            return response
        g.session = session
        return await view(*args, **kwargs)

    return wrapper


def _wants_html() -> bool:
    """Browsers (and htmx) get error pages; API clients probing ``/ui/`` get JSON errors."""
    return "text/html" in request.headers.get("Accept", "") or bool(
        request.headers.get("HX-Request")
    )


def _json_error(status: int, code: str, text: str) -> Response:
    return Response(
        json.dumps({"detail": text, "code": code}), status=status, content_type="application/json"
    )


async def _forbidden(session: Session | None, text: str) -> Response:
    if not _wants_html():
        return _json_error(403, "forbidden", text)
    body = await render_template("error.html", status=403, text=text, **_layout(session))
    return Response(body, status=403, content_type="text/html; charset=utf-8")


def _layout(session: Session | None) -> dict[str, Any]:
    pages = [
        page
        for page in state().pages.values()
        if session is not None and (session.principal.is_admin or not page.admin_only)
    ]
    return {"session": session, "extra_pages": pages, "now": int(time.time())}


async def _page(template: str, http_status: int = 200, **values: Any) -> Response:
    session: Session | None = g.get("session")
    flash = list(session.flash) if session else []
    if session:
        session.flash.clear()
    body = await render_template(template, flash=flash, **_layout(session), **values)
    response = Response(body, status=http_status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


async def _error_page(error: MailproxyError) -> Response:
    status = int(getattr(error, "status", 400) or 400)
    if not _wants_html():
        return _json_error(status, str(getattr(error, "code", "error")), str(error))
    return await _page("error.html", http_status=status, status=status, text=str(error))


def redirect(location: str) -> Response:
    """A ``302`` to a path of the dashboard."""
    return Response("", status=302, headers={"Location": location})


def _back(to: str, note: str) -> Response:
    session: Session = g.session
    session.flash.append(note)
    return redirect(to)


def build_blueprint() -> Blueprint:
    """A new ``/ui/`` blueprint (the registration hook runs once per app)."""
    bp = Blueprint(
        "dashboard",
        __name__,
        url_prefix="/ui",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )

    @bp.after_request
    async def security_headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    # -- sign-in -------------------------------------------------------------------------------

    @bp.get("/login")
    async def login_form() -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or new_login_csrf()
        body = await render_template(
            "login.html",
            csrf=token,
            next=request.args.get("next", ""),
            error="",
            **_layout(None),
        )
        response = Response(body, content_type="text/html; charset=utf-8")
        set_login_cookie(response, token)
        return response

    @bp.post("/login")
    async def login() -> Response:
        form = await request.form
        expected = request.cookies.get(LOGIN_COOKIE)
        if not expected or form.get("csrf_token") != expected:
            return await _forbidden(
                None, "The sign-in form expired. Reload the page and try again."
            )
        mp = current_kernel()
        token = form.get("token", "").strip()
        principal = await authenticate_token(mp, token)
        if principal is None:
            body = await render_template(
                "login.html",
                csrf=expected,
                next=form.get("next", ""),
                error="This token was not accepted. Paste the admin token or a tenant API key.",
                **_layout(None),
            )
            return Response(body, status=401, content_type="text/html; charset=utf-8")
        store = state().sessions
        store.drop(request.cookies.get(COOKIE_NAME))
        session = store.create(token, principal)
        target = form.get("next", "")
        if not target.startswith("/ui/") or target.startswith("//"):
            target = "/ui/"
        response = redirect(target)
        set_session_cookie(response, session, state().settings.session_max_seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/ui/")
        return response

    @bp.post("/logout")
    @signed_in
    async def logout() -> Response:
        state().sessions.drop(g.session.id)
        response = redirect(LOGIN_PATH)
        clear_session_cookie(response)
        return response

    # -- pages ---------------------------------------------------------------------------------

    @bp.get("/")
    @signed_in
    async def overview() -> Response:
        mp = current_kernel()
        principal = g.session.principal
        tenant_scope = None if principal.is_admin else principal.tenant_id
        counts = await mp.status_counts(tenant_scope)
        sync = await call(mp, principal, "instance", "get_sync_status")
        oldest = None
        if principal.is_admin:
            oldest = (await mp.queue_stats())["oldest_ready_age"]
        tenants = []
        for row in sync["tenants"]:
            row_counts = await mp.status_counts(row["id"])
            tenants.append({**row, "counts": row_counts})
        recent, _ = await mp.search_messages(tenant_id=tenant_scope, limit=500)
        chart = minute_chart(recent, int(time.time()))
        status = await call(mp, principal, "instance", "status")
        return await _page(
            "overview.html",
            counts=counts,
            statuses=STATUSES,
            oldest=oldest,
            tenants=tenants,
            chart=chart,
            status=status,
            sync=sync,
        )

    @bp.get("/messages")
    @signed_in
    async def messages() -> Response:
        mp = current_kernel()
        principal = g.session.principal
        form = SearchForm.read(request.args)
        try:
            tenant_id = principal.tenant_id if not principal.is_admin else (form.tenant_id or None)
            filters = form.kernel_filters()
            size = state().settings.page_size
            scanned, cursor = await mp.search_messages(tenant_id=tenant_id, limit=size, **filters)
        except MailproxyError as error:
            return await _error_page(error)
        found = [message for message in scanned if form.keeps(message)]
        next_query = None if cursor is None else urlencode(form.query(before=str(cursor)))
        template = "messages_rows.html" if request.headers.get("HX-Request") else "messages.html"
        return await _page(
            template, form=form, messages=found, next_query=next_query, statuses=STATUSES
        )

    @bp.get("/messages/<tenant_id>/<path:message_id>")
    @signed_in
    async def message(tenant_id: str, message_id: str) -> Response:
        mp = current_kernel()
        try:
            found = await call(
                mp,
                g.session.principal,
                "messages",
                "get",
                tenant_id=tenant_id,
                message_id=message_id,
                include_history=True,
            )
            suspended = await call(
                mp, g.session.principal, "tenants", "get_suspended_batches", tenant_id=tenant_id
            )
        except MailproxyError as error:
            return await _error_page(error)
        return await _page("message.html", message=found, suspended=suspended)

    @bp.post("/messages/<tenant_id>/<path:message_id>/<action>")
    @signed_in
    async def message_action(tenant_id: str, message_id: str, action: str) -> Response:
        mp = current_kernel()
        principal = g.session.principal
        here = f"/ui/messages/{tenant_id}/{message_id}"
        try:
            found = await call(
                mp, principal, "messages", "get", tenant_id=tenant_id, message_id=message_id
            )
            batch = found.get("batch_code")
            if action == "retry":
                result = await call(
                    mp, principal, "messages", "retry", tenant_id=tenant_id, ids=[message_id]
                )
                if result["requeued"]:
                    return _back(here, "Queued again: it will be sent shortly.")
                reasons = ", ".join(s.get("reason", "") for s in result["skipped"]) or "not found"
                return _back(here, f"Not retried ({reasons}): only failed or deferred messages.")
            if action == "delete":
                await call(mp, principal, "messages", "delete", message_pk=found["pk"])
                return _back("/ui/messages", f"Message {message_id} deleted.")
            if action in ("suspend-batch", "activate-batch") and batch:
                method = "suspend_batch" if action == "suspend-batch" else "activate_batch"
                await call(mp, principal, "tenants", method, tenant_id=tenant_id, batch_code=batch)
                verb = "suspended" if action == "suspend-batch" else "activated"
                return _back(here, f"Batch {batch} {verb}.")
        except MailproxyError as error:
            return await _error_page(error)
        abort(404)

    @bp.get("/tenants")
    @signed_in
    async def tenants() -> Response:
        mp = current_kernel()
        principal = g.session.principal
        if principal.is_admin:
            rows = await call(mp, principal, "tenants", "list")
        else:
            rows = [await call(mp, principal, "tenants", "get")]
        for row in rows:
            row["accounts"] = await call(mp, principal, "accounts", "list", tenant_id=row["id"])
            row["suspended"] = await call(
                mp, principal, "tenants", "get_suspended_batches", tenant_id=row["id"]
            )
        return await _page("tenants.html", tenants=rows)

    @bp.get("/reports")
    @signed_in
    async def reports() -> Response:
        sync = await call(current_kernel(), g.session.principal, "instance", "get_sync_status")
        return await _page("reports.html", sync=sync)

    @bp.post("/reports/run")
    @signed_in
    async def run_now() -> Response:
        form = await request.form
        try:
            await call(
                current_kernel(),
                g.session.principal,
                "instance",
                "run_now",
                tenant_id=form.get("tenant_id") or None,
            )
        except MailproxyError as error:
            return await _error_page(error)
        return _back("/ui/reports", "Sending and reporting run now.")

    @bp.get("/plugins")
    @signed_in
    async def plugins() -> Response:
        try:
            found = await call(current_kernel(), g.session.principal, "instance", "plugins")
        except MailproxyError as error:
            return await _error_page(error)
        return await _page("plugins.html", plugins=found)

    @bp.route("/x/<name>", methods=["GET", "POST"])
    @signed_in
    async def extra_page(name: str) -> Response:
        page = state().pages.get(name)
        session: Session = g.session
        if page is None or request.method not in page.methods:
            abort(404)
        if page.admin_only and not session.principal.is_admin:
            return await _forbidden(session, f"The page {page.title} is reserved to the admin.")
        context = PageContext(
            mp=current_kernel(),
            principal=session.principal,
            method=request.method,
            form=dict(await request.form) if request.method == "POST" else {},
            args=dict(request.args),
            csrf_token=session.csrf,
        )
        try:
            html = await page.render(context)
        except MailproxyError as error:
            return await _error_page(error)
        return await _page("extra.html", page=page, html=html)

    return bp
