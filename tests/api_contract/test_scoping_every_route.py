"""Scoping of every route (API.md §2), driven by one table (SQLite + PostgreSQL).

Each route served by the app has exactly one row in ``TABLE``, saying what these callers get:

* ``admin`` — the instance admin token, acting on tenant ``acme``;
* ``own`` — tenant ``acme``'s key on its own tenant (run twice when the call names a
  ``tenant_id``: once naming ``acme``, once leaving ``tenant_id`` out, which defaults to it);
* ``other`` — ``acme``'s key naming tenant ``globex`` (403);
* ``foreign`` — ``acme``'s key passing ids of ``globex``'s objects under its own tenant (404, or
  the "not found" answer of the route, and the object is untouched);
* ``anon`` — no token, and a wrong token (401, except public routes).

``test_every_route_has_a_scoping_row`` fails when the app serves a route the table does not list
(a new route needs a scoping decision here) and when a row names a route the app does not serve.
Rows of routes that plugins add (``plugin=...``) apply only when that plugin is loaded.

The tenant caller is the test-only tenant token, and, where the EE ``ee_apikeys`` plugin is
loaded, also ``acme``'s real default API key. With that plugin, every row is also called with
``acme``'s scoped keys (``send``, ``read``, ``manage``: the row's ``own`` answer where the scope
allows the call, else 403 naming the scope), an expired key and a revoked key (the ``anon``
answer: 401 except public routes).
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from quart import Quart

from mailproxy_core.app import create_app, kernel_of
from mailproxy_core.kernel import MailProxy
from mailproxy_core.settings import Settings
from mailproxy_core.testing.client import ApiClient, Response
from mailproxy_core.testing.plugin import ADMIN_TOKEN
from tests.api_contract.conftest import ok

if TYPE_CHECKING:
    from tests.api_contract.conftest import World

Kind = Literal["admin", "own", "other", "foreign", "anon"]
Params = dict[str, Any]
Prepare = Callable[["World", str, Kind], Awaitable[Params]]
Foreign = Callable[["World"], Awaitable[Params]]
Check = Callable[[Any, Params, "World"], Awaitable[str | None]]

CALLER = "acme"
OTHER = "globex"


@dataclass(frozen=True)
class Expect:
    """An expected answer: the status, and optionally a check of the body (an error or None)."""

    status: int
    check: Check | None = None


@dataclass(frozen=True)
class Row:
    """The scoping decision of one route: what each kind of caller gets.

    ``params(world, tenant, kind)`` builds the query or body acting on ``tenant`` (``acme``,
    or ``globex`` for ``other``); it may create throwaway objects for calls that delete.
    ``foreign(world)`` builds the call with ``globex``'s object ids and ``acme``'s scope.
    ``None`` in a column means "not applicable" (the route names no tenant or no object).
    """

    method: Literal["GET", "POST"]
    path: str
    params: Prepare
    admin: Expect
    own: Expect
    other: Expect | None
    foreign: Foreign | None = None
    foreign_expect: Expect | None = None
    anon: Expect = Expect(401)
    plugin: str | None = None
    wakes_dispatcher: bool = False

    @property
    def route(self) -> str:
        """``"GET /tenants/get"``."""
        return f"{self.method} {self.path}"


# --- params builders ---------------------------------------------------------------------------


def fixed(**values: Any) -> Prepare:
    """Params that do not depend on the tenant."""

    async def prepare(world: World, tenant: str, kind: Kind) -> Params:
        return dict(values)

    return prepare


def of_tenant(**values: Any) -> Prepare:
    """``{"tenant_id": <tenant>, **values}``; ``{t}`` in a value is replaced by the tenant."""

    async def prepare(world: World, tenant: str, kind: Kind) -> Params:
        filled = {k: v.format(t=tenant) if isinstance(v, str) else v for k, v in values.items()}
        return {"tenant_id": tenant, **filled}

    return prepare


def foreign_of(**values: Any) -> Foreign:
    """Params naming ``globex``'s objects (``{t}`` = globex) and no ``tenant_id``."""

    async def prepare(world: World) -> Params:
        return {k: v.format(t=OTHER) if isinstance(v, str) else v for k, v in values.items()}

    return prepare


async def new_tenant_params(world: World, tenant: str, kind: Kind) -> Params:
    # The admin deletes a throwaway tenant; tenant keys name acme/globex and must be refused.
    if kind in ("admin", "anon"):
        return {"tenant_id": await world.new_tenant()}
    return {"tenant_id": tenant}


