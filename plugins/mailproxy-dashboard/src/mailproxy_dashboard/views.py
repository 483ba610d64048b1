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

from mailproxy_core import MailProxy, MailproxyError, NotFound, current_kernel

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
from .kernel_calls import Caller
from .pages import DashboardPage, PageContext, collect_pages
from .search import STATUSES, SearchForm
from .sessions import COOKIE_NAME, Session, SessionStore
from .settings import SETTINGS_SECTION, DashboardSettings

EML_PREVIEW_BYTES = 200_000
"""The message page shows at most this much of a kept raw message (the download has it all)."""

MESSAGE_ACTIONS: dict[str, tuple[str, str]] = {
    "retry": ("messages", "retry"),
    "delete": ("messages", "delete"),
    "suspend-batch": ("tenants", "suspend_batch"),
    "activate-batch": ("tenants", "activate_batch"),
}
"""The message page's buttons and the API route each acts through (shown only if allowed)."""

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
        self.pages = collect_pages(mp.hooks.plugin_manager)


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
        g.caller = Caller(current_kernel(), session.principal, session.token)
        return await view(*args, **kwargs)

    return wrapper


NAVIGATION: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("/ui/", "Overview", ("messages", "list")),
    ("/ui/messages", "Messages", ("messages", "list")),
    ("/ui/tenants", "Tenants", ("tenants", "get")),
    ("/ui/reports", "Reports", ("instance", "get_sync_status")),
    ("/ui/plugins", "Plugins", ("instance", "plugins")),
)
"""The built-in pages: path, title, and the API route each reads through. A page is listed
only for users who may call its route, and answers 403 to the others (``needs``)."""


def needs(entity: str, method: str) -> Callable[[View], View]:
    """Serve the view only to users whose credential may call the API route ``entity/method``
    (403 otherwise, as the API would answer them). Goes under ``@signed_in``."""

    def decorate(view: View) -> View:
        @wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller: Caller = g.caller
            if not await caller.permits(entity, method):
                return await _forbidden(
                    g.session,
                    f"Your credential may not use {entity}/{method}, which this page needs "
                    "(an API key without that scope).",
                )
            return await view(*args, **kwargs)

        return wrapper

    return decorate


async def page_allowed(caller: Caller, page: DashboardPage) -> bool:
    """Whether an extra page is listed and served to this user."""
    if page.admin_only and not caller.principal.is_admin:
        return False
    return page.requires is None or await caller.permits(*page.requires)


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
    body = await render_template("error.html", status=403, text=text, **await _layout(session))
    return Response(body, status=403, content_type="text/html; charset=utf-8")


async def _layout(session: Session | None) -> dict[str, Any]:
    """What the layout shows: the navigation entries this user may use."""
    caller: Caller | None = g.get("caller")
    nav: list[tuple[str, str]] = []
    pages: list[DashboardPage] = []
    if session is not None and caller is not None:
        nav = [(path, title) for path, title, route in NAVIGATION if await caller.permits(*route)]
        pages = [page for page in state().pages.values() if await page_allowed(caller, page)]
    return {"session": session, "nav": nav, "extra_pages": pages, "now": int(time.time())}


