"""``route_info(request)``: an auth backend learns which generated route is called; and a tenant
principal's own name reaches the command log."""

from __future__ import annotations

from typing import Any

import pytest
from quart import Blueprint

from mailproxy_core import (
    POST,
    Endpoint,
    EndpointSpec,
    Principal,
    RouteInfo,
    RouteSpec,
    admin_only,
    extract_token,
    hookimpl,
    route_info,
)
from mailproxy_core.api.endpoint import also_get
from mailproxy_core.kernel import MailProxy
from mailproxy_core.specs import AuthBackendSpec
from mailproxy_core.testing.client import ApiClient

NAMED_TOKEN = "named-tenant-token"


class RouteRecordingBackend:
    """Accepts ``NAMED_TOKEN`` as tenant ``acme`` with the principal name ``ci``; records what
    ``route_info`` said for each request it saw."""

    def __init__(self, seen: list[tuple[str, RouteInfo | None]]) -> None:
        self.seen = seen

    async def authenticate(self, request: Any) -> Principal | None:
        self.seen.append((request.path, route_info(request)))
        if extract_token(request) == NAMED_TOKEN:
            return Principal.tenant("acme", name="ci")
        return None


class Sweeper(Endpoint):
    @POST
    @also_get
    @admin_only
    async def sweep(self) -> dict[str, bool]:
        """A write that reference clients may also call with GET."""
        return {"ok": True}


class RouteRecordingPlugin:
    def __init__(self) -> None:
        self.seen: list[tuple[str, RouteInfo | None]] = []

    @hookimpl
    def mailproxy_register_auth_backends(self) -> list[AuthBackendSpec]:
        return [AuthBackendSpec("route_recorder", lambda mp: RouteRecordingBackend(self.seen), 1)]

    @hookimpl
    def mailproxy_register_routes(self) -> list[RouteSpec]:
        blueprint = Blueprint("raw_probe", __name__)

        @blueprint.get("/raw-probe")
        async def raw() -> dict[str, bool]:
            return {"ok": True}

        return [RouteSpec("raw_probe", blueprint)]

    @hookimpl
    def mailproxy_register_endpoints(self) -> list[EndpointSpec]:
        return [EndpointSpec("probe", Sweeper)]


@pytest.fixture
def recorder(register_plugin: Any) -> RouteRecordingPlugin:
    plugin = RouteRecordingPlugin()
    register_plugin(plugin, "route_recorder")
    return plugin


async def test_route_info_names_the_generated_route(
    recorder: RouteRecordingPlugin, mp_client: ApiClient
) -> None:
    assert (await mp_client.get("/tenants/list")).status == 200
    assert (await mp_client.post("/tenants/add", json={"id": "acme"})).status == 200
    assert (await mp_client.get("/raw-probe")).status == 200
    assert (await mp_client.post("/probe/sweep")).status == 200
    assert (await mp_client.get("/probe/sweep")).status == 200
    sweep = RouteInfo("probe", "sweep", "POST", "/probe/sweep", "admin_only")
    assert recorder.seen == [
        ("/tenants/list", RouteInfo("tenants", "list", "GET", "/tenants/list", "admin_only")),
        ("/tenants/add", RouteInfo("tenants", "add", "POST", "/tenants/add", "admin_only")),
        ("/raw-probe", None),
        ("/probe/sweep", sweep),
        ("/probe/sweep", sweep),  # the GET form of a write is still a write
    ]
    scoped = [info for _, info in recorder.seen if info is not None]
    assert all(info.scope == "admin_only" for info in scoped)


async def test_command_log_names_the_tenant_principal(
    recorder: RouteRecordingPlugin, mp_client: ApiClient, mp_kernel: MailProxy
) -> None:
    assert (await mp_client.post("/tenants/add", json={"id": "acme"})).status == 200
    named = mp_client.with_token(NAMED_TOKEN)
    assert (await named.post("/tenants/update", json={"name": "Acme"})).status == 200
    entries = await mp_kernel.repos.command_log.list(limit=None)
    assert [(e["endpoint"], e["principal"]) for e in entries] == [
        ("POST /tenants/add", "admin"),
        ("POST /tenants/update", "tenant:acme/ci"),
    ]
    assert NAMED_TOKEN not in str(entries)