async def new_account_params(world: World, tenant: str, kind: Kind) -> Params:
    return {"tenant_id": tenant, "account_id": await world.new_account(tenant)}


async def foreign_account(world: World) -> Params:
    return {"account_id": await world.new_account(OTHER)}


async def new_mount_params(world: World, tenant: str, kind: Kind) -> Params:
    return {"tenant_id": tenant, "name": await world.new_mount(tenant)}


async def foreign_mount(world: World) -> Params:
    return {"name": await world.new_mount(OTHER)}


async def new_message_pk(world: World, tenant: str, kind: Kind) -> Params:
    _, pk = await world.new_message(tenant)
    return {"message_pk": pk}


async def foreign_message_pk(world: World) -> Params:
    _, pk = await world.new_message(OTHER)
    return {"message_pk": pk}


async def new_message_ids(world: World, tenant: str, kind: Kind) -> Params:
    message_id, _ = await world.new_message(tenant)
    return {"tenant_id": tenant, "ids": [message_id]}


async def foreign_message_ids(world: World) -> Params:
    message_id, _ = await world.new_message(OTHER)
    return {"ids": [message_id]}


async def one_message(world: World, tenant: str, kind: Kind) -> Params:
    return world.message(tenant, world.unique(f"new-{tenant}"))


async def foreign_account_message(world: World) -> Params:
    return world.message(CALLER, world.unique("new-acme"), account_id=f"{OTHER}-acct")


async def batch_of_one(world: World, tenant: str, kind: Kind) -> Params:
    return {"messages": [await one_message(world, tenant, kind)]}


async def new_ids(world: World, tenant: str, kind: Kind) -> Params:
    return {"id": world.unique("new-tenant")}


async def new_account_body(world: World, tenant: str, kind: Kind) -> Params:
    return {"id": world.unique("new-acct"), "tenant_id": tenant, "transport": "null"}


async def new_pec_account_body(world: World, tenant: str, kind: Kind) -> Params:
    return {
        **await new_account_body(world, tenant, kind),
        "imap_host": "imap.pec.example",
        "imap_user": "box",
        "imap_password": "imap-secret",
    }


async def new_mount_body(world: World, tenant: str, kind: Kind) -> Params:
    return {"tenant_id": tenant, "name": world.unique("NEW"), "protocol": "fake"}


async def new_key_body(world: World, tenant: str, kind: Kind) -> Params:
    return {"tenant_id": tenant, "name": world.unique("key"), "scopes": ["read"]}


async def new_key_params(world: World, tenant: str, kind: Kind) -> Params:
    return {"tenant_id": tenant, "name": await world.new_api_key(tenant)}


async def foreign_key(world: World) -> Params:
    return {"name": await world.new_api_key(OTHER)}


def key_still_there(tenant: str | None) -> Check:
    """The key named by the refused call is still listed for ``tenant`` (default: the call's)."""

    async def check(body: Any, params: Params, world: World) -> str | None:
        owner = tenant or params.get("tenant_id", CALLER)
        listed = (await world.admin.get("/api_keys/list", tenant_id=owner)).json
        names = {entry["name"] for entry in listed}
        return None if params["name"] in names else f"key {params['name']!r} was revoked"

    return check


async def a_command_id(world: World, tenant: str, kind: Kind) -> Params:
    entries = (await world.admin.get("/command_log/list", limit=1)).json
    assert entries, "the seeded world must have recorded calls in the command log"
    return {"command_id": entries[0]["id"]}


# --- body checks -------------------------------------------------------------------------------


def body_is(expected: Any) -> Check:
    """The body equals ``expected``."""

    async def check(body: Any, params: Params, world: World) -> str | None:
        return None if body == expected else f"body should be {expected!r}"

    return check


def fields_are(**expected: Any) -> Check:
    """The body is an object with these field values."""

    async def check(body: Any, params: Params, world: World) -> str | None:
        if not isinstance(body, dict):
            return "body should be an object"
        wrong = {k: body.get(k) for k, v in expected.items() if body.get(k) != v}
        return f"fields {wrong} should be {expected}" if wrong else None

    return check


def only_tenant(tenant: str, key: str | None = None) -> Check:
    """Every object of the array (or of ``body[key]``) belongs to ``tenant`` (by tenant_id/id)."""

    async def check(body: Any, params: Params, world: World) -> str | None:
        items = body.get(key) if key and isinstance(body, dict) else body
        if not isinstance(items, list) or not items:
            return "expected a non-empty array"
        owners = {item.get("tenant_id", item.get("id")) for item in items}
        return None if owners == {tenant} else f"lists objects of tenants {sorted(owners)}"

    return check