async def _page(template: str, http_status: int = 200, **values: Any) -> Response:
    session: Session | None = g.get("session")
    flash = list(session.flash) if session else []
    if session:
        session.flash.clear()
    body = await render_template(template, flash=flash, **await _layout(session), **values)
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
            **await _layout(None),
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
                **await _layout(None),
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
        caller: Caller = g.caller
        principal = caller.principal
        tenant_scope = None if principal.is_admin else principal.tenant_id
        counts = await mp.status_counts(tenant_scope)
        oldest = None
        if principal.is_admin:
            oldest = (await mp.queue_stats())["oldest_ready_age"]
        sync = None
        tenants = []
        if await caller.permits("instance", "get_sync_status"):
            sync = await caller.call("instance", "get_sync_status")
            for row in sync["tenants"]:
                row_counts = await mp.status_counts(row["id"])
                tenants.append({**row, "counts": row_counts})
        recent, _ = await mp.search_messages(tenant_id=tenant_scope, limit=500)
        chart = minute_chart(recent, int(time.time()))
        status = None
        if await caller.permits("instance", "status"):
            status = await caller.call("instance", "status")
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
    @needs("messages", "list")
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
        caller: Caller = g.caller
        try:
            found = await caller.call(
                "messages", "get", tenant_id=tenant_id, message_id=message_id, include_history=True
            )
            suspended = None
            if await caller.permits("tenants", "get_suspended_batches"):
                suspended = await caller.call(
                    "tenants", "get_suspended_batches", tenant_id=tenant_id
                )
            raw = None
            if found["status"] == "sent":
                # Scoped above: messages/get answered, so this principal may read the message.
                raw = await mp.kept_message(found["tenant_id"], found["id"])
        except MailproxyError as error:
            return await _error_page(error)
        can = {action: await caller.permits(*route) for action, route in MESSAGE_ACTIONS.items()}
        preview = None
        if raw is not None:
            preview = raw[:EML_PREVIEW_BYTES].decode("utf-8", errors="replace")
        return await _page(
            "message.html",
            message=found,
            suspended=suspended,
            can=can,
            raw=raw,
            preview=preview,
            preview_cut=raw is not None and len(raw) > EML_PREVIEW_BYTES,
        )

    @bp.get("/raw/<tenant_id>/<path:message_id>")
    @signed_in
    async def raw_message(tenant_id: str, message_id: str) -> Response:
        """The raw message the transport kept (the ``file`` transport's ``.eml``), to download."""
        caller: Caller = g.caller
        try:
            found = await caller.call("messages", "get", tenant_id=tenant_id, message_id=message_id)
            raw = await current_kernel().kept_message(found["tenant_id"], found["id"])
        except MailproxyError as error:
            return await _error_page(error)
        if raw is None:
            return await _error_page(
                NotFound(f"the transport of message {message_id} kept no copy of it")
            )
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in message_id)[:80]
        return Response(
            raw,
            content_type="message/rfc822",
            headers={
                "Content-Disposition": f'attachment; filename="{name or "message"}.eml"',
                "Cache-Control": "no-store",
            },
        )

    @bp.post("/messages/<tenant_id>/<path:message_id>/<action>")
    @signed_in
    async def message_action(tenant_id: str, message_id: str, action: str) -> Response:
        caller: Caller = g.caller
        here = f"/ui/messages/{tenant_id}/{message_id}"
        try:
            found = await caller.call("messages", "get", tenant_id=tenant_id, message_id=message_id)
            batch = found.get("batch_code")
            if action == "retry":
                result = await caller.call(
                    "messages", "retry", tenant_id=tenant_id, ids=[message_id]
                )
                if result["requeued"]:
                    return _back(here, "Queued again: it will be sent shortly.")
                reasons = ", ".join(s.get("reason", "") for s in result["skipped"]) or "not found"
                return _back(here, f"Not retried ({reasons}): only failed or deferred messages.")
            if action == "delete":
                await caller.call("messages", "delete", message_pk=found["pk"])
                return _back("/ui/messages", f"Message {message_id} deleted.")
            if action in ("suspend-batch", "activate-batch") and batch:
                method = "suspend_batch" if action == "suspend-batch" else "activate_batch"
                await caller.call("tenants", method, tenant_id=tenant_id, batch_code=batch)
                verb = "suspended" if action == "suspend-batch" else "activated"
                return _back(here, f"Batch {batch} {verb}.")
        except MailproxyError as error:
            return await _error_page(error)
        abort(404)

    @bp.get("/tenants")
    @signed_in
    @needs("tenants", "get")
    async def tenants() -> Response:
        mp = current_kernel()
        caller: Caller = g.caller
        try:
            if caller.principal.is_admin:
                rows = await caller.call("tenants", "list")
            else:
                rows = [await caller.call("tenants", "get")]
            for row in rows:
                # Every id below comes from what the API answered this principal.
                row["accounts"] = await caller.call("accounts", "list", tenant_id=row["id"])
                row["suspended"] = await caller.call(
                    "tenants", "get_suspended_batches", tenant_id=row["id"]
                )
                usage = await mp.rate_limit_usage(row["id"])
                row["usage"] = usage["tenant"]
                pools = {
                    account.id: mp.pool_state(account) for account in await mp.accounts(row["id"])
                }
                for account in row["accounts"]:
                    account["usage"] = usage.get(account["id"], [])
                    account["pool"] = pools.get(account["id"])
        except MailproxyError as error:
            return await _error_page(error)
        return await _page("tenants.html", tenants=rows)

    @bp.get("/reports")
    @signed_in
    @needs("instance", "get_sync_status")
    async def reports() -> Response:
        caller: Caller = g.caller
        sync = await caller.call("instance", "get_sync_status")
        return await _page(
            "reports.html", sync=sync, can_run=await caller.permits("instance", "run_now")
        )

    @bp.post("/reports/run")
    @signed_in
    async def run_now() -> Response:
        form = await request.form
        try:
            await g.caller.call("instance", "run_now", tenant_id=form.get("tenant_id") or None)
        except MailproxyError as error:
            return await _error_page(error)
        return _back("/ui/reports", "Sending and reporting run now.")

    @bp.get("/plugins")
    @signed_in
    async def plugins() -> Response:
        try:
            found = await g.caller.call("instance", "plugins")
        except MailproxyError as error:
            return await _error_page(error)
        return await _page("plugins.html", plugins=found)

    @bp.route("/x/<name>", methods=["GET", "POST"])
    @signed_in
    async def extra_page(name: str) -> Response:
        page = state().pages.get(name)
        session: Session = g.session
        caller: Caller = g.caller
        if page is None or request.method not in page.methods:
            abort(404)
        if page.admin_only and not session.principal.is_admin:
            return await _forbidden(session, f"The page {page.title} is reserved to the admin.")
        if not await page_allowed(caller, page):
            return await _forbidden(
                session,
                f"Your credential may not use the page {page.title} (an API key without the "
                "scope it needs).",
            )
        context = PageContext(
            mp=current_kernel(),
            principal=session.principal,
            method=request.method,
            form=dict(await request.form) if request.method == "POST" else {},
            args=dict(request.args),
            csrf_token=session.csrf,
            caller=caller,
        )
        try:
            html = await page.render(context)
        except MailproxyError as error:
            return await _error_page(error)
        return await _page("extra.html", page=page, html=html)

    return bp
