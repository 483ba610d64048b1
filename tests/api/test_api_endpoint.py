"""Endpoint introspection: scoping decisions, duplicates, signatures, helpers."""

from __future__ import annotations

from typing import Any, cast

import pytest
from quart import Quart

from mailproxy_core.api import (
    POST,
    Endpoint,
    Scope,
    admin_only,
    any_principal,
    collect_methods,
    describe_endpoint,
    public,
    tenant_scoped,
)
from mailproxy_core.api.generate import build_api
from mailproxy_core.api.signature import param_docs, without_args_section
from mailproxy_core.errors import AuthError, Forbidden, InvalidInput, PluginError
from mailproxy_core.models import Principal
from mailproxy_core.specs import EndpointSpec


class Accounts(Endpoint):
    @tenant_scoped
    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        """List accounts."""
        return []

    async def _helper(self) -> None:
        """Private: never a route."""

    def sync_helper(self) -> int:
        """Not async: never a route."""
        return 1


class MoreAccounts(Endpoint):
    @POST
    @admin_only
    async def list(self, tenant_id: str) -> list[dict[str, Any]]:
        """Clashes with Accounts.list."""
        return []


class Unscoped(Endpoint):
    async def forgotten(self) -> None:
        """No scoping decision."""


async def _noop(_app: Any) -> Principal | None:
    return None


def test_public_async_methods_become_routes() -> None:
    infos = describe_endpoint("accounts", Accounts)
    assert [(i.name, i.http_method, i.path, i.scope) for i in infos] == [
        ("list", "GET", "/accounts/list", Scope.TENANT_SCOPED)
    ]


def test_missing_scoping_decision_is_rejected() -> None:
    with pytest.raises(PluginError, match=r"unscoped\.forgotten .* has no scoping decision"):
        collect_methods([EndpointSpec("unscoped", Unscoped)])


def test_duplicate_method_names_both_classes() -> None:
    specs = [EndpointSpec("accounts", Accounts), EndpointSpec("accounts", MoreAccounts)]
    with pytest.raises(PluginError) as caught:
        build_api(Quart(__name__), endpoints=specs, kernel=None, authenticate=_noop)
    message = str(caught.value)
    assert "accounts.list is defined twice" in message
    assert f"{__name__}.Accounts" in message
    assert f"{__name__}.MoreAccounts" in message


def test_same_method_name_on_different_entities_is_fine() -> None:
    infos = collect_methods(
        [EndpointSpec("accounts", Accounts), EndpointSpec("pec_accounts", MoreAccounts)]
    )
    assert [i.path for i in infos] == ["/accounts/list", "/pec_accounts/list"]


def test_two_scoping_decisions_are_rejected() -> None:
    with pytest.raises(PluginError, match="marked both @admin_only and @public"):

        class Twice(Endpoint):
            @public
            @admin_only
            async def health(self) -> None:
                """Health."""


def test_tenant_scoped_needs_a_tenant_id_parameter() -> None:
    class NoTenant(Endpoint):
        @tenant_scoped
        async def list(self) -> None:
            """List."""

    with pytest.raises(
        PluginError, match=r"notenant\.list .*@tenant_scoped but has no 'tenant_id'"
    ):
        describe_endpoint("notenant", NoTenant)


def test_decorated_sync_method_is_rejected() -> None:
    class Sync(Endpoint):
        @admin_only  # type: ignore[type-var]
        def status(self) -> None:
            """Not async."""

    with pytest.raises(PluginError, match=r"sync\.status .* not a plain 'async def'"):
        describe_endpoint("sync", Sync)


def test_unresolvable_type_hint_is_rejected() -> None:
    class Hidden(Endpoint):
        @admin_only
        async def get(self, item: OnlyUnderTypeChecking) -> None:  # type: ignore[name-defined]  # noqa: F821
            """Uses a type imported only for type checkers."""

    with pytest.raises(PluginError, match=r"hidden\.get .*cannot resolve its type hints"):
        describe_endpoint("hidden", Hidden)


def test_parameter_without_hint_and_star_args_are_rejected() -> None:
    class NoHint(Endpoint):
        @admin_only
        async def get(self, item) -> None:  # type: ignore[no-untyped-def]
            """No hint."""

    class StarArgs(Endpoint):
        @admin_only
        async def get(self, *items: str) -> None:
            """Star args."""

    with pytest.raises(PluginError, match="'item' has no type hint"):
        describe_endpoint("nohint", NoHint)
    with pytest.raises(PluginError, match="'items' must be passable by keyword"):
        describe_endpoint("starargs", StarArgs)


def test_bad_entity_name_and_non_endpoint_class() -> None:
    with pytest.raises(PluginError, match="must be lowercase"):
        describe_endpoint("Accounts", Accounts)
    with pytest.raises(PluginError, match="must be a subclass of Endpoint"):
        describe_endpoint("things", object)  # type: ignore[arg-type]


def test_subclass_inherits_routes_of_its_bases() -> None:
    class Child(Accounts):
        @any_principal
        async def extra(self) -> int:
            """Extra."""
            return 1

    assert [i.name for i in describe_endpoint("accounts", Child)] == ["list", "extra"]


def test_own_tenant_id_helpers() -> None:
    tenant = Endpoint(cast(Any, None), Principal.tenant("acme"))
    admin = Endpoint(cast(Any, None), Principal.admin())
    anonymous = Endpoint(cast(Any, None), None)
    assert tenant.own_tenant_id(None) == "acme"
    assert tenant.own_tenant_id("acme") == "acme"
    with pytest.raises(Forbidden):
        tenant.own_tenant_id("globex")
    assert admin.own_tenant_id(None) is None
    assert admin.own_tenant_id("globex") == "globex"
    with pytest.raises(InvalidInput, match="tenant_id: Field required"):
        admin.require_tenant_id(None)
    with pytest.raises(Forbidden):
        tenant.require_admin()
    assert admin.require_admin().is_admin
    with pytest.raises(AuthError):
        anonymous.own_tenant_id("acme")
    assert (tenant.is_admin, admin.is_admin, anonymous.is_admin) == (False, True, False)


def test_param_docs_parses_google_style_args() -> None:
    doc = """Do it.

    Args:
        tenant_id: the tenant.
        batch_code (str): the batch,
            or all batches when omitted.

    Returns:
        something.
    """
    assert param_docs(doc) == {
        "tenant_id": "the tenant.",
        "batch_code": "the batch, or all batches when omitted.",
    }
    assert without_args_section("Intro.\n\nArgs:\n    a: x.\n\nReturns:\n    y.") == (
        "Intro.\n\nReturns:\n    y."
    )