def lists_tenants(*tenants: str) -> Check:
    """``body["tenants"]`` names at least these tenants."""

    async def check(body: Any, params: Params, world: World) -> str | None:
        listed = {item["id"] for item in body.get("tenants", [])}
        missing = set(tenants) - listed
        return f"tenants {sorted(missing)} missing" if missing else None

    return check


async def active_count_all(body: Any, params: Params, world: World) -> str | None:
    tenants = [t["id"] for t in (await world.admin.get("/tenants/list")).json]
    total = 0
    for tenant_id in tenants:
        total += len(
            (await world.admin.get("/messages/list", tenant_id=tenant_id, active_only=True)).json
        )
    return None if body == total else f"count {body!r} should be {total} (all tenants)"


async def active_count_of_caller(body: Any, params: Params, world: World) -> str | None:
    own = len((await world.admin.get("/messages/list", tenant_id=CALLER, active_only=True)).json)
    return None if body == own else f"count {body!r} should be {own} ({CALLER}'s messages only)"


def still_there(path: str, **query: str) -> Check:
    """The object the call tried to reach still exists (the refused call changed nothing).

    ``query`` values name a param of the call (``"=account_id"``) or are literal; a
    ``tenant_id`` the call left out is the caller's.
    """

    async def check(body: Any, params: Params, world: World) -> str | None:
        resolved = {
            key: params.get(value[1:], CALLER) if value.startswith("=") else value
            for key, value in query.items()
        }
        exists = await world.exists(path, **resolved)
        return None if exists else f"{path} {resolved} was deleted by a refused call"

    return check


async def foreign_pk_untouched(body: Any, params: Params, world: World) -> str | None:
    if body is not False:
        return "deleting another tenant's message must answer false"
    listed = (await world.admin.get("/messages/list", tenant_id=OTHER)).json
    pks = {entry["pk"] for entry in listed}
    return None if str(params["message_pk"]) in pks else "another tenant's message was deleted"


async def foreign_ids_untouched(body: Any, params: Params, world: World) -> str | None:
    if body.get("removed") != 0 or body.get("not_found") != params["ids"]:
        return "another tenant's ids must be reported not_found and removed: 0"
    (message_id,) = params["ids"]
    exists = await world.exists("/messages/get", tenant_id=OTHER, message_id=message_id)
    return None if exists else "another tenant's message was deleted"


async def foreign_ids_not_requeued(body: Any, params: Params, world: World) -> str | None:
    if body.get("requeued") != 0 or body.get("not_found") != params["ids"]:
        return "another tenant's ids must be reported not_found and requeued: 0"
    return None


async def rejected_other_tenant(body: Any, params: Params, world: World) -> str | None:
    message_id = params["messages"][0]["id"]
    expected = {
        "ok": False,
        "queued": 0,
        "rejected": [{"id": message_id, "reason": f"tenant '{OTHER}' not found"}],
    }
    if body != expected:
        return f"body should be {expected}"
    exists = await world.exists("/messages/get", tenant_id=OTHER, message_id=message_id)
    return "a message was queued for another tenant" if exists else None


def detail_is(text: str) -> Check:
    """The error's ``detail`` is ``text``."""

    async def check(body: Any, params: Params, world: World) -> str | None:
        return None if body.get("detail") == text else f"detail should be {text!r}"

    return check


OK = Expect(200)
FORBIDDEN = Expect(403)
NOT_FOUND = Expect(404)
EE_INSTALLED = any(
    ep.name.startswith("ee_") for ep in importlib.metadata.entry_points(group="mailproxy")
)
UPGRADE_TO_EE = OK if EE_INSTALLED else Expect(409)
"""``instance/upgrade_to_ee`` confirms an installed EE plugin, else 409 naming what to install."""
PUBLIC = Expect(200)
SIGN_IN = Expect(302)

# --- the table ---------------------------------------------------------------------------------

TABLE: tuple[Row, ...] = (
    # public
    Row("GET", "/health", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC),
    Row("GET", "/health/ready", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC),
    Row("GET", "/instance/health", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC),
    Row("GET", "/openapi.json", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC),
    Row("GET", "/docs", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC),
    # The Swagger UI files of /docs: public, and only the listed files (anything else: 404).
    Row("GET", "/docs/assets/<name>", fixed(), NOT_FOUND, NOT_FOUND, None, anon=NOT_FOUND),
    Row("GET", "/metrics", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC, plugin="metrics"),
    # Signed download links: public by prefix, the token is the authorisation (a bogus one: 404).
    Row(
        "GET",
        "/download/<token>/<filename>",
        fixed(),
        NOT_FOUND,
        NOT_FOUND,
        None,
        anon=NOT_FOUND,
        plugin="storage_local",
    ),
    # The dashboard: its own sign-in and sessions, so an API token opens nothing. Pages redirect
    # to the sign-in form, forms without a session and its CSRF token are refused with 403.
    *(
        Row("GET", path, fixed(), SIGN_IN, SIGN_IN, None, anon=SIGN_IN, plugin="dashboard")
        for path in (
            "/ui/",
            "/ui/messages",
            "/ui/messages/<tenant_id>/<path:message_id>",
            "/ui/raw/<tenant_id>/<path:message_id>",
            "/ui/tenants",
            "/ui/reports",
            "/ui/plugins",
            "/ui/x/<name>",
        )
    ),
    Row("GET", "/ui/login", fixed(), PUBLIC, PUBLIC, None, anon=PUBLIC, plugin="dashboard"),
    Row(
        "GET",
        "/ui/static/<path:filename>",
        fixed(),
        NOT_FOUND,
        NOT_FOUND,
        None,
        anon=NOT_FOUND,
        plugin="dashboard",
    ),
    *(
        Row("POST", path, fixed(), FORBIDDEN, FORBIDDEN, None, anon=FORBIDDEN, plugin="dashboard")
        for path in (
            "/ui/login",
            "/ui/logout",
            "/ui/messages/<tenant_id>/<path:message_id>/<action>",
            "/ui/reports/run",
            "/ui/x/<name>",
        )
    ),
    # instance
    Row("GET", "/instance/status", fixed(), OK, OK, None),
    Row("GET", "/instance/get", fixed(), OK, OK, None),
    Row("POST", "/instance/update", fixed(name="contract"), OK, FORBIDDEN, None),
    Row("POST", "/instance/upgrade_to_ee", fixed(), UPGRADE_TO_EE, FORBIDDEN, None),
    Row("GET", "/instance/plugins", fixed(), OK, FORBIDDEN, None),
    Row("POST", "/instance/suspend", of_tenant(batch_code="b9"), OK, FORBIDDEN, FORBIDDEN),
    Row("POST", "/instance/activate", of_tenant(batch_code="b9"), OK, FORBIDDEN, FORBIDDEN),
    Row(
        "GET",
        "/instance/get_sync_status",
        fixed(),
        Expect(200, lists_tenants(CALLER, OTHER)),
        Expect(200, only_tenant(CALLER, key="tenants")),
        None,
    ),
    # An instance write, so admin-only (API.md §2).
    Row(
        "POST",
        "/instance/run_now",
        of_tenant(),
        OK,
        FORBIDDEN,
        FORBIDDEN,
        wakes_dispatcher=True,
    ),
    # tenants
    Row("POST", "/tenants/add", new_ids, OK, FORBIDDEN, None),
    Row(
        "GET",
        "/tenants/get",
        of_tenant(),
        Expect(200, fields_are(id=CALLER)),
        Expect(200, fields_are(id=CALLER)),
        FORBIDDEN,
    ),
    Row("GET", "/tenants/list", fixed(), OK, FORBIDDEN, None),
    Row("POST", "/tenants/update", of_tenant(name="Renamed"), OK, OK, FORBIDDEN),
    Row(
        "POST",
        "/tenants/delete",
        new_tenant_params,
        OK,
        Expect(403, still_there("/tenants/get", tenant_id="=tenant_id")),
        Expect(403, still_there("/tenants/get", tenant_id="=tenant_id")),
    ),
    Row("POST", "/tenants/suspend_batch", of_tenant(batch_code="b9"), OK, OK, FORBIDDEN),
    Row("POST", "/tenants/activate_batch", of_tenant(batch_code="b9"), OK, OK, FORBIDDEN),
    Row("GET", "/tenants/get_suspended_batches", of_tenant(), OK, OK, FORBIDDEN),
    # accounts
    Row("POST", "/accounts/add", new_account_body, OK, OK, FORBIDDEN),
    Row(
        "GET",
        "/accounts/get",
        of_tenant(account_id="{t}-acct"),
        Expect(200, fields_are(id="acme-acct", tenant_id=CALLER)),
        Expect(200, fields_are(id="acme-acct", tenant_id=CALLER)),
        FORBIDDEN,
        foreign=foreign_of(account_id="{t}-acct"),
        foreign_expect=NOT_FOUND,
    ),
    Row(
        "GET",
        "/accounts/list",
        of_tenant(),
        Expect(200, only_tenant(CALLER)),
        Expect(200, only_tenant(CALLER)),
        FORBIDDEN,
    ),
    Row(
        "POST",
        "/accounts/delete",
        new_account_params,
        Expect(200, body_is({"ok": True})),
        Expect(200, body_is({"ok": True})),
        Expect(403, still_there("/accounts/get", tenant_id=OTHER, account_id="=account_id")),
        foreign=foreign_account,
        foreign_expect=Expect(
            404, still_there("/accounts/get", tenant_id=OTHER, account_id="=account_id")
        ),
    ),
    # EE ee_bounce: the bounce mailbox is the instance's (admin only); suppressions are a tenant's
    Row("GET", "/instance/get_bounce_config", fixed(), OK, FORBIDDEN, None, plugin="ee_bounce"),
    Row(
        "POST",
        "/instance/set_bounce_config",
        fixed(poll_interval=120),
        OK,
        FORBIDDEN,
        None,
        plugin="ee_bounce",
    ),
    Row("POST", "/instance/reload_bounce", fixed(), OK, FORBIDDEN, None, plugin="ee_bounce"),
    Row("GET", "/suppressions/list", of_tenant(), OK, OK, FORBIDDEN, plugin="ee_bounce"),
    Row(
        "POST",
        "/suppressions/add",
        of_tenant(address="blocked@example.com"),
        OK,
        OK,
        FORBIDDEN,
        plugin="ee_bounce",
    ),
    Row(
        "POST",
        "/suppressions/delete",
        of_tenant(address="blocked@example.com"),
        OK,
        OK,
        FORBIDDEN,
        plugin="ee_bounce",
    ),
    # EE ee_pec: PEC accounts are accounts, scoped like them
    Row("POST", "/accounts/add_pec", new_pec_account_body, OK, OK, FORBIDDEN, plugin="ee_pec"),
    Row("GET", "/accounts/list_pec", of_tenant(), OK, OK, FORBIDDEN, plugin="ee_pec"),
    Row("GET", "/accounts/get_pec_ids", of_tenant(), OK, OK, FORBIDDEN, plugin="ee_pec"),
    # messages
    Row(
        "POST",
        "/messages/add",
        one_message,
        OK,
        OK,
        FORBIDDEN,
        foreign=foreign_account_message,
        foreign_expect=Expect(422, detail_is("account 'globex-acct' not found for tenant 'acme'")),
    ),
    Row(
        "POST",
        "/messages/add_batch",
        batch_of_one,
        Expect(200, fields_are(ok=True, queued=1, rejected=[])),
        Expect(200, fields_are(ok=True, queued=1, rejected=[])),
        Expect(200, rejected_other_tenant),
    ),
    Row(
        "GET",
        "/messages/get",
        of_tenant(message_id="{t}-m1"),
        Expect(200, fields_are(id="acme-m1", tenant_id=CALLER)),
        Expect(200, fields_are(id="acme-m1", tenant_id=CALLER)),
        FORBIDDEN,
        foreign=foreign_of(message_id="{t}-m1"),
        foreign_expect=NOT_FOUND,
    ),
    Row(
        "POST",
        "/messages/delete",
        new_message_pk,
        Expect(200, body_is(True)),
        Expect(200, body_is(True)),
        None,
        foreign=foreign_message_pk,
        foreign_expect=Expect(200, foreign_pk_untouched),
    ),
    Row(
        "POST",
        "/messages/delete_batch",
        new_message_ids,
        Expect(200, fields_are(ok=True, removed=1, not_found=[])),
        Expect(200, fields_are(ok=True, removed=1, not_found=[])),
        FORBIDDEN,
        foreign=foreign_message_ids,
        foreign_expect=Expect(200, foreign_ids_untouched),
    ),
    Row(
        "POST",
        "/messages/retry",
        new_message_ids,
        Expect(200, fields_are(ok=True, requeued=0, not_found=[])),
        Expect(200, fields_are(ok=True, requeued=0, not_found=[])),
        FORBIDDEN,
        foreign=foreign_message_ids,
        foreign_expect=Expect(200, foreign_ids_not_requeued),
    ),
    Row("POST", "/messages/cleanup", of_tenant(), OK, OK, FORBIDDEN),
    Row("GET", "/messages/cleanup", of_tenant(), OK, OK, FORBIDDEN),
    Row(
        "GET",
        "/messages/count_active",
        fixed(),
        Expect(200, active_count_all),
        Expect(200, active_count_of_caller),
        None,
    ),
    Row("GET", "/messages/count_pending_for_tenant", of_tenant(), OK, OK, FORBIDDEN),
    Row(
        "GET",
        "/messages/list",
        of_tenant(),
        Expect(200, only_tenant(CALLER)),
        Expect(200, only_tenant(CALLER)),
        FORBIDDEN,
    ),
    # storages
    Row("POST", "/storages/add", new_mount_body, OK, OK, FORBIDDEN),
    Row(
        "GET",
        "/storages/get",
        of_tenant(name="ACME_HOME"),
        Expect(200, fields_are(name="ACME_HOME", tenant_id=CALLER)),
        Expect(200, fields_are(name="ACME_HOME", tenant_id=CALLER)),
        Expect(403),
        foreign=foreign_of(name="GLOBEX_HOME"),
        foreign_expect=NOT_FOUND,
    ),
    Row(
        "GET",
        "/storages/list",
        of_tenant(),
        Expect(200, only_tenant(CALLER)),
        Expect(200, only_tenant(CALLER)),
        FORBIDDEN,
    ),
    Row(
        "POST",
        "/storages/delete",
        new_mount_params,
        Expect(200, body_is({"ok": True})),
        Expect(200, body_is({"ok": True})),
        Expect(403, still_there("/storages/get", tenant_id=OTHER, name="=name")),
        foreign=foreign_mount,
        foreign_expect=Expect(404, still_there("/storages/get", tenant_id=OTHER, name="=name")),
    ),
    # command log: admin only, whatever the tenant
    Row("GET", "/command_log/list", fixed(), OK, FORBIDDEN, None),
    Row("GET", "/command_log/get", a_command_id, OK, FORBIDDEN, None),
    Row("GET", "/command_log/export", fixed(), OK, FORBIDDEN, None),
    Row("POST", "/command_log/purge", fixed(threshold_ts=0), OK, FORBIDDEN, None),
    # EE ee_apikeys: the default key is the admin's business, named keys are tenant-scoped.
    Row(
        "POST",
        "/tenants/create_api_key",
        new_tenant_params,
        Expect(200, fields_are(ok=True)),
        FORBIDDEN,
        FORBIDDEN,
        plugin="ee_apikeys",
    ),
    Row(
        "POST",
        "/tenants/revoke_api_key",
        new_tenant_params,
        Expect(200, body_is({"ok": True})),
        FORBIDDEN,
        FORBIDDEN,
        plugin="ee_apikeys",
    ),
    Row(
        "POST",
        "/api_keys/add",
        new_key_body,
        Expect(200, fields_are(ok=True, tenant_id=CALLER)),
        Expect(200, fields_are(ok=True, tenant_id=CALLER)),
        FORBIDDEN,
        plugin="ee_apikeys",
    ),
    Row("GET", "/api_keys/list", of_tenant(), OK, OK, FORBIDDEN, plugin="ee_apikeys"),
    Row(
        "POST",
        "/api_keys/revoke",
        new_key_params,
        Expect(200, body_is({"ok": True})),
        Expect(200, body_is({"ok": True})),
        Expect(403, key_still_there(OTHER)),
        foreign=foreign_key,
        foreign_expect=Expect(404, key_still_there(OTHER)),
        plugin="ee_apikeys",
    ),
)

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
"""Methods Quart adds to every route by itself (HEAD runs the GET view)."""


def served_routes(app: Quart) -> set[str]:
    """``"METHOD /path"`` of every route the app serves."""
    return {
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        for method in sorted(set(rule.methods or ()) - IGNORED_METHODS)
    }


def applicable_rows(mp: MailProxy) -> list[Row]:
    """The rows that apply to this app: core rows, and plugin rows of loaded plugins."""
    loaded = {info.name for info in mp.plugins if info.status == "loaded"}
    return [row for row in TABLE if row.plugin is None or row.plugin in loaded]


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    """Settings of an app that is only built (never started)."""
    return Settings.from_values(
        db=str(tmp_path / "routes.db"), api_token=ADMIN_TOKEN, test_mode=True
    )


def test_every_route_has_a_scoping_row(
    plain_settings: Settings, mp_extra_plugins: dict[str, object]
) -> None:
    app = create_app(plain_settings, extra_plugins=mp_extra_plugins)
    rows = applicable_rows(kernel_of(app))
    listed = [row.route for row in rows]
    assert len(listed) == len(set(listed)), "a route has two rows"
    served = served_routes(app)
    unlisted = sorted(served - set(listed))
    stale = sorted(set(listed) - served)
    assert not unlisted, (
        f"routes without a scoping decision in TABLE: {unlisted}; add a row saying what the "
        "admin, a tenant key (own / other tenant) and an anonymous caller get"
    )
    assert not stale, f"TABLE rows for routes the app does not serve: {stale}"


def test_no_route_serves_files_from_the_working_directory(
    plain_settings: Settings,
    mp_extra_plugins: dict[str, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Quart("mailproxy") resolves its root to the working directory, and a Quart app serves
    # <root>/static/<file> by default, with no authentication: the files next to wherever the
    # service was started would be public.
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "private.txt").write_text("not for the public")
    monkeypatch.chdir(tmp_path)
    app = create_app(plain_settings, extra_plugins=mp_extra_plugins)
    static = [rule.rule for rule in app.url_map.iter_rules() if rule.endpoint == "static"]
    assert not static, f"the app serves {static} without authentication"


async def call(client: ApiClient, row: Row, params: Params) -> Response:
    """Send ``params`` to the row's route as a query string (GET) or a JSON body (POST)."""
    if row.method == "GET":
        query = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in params.items()}
        return await client.get(row.path, **query)
    return await client.post(row.path, json=params)


async def verify(
    row: Row, label: str, expect: Expect, response: Response, params: Params, world: World
) -> list[str]:
    """The mismatches between ``response`` and ``expect``, as readable lines."""
    where = f"{row.route} [{label}] {params}"
    if response.status != expect.status:
        return [f"{where}: expected {expect.status}, got {response.status} {response.json!r}"]
    problems: list[str] = []
    if response.status >= 400:
        body = response.json
        if not (isinstance(body, dict) and body.get("detail") and body.get("code")):
            problems.append(f"{where}: error body without detail/code: {body!r}")
    if expect.check is not None:
        problem = await expect.check(response.json, params, world)
        if problem:
            problems.append(f"{where}: {problem}; body {response.json!r}")
    return problems


async def probe_own(
    row: Row, world: World, tenant: ApiClient, expect: Expect, label: str = "own"
) -> list[str]:
    """Call the row's route on the caller's own tenant, naming it and (if any) leaving it out."""
    params = await row.params(world, CALLER, "own")
    response = await call(tenant, row, params)
    problems = await verify(row, label, expect, response, params, world)
    if "tenant_id" in params:
        params = dict(await row.params(world, CALLER, "own"))
        del params["tenant_id"]
        response = await call(tenant, row, params)
        problems += await verify(
            row, f"{label}, tenant_id left out", expect, response, params, world
        )
    return problems


async def probe_row(
    row: Row, world: World, mp_client: ApiClient, tenant: ApiClient | None = None
) -> list[str]:
    """Call the row's route as every kind of caller; return what did not match.

    ``tenant`` is ``acme``'s client (default: the test-only tenant token).
    """
    admin = mp_client
    tenant = tenant or mp_client.as_tenant(CALLER)
    problems: list[str] = []

    params = await row.params(world, CALLER, "admin")
    problems += await verify(row, "admin", row.admin, await call(admin, row, params), params, world)

    problems += await probe_own(row, world, tenant, row.own)

    if row.other is not None:
        params = await row.params(world, OTHER, "other")
        response = await call(tenant, row, params)
        problems += await verify(
            row, f"{CALLER} naming {OTHER}", row.other, response, params, world
        )

    if row.foreign is not None:
        assert row.foreign_expect is not None, f"{row.route}: foreign without foreign_expect"
        params = await row.foreign(world)
        response = await call(tenant, row, params)
        label = f"{CALLER} with {OTHER}'s ids"
        problems += await verify(row, label, row.foreign_expect, response, params, world)

    for label, anonymous in (
        ("no token", mp_client.with_token(None)),
        ("wrong token", mp_client.with_token("wrong")),
    ):
        params = await row.params(world, CALLER, "anon")
        response = await call(anonymous, row, params)
        problems += await verify(row, label, row.anon, response, params, world)
    return problems


def rows_to_probe(mp_app: Quart, mp_kernel: MailProxy) -> list[Row]:
    """The applicable rows of served routes; ``run_now`` (it wakes the dispatcher, which then
    sends what is queued) goes last, so that no other row races with a send."""
    rows = [row for row in applicable_rows(mp_kernel) if row.route in served_routes(mp_app)]
    rows.sort(key=lambda row: row.wakes_dispatcher)
    return rows


NEEDS_API_KEYS = pytest.mark.requires_plugins("ee_apikeys")
"""Real tenant API keys come from the EE plugin ``ee_apikeys``."""


@pytest.mark.parametrize(
    "credential", ["test_token", pytest.param("default_api_key", marks=NEEDS_API_KEYS)]
)
async def test_scoping_of_every_route(
    mp_app: Quart, mp_kernel: MailProxy, mp_client: ApiClient, world: World, credential: str
) -> None:
    if credential == "test_token":
        tenant = mp_client.as_tenant(CALLER)
    else:
        tenant = mp_client.with_token(world.api_keys[CALLER])
    problems: list[str] = []
    for row in rows_to_probe(mp_app, mp_kernel):
        problems += await probe_row(row, world, mp_client, tenant)
    assert not problems, "scoping mismatches:\n" + "\n".join(problems)


# --- scoped API keys (EE ee_apikeys) -----------------------------------------------------------

SEND_WRITES = frozenset({"POST /messages/add", "POST /messages/add_batch"})
"""The writes the ``send`` scope allows; it also reads the tenant's messages."""

WRITES_BY_GET = frozenset(
    f"GET {row.path}"
    for row in TABLE
    if row.method == "POST" and any(r.method == "GET" and r.path == row.path for r in TABLE)
)
"""The GET forms of writes (served with GET too for reference clients): never a read."""


def scope_allows(row: Row, scope: str) -> bool:
    """Whether a key with only ``scope`` may call the row's route (stated here, independently of
    the plugin's code)."""
    is_read = row.method == "GET" and row.route not in WRITES_BY_GET
    if scope == "manage":
        return True
    if scope == "read":
        return is_read
    return row.route in SEND_WRITES or (is_read and row.path.startswith("/messages/"))


def scoped_expectation(row: Row, scope: str) -> Expect:
    """The row's ``own`` answer where the scope allows it (or where the route is public, or
    refuses every tenant anyway); else 403 naming the narrowest scope that would allow it."""
    public = row.anon.status != 401
    if public or scope_allows(row, scope) or row.own.status in (401, 403):
        return row.own
    is_read = row.method == "GET" and row.route not in WRITES_BY_GET
    needed = "send" if row.route in SEND_WRITES else "read" if is_read else "manage"

    async def names_scope(body: Any, params: Params, world: World) -> str | None:
        wanted = f"lacks the scope '{needed}'"
        return None if wanted in str(body.get("detail")) else f"detail should say {wanted!r}"

    return Expect(403, names_scope)


async def new_key(world: World, scopes: list[str], **extra: Any) -> tuple[str, str]:
    """A new scoped key of ``acme`` (made by the admin): its name and the key."""
    name = world.unique("probe")
    body = {"tenant_id": CALLER, "name": name, "scopes": scopes, **extra}
    made = await ok(await world.admin.post("/api_keys/add", json=body), "api_keys/add")
    return name, str(made["api_key"])


@NEEDS_API_KEYS
async def test_scoped_expired_and_revoked_keys_on_every_route(
    mp_app: Quart, mp_kernel: MailProxy, mp_client: ApiClient, world: World
) -> None:
    scoped = {scope: (await new_key(world, [scope]))[1] for scope in ("send", "read", "manage")}
    _, expired = await new_key(world, ["manage"], expires_at=1)
    revoked_name, revoked = await new_key(world, ["manage"])
    body = {"tenant_id": CALLER, "name": revoked_name}
    await ok(await mp_client.post("/api_keys/revoke", json=body), "api_keys/revoke")
    problems: list[str] = []
    for row in rows_to_probe(mp_app, mp_kernel):
        for scope, key in scoped.items():
            client = mp_client.with_token(key)
            expect = scoped_expectation(row, scope)
            problems += await probe_own(row, world, client, expect, label=f"{scope} key")
        for label, key in (("expired key", expired), ("revoked key", revoked)):
            params = await row.params(world, CALLER, "anon")
            response = await call(mp_client.with_token(key), row, params)
            problems += await verify(row, label, row.anon, response, params, world)
    assert not problems, "scoped key mismatches:\n" + "\n".join(problems)
